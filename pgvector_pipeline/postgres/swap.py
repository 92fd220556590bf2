"""What stops a restore from loading beside the live tables and swapping them in (issue 23): objects that point at
a live table by its identity (oid), which a swap would leave pointing at the old table or would have to rebuild
unfaithfully. Read from the catalog before anything is loaded; a restore that finds any of them loads in place, as
before, and says why.

Swapped together, the set's own tables may reference each other (their foreign keys are rebuilt on the new
tables); everything else that depends on a live table blocks the swap:
- a view or materialized view reading it (its query is bound to the old table's oid);
- a rule on it (other than a view's own);
- another table's foreign key into it (that table is not swapped);
- a publication of it, or of all tables (logical replication follows the oid);
- inheritance or partitioning (a partitioned table, a partition, a parent or a child);
- a sequence it owns that another table's column also draws from;
- anything else the catalog records as depending on it or on its row type (a function with a SQL-standard body or
  returning its rows, another table's column of its row type, a policy of another table reading it), or an
  extension it belongs to: whatever PostgreSQL would keep bound to the old table. This catch-all is what keeps a
  kind of dependent nobody listed here from being swapped away silently.
"""

from collections.abc import Sequence

import psycopg2.extensions

from pgvector_pipeline.postgres.catalog import single_row, table_oid

_VIEWS = """
SELECT DISTINCT v.relname, CASE WHEN v.relkind OPERATOR(pg_catalog.=) 'm' THEN 'materialized view' ELSE 'view' END
FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_rewrite r ON r.oid OPERATOR(pg_catalog.=) d.objid
  JOIN pg_catalog.pg_class v ON v.oid OPERATOR(pg_catalog.=) r.ev_class
WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass
  AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
  AND d.refobjid OPERATOR(pg_catalog.=) %(oid)s
  AND v.oid OPERATOR(pg_catalog.<>) %(oid)s ORDER BY 1
"""
_RULES = (
    "SELECT rulename FROM pg_catalog.pg_rewrite WHERE ev_class OPERATOR(pg_catalog.=) %(oid)s "
    "AND rulename OPERATOR(pg_catalog.<>) '_RETURN' ORDER BY 1"
)
_FOREIGN_KEYS_IN = """
SELECT c.conname, t.relname FROM pg_catalog.pg_constraint c JOIN pg_catalog.pg_class t
  ON t.oid OPERATOR(pg_catalog.=) c.conrelid
WHERE c.contype OPERATOR(pg_catalog.=) 'f' AND c.confrelid OPERATOR(pg_catalog.=) %(oid)s
  AND c.conrelid OPERATOR(pg_catalog.<>) ALL (%(swapped)s) ORDER BY 1
"""
_PUBLICATIONS = """
SELECT pubname FROM pg_catalog.pg_publication WHERE puballtables
UNION SELECT p.pubname FROM pg_catalog.pg_publication_rel r JOIN pg_catalog.pg_publication p
  ON p.oid OPERATOR(pg_catalog.=) r.prpubid WHERE r.prrelid OPERATOR(pg_catalog.=) %(oid)s
UNION SELECT p.pubname FROM pg_catalog.pg_publication_namespace n JOIN pg_catalog.pg_publication p
  ON p.oid OPERATOR(pg_catalog.=) n.pnpubid
  JOIN pg_catalog.pg_class c ON c.relnamespace OPERATOR(pg_catalog.=) n.pnnspid
  WHERE c.oid OPERATOR(pg_catalog.=) %(oid)s
ORDER BY 1
"""
_INHERITANCE = """
SELECT c.relkind OPERATOR(pg_catalog.=) 'p', c.relispartition,
  NOT c.relispartition AND EXISTS (SELECT 1 FROM pg_catalog.pg_inherits
    WHERE inhrelid OPERATOR(pg_catalog.=) %(oid)s),
  c.relkind OPERATOR(pg_catalog.<>) 'p' AND EXISTS (SELECT 1 FROM pg_catalog.pg_inherits
    WHERE inhparent OPERATOR(pg_catalog.=) %(oid)s)
FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) %(oid)s
"""
_SHARED_SEQUENCES = """
SELECT DISTINCT s.relname, t.relname FROM pg_catalog.pg_depend o JOIN pg_catalog.pg_class s
  ON s.oid OPERATOR(pg_catalog.=) o.objid
JOIN pg_catalog.pg_attrdef d ON true JOIN pg_catalog.pg_depend u
  ON u.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_attrdef'::pg_catalog.regclass
  AND u.objid OPERATOR(pg_catalog.=) d.oid
  AND u.refobjid OPERATOR(pg_catalog.=) s.oid JOIN pg_catalog.pg_class t ON t.oid OPERATOR(pg_catalog.=) d.adrelid
WHERE o.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
  AND o.refobjid OPERATOR(pg_catalog.=) %(oid)s
  AND o.deptype OPERATOR(pg_catalog.=) ANY ('{a,i}'::pg_catalog."char"[]) AND s.relkind OPERATOR(pg_catalog.=) 'S'
  AND d.adrelid OPERATOR(pg_catalog.<>) ALL (%(swapped)s) ORDER BY 1
"""

