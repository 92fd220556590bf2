"""Checking DDL that comes from a manifest (an untrusted file) before restore executes it.

PostgreSQL's own parser (through pglast) must find exactly one CREATE TABLE or CREATE INDEX of the
expected table, built only from parts a LangChain table has: columns, NOT NULL, constant defaults,
primary/unique keys, foreign keys to the tables the table description names, and plain column or cast expressions
in indexes. Anything else (a second statement, a function call, a subquery, another table) is refused.
What is executed is the statement re-printed from the checked parse tree, never the file's text.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

from pglast import ast, parse_sql
from pglast.enums import ConstrType
from pglast.parser import ParseError
from pglast.stream import RawStream

from pgvector_pipeline.errors import DataError, named
from pgvector_pipeline.names import VECTOR_TYPES
from pgvector_pipeline.postgres.parse_trees import MAX_DEPTH, deeper_than

# Index access methods of PostgreSQL and pgvector.
INDEX_METHODS = frozenset({"btree", "hash", "gin", "gist", "spgist", "brin", "hnsw", "ivfflat"})
# Operators allowed in index expressions and partial-index predicates (jsonb, comparison).
SAFE_OPERATORS = frozenset({"=", "<>", "<", ">", "<=", ">=", "->", "->>", "#>", "#>>", "@>", "<@", "?", "?|", "?&"})
# Functions of pg_catalog a column default may call: they take no arguments and read nothing.
SAFE_DEFAULT_FUNCTIONS = frozenset({"now", "gen_random_uuid", "clock_timestamp", "statement_timestamp"})
# The statement _single_statement expects (CreateStmt, IndexStmt).
_Statement = TypeVar("_Statement", bound=ast.Node)
_COLUMN_CONSTRAINTS = {
    ConstrType.CONSTR_NULL,
    ConstrType.CONSTR_NOTNULL,
    ConstrType.CONSTR_DEFAULT,
    ConstrType.CONSTR_PRIMARY,
    ConstrType.CONSTR_UNIQUE,
}
_TABLE_CONSTRAINTS = {ConstrType.CONSTR_PRIMARY, ConstrType.CONSTR_UNIQUE, ConstrType.CONSTR_FOREIGN}


class UnsafeDDL(DataError):
    """Manifest DDL that restore refuses to execute."""

    pass


def checked_create_table(statement: str, table: str, references: Sequence[str] = ()) -> str:
    """The CREATE TABLE of `table` (unqualified), re-printed from its checked parse tree; its foreign keys may
    reference only `references` (the tables the table description says it references)."""
    stmt = _single_statement(statement, ast.CreateStmt, f"CREATE TABLE {table}")
    if stmt.relation is None:
        _refuse(statement, "it names no table")
    _check_relation(stmt.relation, table, statement)
    for attribute in (
        "inhRelations",
        "partbound",
        "partspec",
        "ofTypename",
        "options",
        "tablespacename",
        "accessMethod",
    ):
        if getattr(stmt, attribute, None):
            _refuse(statement, f"it uses {attribute}, which a LangChain table never has")
    if stmt.relation.relpersistence != "p":
        _refuse(statement, "it creates a temporary or unlogged table")
    for element in stmt.tableElts or ():
        if isinstance(element, ast.ColumnDef):
            _check_column(element, statement, references, table)
        elif isinstance(element, ast.Constraint) and element.contype in _TABLE_CONSTRAINTS:
            _check_constraint(element, statement, references)
        else:
            _refuse(statement, f"it holds a {type(element).__name__} element")
    return RawStream()(stmt)


def checked_create_index(statement: str, table: str) -> str:
    """A CREATE INDEX on `table` (unqualified), re-printed from its checked parse tree."""
    stmt = _single_statement(statement, ast.IndexStmt, f"CREATE INDEX on {table}")
    if stmt.relation is None:
        _refuse(statement, "it names no table")
    _check_relation(stmt.relation, table, statement)
    if stmt.concurrent:
        _refuse(statement, "CONCURRENTLY cannot run inside the restore transaction")
    if not stmt.idxname:
        _refuse(statement, "the index has no name")
    if stmt.accessMethod not in INDEX_METHODS:
        _refuse(statement, f"index method {stmt.accessMethod!r} is not one of {sorted(INDEX_METHODS)}")
    if stmt.tableSpace:
        _refuse(statement, "it names a tablespace, which the target may not have")
    for param in (*(stmt.indexParams or ()), *(stmt.indexIncludingParams or ())):
        if param.expr is not None:
            _check_expression(param.expr, statement)
    for option in stmt.options or ():
        _check_option(option, statement)
    if stmt.whereClause is not None:
        _check_expression(stmt.whereClause, statement)
    return RawStream()(stmt)


@dataclass(frozen=True)
class Placement:
    """Where a restore creates what a manifest's DDL describes: the target schema, pgvector's schema and the operator
    classes the extension defines. Sessions run with an empty search_path, so every name the DDL leaves unqualified
    is given its schema here, and nothing resolves through a schema another role may create objects in."""

    schema: str
    extension_schema: str
    extension_operator_classes: frozenset[str] = frozenset()


def placed(statement: str, placement: Placement) -> str:
    """A checked CREATE TABLE or CREATE INDEX (see checked_create_table, checked_create_index) with its table, the
    tables its foreign keys reference, pgvector's types and operator classes qualified as `placement` says."""
    stmt = parse_sql(statement)[0].stmt
    assert isinstance(stmt, (ast.CreateStmt, ast.IndexStmt)) and stmt.relation is not None  # checked before
    stmt.relation.schemaname = placement.schema
    if isinstance(stmt, ast.CreateStmt):
        for element in stmt.tableElts or ():
            if isinstance(element, ast.ColumnDef):
                element.typeName = _placed_type(element.typeName, placement)
            constraints = element.constraints if isinstance(element, ast.ColumnDef) else (element,)
            for constraint in constraints or ():
                if getattr(constraint, "pktable", None) is not None:
                    constraint.pktable.schemaname = placement.schema
    else:
        for param in (*(stmt.indexParams or ()), *(stmt.indexIncludingParams or ())):
            names = [name.sval for name in param.opclass or ()]
            if len(names) == 1 and names[0] in placement.extension_operator_classes:
                param.opclass = (ast.String(sval=placement.extension_schema), ast.String(sval=names[0]))
    return RawStream()(stmt)


