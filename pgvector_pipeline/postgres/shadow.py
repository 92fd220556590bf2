"""New tables beside the live ones, the same in every respect, swapped in by renaming (issue 23).

A restore that must not take the app down loads into new tables nobody reads yet, builds their indexes, and then, in
one short transaction, renames the live tables away, gives the new ones their names and drops the old ones. Readers
wait only for that transaction. This module makes the new tables faithful to the live ones and swaps them:

  create_shadows   CREATE TABLE … (LIKE live INCLUDING columns, defaults, CHECK and NOT NULL constraints, generated
                   and identity columns, storage, compression, statistics, comments) and the table's comment;
                   no index and no autovacuum yet, so the load is fast and nothing else locks it
  finish_shadows   after the load: storage parameters, ANALYZE, indexes and primary/unique/exclusion constraints
                   (temporary names), foreign keys
                   (those between swapped tables re-pointed at the new tables), replica identity, triggers, row-level
                   security and its policies, grants, owner, identity sequences' positions, columns'
                   statistics targets and options, the index it is clustered on
  swap_shadows     in the caller's transaction: the live tables, their indexes and constraints renamed away, the new
                   ones given their names, owned sequences handed over, the old tables dropped

Everything is read from the catalog (pg_get_indexdef, pg_get_constraintdef, pg_get_triggerdef, policies, ACLs) and
re-aimed with PostgreSQL's parser (pglast), never by editing SQL text. What a swap cannot carry faithfully (views,
other tables' foreign keys, publications, partitioning: postgres.swap) must be refused before this runs.
"""

import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from pglast import ast, parse_sql
from pglast.stream import RawStream
from psycopg2 import sql

from pgvector_pipeline.errors import DatabaseError, PipelineError
from pgvector_pipeline.postgres import drift
from pgvector_pipeline.postgres.catalog import qualified, single_row, single_value, table_oid
from pgvector_pipeline.postgres.connection import connect, further_session
from pgvector_pipeline.postgres.locks import described, lock_holders
from pgvector_pipeline.postgres.swap import swap_blockers

# Each attempt at the swap waits this long for its ACCESS EXCLUSIVE locks: readers that come meanwhile queue behind
# the request, so this bounds how long any of them waits.
SWAP_LOCK_WAIT_MS = 1000
SWAP_ATTEMPTS = 5
_SWAP_PAUSE_S = 1.0


@dataclass
class Shadow:
    """A live table and the new table beside it, with what finish_shadows and swap_shadows need."""

    live: str
    oid: int
    name: str
    # Each index and index-backed constraint built on the new table: its live name, and the names the new one has
    # until the swap and the live one has after it (from the live index's oid: unique, short, whatever its name).
    renames: list[tuple[str, str, str]] = field(default_factory=list)


def shadow_name(oid: int) -> str:
    """The new table's name while it is built: the live table's oid makes it unique and at most 63 characters."""
    return f"pgvector_new_{oid}"


def create_shadows(cur: psycopg2.extensions.cursor, schema: str, tables: Sequence[str]) -> list[Shadow]:
    """Create a new, empty table beside each live one (see the module's docstring), in `tables`' order."""
    shadows = []
    for table in tables:
        oid = table_oid(cur, schema, table)
        assert oid is not None, f"{schema}.{table} exists"
        shadow = Shadow(table, oid, shadow_name(oid))
        # LIKE copies neither: an unlogged table stays unlogged, and the new table lives where the live one does.
        cur.execute(
            "SELECT c.relpersistence OPERATOR(pg_catalog.=) 'u', t.spcname FROM pg_catalog.pg_class c LEFT JOIN "
            "pg_catalog.pg_tablespace t ON t.oid OPERATOR(pg_catalog.=) c.reltablespace WHERE c.oid "
            "OPERATOR(pg_catalog.=) %s",
            (oid,),
        )
        unlogged, tablespace = single_row(cur)
        cur.execute(
            sql.SQL(
                "CREATE {unlogged}TABLE {new} (LIKE {live} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING "
                "GENERATED INCLUDING IDENTITY INCLUDING STORAGE INCLUDING COMPRESSION INCLUDING COMMENTS INCLUDING "
                "STATISTICS){tablespace}"
            ).format(
                unlogged=sql.SQL("UNLOGGED " if unlogged else ""),
                new=qualified(schema, shadow.name),
                live=qualified(schema, table),
                tablespace=sql.SQL(" TABLESPACE {}").format(sql.Identifier(tablespace)) if tablespace else sql.SQL(""),
            )
        )
        # Autovacuum must not work on it while it loads: its lock would hold up the swap's renames.
        cur.execute(
            sql.SQL("ALTER TABLE {} SET (autovacuum_enabled = false, toast.autovacuum_enabled = false)").format(
                qualified(schema, shadow.name)
            )
        )
        cur.execute("SELECT pg_catalog.obj_description(%s, 'pg_class')", (oid,))
        comment = single_value(cur)
        if comment is not None:
            cur.execute(sql.SQL("COMMENT ON TABLE {} IS %s").format(qualified(schema, shadow.name)), (comment,))
        shadows.append(shadow)
    return shadows


