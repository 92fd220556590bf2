"""MkDocs hook: the parts of the documentation that the code defines are generated from the code at build time, so
they cannot drift from it (`mkdocs build --strict` runs in `./run test`).

- The site's home page is README.md itself (links into docs/ rewritten), so the front door has one home.
- `<!-- generated:NAME -->` in a page is replaced by a table made from the code (GENERATORS): the command line from
  cli.build_parser(), exit codes from cli.EXIT_CODES, restore switches from contract.RESTORE_FLAG_HELP and
  MIGRATION_HELP, error types from errors.ErrorType and the docstrings of the error classes, run config from the
  jobs' config classes, resource settings from the resources' fields.
- Every `pgvector-pipeline …` line of a shell code block is parsed with the real parser, and every Launchpad YAML
  block (```yaml title="Launchpad: JOB"```) is validated against that job's config schema: an example that the
  code would refuse fails the build.

Nothing generated is written into docs/ or committed; it exists only in the built site.
"""

import argparse
import contextlib
import inspect
import io
import json
import os
import re
import shlex
import sys
import typing
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import NoneType, UnionType
from typing import Any

import yaml
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

REPO_ROOT = Path(__file__).resolve().parents[2]
README = REPO_ROOT / "README.md"

# The reference is the code of this checkout: `mkdocs` started from another checkout's virtualenv would otherwise
# import that checkout's package (its editable install) and document it instead. The package is imported now, while
# this checkout leads sys.path (mkdocs restores sys.path once the hook is loaded); its modules follow it.
sys.path.insert(0, str(REPO_ROOT))
try:
    import pgvector_pipeline  # noqa: F401
finally:
    sys.path.remove(str(REPO_ROOT))

MARKER = re.compile(r"<!-- generated:([a-z-]+) -->")
# Fenced code blocks: their info string (language and attributes) and body.
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
LAUNCHPAD = re.compile(r'^yaml\s+title="Launchpad: ([a-z_]+)"')
SHELL_LANGUAGES = ("bash", "sh", "shell", "console")
# A command of the tool in a shell line: the program (bare or by path), then its arguments up to a pipe, a command
# separator, the end of a command substitution or a comment.
COMMAND = re.compile(r"(?:^|[\s(])(?:[\w./-]*/)?pgvector-pipeline((?:\s+[^\s|;&)#]+)*)")
# Links from README.md into the site (README sits beside docs/, the home page inside it).
README_DOC_LINK = re.compile(r"\]\(docs/")


# --- the home page ---------------------------------------------------------------------------------------------


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """README.md, with its links into docs/ made relative to the site, is the site's home page."""
    front_door = README_DOC_LINK.sub("](", README.read_text(encoding="utf-8"))
    files.append(File.generated(config, "index.md", content=front_door))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Fill the generated tables, then check every command and Launchpad example the page shows."""
    where = page.file.src_uri
    for name in MARKER.findall(markdown):
        if name in PAGE_CHECKS:
            PAGE_CHECKS[name](markdown, where)
    markdown = MARKER.sub(lambda found: _generated(found[1], where), markdown)
    for info, body in FENCE.findall(markdown):
        launchpad = LAUNCHPAD.match(info.strip())
        if launchpad:
            _check_launchpad(launchpad[1], body, where)
        elif info.strip().split(" ")[0] in SHELL_LANGUAGES:
            for line in _logical_lines(body):
                _check_commands(line, where)
    return markdown


def _generated(name: str, where: str) -> str:
    if name not in GENERATORS:
        raise PluginError(f"{where}: no generator named {name!r} (known: {', '.join(sorted(GENERATORS))}).")
    return GENERATORS[name]()


# --- checks of the examples ------------------------------------------------------------------------------------


def _logical_lines(body: str) -> list[str]:
    """A shell block's lines, with backslash continuations joined."""
    return body.replace("\\\n", " ").splitlines()


def _check_commands(line: str, where: str) -> None:
    """Each pgvector-pipeline command in the line must parse with the real parser."""
    for found in COMMAND.finditer(line.split(" # ")[0] if not line.lstrip().startswith("#") else ""):
        arguments = shlex.split(found[1])
        refusal = io.StringIO()
        try:
            with contextlib.redirect_stderr(refusal):
                _parser().parse_args(arguments)
        except SystemExit as stopped:
            if stopped.code:
                raise PluginError(
                    f"{where}: the command `pgvector-pipeline{found[1]}` is refused by the parser: "
                    f"{refusal.getvalue().strip().splitlines()[-1]}"
                ) from None