def _placed_type(type_name: ast.TypeName | None, placement: Placement) -> ast.TypeName | None:
    names = [name.sval for name in (type_name.names if type_name else None) or ()]
    if type_name is not None and len(names) == 1 and names[0] in VECTOR_TYPES:
        type_name.names = (ast.String(sval=placement.extension_schema), ast.String(sval=names[0]))
    return type_name


def _single_statement(statement: str, expected: type[_Statement], what: str) -> _Statement:
    if not isinstance(statement, str):
        raise UnsafeDDL(f"The manifest's DDL for {what} is not text.")
    try:
        parsed = parse_sql(statement)
    except ParseError as exc:
        raise UnsafeDDL(f"The manifest's DDL for {what} is not valid SQL ({exc}). The manifest is damaged.") from None
    if len(parsed) != 1:
        _refuse(statement, f"it holds {len(parsed)} statements instead of one")
    stmt = parsed[0].stmt
    if not isinstance(stmt, expected):
        _refuse(statement, f"it is a {type(stmt).__name__}, not {what}")
    if deeper_than(stmt):  # before the checks and the printer walk it recursively
        _refuse(statement, f"it nests more than {MAX_DEPTH} levels deep")
    return stmt


def _check_relation(relation: ast.RangeVar, table: str, statement: str) -> None:
    if relation.schemaname or relation.catalogname or relation.relname != table:
        _refuse(statement, f"it names table {relation.relname!r} (schema {relation.schemaname!r}) instead of {table!r}")


# The types a column whose default draws from its own sequence is re-printed as (CREATE TABLE makes the sequence).
_SERIAL_TYPES = {"int2": "smallserial", "int4": "serial", "int8": "bigserial"}


def _check_column(column: ast.ColumnDef, statement: str, references: Sequence[str], table: str = "") -> None:
    if column.typeName is None or column.typeName.setof or column.typeName.pct_type:
        _refuse(statement, f"column {column.colname!r} has no plain type")
    for typmod in column.typeName.typmods or ():
        if not isinstance(typmod, ast.A_Const):
            _refuse(statement, f"column {column.colname!r} has a computed type modifier")
    for attribute in (
        "raw_default",
        "cooked_default",
        "identity",
        "identitySequence",
        "generated",
        "fdwoptions",
        "compression",
        "storage_name",
    ):
        if getattr(column, attribute, None) not in (None, "", "\x00", ()):
            _refuse(statement, f"column {column.colname!r} uses {attribute}")
    for constraint in column.constraints or ():
        if constraint.contype == ConstrType.CONSTR_GENERATED:
            raise UnsafeDDL(
                f"Column {column.colname!r} of the set's table is a generated column (GENERATED ALWAYS AS ...). ",
                named("create_missing"),
                " does not execute expressions read from a manifest, so it does not recreate this table. Create the "
                "table in the target yourself (with its generated column), then restore without ",
                named("create_missing"),
                ": the rows load and the server computes the column again.",
            )
        if constraint.contype not in _COLUMN_CONSTRAINTS:
            _refuse(statement, f"column {column.colname!r} has a {constraint.contype.name} constraint")
        if constraint.contype == ConstrType.CONSTR_DEFAULT and _is_serial(constraint.raw_expr, column, table):
            continue
        if constraint.contype == ConstrType.CONSTR_DEFAULT:
            _check_default(constraint.raw_expr, column.colname or "", statement)
        _check_constraint(constraint, statement, references)
    _make_serial(column, table)