# Dependents recorded in pg_depend (on the table or its row type) other than the table's own parts, which a swap
# rebuilds (indexes, constraints, defaults, triggers, policies, statistics), and the kinds named above.
_OTHER_DEPENDENTS = """
SELECT DISTINCT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) FROM pg_catalog.pg_depend d
WHERE d.deptype OPERATOR(pg_catalog.=) 'n'
  AND ((d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
    AND d.refobjid OPERATOR(pg_catalog.=) %(oid)s)
    OR (d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass
      AND d.refobjid OPERATOR(pg_catalog.=) (SELECT reltype FROM pg_catalog.pg_class
      WHERE oid OPERATOR(pg_catalog.=) %(oid)s)))
  AND d.classid OPERATOR(pg_catalog.<>) 'pg_catalog.pg_rewrite'::pg_catalog.regclass
  AND NOT (d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_constraint'::pg_catalog.regclass
    AND EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.oid OPERATOR(pg_catalog.=) d.objid
      AND (c.conrelid OPERATOR(pg_catalog.=) %(oid)s OR c.contype OPERATOR(pg_catalog.=) 'f')))
  AND NOT (d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_policy'::pg_catalog.regclass
    AND EXISTS (SELECT 1 FROM pg_catalog.pg_policy p WHERE p.oid OPERATOR(pg_catalog.=) d.objid
      AND p.polrelid OPERATOR(pg_catalog.=) %(oid)s))
  AND NOT (d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_trigger'::pg_catalog.regclass
    AND EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t WHERE t.oid OPERATOR(pg_catalog.=) d.objid
      AND t.tgrelid OPERATOR(pg_catalog.=) %(oid)s))
  AND NOT (d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_attrdef'::pg_catalog.regclass
    AND EXISTS (SELECT 1 FROM pg_catalog.pg_attrdef a WHERE a.oid OPERATOR(pg_catalog.=) d.objid
      AND a.adrelid OPERATOR(pg_catalog.=) %(oid)s))
  AND NOT (d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_statistic_ext'::pg_catalog.regclass
    AND EXISTS (SELECT 1 FROM pg_catalog.pg_statistic_ext x WHERE x.oid OPERATOR(pg_catalog.=) d.objid
      AND x.stxrelid OPERATOR(pg_catalog.=) %(oid)s))
  AND NOT (d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
    AND d.objsubid OPERATOR(pg_catalog.=) 0
    AND (EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indexrelid OPERATOR(pg_catalog.=) d.objid
      AND i.indrelid OPERATOR(pg_catalog.=) %(oid)s)
      OR EXISTS (SELECT 1 FROM pg_catalog.pg_inherits h WHERE h.inhrelid OPERATOR(pg_catalog.=) d.objid
        AND h.inhparent OPERATOR(pg_catalog.=) %(oid)s)))
ORDER BY 1
"""
_EXTENSION = """
SELECT e.extname FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_extension e ON e.oid OPERATOR(pg_catalog.=) d.refobjid
WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
  AND d.objid OPERATOR(pg_catalog.=) %(oid)s
  AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
  AND d.deptype OPERATOR(pg_catalog.=) 'e'
"""


def swap_blockers(
    cur: psycopg2.extensions.cursor, schema: str, tables: Sequence[str], new_tables: Sequence[str] = ()
) -> list[str]:
    """Why the live `tables` cannot be swapped for new ones, one reason per line (empty: they can). `new_tables`: the
    new tables built to be swapped in, once they exist; they are part of the swap (a serial column's default of a new
    table reads the live table's sequence, which the swap hands over), never a reason against it."""
    oids = {table: table_oid(cur, schema, table) for table in tables}
    swapped = [oid for oid in oids.values() if oid is not None]
    swapped += [oid for table in new_tables if (oid := table_oid(cur, schema, table)) is not None]
    reasons: list[str] = []
    for table, oid in oids.items():
        if oid is None:
            continue
        params = {"oid": oid, "swapped": swapped}
        cur.execute(_VIEWS, params)
        reasons += [f"{kind} {name} reads {table}" for name, kind in cur.fetchall()]
        cur.execute(_RULES, params)
        reasons += [f"rule {name} is defined on {table}" for (name,) in cur.fetchall()]
        cur.execute(_FOREIGN_KEYS_IN, params)
        reasons += [f"foreign key {name} of {other} references {table}" for name, other in cur.fetchall()]
        cur.execute(_PUBLICATIONS, params)
        reasons += [f"publication {name} publishes {table}" for (name,) in cur.fetchall()]
        cur.execute(_INHERITANCE, params)
        partitioned, partition, child, parent = single_row(cur)
        reasons += [
            f"{table} is {what}"
            for what, applies in (
                ("partitioned", partitioned),
                ("a partition", partition),
                ("a child of an inheritance parent", child),
                ("an inheritance parent", parent),
            )
            if applies
        ]
        cur.execute(_SHARED_SEQUENCES, params)
        reasons += [f"sequence {seq} of {table} is also used by {other}" for seq, other in cur.fetchall()]
        cur.execute(_OTHER_DEPENDENTS, params)
        reasons += [f"{dependent} depends on {table}" for (dependent,) in cur.fetchall()]
        cur.execute(_EXTENSION, params)
        reasons += [f"{table} belongs to extension {name}" for (name,) in cur.fetchall()]
    return reasons