def committed_shadows(dsn: str, schema: str, tables: Sequence[str]) -> tuple[list[str], list[Shadow]]:
    """create_shadows in a transaction of its own, committed, so that other sessions can load the new tables; the
    leftovers of a restore that died before dropping its new tables are dropped first (the caller holds the
    schema's restore lock, so no other restore is building them). The leftovers' names, and the new tables;
    SessionUnavailable when no further session can connect."""
    with closing(further_session(dsn)) as conn, conn, conn.cursor() as cur:
        dropped = drop_leftovers(cur, schema)
        return dropped, create_shadows(cur, schema, tables)


def drop_shadows_quietly(
    conn: psycopg2.extensions.connection, dsn: str, schema: str, shadows: list[Shadow], warn: Callable[[str], None]
) -> None:
    """Drop new tables that were not swapped in (none remain after a swap: they have the live names then), in a
    transaction of their own; see _drop_quietly."""
    _drop_quietly(conn, dsn, schema, [shadow.name for shadow in shadows], "new tables", warn)


def finish_shadows(
    cur: psycopg2.extensions.cursor, schema: str, shadows: list[Shadow], log: Callable[[str], None]
) -> dict[str, drift.TableState]:
    """After the load: give each new table the live one's indexes, constraints, triggers, security and owner. The
    live tables' state they were given (read first: the swap compares it with the state under its locks)."""
    dressed_as = drift.table_states(cur, [(shadow.live, shadow.oid) for shadow in shadows])
    new_names = {shadow.live: shadow.name for shadow in shadows}
    for shadow in shadows:
        _storage_options(cur, schema, shadow)
        _indexes(cur, schema, shadow, log)
        _constraints(cur, schema, shadow, new_names)
        _replica_identity(cur, schema, shadow)
        _triggers(cur, schema, shadow)
        _row_security(cur, schema, shadow)
        _grants_and_owner(cur, schema, shadow)
        _identity_positions(cur, schema, shadow)
        _planner_settings(cur, schema, shadow)
    return dressed_as


def swap_shadows(cur: psycopg2.extensions.cursor, schema: str, shadows: list[Shadow]) -> None:
    """Swap the new tables in for the live ones, in the caller's transaction (which must hold ACCESS EXCLUSIVE locks
    on the live tables); the old tables keep their rows under old_name() until drop_old_tables_after."""
    for shadow in shadows:
        old = old_name(shadow)
        identity_sequences = _identity_sequences(cur, schema, shadow)
        for live_name, _, swapped_out in shadow.renames:
            cur.execute(
                sql.SQL("ALTER INDEX {} RENAME TO {}").format(qualified(schema, live_name), sql.Identifier(swapped_out))
            )
        cur.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(qualified(schema, shadow.live), sql.Identifier(old)))
        cur.execute(
            sql.SQL("ALTER TABLE {} RENAME TO {}").format(qualified(schema, shadow.name), sql.Identifier(shadow.live))
        )
        for live_name, temporary, _ in shadow.renames:
            cur.execute(
                sql.SQL("ALTER INDEX {} RENAME TO {}").format(qualified(schema, temporary), sql.Identifier(live_name))
            )
        _hand_over_sequences(cur, schema, shadow, old)
        _rename_identity_sequences(cur, schema, shadow, identity_sequences)


def _rename_identity_sequences(
    cur: psycopg2.extensions.cursor, schema: str, shadow: Shadow, pairs: list[tuple[int, str, str]]
) -> None:
    """The new identity sequences take the live ones' names (`nextval('docs_id_seq')` in the app's code or defaults),
    the live ones, dropped with the old table, a name of their own. `pairs`: _identity_sequences before the swap."""
    for number, (_, new, live) in enumerate(pairs):
        cur.execute(
            sql.SQL("ALTER SEQUENCE {} RENAME TO {}").format(
                qualified(schema, live), sql.Identifier(f"{old_name(shadow)}_seq{number}")
            )
        )
        cur.execute(sql.SQL("ALTER SEQUENCE {} RENAME TO {}").format(qualified(schema, new), sql.Identifier(live)))


def old_name(shadow: Shadow) -> str:
    """The name a swapped-out live table has until it is dropped."""
    return f"pgvector_old_{shadow.oid}"


def drop_old_tables_after(
    conn: psycopg2.extensions.connection, dsn: str, schema: str, shadows: list[Shadow], warn: Callable[[str], None]
) -> None:
    """After the swap is committed: drop the old tables in a transaction of their own. Nobody reads them any more,
    but autovacuum may still be working on them (the swap does not wait for it); see _drop_quietly."""
    _drop_quietly(conn, dsn, schema, [old_name(shadow) for shadow in shadows], "swapped-out tables", warn)


