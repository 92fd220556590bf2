"""How deep the parse tree of outside text (a backup's row filter, a manifest's DDL) nests, measured without
recursion: pglast's parser builds deep trees fine, but the checkers that walk them, pglast's printer and the server's
planner recurse per level (Python's recursion limit is hit at a few hundred: 500 NOTs, 600 casts)."""

from pglast import ast

# Levels of a parse tree a checked condition or statement may have: real ones use about ten.
MAX_DEPTH = 100


def deeper_than(tree: object, levels: int = MAX_DEPTH) -> bool:
    """Whether `tree` has more than `levels` levels of nodes (lists of nodes are not levels)."""
    pending: list[tuple[object, int]] = [(tree, 1)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, (list, tuple)):
            pending.extend((item, depth) for item in node)
        elif isinstance(node, ast.Node):
            if depth > levels:
                return True
            pending.extend((getattr(node, name), depth + 1) for name in node)
    return False
