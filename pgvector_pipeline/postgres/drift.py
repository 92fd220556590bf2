"""What an app changed on the live tables while a swapped restore loaded the new ones (see postgres.shadow).

The new tables are dressed from the catalog before the swap (indexes, constraints, triggers, policies, grants, owner,
comments, options). An app's DDL committed after that (a CREATE INDEX, a GRANT, a COMMENT, a view reading the table:
the writers' SHARE lock lets each of them through) would vanish with the swapped-out table, or stay bound to it. The
swap reads this state again under its ACCESS EXCLUSIVE locks and gives up, saying what changed, when it differs.
"""

from collections.abc import Sequence

import psycopg2.extensions

# Each part of a table's definition the swap carries over, as sorted text rows of the table `%(oid)s`.
_PARTS = {
    "indexes": "SELECT c.relname OPERATOR(pg_catalog.||) ': ' OPERATOR(pg_catalog.||) "
    "pg_catalog.pg_get_indexdef(i.indexrelid) FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid "
    "OPERATOR(pg_catalog.=) i.indexrelid WHERE i.indrelid OPERATOR(pg_catalog.=) %(oid)s",
    "constraints": "SELECT conname OPERATOR(pg_catalog.||) ': ' OPERATOR(pg_catalog.||) "
    "pg_catalog.pg_get_constraintdef(oid) FROM pg_catalog.pg_constraint WHERE conrelid OPERATOR(pg_catalog.=) %(oid)s",
    "triggers": "SELECT pg_catalog.pg_get_triggerdef(oid) FROM pg_catalog.pg_trigger WHERE tgrelid "
    "OPERATOR(pg_catalog.=) %(oid)s AND NOT tgisinternal",
    "policies": "SELECT polname::pg_catalog.text FROM pg_catalog.pg_policy WHERE polrelid OPERATOR(pg_catalog.=) %(oid)s",
    "grants, owner, options or comment": "SELECT pg_catalog.concat_ws(' ', relacl, relowner, reloptions, relreplident, "
    "relrowsecurity, relforcerowsecurity, pg_catalog.obj_description(oid, 'pg_class')) FROM pg_catalog.pg_class "
    "WHERE oid OPERATOR(pg_catalog.=) %(oid)s",
    "columns": "SELECT pg_catalog.concat_ws(' ', attname, atttypid, attnotnull, attacl, attoptions, attstattarget, "
    "pg_catalog.col_description(attrelid, attnum)) FROM pg_catalog.pg_attribute WHERE attrelid "
    "OPERATOR(pg_catalog.=) %(oid)s AND attnum OPERATOR(pg_catalog.>) 0",
    "objects depending on it (a view, a foreign key, a function)": "SELECT pg_catalog.pg_describe_object(classid, "
    "objid, objsubid) FROM pg_catalog.pg_depend WHERE refclassid OPERATOR(pg_catalog.=) "
    "'pg_catalog.pg_class'::pg_catalog.regclass AND refobjid OPERATOR(pg_catalog.=) %(oid)s AND deptype "
    "OPERATOR(pg_catalog.=) ANY ('{n,a}'::pg_catalog.\"char\"[])",
}

TableState = dict[str, list[str]]


def table_states(cur: psycopg2.extensions.cursor, tables: Sequence[tuple[str, int]]) -> dict[str, TableState]:
    """Each (name, oid) table's definition as the swap carries it over, part by part."""
    states = {}
    for name, oid in tables:
        state = {}
        for part, query in _PARTS.items():
            cur.execute(query + " ORDER BY 1", {"oid": oid})
            state[part] = [str(row[0]) for row in cur.fetchall()]
        states[name] = state
    return states


def changes(before: dict[str, TableState], now: dict[str, TableState]) -> list[str]:
    """What differs between two readings of table_states, as '<table>: <part>' lines naming what came or went."""
    found = []
    for table, state in before.items():
        for part, rows in state.items():
            later = now.get(table, {}).get(part, [])
            if later != rows:
                added = [row for row in later if row not in rows]
                gone = [row for row in rows if row not in later]
                detail = "; ".join([f"new: {row}" for row in added[:3]] + [f"gone: {row}" for row in gone[:3]])
                found.append(f"{table}: {part} changed" + (f" ({detail})" if detail else ""))
    return found
