"""Errors the pipeline raises, classified the way the Dagster layer reports them.

Kept free of Dagster so the Postgres and store layers can raise them; `failures.py` turns them into a
`dagster.Failure` with `error_type` and `can_retry` metadata. The docstring of the class that defines each
`error_type` is what that type means: the documentation's error reference is generated from it.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum


class ErrorType(StrEnum):
    """The `error_type` a failure carries in its Dagster metadata."""

    INVALID_PARAMS = "INVALID_PARAMS"
    RESOURCE_NOT_FOUND = "RESOURCE_NOT_FOUND"
    DATABASE_ERROR = "DATABASE_ERROR"
    DATA_ERROR = "DATA_ERROR"
    # The backup root could not be written: disk full, permissions, I/O errors.
    STORAGE_ERROR = "STORAGE_ERROR"
    # The connection dropped while COMMIT was in flight and the outcome could not be learnt afterwards.
    COMMIT_OUTCOME_UNKNOWN = "COMMIT_OUTCOME_UNKNOWN"


class Form(StrEnum):
    """How a message says a request field (see Field)."""

    NAME = "name"  # the field itself: "create_missing" / "--create-missing"
    OPTION = "option"  # the field with the value it takes: "rename" / "--rename OLD=NEW"
    SETTING = "setting"  # the field set to a value: "create_missing: true" / "--create-missing"
    ADVICE = "advice"  # the same, with the verb that asks for it: "set create_missing: true" / "pass --create-missing"


@dataclass(frozen=True)
class Field:
    """A request field a message points to (`truncate_before_restore`, `collections`, ...): the entry point that shows
    the message spells it (see Spelling), as a run-config key in Dagster and Python, as a flag in a shell."""

    name: str
    form: Form = Form.NAME
    value: str = "true"  # what SETTING and ADVICE set it to


def named(name: str) -> Field:
    return Field(name)


def option(name: str) -> Field:
    return Field(name, Form.OPTION)


def setting(name: str, value: str = "true") -> Field:
    return Field(name, Form.SETTING, value)


def advice(name: str, value: str = "true") -> Field:
    return Field(name, Form.ADVICE, value)


# A message as parts: text, and the fields it points to.
Part = str | Field
# How an entry point names a field in its messages.
Spelling = Callable[[Field], str]


def config_key(field: Field) -> str:
    """A field as the run config (and a Python caller's arguments) name it: the spelling of `PipelineError.message`,
    the Dagster UI's."""
    if field.form in (Form.NAME, Form.OPTION):
        return field.name
    return f"{'set ' if field.form == Form.ADVICE else ''}{field.name}: {field.value}"


def said(parts: Sequence[Part], spelling: Spelling = config_key) -> str:
    """The text of a message's parts, each field spelled by `spelling`; advice that begins a sentence is capitalised
    ("Set ..." / "Pass ...")."""
    text = ""
    for part in parts:
        if isinstance(part, Field):
            word = spelling(part)
            if part.form == Form.ADVICE and (not text or text.endswith(". ")):
                word = word[:1].upper() + word[1:]
            text += word
        else:
            text += part
    return text


def parts_to_json(parts: Sequence[Part]) -> list[str | dict[str, str]]:
    """Parts as JSON (a failure's metadata carries them to the client): text as strings, fields as objects."""
    return [
        part if isinstance(part, str) else {"field": part.name, "form": part.form.value, "value": part.value}
        for part in parts
    ]


def parts_from_json(data: object) -> tuple[Part, ...] | None:
    """The parts parts_to_json wrote; None for anything else (an answer this client cannot read)."""
    if not isinstance(data, list):
        return None
    parts: list[Part] = []
    for item in data:
        if isinstance(item, str):
            parts.append(item)
        elif (
            isinstance(item, dict)
            and all(isinstance(item.get(key), str) for key in ("field", "form", "value"))
            and item["form"] in set(Form)
        ):
            parts.append(Field(item["field"], Form(item["form"]), item["value"]))
        else:
            return None
    return tuple(parts)


class PipelineError(Exception):
    """A failure with a plain-language message that says what went wrong and how to fix it.

    The message is given as parts: text, and the request fields it points to (Field), which each entry point spells
    its own way (`render`): `message` is the run config's spelling, the Dagster UI's and a Python caller's; the command
    line renders its flags."""

    error_type: ErrorType = ErrorType.DATA_ERROR

    def __init__(self, *parts: Part, can_retry: bool = False):
        self.parts = parts
        self.message = said(parts)
        super().__init__(self.message)
        self.can_retry = can_retry

    @property
    def fields(self) -> tuple[str, ...]:
        """The request fields the message points to."""
        return tuple(dict.fromkeys(part.name for part in self.parts if isinstance(part, Field)))

    def render(self, spelling: Spelling) -> str:
        """The message with its fields spelled by `spelling`."""
        return said(self.parts, spelling)


def with_outcome(error: PipelineError, *outcome: Part) -> PipelineError:
    """The same error (type, retryability) with what it left behind said after its message."""
    parts = list(error.parts)
    if parts and isinstance(parts[-1], str):
        parts[-1] = parts[-1].rstrip(".")
    return type(error)(*parts, ". ", *outcome, can_retry=error.can_retry)


class InvalidParams(PipelineError):
    """Bad input: a task id, timestamp, partition key, path, table list or DSN; fix the input."""

    error_type = ErrorType.INVALID_PARAMS


class ResourceNotFound(PipelineError):
    """Something named does not exist: a task directory, set, table, extension, database or role."""

    error_type = ErrorType.RESOURCE_NOT_FOUND


class DatabaseError(PipelineError):
    """PostgreSQL refused or failed, classified by SQLSTATE: retryable (`can_retry`) for lost connections, server
    restarts, deadlocks and serialization failures; never for lock or statement timeouts, missing privileges or a
    read-only server, which the message names as such."""

    error_type = ErrorType.DATABASE_ERROR


class DataError(PipelineError):
    """A set is damaged, changed or unverifiable, or its rows do not fit the target."""

    error_type = ErrorType.DATA_ERROR


class FilesDamaged(DataError):
    """A set's stored file is not what its manifest records (other bytes, cut short, not decodable): the set itself is
    damaged, not only this read of it."""


class StorageError(PipelineError):
    """The backup root cannot be written or read: a full disk (the message says what is free and what the set
    needs), permissions, an S3 server that cannot be reached or answers 5xx after 3 attempts (within a minute when
    the endpoint stops answering; `can_retry`), a server that ignores conditional writes."""

    error_type = ErrorType.STORAGE_ERROR


class CommitOutcomeUnknown(PipelineError):
    """The connection dropped during COMMIT and no new session could learn the outcome: check before retrying.
    Never retried: running the work again could apply it twice (or truncate a restored table)."""

    error_type = ErrorType.COMMIT_OUTCOME_UNKNOWN