def _drop_quietly(
    conn: psycopg2.extensions.connection,
    dsn: str,
    schema: str,
    names: list[str],
    what: str,
    warn: Callable[[str], None],
) -> None:
    """DROP TABLE IF EXISTS `names`, together (foreign keys between them go with them), in a transaction of its own:
    in the restore's session `conn` once its transaction has ended (a role may have no further connection slot),
    else in a new one. A failure only warns: the next swapped restore drops them (drop_leftovers), and it never
    hides the restore's own error."""
    drop = sql.SQL("DROP TABLE IF EXISTS {}").format(sql.SQL(", ").join(qualified(schema, n) for n in names))
    try:
        if not conn.closed and conn.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_IDLE:
            with conn, conn.cursor() as cur:
                cur.execute(drop)
            return
        with closing(connect(dsn)) as new, new, new.cursor() as cur:
            cur.execute(drop)
    except (PipelineError, psycopg2.Error) as exc:
        warn(
            f"The {what} {', '.join(names)} were not dropped ({exc}); the next swapped restore drops them, or DROP "
            f"TABLE them yourself."
        )


def drop_leftovers(cur: psycopg2.extensions.cursor, schema: str) -> list[str]:
    """Drop the new and old tables a swapped restore of `schema` left when it died (the caller holds the schema's
    restore lock, so no other restore is using them); their names."""
    cur.execute(
        "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) "
        "c.relnamespace WHERE n.nspname OPERATOR(pg_catalog.=) %s AND c.relkind OPERATOR(pg_catalog.=) 'r' AND "
        "c.relname OPERATOR(pg_catalog.~) '^pgvector_(new|old)_[0-9]+$' ORDER BY 1",
        (schema,),
    )
    names = [row[0] for row in cur.fetchall()]
    if names:
        cur.execute(sql.SQL("DROP TABLE {}").format(sql.SQL(", ").join(qualified(schema, n) for n in names)))
    return names


def swap_in(
    cur: psycopg2.extensions.cursor,
    schema: str,
    shadows: list[Shadow],
    log: Callable[[str], None],
    dressed_as: dict[str, drift.TableState] | None = None,
) -> None:
    """swap_shadows under ACCESS EXCLUSIVE locks waited for at most SWAP_LOCK_WAIT_MS per attempt; an attempt that
    cannot get them (a long query holds the tables, or a deadlock) is undone to a savepoint, so the loaded tables
    stay, and tried again after a pause; DatabaseError naming the sessions in the way after SWAP_ATTEMPTS."""
    tables = [shadow.live for shadow in shadows]
    cur.execute("SELECT pg_catalog.set_config('lock_timeout', %s, true)", (f"{SWAP_LOCK_WAIT_MS}ms",))
    lock = sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
        sql.SQL(", ").join(qualified(schema, table) for table in tables)
    )
    holders = ""
    for attempt in range(1, SWAP_ATTEMPTS + 1):
        _cancel_waiters_in_the_way(cur, schema, shadows, log)
        cur.execute("SAVEPOINT pgvector_swap")
        started = time.monotonic()
        try:
            cur.execute(lock)
            waited = time.monotonic() - started
            _refuse_changes_since(cur, schema, shadows, dressed_as)
            swap_shadows(cur, schema, shadows)
        except (psycopg2.errors.LockNotAvailable, psycopg2.errors.DeadlockDetected) as exc:
            cur.execute("ROLLBACK TO SAVEPOINT pgvector_swap")
            holders = described(lock_holders(cur, schema, tables + [shadow.name for shadow in shadows]))
            why = "deadlock" if isinstance(exc, psycopg2.errors.DeadlockDetected) else f"{SWAP_LOCK_WAIT_MS} ms"
            log(f"Swap attempt {attempt} of {SWAP_ATTEMPTS} could not lock {', '.join(tables)} ({why}): {holders}.")
            time.sleep(_SWAP_PAUSE_S)
            continue
        cur.execute("RELEASE SAVEPOINT pgvector_swap")
        log(
            f"Swapped the new {', '.join(tables)} in (waited {waited * 1000:.0f} ms for the locks, swapped in "
            f"{(time.monotonic() - started - waited) * 1000:.0f} ms); the old tables are dropped after the commit."
        )
        return
    raise DatabaseError(
        f"Gave up swapping the new {', '.join(tables)} in: {SWAP_ATTEMPTS} attempts of {SWAP_LOCK_WAIT_MS} ms could "
        f"not lock them ({holders}). Nothing was changed. End the sessions in the way, or restore again when they "
        f"are done.",
        can_retry=True,
    )


