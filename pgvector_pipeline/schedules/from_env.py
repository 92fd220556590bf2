"""Schedules whose cron and time zone come from the environment, read when the code location loads (a
schedule's cron is part of its definition); a bad value fails the load with the variable's name."""

import os
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg

# The time zone of every schedule of the code location.
TIMEZONE_ENV = "PGVECTOR_BACKUP_TIMEZONE"
DEFAULT_TIMEZONE = "UTC"


def _timezone() -> str:
    name = os.environ.get(TIMEZONE_ENV) or DEFAULT_TIMEZONE
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{TIMEZONE_ENV}={name!r:.60} is not an IANA time zone such as 'UTC' or 'Europe/Berlin'."
        ) from None
    return name


def schedule_from_env(cron_env: str, default_cron: str, **schedule_args: Any) -> dg.ScheduleDefinition:
    """A schedule on the cron in `cron_env` (else `default_cron`), in the time zone of TIMEZONE_ENV."""
    cron = os.environ.get(cron_env) or default_cron
    try:
        return dg.ScheduleDefinition(cron_schedule=cron, execution_timezone=_timezone(), **schedule_args)
    except dg.DagsterInvalidDefinitionError as error:
        raise ValueError(f"{cron_env}: {error}") from None