def _check_launchpad(job_name: str, body: str, where: str) -> None:
    """A Launchpad example must be valid run config of its job."""
    import dagster as dg

    job = _job(job_name, where)
    try:
        run_config = yaml.safe_load(body) or {}
    except yaml.YAMLError as error:
        raise PluginError(f"{where}: the Launchpad YAML of {job_name} does not parse: {error}") from None
    with _resources_resolvable():
        try:
            dg.validate_run_config(job, run_config)
        except dg.DagsterInvalidConfigError as error:
            raise PluginError(f"{where}: the Launchpad YAML of {job_name} is refused: {error}") from None


@contextlib.contextmanager
def _resources_resolvable() -> Iterator[None]:
    """Validation also resolves the resources' environment variables: a placeholder DSN where none is set (the
    example's shape is what is checked, nothing connects)."""
    from pgvector_pipeline.contract import DEFAULT_DSN_ENV

    missing = DEFAULT_DSN_ENV not in os.environ
    if missing:
        os.environ[DEFAULT_DSN_ENV] = "dbname=documentation_example"
    try:
        yield
    finally:
        if missing:
            del os.environ[DEFAULT_DSN_ENV]


# --- the code, loaded once per build ----------------------------------------------------------------------------


_loaded: dict[str, Any] = {}


def _definitions() -> Any:
    """The code location's definitions."""
    if "defs" not in _loaded:
        with _quiet():
            from pgvector_pipeline.definitions import defs

        _loaded["defs"] = defs
    return _loaded["defs"]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Dagster's beta warnings while definitions load and resolve are not the documentation's business."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _jobs() -> list[Any]:
    if "jobs" not in _loaded:
        with _quiet():
            _loaded["jobs"] = list(_definitions().resolve_all_job_defs())
    return _loaded["jobs"]


def _job(name: str, where: str) -> Any:
    jobs = {job.name: job for job in _jobs()}
    if name not in jobs:
        raise PluginError(f"{where}: no job named {name!r} (jobs: {', '.join(sorted(jobs))}).")
    return jobs[name]


def _parser() -> argparse.ArgumentParser:
    """The command line as cli.build_parser() makes it, built without the webserver variables of this shell, so the
    defaults shown are the code's."""
    if "parser" not in _loaded:
        from pgvector_pipeline.entry_points import cli

        saved = {name: os.environ.pop(name) for name in (cli.HOST_ENV, cli.PORT_ENV) if name in os.environ}
        try:
            _loaded["parser"] = cli.build_parser()
        finally:
            os.environ.update(saved)
    return _loaded["parser"]


# --- markdown helpers -------------------------------------------------------------------------------------------


def _text(text: str) -> str:
    """Text from the code (help, docstrings) as markdown: one line, markdown's special characters escaped outside
    `code spans`, which stay code."""
    text = " ".join(inspect.cleandoc(text).split())
    parts = text.split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: no code spans
        parts = [text.replace("`", "'")]
    return "`".join(
        part.replace("|", "\\|") if i % 2 else re.sub(r"([\\*_\[\]<>|])", r"\\\1", part) for i, part in enumerate(parts)
    )


def _code(text: str) -> str:
    return f"`{text}`"


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# --- the command line -------------------------------------------------------------------------------------------


def _usage(parser: argparse.ArgumentParser) -> str:
    formatter = argparse.HelpFormatter(parser.prog, width=100)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return formatter.format_help().strip()


def _argument(action: argparse.Action) -> str:
    if action.nargs == 0:
        return ""
    choices = "{" + ",".join(map(str, action.choices)) + "}" if action.choices else ""
    metavar = action.metavar or (choices if 0 < len(choices) <= 40 else "{…}" if choices else action.dest.upper())
    name = metavar if isinstance(metavar, str) else " ".join(metavar)
    many = f"{name} [{name} …]" if action.nargs == "+" else name
    return _code(many)


def _meaning(action: argparse.Action, parser: argparse.ArgumentParser) -> str:
    help_text = action.help or ""
    if "%(" in help_text:
        help_text = help_text % dict(vars(action), prog=parser.prog)
    parts = [_text(help_text)] if help_text else []
    if action.choices:
        parts.append("One of: " + ", ".join(_code(str(choice)) for choice in action.choices) + ".")
    said = help_text.lower()
    if isinstance(action, argparse._AppendAction) and "repeat" not in said:
        parts.append("Repeat it for more.")
    if action.required and action.option_strings:
        parts.append("**Required.**")
    default = action.default
    if action.nargs != 0 and default not in (None, argparse.SUPPRESS, False, []) and "default" not in said:
        parts.append(f"Default: {_code(str(default))}.")
    return " ".join(parts)