def _refuse_changes_since(
    cur: psycopg2.extensions.cursor, schema: str, shadows: list[Shadow], dressed_as: dict[str, drift.TableState] | None
) -> None:
    """Under the swap's locks: DatabaseError (retryable) when the app changed a live table since its new one was
    dressed (see postgres.drift), or something now depends on it that a swap cannot carry (postgres.swap): the
    change would be lost with the old table, or stay bound to it."""
    tables = [shadow.live for shadow in shadows]
    changed = swap_blockers(cur, schema, tables, [shadow.name for shadow in shadows])
    if dressed_as is not None:
        changed += drift.changes(dressed_as, drift.table_states(cur, [(s.live, s.oid) for s in shadows]))
    if changed:
        cur.execute("ROLLBACK TO SAVEPOINT pgvector_swap")
        raise DatabaseError(
            f"Gave up swapping the new {', '.join(tables)} in: while they loaded, the live tables were changed "
            f"({'; '.join(changed[:5])}). A swap would lose that change with the old tables, or leave it bound to "
            f"them. Nothing was changed. Restore again: a new restore copies the change (or, when a view now reads "
            f"the tables, loads in place).",
            can_retry=True,
        )


def _cancel_waiters_in_the_way(
    cur: psycopg2.extensions.cursor, schema: str, shadows: list[Shadow], log: Callable[[str], None]
) -> None:
    """Cancel the statement of each session that waits for this restore while holding a lock on a live table: an app
    that read langchain_pg_collection and then waits to insert into langchain_pg_embedding (writers are held off
    until the swap), as LangChain's PGVector.add_texts does in one transaction. The swap needs that session's lock,
    and that session needs the swap to end: neither could go on, and lock_timeout would make every attempt fail.
    Cancelled, its transaction is rolled back (its locks go with it) and the app can retry it: the retry waits for the
    swap and writes into the restored tables. A session this role may not signal is left, and named if the swap
    gives up."""
    cur.execute(
        "SELECT a.pid, COALESCE(NULLIF(a.application_name, ''), 'no application_name') "
        "FROM pg_catalog.pg_stat_activity a WHERE pg_catalog.pg_backend_pid() OPERATOR(pg_catalog.=) "
        "ANY (pg_catalog.pg_blocking_pids(a.pid)) AND EXISTS (SELECT 1 FROM pg_catalog.pg_locks l WHERE l.pid "
        "OPERATOR(pg_catalog.=) a.pid AND l.granted AND l.relation OPERATOR(pg_catalog.=) ANY (%s::pg_catalog.oid[]))",
        ([shadow.oid for shadow in shadows],),
    )
    for pid, application in cur.fetchall():
        cur.execute("SAVEPOINT pgvector_cancel")
        try:
            cur.execute("SELECT pg_catalog.pg_cancel_backend(%s)", (pid,))
            cancelled = bool(single_value(cur))
        except psycopg2.errors.InsufficientPrivilege:
            cancelled = False
        cur.execute("RELEASE SAVEPOINT pgvector_cancel" if cancelled else "ROLLBACK TO SAVEPOINT pgvector_cancel")
        if cancelled:
            log(
                f"Cancelled the statement of session pid {pid} ({application}): it waited for this restore while "
                f"holding a table the swap replaces, a wait neither could end. Its transaction was rolled back; "
                f"the app can retry it, and the retry writes into the restored tables."
            )
        else:
            log(
                f"Session pid {pid} ({application}) waits for this restore while holding a table the swap replaces, "
                f"and this role may not cancel it (grant pg_signal_backend, or restore as the app's role)."
            )


def _storage_options(cur: psycopg2.extensions.cursor, schema: str, shadow: Shadow) -> None:
    """The live table's storage parameters (autovacuum was off while the new table loaded), then statistics for
    the planner: the app's first queries after the swap find the new table analyzed."""
    table = qualified(schema, shadow.name)
    cur.execute(sql.SQL("ALTER TABLE {} RESET (autovacuum_enabled, toast.autovacuum_enabled)").format(table))
    cur.execute(
        "SELECT c.reloptions, t.reloptions FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_class t ON t.oid "
        "OPERATOR(pg_catalog.=) c.reltoastrelid WHERE c.oid OPERATOR(pg_catalog.=) %s",
        (shadow.oid,),
    )
    options, toast_options = single_row(cur)
    for prefix, listed in (("", options), ("toast.", toast_options)):
        for option in listed or ():
            key, _, value = option.partition("=")
            cur.execute(
                sql.SQL("ALTER TABLE {} SET ({} = {})").format(
                    table, sql.SQL(prefix) + sql.Identifier(key), sql.Literal(value)
                )
            )
    cur.execute(sql.SQL("ANALYZE {}").format(table))


