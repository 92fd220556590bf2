"""Run config and resource config, checked where Dagster makes them typed records: text holding a NUL (see
untrusted_text) fails the run there, as INVALID_PARAMS, before an op or resource does anything with it."""

import functools
from collections.abc import Iterable
from typing import Any, ClassVar

import dagster as dg
from pydantic import Field, create_model, model_validator
from pydantic.fields import FieldInfo

from pgvector_pipeline.errors import InvalidParams
from pgvector_pipeline.failures import as_failure, refusal_at_start
from pgvector_pipeline.request_fields import Declared, as_config_value, build, config_type, in_config
from pgvector_pipeline.untrusted_text import nul_problem


class RunConfig(dg.Config):
    """The base of every op's config class. Dagster builds it from the run's config as the op starts; a NUL anywhere
    in it fails the step with the Failure any refused input gives (error_type INVALID_PARAMS, no retry). Configs nested
    in one (a table of `tables`) need not derive from it: the op's config checks them, naming their place."""

    @model_validator(mode="after")
    def _no_nul(self) -> "RunConfig":
        problem = nul_problem(self.model_dump(), "The run config")
        if problem:
            raise as_failure(InvalidParams(problem))
        return self


def refuse_nul_at_start(context: dg.InitResourceContext, resource: str) -> None:
    """A resource's setup_for_execution: refuse the run at start when the resource's config holds a NUL."""
    problem = nul_problem(context.resource_config, f"The {resource} resource's config")
    if problem:
        raise refusal_at_start(InvalidParams(problem))


class RequestConfig(RunConfig):
    """The config class of an op doing a request of run_requests, built from the request's declaration by
    request_config: the same keys, types, defaults and descriptions; `request()` makes the request."""

    request_type: ClassVar[type]

    def request(self) -> Any:
        """The request this config asks for (the request's own checks run here, inside the op)."""
        return build(self.request_type, self.model_dump())


def request_config(request_type: type, leave_out: tuple[str, ...] = ()) -> type[RequestConfig]:
    """A config class with one field per field of `request_type` the run config has (parts flattened; a tuple of
    records a list of their config), but those in `leave_out` (set by the job itself), for an op to subclass."""
    fields = _fields(spelled for spelled in in_config(request_type) if spelled.name not in leave_out)
    config = create_model(f"{request_type.__name__}Fields", __base__=RequestConfig, **fields)
    config.request_type = request_type
    return config


@functools.cache
def record_config(record_type: type) -> type[dg.Config]:
    """The config class of one record of a field that is a tuple of them (e.g. one table of a backup's `tables`):
    nested in an op's config, which checks it (see RunConfig)."""
    fields = _fields(in_config(record_type))
    name = record_type.__name__.removesuffix("Request") + "Config"
    return create_model(name, __base__=dg.Config, __doc__=record_type.__doc__, **fields)


def _fields(spelled_fields: Iterable[Declared]) -> dict[str, Any]:
    return {spelled.name: (_config_type(spelled), _field(spelled)) for spelled in spelled_fields}


def _config_type(spelled: Declared) -> Any:
    record = spelled.record
    return list[record_config(record)] if record is not None else config_type(spelled)  # type: ignore[misc]


def _field(spelled: Declared) -> FieldInfo:
    description = spelled.spelling.help
    if spelled.required:
        return Field(description=description)  # type: ignore[no-any-return]
    return Field(default=as_config_value(spelled.default), description=description)  # type: ignore[no-any-return]