def _is_serial(expression: ast.Node | None, column: ast.ColumnDef, table: str) -> bool:
    """Whether a default is `nextval('{table}_{column}_seq'::regclass)` on an integer column: what serial and
    bigserial columns (LlamaIndex's ids, say) look like in the catalog."""
    if not isinstance(expression, ast.FuncCall) or not expression.args or len(expression.args) != 1:
        return False
    names = [name.sval for name in expression.funcname or ()]
    argument = expression.args[0]
    if names not in (["nextval"], ["pg_catalog", "nextval"]) or not isinstance(argument, ast.TypeCast):
        return False
    value = argument.arg.val if isinstance(argument.arg, ast.A_Const) else None
    cast = [name.sval for name in (argument.typeName.names if argument.typeName else ()) or ()]
    type_names = [name.sval for name in (column.typeName.names if column.typeName else ()) or ()]
    return (
        isinstance(value, ast.String)
        and value.sval == f"{table}_{column.colname}_seq"
        and cast[-1:] == ["regclass"]
        and type_names[-1:] != []
        and type_names[-1] in _SERIAL_TYPES
    )


def _make_serial(column: ast.ColumnDef, table: str) -> None:
    """Re-print a column whose default draws from its own sequence as serial/bigserial, without that default:
    CREATE TABLE then makes the sequence (named as before) and the default, and owns it to the column."""
    defaults = [c for c in column.constraints or () if c.contype == ConstrType.CONSTR_DEFAULT]
    if not defaults or not _is_serial(defaults[0].raw_expr, column, table):
        return
    assert column.typeName is not None and column.typeName.names is not None
    serial = _SERIAL_TYPES[column.typeName.names[-1].sval]
    column.typeName = ast.TypeName(names=(ast.String(sval=serial),), typemod=-1)
    column.constraints = tuple(c for c in column.constraints or () if c.contype != ConstrType.CONSTR_DEFAULT)


def _check_constraint(constraint: ast.Constraint, statement: str, references: Sequence[str]) -> None:
    if constraint.indexspace or constraint.options:
        _refuse(statement, "a constraint names a tablespace or storage options")
    if constraint.contype == ConstrType.CONSTR_FOREIGN:
        if constraint.pktable is None:
            _refuse(statement, "a foreign key names no table")
        referenced = constraint.pktable.relname or ""
        if referenced not in references:
            _refuse(statement, "a foreign key references a table the set's table description does not name")
        _check_relation(constraint.pktable, referenced, statement)


def _check_default(expression: ast.Node | None, column: str, statement: str) -> None:
    if isinstance(expression, ast.TypeCast):
        expression = expression.arg
    if isinstance(expression, (ast.A_Const, ast.SQLValueFunction)):
        return
    if isinstance(expression, ast.FuncCall) and not expression.args:
        names = [name.sval for name in expression.funcname or ()]
        # Only pg_catalog's own functions, and the re-printed statement names pg_catalog: a name in another
        # schema (public.gen_random_uuid) calls whatever function sits there, and anyone with CREATE on
        # public can plant one.
        if names[-1] in SAFE_DEFAULT_FUNCTIONS and names[:-1] in ([], ["pg_catalog"]):
            expression.funcname = (ast.String(sval="pg_catalog"), ast.String(sval=names[-1]))
            return
    _refuse(statement, f"the default of column {column!r} is an expression restore does not execute")


def _check_expression(expression: ast.Node | tuple[Any, ...] | None, statement: str) -> None:
    """Column references, constants, casts and allowed operators only: nothing that calls a function."""
    if isinstance(expression, (ast.ColumnRef, ast.A_Const)):
        return
    if isinstance(expression, ast.TypeCast):
        return _check_expression(expression.arg, statement)
    if isinstance(expression, ast.NullTest):
        return _check_expression(expression.arg, statement)
    if isinstance(expression, ast.BoolExpr):
        for argument in expression.args or ():
            _check_expression(argument, statement)
        return
    if isinstance(expression, ast.A_Expr):
        names = [name.sval for name in expression.name or ()]
        if len(names) == 1 and names[0] in SAFE_OPERATORS:
            for side in (expression.lexpr, expression.rexpr):
                if side is not None:
                    _check_expression(side, statement)
            return
        _refuse(statement, f"it uses operator {'.'.join(names)!r}")
    _refuse(statement, f"it holds a {type(expression).__name__} expression")


def _check_option(option: ast.DefElem, statement: str) -> None:
    if option.defnamespace or not isinstance(option.arg, (ast.String, ast.Integer, ast.Float, ast.Boolean, type(None))):
        _refuse(statement, f"storage option {option.defname!r} is not a plain value")


def _refuse(statement: str, why: str) -> NoReturn:
    shown = statement if len(statement) <= 300 else statement[:300] + "…"
    raise UnsafeDDL(
        f"The manifest's DDL was refused because {why}: {shown!r}. Restore executes only one CREATE TABLE "
        f"or CREATE INDEX of the LangChain table itself. The manifest was changed or damaged: restore "
        f"another set, or create the tables yourself and restore without ",
        named("create_missing"),
        ".",
    )