def _indexes(cur: psycopg2.extensions.cursor, schema: str, shadow: Shadow, log: Callable[[str], None]) -> None:
    """The live table's indexes, on the new table under temporary names; index-backed constraints (primary key,
    unique, exclusion) as constraints whose index gets a temporary name (its constraint name follows the index)."""
    cur.execute(
        "SELECT i.indexrelid::pg_catalog.oid, c.relname, pg_catalog.pg_get_indexdef(i.indexrelid), con.oid, "
        "pg_catalog.pg_get_constraintdef(con.oid), pg_catalog.obj_description(i.indexrelid, 'pg_class'), "
        "pg_catalog.obj_description(con.oid, 'pg_constraint'), coalesce(t.spcname, '') FROM pg_catalog.pg_index i JOIN "
        "pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.indexrelid LEFT JOIN pg_catalog.pg_tablespace t ON "
        "t.oid OPERATOR(pg_catalog.=) c.reltablespace LEFT JOIN pg_catalog.pg_constraint con ON con.conindid "
        "OPERATOR(pg_catalog.=) i.indexrelid AND con.conrelid OPERATOR(pg_catalog.=) i.indrelid WHERE i.indrelid "
        "OPERATOR(pg_catalog.=) %s ORDER BY c.relname",
        (shadow.oid,),
    )
    indexes = cur.fetchall()
    cur.execute("SELECT pg_catalog.current_setting('default_tablespace')")
    default_tablespace = single_value(cur)
    for (
        index_oid,
        name,
        definition,
        constraint,
        constraint_def,
        index_comment,
        constraint_comment,
        tablespace,
    ) in indexes:
        temporary = f"pgvector_new_ix_{index_oid}"
        if constraint is not None:
            statement = _aimed_constraint(constraint_def, schema, shadow.name, temporary, {})
        else:
            statement = _aimed_index(definition, schema, shadow.name, temporary)
        # pg_get_indexdef leaves the tablespace out; pg_dump sets default_tablespace around the index, as here.
        cur.execute("SELECT pg_catalog.set_config('default_tablespace', %s, true)", (tablespace,))
        cur.execute(statement)
        cur.execute("SELECT pg_catalog.set_config('default_tablespace', %s, true)", (default_tablespace,))
        if index_comment is not None:
            cur.execute(sql.SQL("COMMENT ON INDEX {} IS %s").format(qualified(schema, temporary)), (index_comment,))
        if constraint_comment is not None:
            cur.execute(
                sql.SQL("COMMENT ON CONSTRAINT {} ON {} IS %s").format(
                    sql.Identifier(temporary), qualified(schema, shadow.name)
                ),
                (constraint_comment,),
            )
        shadow.renames.append((name, temporary, f"pgvector_old_ix_{index_oid}"))
        log(f"{shadow.live}: built {name} on the new table.")


def _constraints(cur: psycopg2.extensions.cursor, schema: str, shadow: Shadow, new_names: dict[str, str]) -> None:
    """Foreign keys (others came with LIKE or with the indexes): those into a swapped table point at its new table."""
    cur.execute(
        "SELECT conname, pg_catalog.pg_get_constraintdef(oid) FROM pg_catalog.pg_constraint WHERE conrelid "
        "OPERATOR(pg_catalog.=) %s AND contype OPERATOR(pg_catalog.=) 'f' ORDER BY conname",
        (shadow.oid,),
    )
    for name, definition in cur.fetchall():
        cur.execute(_aimed_constraint(definition, schema, shadow.name, name, new_names))


def _replica_identity(cur: psycopg2.extensions.cursor, schema: str, shadow: Shadow) -> None:
    cur.execute(
        "SELECT c.relreplident, (SELECT r.relname FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class r ON r.oid "
        "OPERATOR(pg_catalog.=) i.indexrelid WHERE i.indrelid OPERATOR(pg_catalog.=) c.oid AND i.indisreplident) FROM "
        "pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) %s",
        (shadow.oid,),
    )
    kind, index = single_row(cur)
    table = qualified(schema, shadow.name)
    if kind == "f":
        cur.execute(sql.SQL("ALTER TABLE {} REPLICA IDENTITY FULL").format(table))
    elif kind == "n":
        cur.execute(sql.SQL("ALTER TABLE {} REPLICA IDENTITY NOTHING").format(table))
    elif kind == "i" and index:
        temporary = next(new for live, new, _ in shadow.renames if live == index)
        cur.execute(sql.SQL("ALTER TABLE {} REPLICA IDENTITY USING INDEX {}").format(table, sql.Identifier(temporary)))


