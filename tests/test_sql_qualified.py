"""Every SQL statement the tool writes names what it calls, as pg_dump's do (CVE-2018-1058): pg_catalog's functions,
operators, casts and tables through pg_catalog, pgvector's names through the extension's schema. Sessions run with
an empty search_path as well (tests/faults/test_planted_objects.py); this lint keeps a future statement from leaning
on that alone. It reads the SQL string literals under pgvector_pipeline/postgres/ (no server needed)."""

import ast
import re
from pathlib import Path

import pytest

POSTGRES = Path(__file__).resolve().parents[1] / "pgvector_pipeline" / "postgres"

# A literal is SQL when it is (part of) a cursor call's statement or a psycopg2 sql.SQL(...) text, or when it
# starts like a statement (the queries kept in module constants).
_SQL_CALLS = {"execute", "executemany", "copy_expert", "mogrify", "SQL"}
# Their literals are names or values, not SQL text.
_NAME_CALLS = {"Identifier", "Literal", "Placeholder", "pgvector_name", "qualified"}
_STATEMENT_START = re.compile(
    r"\s*(SELECT|WITH|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|LOCK|TRUNCATE|ANALYZE|COMMENT|GRANT|COPY|SHOW|SET)\s"
)

# Words written before "(" that are SQL syntax, not functions a search_path could resolve.
_SYNTAX = {
    "coalesce", "nullif", "greatest", "least", "exists", "any", "all", "array", "row", "values", "in", "extract",
    "filter", "over", "lateral", "cast", "set", "reset", "with", "key", "using", "references", "select",
}  # fmt: skip
_KEYWORDS = {"SELECT", "DISTINCT", "ALL", "THEN", "ELSE", "WHEN", "AND", "OR", "NOT", "BY", "AS", "IS"}
# pg_catalog functions that could be written with a space before "(" too.
_FUNCTIONS = {
    "count", "max", "min", "sum", "string_agg", "array_agg", "md5", "set_config", "current_setting", "format",
    "unnest", "floor", "hashtext", "setval", "to_regclass", "obj_description", "aclexplode",
}  # fmt: skip


def _sql_literals(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    names = {id(arg) for node in ast.walk(tree) if _is_call(node, _NAME_CALLS) for arg in node.args}
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    found: dict[int, tuple[int, str]] = {}
    for node in ast.walk(tree):
        if _is_call(node, _SQL_CALLS) and node.args:
            for inner in ast.walk(node.args[0]):
                if _is_text(inner) and id(inner) not in names:
                    found[id(inner)] = (inner.lineno, inner.value)
        elif _is_text(node) and _STATEMENT_START.match(node.value) and id(node) not in docstrings:
            found.setdefault(id(node), (node.lineno, node.value))
    return sorted(found.values())


def _is_call(node: ast.AST, names: set[str]) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    return (func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)) in names


