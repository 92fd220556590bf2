"""How a request field is declared once and spelled everywhere: its Python type and default (the dataclass field),
what it means, its command-line option and how argparse reads it, and whether the run config always carries it. From
the one declaration come the Dagster op's config class (run_config.request_config), the command line's options
(add_options, from_args), the run config other programs send (as_config) and the engine's call (the request object
itself). The requests themselves are in run_requests.

No Dagster or pydantic here, and no import of the code location: the client and the command line use this module
without loading Dagster definitions.

A field declares itself with `option(...)` as its dataclass field. A field whose type is itself a request part (a
dataclass whose fields are options, such as RestoreFlags) is spelled flat, its fields beside the others: the run
config and the command line never nest. A field whose type is a tuple of records (dataclasses whose fields are
options, such as a backup's tables) is a list of objects in the run config, each record's fields its keys.
"""

import argparse
import dataclasses
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pgvector_pipeline.errors import InvalidParams, named

_SPEC = "pgvector_pipeline.option"
# A request type (RestoreRequest, ...): what build and from_args make.
R = TypeVar("R")
# The default of a field that has none: the run config must give it (the command line's option says `required`).
REQUIRED: Any = dataclasses.MISSING


@dataclass(frozen=True)
class Flag:
    """A further command-line option of a field, beside its own (e.g. a backup's --where beside --table): the field's
    `from_cli` reads both."""

    flag: str
    dest: str
    help: str
    cli: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Spelling:
    """How one request field is spelled outside Python."""

    # What it means: the run config's description (and the command line's help, unless cli_help says otherwise).
    help: str
    # The command line's option ('--truncate'); None: the field is set only in the run config.
    flag: str | None = None
    # How argparse reads the option besides its flag and help: action, nargs, metavar, type, choices, required.
    cli: Mapping[str, Any] = field(default_factory=dict)
    # The command line's help where it says less than the run config's (the shell's own words).
    cli_help: str | None = None
    # Whether the run config other programs send carries the field at its default too (else only when set).
    always_sent: bool = False
    # Whether the run config has the field at all: False for what only a command run in this process uses (--direct:
    # copy's other store); a launch through Dagster refuses it set.
    in_config: bool = True
    # More command-line options that make the field's value with its own (see Flag).
    more_flags: tuple[Flag, ...] = ()
    # How the command line's arguments make the field's value (None: its option's value as argparse made it).
    from_cli: Callable[[argparse.Namespace], Any] | None = None


def option(default: Any = None, *, default_factory: Callable[[], Any] | None = None, **spelling: Any) -> Any:
    """A request field: its default (REQUIRED: none, the run config must give it) and its Spelling."""
    metadata = {_SPEC: Spelling(**spelling)}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def switch(flag: str, **spelling: Any) -> Any:
    """A switch: off by default, a store_true flag, always in the run config (the Launchpad shows each)."""
    return option(False, flag=flag, cli={"action": "store_true"}, always_sent=True, **spelling)


def part(default_factory: Callable[[], Any]) -> Any:
    """A request field that groups options (a dataclass of them): spelled flat, beside the request's own."""
    return field(default_factory=default_factory, metadata={_SPEC: None})


@dataclass(frozen=True)
class Declared:
    """One spelled field of a request, found through its parts: its name (the run config's key and the argparse
    dest), its Python type, default (REQUIRED: none) and spelling, and the part holding it (None: the request
    itself)."""

    name: str
    type: Any
    default: Any
    spelling: Spelling
    part: str | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def record(self) -> type | None:
        """The record type of a field that is a tuple of records (see record_type)."""
        return record_type(self.type)


def declared(request_type: type) -> Iterator[Declared]:
    """Every spelled field of `request_type`, in declaration order, parts flattened in their place."""
    hints = typing.get_type_hints(request_type)
    for f in dataclasses.fields(request_type):
        if _SPEC not in f.metadata:
            continue
        spelling = f.metadata[_SPEC]
        if spelling is None:  # a part
            for inner in declared(hints[f.name]):
                yield dataclasses.replace(inner, part=f.name)
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        yield Declared(f.name, hints[f.name], default, spelling)


def in_config(request_type: type) -> Iterator[Declared]:
    """The fields of `request_type` the run config has (see Spelling.in_config)."""
    return (spelled for spelled in declared(request_type) if spelled.spelling.in_config)