def _triggers(cur: psycopg2.extensions.cursor, schema: str, shadow: Shadow) -> None:
    """The live table's own triggers (not the foreign keys' internal ones), created after the load so they do not
    fire on restored rows."""
    cur.execute(
        "SELECT pg_catalog.pg_get_triggerdef(oid), tgenabled FROM pg_catalog.pg_trigger WHERE tgrelid "
        "OPERATOR(pg_catalog.=) %s AND NOT tgisinternal ORDER BY tgname",
        (shadow.oid,),
    )
    for definition, enabled in cur.fetchall():
        [statement] = parse_sql(definition)
        trigger = statement.stmt
        assert isinstance(trigger, ast.CreateTrigStmt)
        trigger.relation = ast.RangeVar(schemaname=schema, relname=shadow.name, inh=True, relpersistence="p")
        cur.execute(RawStream()(trigger))
        if enabled != "O":  # O: fires in origin and local mode (the default); D: disabled; R, A: replica, always
            mode = {"D": "DISABLE", "R": "ENABLE REPLICA", "A": "ENABLE ALWAYS"}[enabled]
            cur.execute(
                sql.SQL("ALTER TABLE {} {} TRIGGER {}").format(
                    qualified(schema, shadow.name), sql.SQL(mode), sql.Identifier(str(trigger.trigname))
                )
            )


def _row_security(cur: psycopg2.extensions.cursor, schema: str, shadow: Shadow) -> None:
    table = qualified(schema, shadow.name)
    cur.execute(
        "SELECT relrowsecurity, relforcerowsecurity FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) %s",
        (shadow.oid,),
    )
    enabled, forced = single_row(cur)
    if enabled:
        cur.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(table))
    if forced:
        cur.execute(sql.SQL("ALTER TABLE {} FORCE ROW LEVEL SECURITY").format(table))
    cur.execute(
        "SELECT polname, polpermissive, polcmd, ARRAY(SELECT CASE WHEN r OPERATOR(pg_catalog.=) 0 THEN 'public' ELSE "
        "r::pg_catalog.regrole::pg_catalog.text END FROM pg_catalog.unnest(polroles) r), "
        "pg_catalog.pg_get_expr(polqual, polrelid), pg_catalog.pg_get_expr(polwithcheck, polrelid) FROM "
        "pg_catalog.pg_policy WHERE polrelid OPERATOR(pg_catalog.=) %s ORDER BY polname",
        (shadow.oid,),
    )
    commands = {"r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE", "*": "ALL"}
    for name, permissive, command, roles, using, check in cur.fetchall():
        # The expressions are the server's own deparse of the live policy (pg_get_expr), not outside text.
        cur.execute(
            sql.SQL("CREATE POLICY {name} ON {table} AS {kind} FOR {command} TO {roles}{using}{check}").format(
                name=sql.Identifier(name),
                table=table,
                kind=sql.SQL("PERMISSIVE" if permissive else "RESTRICTIVE"),
                command=sql.SQL(commands[command]),
                roles=sql.SQL(", ").join(
                    sql.SQL("PUBLIC") if role == "public" else sql.SQL(role)  # regrole text: quoted as needed
                    for role in roles
                ),
                using=sql.SQL(" USING ({})").format(sql.SQL(using)) if using else sql.SQL(""),
                check=sql.SQL(" WITH CHECK ({})").format(sql.SQL(check)) if check else sql.SQL(""),
            )
        )


def _copy_grants(cur: psycopg2.extensions.cursor, source: int, target: sql.Composable) -> None:
    """GRANT on `target` (e.g. SEQUENCE name) what the relation `source` (an oid) grants."""
    cur.execute(
        "SELECT a.privilege_type, CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC' ELSE "
        "a.grantee::pg_catalog.regrole::pg_catalog.text END, a.is_grantable FROM pg_catalog.pg_class c, "
        "pg_catalog.aclexplode(c.relacl) a WHERE c.oid OPERATOR(pg_catalog.=) %s",
        (source,),
    )
    for privilege, grantee, grantable in cur.fetchall():
        cur.execute(
            sql.SQL("GRANT {} ON {} TO {}{}").format(
                sql.SQL(privilege),  # one of the server's privilege names (aclexplode)
                target,
                sql.SQL(grantee),  # regrole text (quoted as needed) or PUBLIC
                sql.SQL(" WITH GRANT OPTION") if grantable else sql.SQL(""),
            )
        )


