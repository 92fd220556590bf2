"""A backup's row filter (run config: untrusted text) checked by PostgreSQL's own parser before it reaches SQL.

A filter is a WHERE condition on one table's own columns: column references (optionally through jsonb/json
operators such as `cmetadata->>'source'`), constants, casts to plain types, comparisons, LIKE/ILIKE, IN lists,
BETWEEN, IS [NOT] NULL, IS [NOT] TRUE/FALSE, AND, OR, NOT. Anything else (a function call, a subquery, another
table's column, a parameter, a second statement, a comment trick) is refused. What reaches the export is the
condition re-printed from the checked parse tree, never the given text; it runs inside the backup's READ ONLY
snapshot, and applies inside every parallel export range.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from pglast import ast, parse_sql
from pglast.enums import A_Expr_Kind, BoolExprType, BoolTestType, NullTestType
from pglast.parser import ParseError
from pglast.stream import RawStream
from psycopg2 import sql

from pgvector_pipeline.errors import InvalidParams
from pgvector_pipeline.names import PRINTED_ROW_FILTER_MAX_CHARS, ROW_FILTER_MAX_CHARS
from pgvector_pipeline.postgres.catalog import all_of
from pgvector_pipeline.postgres.collections import row_filter as collections_filter
from pgvector_pipeline.postgres.ddl import SAFE_OPERATORS
from pgvector_pipeline.postgres.parse_trees import MAX_DEPTH, deeper_than
from pgvector_pipeline.untrusted_text import NUL

_OPERATORS = SAFE_OPERATORS | {"!=", "~~", "!~~", "~~*", "!~~*"}
_KINDS = {
    A_Expr_Kind.AEXPR_OP,
    A_Expr_Kind.AEXPR_IN,
    A_Expr_Kind.AEXPR_LIKE,
    A_Expr_Kind.AEXPR_ILIKE,
    A_Expr_Kind.AEXPR_BETWEEN,
    A_Expr_Kind.AEXPR_NOT_BETWEEN,
}
# Types a filter may cast to: plain built-in types, which read nothing and call no user code.
_CAST_TYPES = frozenset(
    {
        "text", "varchar", "bpchar", "int2", "int4", "int8", "numeric", "float4", "float8", "bool", "date",
        "timestamp", "timestamptz", "uuid", "json", "jsonb", "interval",
    }
)  # fmt: skip


@dataclass(frozen=True)
class RowChoice:
    """Which rows of a table a backup takes: those of the collections named (LangChain's tables; empty: all), and
    those a checked row filter keeps (None: all)."""

    collections: tuple[str, ...] = ()
    row_filter: str | None = None  # re-printed by checked_row_filter

    def condition(self, schema: str, table: str) -> sql.Composable | None:
        """The WHERE condition of these rows of `schema.table` (None: every row)."""
        return all_of(
            collections_filter(schema, table, self.collections),
            # Re-printed from a parse tree that holds only the table's columns, constants and operators.
            sql.SQL(self.row_filter) if self.row_filter else None,
        )


ALL_ROWS = RowChoice()


def checked_row_filter(text: str, table: str, columns: Sequence[str]) -> str:
    """The row filter `text` on `table` (whose columns are `columns`), re-printed from its checked parse tree;
    InvalidParams saying what is refused."""
    if not isinstance(text, str) or not text.strip() or len(text) > ROW_FILTER_MAX_CHARS:
        _refuse(text, table, f"it is empty or longer than {ROW_FILTER_MAX_CHARS} characters")
    if NUL in text:  # pglast reads a C string: the condition would end at the NUL, silently
        _refuse(text, table, "it holds a NUL character (\\x00)")
    try:
        parsed = parse_sql(f"SELECT FROM t WHERE {text}")
    except ParseError as exc:
        _refuse(text, table, f"it is not a valid SQL condition ({exc})")
    statement = parsed[0].stmt if len(parsed) == 1 else None
    if not isinstance(statement, ast.SelectStmt) or statement.whereClause is None or _has_more(statement):
        _refuse(text, table, "it is more than one condition")
    if deeper_than(statement.whereClause):  # before anything walks the tree recursively
        _refuse(text, table, f"it nests more than {MAX_DEPTH} levels deep (write long lists with IN (…))")
    _check(statement.whereClause, text, table, set(columns))
    printed = _printed(statement.whereClause)
    if len(printed) > PRINTED_ROW_FILTER_MAX_CHARS:  # what the manifest records must fit it
        _refuse(text, table, f"qualified, it is longer than {PRINTED_ROW_FILTER_MAX_CHARS} characters")
    return printed


def _printed(node: ast.Node | tuple[Any, ...] | None) -> str:
    """The checked condition re-printed with every operator and cast type named through pg_catalog, and every
    operation in parentheses, as pg_dump prints expressions: `(a OPERATOR(pg_catalog.=) 1)`,
    `CAST(x AS pg_catalog.int4)`. What it calls cannot resolve to an object another role planted in a schema on a
    path, and OPERATOR()'s own precedence changes nothing. LIKE, IN and BETWEEN, whose syntax takes no qualified
    operator, become the operators they stand for."""
    if isinstance(node, (ast.A_Const, ast.ColumnRef)):
        return RawStream()(node)
    if isinstance(node, ast.TypeCast):
        assert node.typeName is not None and node.typeName.names is not None  # _check made sure
        # Printed here: pglast spells pg_catalog.bpchar as `char`, which is char(1).
        modifiers = ", ".join(RawStream()(modifier) for modifier in node.typeName.typmods or ())
        type_name = f"pg_catalog.{node.typeName.names[-1].sval}" + (f"({modifiers})" if modifiers else "")
        return f"CAST({_printed(node.arg)} AS {type_name})"
    if isinstance(node, ast.NullTest):
        return f"({_printed(node.arg)} IS {'NOT ' if node.nulltesttype == NullTestType.IS_NOT_NULL else ''}NULL)"
    if isinstance(node, ast.BooleanTest):
        assert node.booltesttype is not None
        return f"({_printed(node.arg)} {_BOOLEAN_TESTS[node.booltesttype]})"
    if isinstance(node, ast.BoolExpr):
        arguments = [_printed(argument) for argument in node.args or ()]
        if node.boolop == BoolExprType.NOT_EXPR:
            return f"(NOT {arguments[0]})"
        assert node.boolop is not None
        return "(" + _BOOLEAN_JOINS[node.boolop].join(arguments) + ")"
    assert isinstance(node, ast.A_Expr)  # _check refused everything else
    return _printed_operation(node)


_BOOLEAN_JOINS = {BoolExprType.AND_EXPR: " AND ", BoolExprType.OR_EXPR: " OR "}
_BOOLEAN_TESTS = {
    BoolTestType.IS_TRUE: "IS TRUE",
    BoolTestType.IS_NOT_TRUE: "IS NOT TRUE",
    BoolTestType.IS_FALSE: "IS FALSE",
    BoolTestType.IS_NOT_FALSE: "IS NOT FALSE",
    BoolTestType.IS_UNKNOWN: "IS UNKNOWN",
    BoolTestType.IS_NOT_UNKNOWN: "IS NOT UNKNOWN",
}


def _operation(operator: str, left: str, right: str) -> str:
    return f"({left} OPERATOR(pg_catalog.{operator}) {right})"


def _values(node: ast.A_Expr) -> tuple[ast.Node, ...]:
    """The list of IN (…) or BETWEEN … AND …."""
    assert isinstance(node.rexpr, tuple)  # what the parser makes of both
    return node.rexpr


def _printed_operation(node: ast.A_Expr) -> str:
    left = _printed(node.lexpr)
    operator = str(node.name[-1].sval) if node.name else ""
    if node.kind == A_Expr_Kind.AEXPR_IN:  # x IN (a, b): x = ANY (ARRAY[a, b]); NOT IN: x <> ALL (ARRAY[a, b])
        values = ", ".join(_printed(value) for value in _values(node))
        return f"({left} OPERATOR(pg_catalog.{operator}) {'ANY' if operator == '=' else 'ALL'} (ARRAY[{values}]))"
    if node.kind in (A_Expr_Kind.AEXPR_BETWEEN, A_Expr_Kind.AEXPR_NOT_BETWEEN):
        low, high = (_printed(value) for value in _values(node))
        if node.kind == A_Expr_Kind.AEXPR_BETWEEN:
            return f"({_operation('>=', left, low)} AND {_operation('<=', left, high)})"
        return f"({_operation('<', left, low)} OR {_operation('>', left, high)})"
    # LIKE and ILIKE carry their operator's name (~~, !~~, ~~*, !~~*); comparisons and jsonb operators their own.
    return _operation(operator, left, _printed(node.rexpr))


def _has_more(statement: ast.SelectStmt) -> bool:
    """Anything besides the WHERE clause: the text closed the condition and went on (GROUP BY, UNION, …)."""
    others = ("groupClause", "havingClause", "sortClause", "limitCount", "limitOffset", "larg", "rarg", "withClause")
    return any(getattr(statement, name, None) for name in others) or len(statement.fromClause or ()) != 1


def _check(node: ast.Node | tuple[Any, ...] | None, text: str, table: str, columns: set[str]) -> None:
    if isinstance(node, ast.A_Const):
        return
    if isinstance(node, ast.ColumnRef):
        names = [str(getattr(field, "sval", "*")) for field in node.fields or ()]
        if len(names) != 1 or names[0] not in columns:
            _refuse(text, table, f"it names {'.'.join(str(n) for n in names)!r}, which is not a column of {table}")
        return
    if isinstance(node, ast.TypeCast):
        type_name = node.typeName
        type_names = [str(name.sval) for name in (type_name.names if type_name else None) or ()]
        if (
            type_name is None
            or not type_names
            or type_names[-1] not in _CAST_TYPES
            or type_names[:-1] not in ([], ["pg_catalog"])
            or type_name.arrayBounds
        ):
            _refuse(text, table, f"it casts to {'.'.join(type_names)!r}; casts are allowed to {sorted(_CAST_TYPES)}")
        return _check(node.arg, text, table, columns)
    if isinstance(node, (ast.NullTest, ast.BooleanTest)):
        return _check(node.arg, text, table, columns)
    if isinstance(node, ast.BoolExpr):
        for argument in node.args or ():
            _check(argument, text, table, columns)
        return
    if isinstance(node, (list, tuple)):  # the values of IN (…) and BETWEEN … AND …
        for item in node:
            _check(item, text, table, columns)
        return
    if isinstance(node, ast.A_Expr):
        names = [name.sval for name in node.name or ()]
        between = node.kind in (A_Expr_Kind.AEXPR_BETWEEN, A_Expr_Kind.AEXPR_NOT_BETWEEN)
        if node.kind not in _KINDS or len(names) != 1 or (names[0] not in _OPERATORS and not between):
            _refuse(text, table, f"it uses operator {'.'.join(names)!r}")
        for side in (node.lexpr, node.rexpr):
            if side is not None:
                _check(side, text, table, columns)
        return
    _refuse(text, table, f"it holds a {type(node).__name__} (only columns, constants, casts and operators are allowed)")


def _refuse(text: object, table: str, why: str) -> NoReturn:
    shown = repr(text) if len(str(text)) <= 200 else repr(str(text)[:200]) + "…"
    raise InvalidParams(
        f"The row filter of {table} {shown} was refused because {why}. A filter is a condition on the table's own "
        f"columns: comparisons, LIKE, IN, BETWEEN, IS NULL, AND/OR/NOT, jsonb operators (e.g. "
        f"cmetadata->>'source' = 'a.pdf'), casts; no function calls or subqueries."
    )