def _options_table(parser: argparse.ArgumentParser, skip: set[tuple[str, ...]]) -> str:
    rows = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        if tuple(action.option_strings) in skip:
            continue
        name = ", ".join(_code(option) for option in action.option_strings) or _code(action.metavar or action.dest)
        rows.append((name, _argument(action), _meaning(action, parser)))
    return _table(("option", "argument", "meaning"), rows) if rows else "No options.\n"


def _commands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """Each subcommand: its name, its one-line help and its parser, in the parser's order."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            return [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return []


def cli_reference() -> str:
    parser = _parser()
    global_options = {tuple(a.option_strings) for a in parser._actions if a.option_strings}
    out = [
        "```text",
        _usage(parser),
        "```",
        "",
        "### Options before the command",
        "",
        _options_table(parser, {("-h", "--help")}),
    ]
    commands = _commands(parser)
    repeated = sorted(
        {
            option
            for _, _, sub in commands
            for a in sub._actions
            if tuple(a.option_strings) in global_options and a.option_strings != ["-h", "--help"]
            for option in a.option_strings[:1]
        }
    )
    if repeated:
        out.append(
            "These may also be given after the command (`pgvector-pipeline list --direct`): "
            + ", ".join(_code(option) for option in repeated)
            + ".\n"
        )
    for name, summary, sub in commands:
        out += [
            f"### {name}",
            "",
            _text(summary),
            "",
            "```text",
            _usage(sub),
            "```",
            "",
            _options_table(sub, global_options),
        ]
    return "\n".join(out)


def cli_commands() -> str:
    """The commands in one table (name and what it does), for overviews."""
    rows = [(f"[{_code(name)}](#{name})", _text(summary)) for name, summary, _ in _commands(_parser())]
    return _table(("command", "what it does"), rows)


def exit_codes() -> str:
    from pgvector_pipeline.entry_points.cli import EXIT_CODES

    return _table(
        ("exit code", "meaning"), [(_code(str(code)), _text(meaning)) for code, meaning in EXIT_CODES.items()]
    )


# --- restore switches -------------------------------------------------------------------------------------------


def restore_switches() -> str:
    from pgvector_pipeline.contract import RESTORE_FLAG_HELP

    rows = [(_code(name), _code(flag), _text(help_text)) for name, (flag, help_text) in RESTORE_FLAG_HELP.items()]
    return _table(("run config (`vector_restore_job`)", "command line", "what it does"), rows)


def migration_settings() -> str:
    from pgvector_pipeline.contract import MIGRATION_HELP, MIGRATION_TARGETS

    rows = [(_code(name), _code(flag), _text(help_text)) for name, (flag, help_text) in MIGRATION_HELP.items()]
    targets = ", ".join(_code(target) for target in MIGRATION_TARGETS if target)
    return _table(("run config (`vector_restore_job`)", "command line", "what it does"), rows) + (
        f"\n`migrate_to` takes {targets} (empty: the set's own layout).\n"
    )


# --- errors -----------------------------------------------------------------------------------------------------


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def error_types() -> str:
    """Each ErrorType with the docstring of the error class that defines it; a type without one fails the build."""
    from pgvector_pipeline.errors import ErrorType, PipelineError

    defining = {
        cls.__dict__["error_type"]: cls
        for cls in [PipelineError, *_subclasses(PipelineError)]
        if "error_type" in cls.__dict__
    }
    rows = []
    for error_type in ErrorType:
        cls = defining.get(error_type)
        if cls is None or not cls.__doc__:
            raise PluginError(
                f"ErrorType.{error_type.name} has no error class with a docstring in pgvector_pipeline/errors.py: "
                f"the docstring is what the error reference says it means."
            )
        rows.append((_code(error_type.value), _code(cls.__name__), _text(cls.__doc__)))
    return _table(("`error_type`", "raised as", "meaning"), rows)


# --- run config and resources -----------------------------------------------------------------------------------


def _type_name(annotation: Any) -> str:
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (UnionType, typing.Union):
        named = [_type_name(a) for a in arguments if a is not NoneType]
        return " or ".join(named) + (" or empty" if NoneType in arguments else "")
    if origin is list:
        return f"list of {_type_name(arguments[0])}"
    if origin is dict:
        return f"map of {_type_name(arguments[0])} to {_type_name(arguments[1])}"
    return getattr(annotation, "__name__", str(annotation))


def _default(value: Any) -> str:
    """A default as it is written in YAML run config."""
    if value is None:
        return "empty"
    if value == "":
        return '`""`'
    return _code(json.dumps(value) if not isinstance(value, str) else value)


def _fields_table(model: Any) -> str:
    from pydantic_core import PydanticUndefined

    rows = []
    for name, field in model.model_fields.items():
        if field.default is PydanticUndefined and field.default_factory is None:
            default = "**required**"
        else:
            default = _default(field.get_default(call_default_factory=True))
        rows.append((_code(name), _text(_type_name(field.annotation)), default, _text(field.description or "")))
    return _table(("setting", "type", "default", "meaning"), rows)


def _nested_models(model: Any) -> list[Any]:
    import dagster as dg

    nested = []
    for field in model.model_fields.values():
        for argument in (field.annotation, *typing.get_args(field.annotation)):
            if isinstance(argument, type) and issubclass(argument, dg.Config) and argument not in nested:
                nested.append(argument)
    return nested


def _op_config(op_definition: Any) -> Any:
    """The Config class an op's function takes, if any."""
    import dagster as dg

    function = op_definition.compute_fn.decorated_fn
    for annotation in typing.get_type_hints(function).values():
        if isinstance(annotation, type) and issubclass(annotation, dg.Config):
            return annotation
    return None