def _grants_and_owner(cur: psycopg2.extensions.cursor, schema: str, shadow: Shadow) -> None:
    """The live table's and its columns' privileges, then its owner (last: the new owner's grants are kept)."""
    table = qualified(schema, shadow.name)
    cur.execute(
        "SELECT NULL::pg_catalog.text, a.privilege_type, CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC' "
        "ELSE a.grantee::pg_catalog.regrole::pg_catalog.text END, a.is_grantable, "
        "a.grantor::pg_catalog.regrole::pg_catalog.text FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a "
        "WHERE c.oid OPERATOR(pg_catalog.=) %(oid)s UNION ALL SELECT att.attname, a.privilege_type, CASE WHEN "
        "a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC' ELSE a.grantee::pg_catalog.regrole::pg_catalog.text END, "
        "a.is_grantable, a.grantor::pg_catalog.regrole::pg_catalog.text FROM pg_catalog.pg_attribute att, "
        "pg_catalog.aclexplode(att.attacl) a WHERE att.attrelid OPERATOR(pg_catalog.=) %(oid)s AND att.attnum "
        "OPERATOR(pg_catalog.>) 0 AND NOT att.attisdropped",
        {"oid": shadow.oid},
    )
    for column, privilege, grantee, grantable, _ in cur.fetchall():
        cur.execute(
            sql.SQL("GRANT {privilege}{column} ON {table} TO {grantee}{option}").format(
                privilege=sql.SQL(privilege),  # one of the server's privilege names (aclexplode)
                column=sql.SQL(" ({})").format(sql.Identifier(column)) if column else sql.SQL(""),
                table=table,
                grantee=sql.SQL(grantee),  # regrole text (quoted as needed) or PUBLIC
                option=sql.SQL(" WITH GRANT OPTION") if grantable else sql.SQL(""),
            )
        )
    cur.execute(
        "SELECT relowner::pg_catalog.regrole::pg_catalog.text, relowner OPERATOR(pg_catalog.=) (SELECT oid FROM "
        "pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) current_user) FROM pg_catalog.pg_class WHERE oid "
        "OPERATOR(pg_catalog.=) %s",
        (shadow.oid,),
    )
    owner, ours = single_row(cur)
    if not ours:
        cur.execute(sql.SQL("ALTER TABLE {} OWNER TO {}").format(table, sql.SQL(owner)))


def _planner_settings(cur: psycopg2.extensions.cursor, schema: str, shadow: Shadow) -> None:
    """What LIKE leaves out that the planner and CLUSTER read: columns' statistics targets and options (n_distinct),
    and the index the table is clustered on (by its live name, which the new index takes at the swap)."""
    table = qualified(schema, shadow.name)
    cur.execute(
        "SELECT attname, attstattarget, attoptions FROM pg_catalog.pg_attribute WHERE attrelid OPERATOR(pg_catalog.=) "
        "%s AND attnum OPERATOR(pg_catalog.>) 0 AND NOT attisdropped AND (attstattarget IS NOT NULL AND attstattarget "
        "OPERATOR(pg_catalog.>=) 0 OR attoptions IS NOT NULL)",
        (shadow.oid,),
    )
    for column, target, options in cur.fetchall():
        if target is not None and target >= 0:
            cur.execute(
                sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET STATISTICS {}").format(
                    table, sql.Identifier(column), sql.Literal(target)
                )
            )
        if options:
            cur.execute(
                sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET ({})").format(
                    table, sql.Identifier(column), sql.SQL(", ").join(_option(o) for o in options)
                )
            )
    cur.execute(
        "SELECT c.relname FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) "
        "i.indexrelid WHERE i.indrelid OPERATOR(pg_catalog.=) %s AND i.indisclustered",
        (shadow.oid,),
    )
    clustered = {row[0] for row in cur.fetchall()}
    for live_name, temporary, _ in shadow.renames:
        if live_name in clustered:
            cur.execute(sql.SQL("ALTER TABLE {} CLUSTER ON {}").format(table, sql.Identifier(temporary)))


def _option(text: str) -> sql.Composable:
    """One 'name=value' of pg_attribute.attoptions as SQL: the name an identifier, the value a literal."""
    name, _, value = text.partition("=")
    return sql.SQL("{} = {}").format(sql.Identifier(name), sql.Literal(value))


def _identity_positions(cur: psycopg2.extensions.cursor, schema: str, shadow: Shadow) -> None:
    """Identity columns came with new sequences (LIKE INCLUDING IDENTITY), which start over: each takes its live
    sequence's position, so no id the app was handed before the swap is handed out again (the restore then moves it
    past the restored ids, as for any owned sequence)."""
    cur.execute(
        "SELECT pg_catalog.pg_get_serial_sequence(%(live)s, a.attname), pg_catalog.pg_get_serial_sequence(%(new)s, "
        "a.attname) FROM pg_catalog.pg_attribute a WHERE a.attrelid OPERATOR(pg_catalog.=) %(oid)s AND a.attidentity "
        "OPERATOR(pg_catalog.<>) '' AND NOT a.attisdropped",
        {
            # pg_get_serial_sequence reads its table name as SQL text: quoted as an identifier.
            "live": qualified(schema, shadow.live).as_string(cur),
            "new": qualified(schema, shadow.name).as_string(cur),
            "oid": shadow.oid,
        },
    )
    for live_sequence, new_sequence in cur.fetchall():
        cur.execute(
            sql.SQL("SELECT pg_catalog.setval(%s, last_value, is_called) FROM {}").format(sql.SQL(live_sequence)),
            (new_sequence,),
        )
    # The app's grants on the identity sequences (nextval needs USAGE); their owner follows the table's.
    for live, new, _ in _identity_sequences(cur, schema, shadow):
        _copy_grants(cur, live, sql.SQL("SEQUENCE {}").format(qualified(schema, new)))