def _is_text(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


# A CREATE TABLE or INDEX of a bare table name has the form of a manifest's DDL: ddl.placed gives it its schema and
# pgvector's types and operator classes the extension's before it runs (migrate's langchain_postgres tables).
_PLACED_DDL = re.compile(r"CREATE (TABLE|INDEX \w+ ON) \w+ ")

_PLACEHOLDER = "\x00"


def _cleaned(text: str) -> str:
    """The literal with quoted strings and identifiers emptied, placeholders ({}, %s) made one neutral character,
    the operators already written OPERATOR(pg_catalog.x) and storage-parameter lists (SET (a = b)) taken out."""
    text = re.sub(r"'(?:[^']|'')*'", "''", text)
    text = re.sub(r'"(?:[^"]|"")*"', '""', text)
    text = re.sub(r"%\(\w+\)s|%s|\{[^{}]*\}", _PLACEHOLDER, text)
    text = re.sub(r"OPERATOR\(pg_catalog\.[^)\s]+\)", " ", text)
    return re.sub(r"\b(SET|RESET|WITH)\s*\([^()]*\)", " ", text)


def _problems(text: str) -> list[str]:
    clean = _cleaned(text)
    problems = []
    for match in re.finditer(r"(?<![\w.$:])([A-Za-z_]\w*)(\s*)\(", clean):
        name, space = match[1].lower(), match[2]
        typmod = re.match(r"\(\d+\)", clean[match.end() - 1 :]) and _PLACED_DDL.match(text)  # varchar(8)
        if ((not space and name not in _SYNTAX) or name in _FUNCTIONS) and not typmod:
            problems.append(f"function {match[1]}() without pg_catalog.")
    problems += [f"{m[0]} without pg_catalog." for m in re.finditer(r"(?<![\w.])pg_(?!catalog\b)\w+", clean)]
    problems += [f"cast ::{m[1]} without pg_catalog." for m in re.finditer(r'::(?!pg_catalog\.)(\w+|"")', clean)]
    operators = [m[0] for m in re.finditer(r"<>|!=|<=|>=|->>|->|#>>|#>|#-|@>|<@|@@|&&|\|\||[=<>~?+^]", clean)]
    # -, * and / between two operands ("SELECT *", "count(*)" and "THEN -1" have none on their left).
    for match in re.finditer(r"([\w)'\x00]+)\s*([-*/])\s*(?=[\w('\x00])", clean):
        if match[1].upper() not in _KEYWORDS:
            operators.append(match[2])
    problems += [f"operator {op} not written OPERATOR(pg_catalog.{op})" for op in operators]
    for match in re.finditer(r"\b(IN\s*\(|(?<!\()LIKE|ILIKE|BETWEEN|CASE\s+(?!WHEN\b)\S+)", clean, re.IGNORECASE):
        problems.append(f"{match[0]} (an operator resolved by name): use OPERATOR(pg_catalog.x)")
    if not _PLACED_DDL.match(text):
        pgvector = r"(?<![\w.])(?<!EXTENSION )(vector|halfvec|sparsevec|vector_dims)\b"
        problems += [f"pgvector's {m[1]} not through catalog.pgvector_name" for m in re.finditer(pgvector, clean)]
    return problems


# Fragments whose "=" is syntax, not an operator: shadow._option's name = value of a column's options (SET (…)).
_NOT_OPERATORS = {("shadow.py", "{} = {}")}


def _all_problems() -> list[str]:
    return [
        f"{path.name}:{line}: {problem} in {text!r}"
        for path in sorted(POSTGRES.glob("*.py"))
        for line, text in _sql_literals(path)
        if (path.name, text) not in _NOT_OPERATORS
        for problem in _problems(text)
    ]


def test_sql_under_postgres_names_pg_catalog_and_pgvector_explicitly():
    problems = _all_problems()
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "text",
    [
        "SELECT count(*) FROM {}",
        "SELECT c.oid FROM pg_class c WHERE c.oid OPERATOR(pg_catalog.=) %s",
        "SELECT pg_catalog.count(*) FROM {} WHERE a = %s",
        "SELECT x FROM {} WHERE a OPERATOR(pg_catalog.=) %s::regclass",
        "SELECT x FROM {} WHERE a IN (SELECT b FROM {})",
        "SELECT CASE v.relkind WHEN 'm' THEN 1 END FROM {}",
        "SELECT x FROM {} WHERE a <> ''",
        "SELECT a || b FROM {}",
        "SELECT m - 1 FROM {}",
        "SELECT count (*) FROM {}",
        "CREATE TABLE {} (e vector(3))",
        "CREATE TEMPORARY TABLE {} (e vector)",
        "SELECT s.{m}::pg_catalog.jsonb ? {k} FROM {}",
        "SELECT s.{m}::pg_catalog.jsonb #>> {k} FROM {}",
        "SELECT 1 FROM pg_catalog.pg_depend WHERE deptype OPERATOR(pg_catalog.=) ANY ('{a,i}'::\"char\"[])",
        "SELECT e FROM {} ORDER BY e <-> %s LIMIT 1",
        "SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname LIKE %s",
    ],
)
def test_the_lint_finds_each_kind_of_unqualified_name(text):
    assert _problems(text)


@pytest.mark.parametrize(
    "text",
    [
        "SELECT pg_catalog.count(*), pg_catalog.md5(s.a::pg_catalog.text) FROM {} s "
        "WHERE s.{} OPERATOR(pg_catalog.=) %s",
        "ALTER TABLE {} SET (autovacuum_enabled = false, toast.autovacuum_enabled = false)",
        "SELECT 1 FROM pg_catalog.pg_class WHERE relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::pg_catalog.\"char\"[])",
        "SELECT {dims}(s.{column}::{vector}) FROM {stage} s WHERE s.{column} IS NOT NULL LIMIT 1",
        "SELECT * FROM {} WHERE NOT EXISTS (SELECT 1) AND coalesce(a, 'x = y') IS NULL",
        "COPY {} ({}) FROM STDIN WITH (FORMAT csv)",
        "CREATE EXTENSION vector SCHEMA public",
        "CREATE TABLE langchain_pg_embedding (id varchar PRIMARY KEY, embedding vector(3))",
        "LOCK TABLE {} IN ACCESS SHARE MODE NOWAIT",
        "CREATE TABLE {new} (LIKE {live} INCLUDING DEFAULTS)",
    ],
)
def test_the_lint_passes_qualified_sql_and_syntax(text):
    assert _problems(text) == []