def run_config() -> str:
    out = []
    for job in sorted(_jobs(), key=lambda job: job.name):
        if job.name.startswith("__"):  # Dagster's own implicit asset job
            continue
        configs = [(node.name, _op_config(node.definition)) for node in job.graph.nodes]
        configs = [(op, config) for op, config in configs if config is not None]
        out += [f"### {job.name}", "", _text(job.description or ""), ""] if job.description else [f"### {job.name}", ""]
        if not configs:
            out.append("No run config.\n")
        for op, config in configs:
            out += [f"`ops: {op}: config:` ({_text(config.__doc__ or '')})", "", _fields_table(config)]
            for nested in _nested_models(config):
                out += [f"Each entry of a list of `{nested.__name__}`: {_text(nested.__doc__ or '')}", ""]
                out.append(_fields_table(nested))
    return "\n".join(out)


def resources() -> str:
    """Each resource of the code location: its class's settings (once per class), and what the code location sets."""
    out, documented = [], {}
    for key, resource in _definitions().resources.items():
        model = type(resource)
        out += [f"### {key}", ""]
        if model in documented:
            out += [f"`{model.__name__}`, with the settings of [`{documented[model]}`](#{documented[model]}).", ""]
        else:
            documented[model] = key
            out += [f"`{model.__name__}`: {_text(model.__doc__ or '')}", ""]
            out.append(
                _fields_table(model)
                if model.model_fields
                else "No settings: it is set up from the [environment](#environment-variables).\n"
            )
        out += _set_by_the_code_location(resource)
    return "\n".join(out)


def _set_by_the_code_location(resource: Any) -> list[str]:
    """The settings the code location's definitions give this resource (other than the defaults)."""
    import dagster as dg

    given = []
    for name, field in type(resource).model_fields.items():
        value = getattr(resource, name)
        if isinstance(value, dg.EnvVar):
            given.append(f"{_code(name)} from the environment variable {_code(value.env_var_name)}")
        elif value != field.default:
            given.append(f"{_code(name)}: {_default(value)}")
    return [f"Set by the code location: {'; '.join(given)}.", ""] if given else []


# --- manifest formats -------------------------------------------------------------------------------------------


def _manifest_formats() -> tuple[list[str], str]:
    from pgvector_pipeline.store.manifest import MANIFEST_FORMAT, ManifestFormat

    return list(typing.get_args(ManifestFormat)), MANIFEST_FORMAT


def manifest_formats() -> str:
    from pgvector_pipeline.store.manifest import MANIFEST_FORMAT_ENCRYPTED

    read, written = _manifest_formats()
    return (
        f"This version reads {', '.join(_code(f) for f in read)} and writes {_code(written)} "
        f"({_code(MANIFEST_FORMAT_ENCRYPTED)} for encrypted sets).\n"
    )


def _every_format_described(markdown: str, where: str) -> None:
    """The page's table describes every format the code reads (a new format fails the build until it is)."""
    missing = [f for f in _manifest_formats()[0] if f"| `{f}` |" not in markdown]
    if missing:
        raise PluginError(f"{where}: no table row describes the manifest format(s) {', '.join(missing)}.")


PAGE_CHECKS: dict[str, Callable[[str, str], None]] = {"manifest-formats": _every_format_described}

GENERATORS: dict[str, Callable[[], str]] = {
    "manifest-formats": manifest_formats,
    "cli": cli_reference,
    "cli-commands": cli_commands,
    "exit-codes": exit_codes,
    "restore-switches": restore_switches,
    "migration-settings": migration_settings,
    "error-types": error_types,
    "run-config": run_config,
    "resources": resources,
}