def _identity_sequences(cur: psycopg2.extensions.cursor, schema: str, shadow: Shadow) -> list[tuple[int, str, str]]:
    """(live sequence's oid, new sequence's name, live sequence's name) of each identity column: LIKE INCLUDING
    IDENTITY gave the new table sequences of its own, named after it."""
    cur.execute(
        "SELECT l.oid, n.relname, l.relname FROM pg_catalog.pg_attribute a "
        "JOIN pg_catalog.pg_depend ld ON ld.refobjid OPERATOR(pg_catalog.=) a.attrelid "
        "AND ld.refobjsubid OPERATOR(pg_catalog.=) a.attnum AND ld.deptype OPERATOR(pg_catalog.=) 'i' "
        "JOIN pg_catalog.pg_class l ON l.oid OPERATOR(pg_catalog.=) ld.objid AND l.relkind OPERATOR(pg_catalog.=) 'S' "
        "JOIN pg_catalog.pg_attribute na ON na.attrelid OPERATOR(pg_catalog.=) %(new)s AND na.attname "
        "OPERATOR(pg_catalog.=) a.attname JOIN pg_catalog.pg_depend nd ON nd.refobjid OPERATOR(pg_catalog.=) "
        "na.attrelid AND nd.refobjsubid OPERATOR(pg_catalog.=) na.attnum AND nd.deptype OPERATOR(pg_catalog.=) 'i' "
        "JOIN pg_catalog.pg_class n ON n.oid OPERATOR(pg_catalog.=) nd.objid AND n.relkind OPERATOR(pg_catalog.=) 'S' "
        "WHERE a.attrelid OPERATOR(pg_catalog.=) %(live)s AND a.attidentity OPERATOR(pg_catalog.<>) '' "
        "AND NOT a.attisdropped ORDER BY a.attnum",
        {"live": shadow.oid, "new": table_oid(cur, schema, shadow.name)},
    )
    return [(live, new, name) for live, new, name in cur.fetchall()]


def _hand_over_sequences(cur: psycopg2.extensions.cursor, schema: str, shadow: Shadow, old: str) -> None:
    """Sequences the old table's columns own (serial) now belong to the new table's columns, so dropping the old
    table keeps them; identity columns came with their own sequences (LIKE INCLUDING IDENTITY)."""
    cur.execute(
        "SELECT s.oid::pg_catalog.regclass::pg_catalog.text, a.attname FROM pg_catalog.pg_depend d JOIN "
        "pg_catalog.pg_class s ON s.oid OPERATOR(pg_catalog.=) d.objid JOIN pg_catalog.pg_attribute a ON a.attrelid "
        "OPERATOR(pg_catalog.=) d.refobjid AND a.attnum OPERATOR(pg_catalog.=) d.refobjsubid WHERE d.classid "
        "OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid OPERATOR(pg_catalog.=) %s "
        "AND d.deptype OPERATOR(pg_catalog.=) 'a' AND s.relkind OPERATOR(pg_catalog.=) 'S'",
        (shadow.oid,),
    )
    for sequence, column in cur.fetchall():
        cur.execute(
            sql.SQL("ALTER SEQUENCE {} OWNED BY {}.{}").format(
                sql.SQL(sequence), qualified(schema, shadow.live), sql.Identifier(column)
            )
        )


def _aimed_index(definition: str, schema: str, table: str, name: str) -> str:
    """A CREATE INDEX of the server (pg_get_indexdef) aimed at `table` under `name`."""
    [statement] = parse_sql(definition)
    index = statement.stmt
    assert isinstance(index, ast.IndexStmt)
    index.idxname = name
    index.relation = ast.RangeVar(schemaname=schema, relname=table, inh=True, relpersistence="p")
    return RawStream()(index)


def _aimed_constraint(definition: str, schema: str, table: str, name: str, new_names: dict[str, str]) -> str:
    """ALTER TABLE table ADD CONSTRAINT name <definition> (pg_get_constraintdef), a foreign key into a swapped table
    pointed at its new table; an index-backed constraint's index is named `name` too."""
    [statement] = parse_sql(f"ALTER TABLE t ADD CONSTRAINT c {definition}")
    alter = statement.stmt
    assert isinstance(alter, ast.AlterTableStmt) and alter.cmds
    constraint = alter.cmds[0].def_
    assert isinstance(constraint, ast.Constraint)
    constraint.conname = name
    if constraint.pktable is not None and constraint.pktable.relname in new_names:
        constraint.pktable = ast.RangeVar(
            schemaname=schema, relname=new_names[constraint.pktable.relname], inh=True, relpersistence="p"
        )
    alter.relation = ast.RangeVar(schemaname=schema, relname=table, inh=True, relpersistence="p")
    return RawStream()(alter)
