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

from pgvector_pipeline.postgres.catalog import table_oid

_VIEWS = """
SELECT DISTINCT v.relname, CASE v.relkind WHEN 'm' THEN 'materialized view' ELSE 'view' END
FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class
WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid = %(oid)s
  AND v.oid <> %(oid)s ORDER BY 1
"""
_RULES = "SELECT rulename FROM pg_rewrite WHERE ev_class = %(oid)s AND rulename <> '_RETURN' ORDER BY 1"
_FOREIGN_KEYS_IN = """
SELECT c.conname, t.relname FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
WHERE c.contype = 'f' AND c.confrelid = %(oid)s AND c.conrelid <> ALL(%(swapped)s) ORDER BY 1
"""
_PUBLICATIONS = """
SELECT pubname FROM pg_publication WHERE puballtables
UNION SELECT p.pubname FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid WHERE r.prrelid = %(oid)s
UNION SELECT p.pubname FROM pg_publication_namespace n JOIN pg_publication p ON p.oid = n.pnpubid
  JOIN pg_class c ON c.relnamespace = n.pnnspid WHERE c.oid = %(oid)s
ORDER BY 1
"""
_INHERITANCE = """
SELECT c.relkind = 'p', c.relispartition,
  NOT c.relispartition AND EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = %(oid)s),
  c.relkind <> 'p' AND EXISTS (SELECT 1 FROM pg_inherits WHERE inhparent = %(oid)s)
FROM pg_class c WHERE c.oid = %(oid)s
"""
_SHARED_SEQUENCES = """
SELECT DISTINCT s.relname, t.relname FROM pg_depend o JOIN pg_class s ON s.oid = o.objid
JOIN pg_attrdef d ON true JOIN pg_depend u ON u.classid = 'pg_attrdef'::regclass AND u.objid = d.oid
  AND u.refobjid = s.oid JOIN pg_class t ON t.oid = d.adrelid
WHERE o.classid = 'pg_class'::regclass AND o.refobjid = %(oid)s AND o.deptype IN ('a', 'i') AND s.relkind = 'S'
  AND d.adrelid <> ALL(%(swapped)s) ORDER BY 1
"""

# Dependents recorded in pg_depend (on the table or its row type) other than the table's own parts, which a swap
# rebuilds (indexes, constraints, defaults, triggers, policies, statistics), and the kinds named above.
_OTHER_DEPENDENTS = """
SELECT DISTINCT pg_describe_object(d.classid, d.objid, d.objsubid) FROM pg_depend d
WHERE d.deptype = 'n'
  AND ((d.refclassid = 'pg_class'::regclass AND d.refobjid = %(oid)s)
    OR (d.refclassid = 'pg_type'::regclass AND d.refobjid = (SELECT reltype FROM pg_class WHERE oid = %(oid)s)))
  AND d.classid <> 'pg_rewrite'::regclass
  AND NOT (d.classid = 'pg_constraint'::regclass
    AND EXISTS (SELECT 1 FROM pg_constraint c WHERE c.oid = d.objid AND (c.conrelid = %(oid)s OR c.contype = 'f')))
  AND NOT (d.classid = 'pg_policy'::regclass
    AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.oid = d.objid AND p.polrelid = %(oid)s))
  AND NOT (d.classid = 'pg_trigger'::regclass
    AND EXISTS (SELECT 1 FROM pg_trigger t WHERE t.oid = d.objid AND t.tgrelid = %(oid)s))
  AND NOT (d.classid = 'pg_attrdef'::regclass
    AND EXISTS (SELECT 1 FROM pg_attrdef a WHERE a.oid = d.objid AND a.adrelid = %(oid)s))
  AND NOT (d.classid = 'pg_statistic_ext'::regclass
    AND EXISTS (SELECT 1 FROM pg_statistic_ext x WHERE x.oid = d.objid AND x.stxrelid = %(oid)s))
  AND NOT (d.classid = 'pg_class'::regclass AND d.objsubid = 0
    AND (EXISTS (SELECT 1 FROM pg_index i WHERE i.indexrelid = d.objid AND i.indrelid = %(oid)s)
      OR EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = d.objid AND h.inhparent = %(oid)s)))
ORDER BY 1
"""
_EXTENSION = """
SELECT e.extname FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
WHERE d.classid = 'pg_class'::regclass AND d.objid = %(oid)s AND d.refclassid = 'pg_extension'::regclass
  AND d.deptype = 'e'
"""


def swap_blockers(cur, schema: str, tables: Sequence[str]) -> list[str]:
    """Why the live `tables` cannot be swapped for new ones, one reason per line (empty: they can)."""
    oids = {table: table_oid(cur, schema, table) for table in tables}
    swapped = [oid for oid in oids.values() if oid is not None]
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
        partitioned, partition, child, parent = cur.fetchone()
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
