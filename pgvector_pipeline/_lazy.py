"""A package's public names imported when first used (PEP 562 module __getattr__): importing the package loads none
of the modules behind them, so a program that needs one part (the GraphQL client, the parse workers of the set checks)
loads that part alone, and never Dagster."""

import importlib
import sys
from collections.abc import Callable, Mapping


def lazy_names(package: str, where: Mapping[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The module __getattr__ and __dir__ of `package` for the names of `where` (name -> the module that defines it):
    a name is imported from its module at its first use, then kept in the package's namespace."""
    namespace = vars(sys.modules[package])

    def __getattr__(name: str) -> object:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value  # later uses find it without coming here
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *where})

    return __getattr__, __dir__