def record_type(annotation: Any) -> type | None:
    """R for `tuple[R, ...]` where R is a record (a dataclass whose fields are options); None for any other type."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is tuple and args and dataclasses.is_dataclass(args[0]) and isinstance(args[0], type):
        return args[0]
    return None


def build(request_type: type[R], values: Mapping[str, Any]) -> R:
    """A request from flat values by field name (the run config's or argparse's); a name missing, or None, takes its
    default (a required one is refused, naming it). Lists become tuples, KEY=VALUE pairs mappings where the field's
    default is one, and a record's mappings records."""
    own: dict[str, Any] = {}
    parts: dict[str, dict[str, Any]] = {}
    for spelled in declared(request_type):
        value = values.get(spelled.name)
        if value is None:
            if spelled.required:
                raise InvalidParams(named(spelled.name), " is required.")
            continue
        value = _python_value(spelled, value)
        if spelled.part is None:
            own[spelled.name] = value
        else:
            parts.setdefault(spelled.part, {})[spelled.name] = value
    hints = typing.get_type_hints(request_type)
    own.update({name: hints[name](**given) for name, given in parts.items()})
    return request_type(**own)


def _python_value(spelled: Declared, value: Any) -> Any:
    record = spelled.record
    if record is not None:
        return tuple(item if isinstance(item, record) else build(record, item) for item in value)
    if isinstance(spelled.default, tuple):
        return tuple(value)
    if isinstance(spelled.default, Mapping):
        return dict(value)
    return value


def flat(request: Any) -> dict[str, Any]:
    """The request's spelled fields by name, parts flattened."""
    values: dict[str, Any] = {}
    for spelled in declared(type(request)):
        holder = request if spelled.part is None else getattr(request, spelled.part)
        values[spelled.name] = getattr(holder, spelled.name)
    return values


def as_config(request: Any, leave_out: tuple[str, ...] = ()) -> dict[str, Any]:
    """The op config of `request` as other programs send it: the fields always sent or required, and the others when
    set (lists, mappings and records as JSON has them); not those in `leave_out`, nor those the run config does not
    have."""
    config: dict[str, Any] = {}
    values = flat(request)
    for spelled in in_config(type(request)):
        value = values[spelled.name]
        if spelled.name in leave_out:
            continue
        if spelled.spelling.always_sent or spelled.required or value != spelled.default:
            config[spelled.name] = as_config_value(value)
    return config


def as_config_value(value: Any) -> Any:
    """A field's value as the run config holds it: tuples as lists, mappings as dicts, records as their config."""
    if isinstance(value, tuple):
        return [as_config(item) if dataclasses.is_dataclass(item) else item for item in value]
    if isinstance(value, Mapping):
        return dict(value)
    return value


def config_type(spelled: Declared) -> Any:
    """The run config's type of a field that is no record: tuples as lists, mappings as dicts (what Dagster's config
    takes)."""
    origin, args = typing.get_origin(spelled.type), typing.get_args(spelled.type)
    if origin is tuple:
        return list[args[0]]  # type: ignore[valid-type]
    if origin in (Mapping, dict):
        return dict[args[0], args[1]]  # type: ignore[valid-type]
    return spelled.type


def add_options(parser: argparse.ArgumentParser, request_type: type) -> None:
    """The command line's options of `request_type`'s fields that have one."""
    for spelled in declared(request_type):
        spelling = spelled.spelling
        if spelling.flag is None:
            continue
        parser.add_argument(
            spelling.flag, dest=spelled.name, help=spelling.cli_help or spelling.help, **dict(spelling.cli)
        )
        for more in spelling.more_flags:
            parser.add_argument(more.flag, dest=more.dest, help=more.help, **dict(more.cli))


def from_args(request_type: type[R], args: argparse.Namespace, **given: Any) -> R:
    """The request the command line's arguments make (`given`: fields the command sets itself)."""
    values: dict[str, Any] = {}
    for spelled in declared(request_type):
        spelling = spelled.spelling
        if spelling.flag is None:
            continue
        values[spelled.name] = spelling.from_cli(args) if spelling.from_cli else getattr(args, spelled.name, None)
    return build(request_type, {**values, **given})


def pair(shape: str, example: str) -> Callable[[str], tuple[str, str]]:
    """An argparse type for 'KEY=VALUE' (split at the first '='): both parts must be given."""

    def parse(text: str) -> tuple[str, str]:
        key, sep, value = text.partition("=")
        if not sep or not key or not value:
            raise argparse.ArgumentTypeError(f"{text!r} is not {shape} ({example})")
        return key, value

    return parse


def help_of(request_part: type) -> dict[str, tuple[str, str]]:
    """Each field of a request part: its command-line flag and what it does (for tables of them, as the docs')."""
    return {s.name: (s.spelling.flag or "", s.spelling.help) for s in declared(request_part)}
