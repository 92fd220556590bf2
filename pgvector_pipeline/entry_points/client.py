"""Back up, restore, truncate, list and follow runs from another program, through the Dagster webserver's
GraphQL API. Needs only the webserver's host and port: it never loads the code location.

client = VectorBackupClient("127.0.0.1", 3000)
run = client.launch_backup(task_id="task_20261123", truncate_after_backup=True)
client.wait_for_run(run.run_id).backup_set        # 'task_20261123|20261124_101500'
client.list_backup_sets(task_id="task_20261123")
flags = RestoreFlags(truncate_before_restore=True)     # pgvector_pipeline.contract
client.wait_for_run(client.launch_restore("task_20261123", "20261124_101500", flags=flags).run_id)
client.check()["problems"]                          # [] when the deployment works (see `pgvector-pipeline check`)
client.automations()                                # every schedule and sensor, with its state and ticks
client.start_automation("vector_restore_drill_schedule")

Every failure is a PipelineClientError with a plain message: Dagster's reasons when it refuses a launch
(config validation), the run's `error_type`, `can_retry` and message when a run fails, a TimeoutError
naming the run's state when waiting runs out (a run QUEUED for good means no dagster-daemon is running).
Arguments refused before anything is sent raise InvalidParams (pgvector_pipeline.errors): a task id or timestamp
that is not one, text holding a NUL, a copy when the code server has no other store, and a set (or a table or
collection of it) that the inventory does not list, with the nearest names it does list (operations.named_set). A
timestamp may be 'latest': it is checked against the inventory's newest complete set of the task and sent as
'latest', which the run resolves through the store when it starts (and logs, and tags as the run's backup_set).
"""

import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, tzinfo
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gql import Client, gql
from gql.transport.exceptions import TransportError
from gql.transport.requests import RequestsHTTPTransport
from requests.exceptions import RequestException

from pgvector_pipeline.automations import RUNNING, STOPPED, automations_check, automations_unknown
from pgvector_pipeline.contract import (
    BACKUP_JOB,
    BACKUP_SET_TAG,
    BYTES_TAG,
    CHECK_JOB,
    COPY_FROM_OTHER,
    COPY_JOB,
    COPY_TO_OTHER,
    DATABASE_JOBS,
    INVENTORY_ASSET,
    INVENTORY_JOB,
    LOCATION_NAME,
    MESSAGE_PARTS_METADATA,
    NO_MIGRATION,
    OTHER_STORE_METADATA,
    PARTITION_TAG,
    PLAIN_RESTORE,
    REPOSITORY_NAME,
    RESULT_METADATA,
    ROWS_TAG,
    SET_PARTITIONS,
    Migration,
    RestoreFlags,
    database_tags,
    job_config,
    partition_key,
    pgvector_resource_config,
    set_backup_config,
)
from pgvector_pipeline.entry_points.client_queries import (
    ADD_DYNAMIC_PARTITION,
    AUTOMATIONS,
    JOB_METADATA,
    LAUNCH_RUN,
    LIST_BACKUP_SETS,
    RUN_FAILURE,
    RUN_MESSAGES,
    RUN_RESULT,
    RUN_STATUS,
    START_SCHEDULE,
    START_SENSOR,
    STOP_SCHEDULE,
    STOP_SENSOR,
)
from pgvector_pipeline.errors import ErrorType, InvalidParams, Part, named, parts_from_json
from pgvector_pipeline.operations.named_set import check_listed_set, refuse_unknown_task
from pgvector_pipeline.request_fields import as_config
from pgvector_pipeline.run_requests import (
    OTHER_ROOT_ENV,
    BackupRequest,
    CopyRequest,
    DrillRequest,
    ListRequest,
    Request,
    RestoreRequest,
    RetentionRequest,
    TruncateRequest,
    backup_request,
    restore_request,
)
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY, task_key, validate_timestamp
from pgvector_pipeline.store.naming import LATEST, nearest_phrase, validate_set_timestamp
from pgvector_pipeline.untrusted_text import refuse_nul

FINISHED = ("SUCCESS", "FAILURE", "CANCELED")
# The error type at the head of a refusal's message (see failures.refusal_at_start).
_REFUSAL = re.compile(r"\b(?P<type>" + "|".join(t.value for t in ErrorType) + r"): ")
# The error_type of a PipelineClientError raised because the webserver did not answer.
UNREACHABLE = "WEBSERVER_UNREACHABLE"


def _parts(entry: Mapping[str, Any] | None) -> tuple[Part, ...]:
    """A failure's message as parts (MESSAGE_PARTS_METADATA), when it carries them readably; else ()."""
    try:
        return parts_from_json(json.loads((entry or {})["jsonString"])) or ()
    except (KeyError, TypeError, ValueError):
        return ()


def _json_object(entry: Mapping[str, Any] | None) -> dict[str, Any]:
    """A JSON metadata entry's object; {} for anything else."""
    try:
        value = json.loads((entry or {})["jsonString"])
    except (KeyError, TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


class PipelineClientError(Exception):
    """A launch Dagster refused, a run that failed, or a webserver that cannot be reached."""

    def __init__(
        self,
        message: str,
        *,
        error_type: str | None = None,
        can_retry: bool | None = None,
        run_id: str | None = None,
        reasons: list[str] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.error_type = error_type
        self.can_retry = can_retry
        self.run_id = run_id
        self.reasons = reasons or []


@dataclass(frozen=True)
class RunInfo:
    """A run as the webserver reports it; `error_*` are set once a run has failed."""

    run_id: str
    job_name: str
    status: str  # QUEUED, STARTING, STARTED, SUCCESS, FAILURE, CANCELED, ...
    tags: dict[str, str] = field(default_factory=dict)
    error_type: str | None = None
    can_retry: bool | None = None
    error_message: str | None = None
    # The error message as parts, where it points to request fields (errors.Field): a shell spells them as flags.
    error_parts: tuple[Part, ...] = ()
    started: float | None = None  # epoch seconds
    ended: float | None = None
    # What the run's op recorded as its result besides rows and bytes (RESULT_METADATA), once it succeeded: for a
    # verify, live_equal and each table's comparison.
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def backup_set(self) -> str | None:
        """The set ('task/timestamp') a backup run wrote or claimed; None before it claimed one."""
        return self.tags.get(BACKUP_SET_TAG) or self.tags.get(PARTITION_TAG)

    def _counted(self, tag: str) -> int | None:
        value = self.tags.get(tag, "")
        return int(value) if value.isascii() and value.isdigit() else None

    @property
    def duration_s(self) -> float | None:
        """From the run's start to its end (None until it has both)."""
        return round(self.ended - self.started, 3) if self.started and self.ended else None

    def as_dict(self) -> dict[str, Any]:
        """Plain data, for JSON output."""
        return {
            "run_id": self.run_id,
            "job_name": self.job_name,
            "status": self.status,
            "backup_set": self.backup_set,
            "rows": self._counted(ROWS_TAG),
            "bytes": self._counted(BYTES_TAG),
            "duration_s": self.duration_s,
            "error_type": self.error_type,
            "can_retry": self.can_retry,
            "error_message": self.error_message,
            **self.result,
        }


# The inventory's columns that hold lists, as JSON text in its metadata table (assets.inventory.LIST_COLUMNS).
_LIST_COLUMNS = ("table_names", "collection_names")


@dataclass(frozen=True)
class Inventory:
    """The newest materialization of the inventory: the sets it lists (set_record's records, newest first), the
    store's root, whether it lists every set (its table holds the newest 1,000), and when it was made."""

    sets: list[dict[str, Any]]
    root: str
    whole: bool
    refreshed_at: float  # epoch seconds

    def stale_hint(self) -> str:
        """What ends a refusal made from this listing: it may be older than the store."""
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.refreshed_at))
        return (
            f" (Checked against the sets as listed at {at}: a set made since without Dagster, by --direct, or copied "
            f"in by hand, is listed once the listing is refreshed: `pgvector-pipeline list --refresh`.)"
        )


def _record(text: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(text)
    for column in _LIST_COLUMNS:
        if isinstance(record.get(column), str):
            record[column] = json.loads(record[column])
    return record


@dataclass(frozen=True)
class Automation:
    """A schedule or sensor of the code location as the webserver reports it. Times are ISO 8601 with their UTC offset:
    a schedule's in its execution time zone (the one its cron is read in), a sensor's in this machine's."""

    name: str
    kind: str  # "schedule" or "sensor"
    status: str  # RUNNING or STOPPED (its default status until someone switched it)
    job: str | None  # what it launches (a sensor may launch none: the alert sensor posts)
    cron: str | None  # schedules
    timezone: str | None  # schedules: the time zone of the cron
    min_interval_s: int | None  # sensors: the time between two evaluations
    next_tick: str | None  # while it runs (a sensor's once it has ticked)
    last_tick_status: str | None  # SUCCESS, SKIPPED, FAILURE or STARTED; None before the first tick
    last_tick_at: str | None
    last_tick_message: str | None  # why the last tick skipped or failed
    description: str | None = field(default=None, repr=False)
    state_id: str = field(default="", repr=False)  # what stopping it takes

    def as_dict(self) -> dict[str, Any]:
        """Plain data, for JSON output (the state id is Dagster's business)."""
        data = asdict(self)
        del data["state_id"]
        return data

    @classmethod
    def from_graphql(cls, kind: str, node: Mapping[str, Any]) -> "Automation":
        """A `schedules` or `sensors` entry of the AUTOMATIONS query."""
        state = node["scheduleState" if kind == "schedule" else "sensorState"]
        zone = _zone(node.get("executionTimezone") or "UTC") if kind == "schedule" else None
        [last] = state.get("ticks") or [None]
        targets = [target["pipelineName"] for target in node.get("targets") or ()]
        return cls(
            name=node["name"],
            kind=kind,
            status=state["status"],
            job=node.get("pipelineName") or ", ".join(targets) or None,
            cron=node.get("cronSchedule"),
            timezone=(node.get("executionTimezone") or "UTC") if kind == "schedule" else None,
            min_interval_s=node.get("minIntervalSeconds"),
            next_tick=_iso((state.get("nextTick") or {}).get("timestamp"), zone),
            last_tick_status=last["status"] if last else None,
            last_tick_at=_iso(last["timestamp"], zone) if last else None,
            last_tick_message=((last.get("error") or {}).get("message") or last.get("skipReason")) if last else None,
            description=node.get("description"),
            state_id=state["id"],
        )


def _zone(name: str) -> tzinfo | None:
    """The time zone named, None (this machine's) when this machine does not know it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _iso(timestamp: float | None, zone: tzinfo | None) -> str | None:
    """Epoch seconds as ISO 8601 with the offset, in `zone` (None: this machine's)."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, zone).astimezone(zone).isoformat(timespec="seconds")


@dataclass(frozen=True)
class LaunchedRun:
    """A run launched over GraphQL."""

    run_id: str
    job_name: str
    # The task, and the timestamp when the caller named the set (else see RunInfo.backup_set).
    task: str | None = None
    timestamp: str | None = None

    @property
    def backup_set(self) -> str | None:
        """The set ('task/timestamp') the run was launched for, when the launch named it ('latest' is resolved by the
        run: see RunInfo.backup_set)."""
        named = self.task and self.timestamp and self.timestamp != LATEST
        return partition_key(self.task, self.timestamp) if named else None  # type: ignore[arg-type]


class VectorBackupClient:
    """Launch and follow backups, restores, truncates and retention, and list sets, over GraphQL."""

    def __init__(self, hostname: str = "127.0.0.1", port: int = 3000, location_name: str = LOCATION_NAME):
        self.location_name = location_name
        self.url = f"http://{hostname}:{port}/graphql"
        self._graphql = Client(transport=RequestsHTTPTransport(url=self.url, timeout=60))

    def _execute(self, document: str, variables: Mapping[str, Any]) -> dict[str, Any]:
        """The answer's data: JSON, shaped as `document` selects."""
        try:
            return self._graphql.execute(gql(document), variable_values=variables)
        except (TransportError, RequestException, OSError) as error:
            raise PipelineClientError(
                f"The Dagster webserver at {self.url} could not be reached ({error}). Is it running "
                f"(dagster dev, or dagster-webserver), and are host and port right?",
                error_type=UNREACHABLE,
                can_retry=True,
            ) from None

    @property
    def _repository(self) -> dict[str, str]:
        return {"repositoryLocationName": self.location_name, "repositoryName": REPOSITORY_NAME}

    def launch_job(
        self, job_name: str, run_config: Mapping[str, Any] | None = None, tags: dict[str, str] | None = None
    ) -> str:
        """Launch a job by name; the run id, or PipelineClientError with Dagster's reasons (InvalidParams, before
        anything is sent, for text holding a NUL: every launch of this client comes through here)."""
        refuse_nul({"job_name": job_name, "run_config": run_config, "tags": tags}, "The launch")
        params = {
            "selector": {**self._repository, "jobName": job_name},
            "runConfigData": run_config or {},
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]},
        }
        result = self._execute(LAUNCH_RUN, {"executionParams": params})["launchRun"]
        kind = result["__typename"]
        if kind == "LaunchRunSuccess":
            return cast(str, result["run"]["runId"])
        if kind == "RunConfigValidationInvalid":
            # Each message names its place in the config (root:ops:...) and what was expected there.
            reasons = [error["message"] for error in result["errors"]]
            raise PipelineClientError(
                f"Dagster refused the run config of {job_name}: " + "; ".join(reasons),
                error_type="INVALID_PARAMS",
                can_retry=False,
                reasons=reasons,
            )
        # A PythonError's message carries the code server's stack trace after its first paragraph: not for a shell.
        said = (result.get("message") or "").split("\n\n", 1)[0].strip()
        raise PipelineClientError(
            f"Dagster refused to launch {job_name} ({kind}): {said[:600]}".rstrip(": "),
            error_type="INVALID_PARAMS",
            can_retry=False,
        )

    def add_dynamic_partition(self, partitions_def_name: str, key: str) -> None:
        """Register a partition key; one that exists already is fine."""
        result = self._execute(
            ADD_DYNAMIC_PARTITION,
            {"repositorySelector": self._repository, "partitionsDefName": partitions_def_name, "partitionKey": key},
        )["addDynamicPartition"]
        if result["__typename"] not in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"):
            raise PipelineClientError(f"Adding partition {key!r} to {partitions_def_name} failed: {result}")

    def launch_backup(
        self,
        task_id: str | None = None,
        *,
        truncate_after_backup: bool = False,
        create_task_dir: bool = False,
        compression: str = "",
        compression_level: int | None = None,
        collections: Sequence[str] = (),
        tables: Mapping[str, str] | None = None,
        timestamp: str | None = None,
        dsn_env: str | None = None,
        db_schema: str | None = None,
        format: str = "",
    ) -> LaunchedRun:
        """Launch a backup; task_id None means global; compression "" and format "" (csv or binary) are the code
        location's defaults; collections empty backs up every collection; `tables` ({name: row filter or ''}) backs
        up those tables of the schema instead of LangChain's two.

        Without `timestamp` it launches request_vector_backup_job, which claims a new set in the code
        location (so starts at the same moment get distinct sets). With one (it must be about now), it
        registers that set's partition and launches vector_backup_job for it.
        """
        request = backup_request(
            task_id,
            truncate_after_backup,
            create_task_dir,
            compression,
            compression_level,
            collections,
            tables,
            set_format=format,
        )
        if timestamp is None:
            return self.launch_request(request, dsn_env=dsn_env, db_schema=db_schema)
        return self.launch_set_backup(request, timestamp, dsn_env=dsn_env, db_schema=db_schema)

    def launch_set_backup(
        self, request: BackupRequest, timestamp: str, *, dsn_env: str | None = None, db_schema: str | None = None
    ) -> LaunchedRun:
        """Launch vector_backup_job doing `request` into the set `timestamp` (about now) of its task, once that set's
        partition is registered."""
        task = task_key(request.task_id)
        key = partition_key(task, validate_timestamp(timestamp))
        run_config = {**set_backup_config(request), **pgvector_resource_config(dsn_env, db_schema)}
        refuse_nul(run_config, "The run config")  # before the partition is added
        self.add_dynamic_partition(SET_PARTITIONS, key)
        run_id = self.launch_job(BACKUP_JOB, run_config, {**database_tags(dsn_env), PARTITION_TAG: key})
        return LaunchedRun(run_id, BACKUP_JOB, task, timestamp)

    def launch_restore(
        self,
        task_id: str | None,
        timestamp: str,
        *,
        tables: list[str] | None = None,
        flags: RestoreFlags = PLAIN_RESTORE,
        collections: Sequence[str] = (),
        rename: Mapping[str, str] | None = None,
        migration: Migration = NO_MIGRATION,
        dsn_env: str | None = None,
        db_schema: str | None = None,
    ) -> LaunchedRun:
        """Launch vector_restore_job for the set `timestamp` (or 'latest') of `task_id` (None: the global directory),
        the `tables` named (default both) and the `collections` named (default all), loading as `flags` say, into a
        newer LangChain layout as `migration` says."""
        task = task_key(task_id)
        request = restore_request(
            task, timestamp, tables=tables, flags=flags, collections=collections, rename=rename, migration=migration
        )
        return self.launch_request(request, dsn_env=dsn_env, db_schema=db_schema)

    def launch_request(
        self, request: Request, *, dsn_env: str | None = None, db_schema: str | None = None
    ) -> LaunchedRun:
        """Launch the job that does `request` (a request of run_requests, with every option it declares), on the
        database named by `dsn_env` and `db_schema` (the jobs that use one; copy and retention do not). What it names
        is checked before anything is sent: a set, and its tables and collections, against the inventory (see
        check_named)."""
        refuse_nul(as_config(request), "The run config")  # before anything is checked or sent
        request, task, timestamp = self._named(request)
        job, run_config = job_config(request)
        tags: dict[str, str] = {}
        if job in DATABASE_JOBS:
            run_config = {**run_config, **pgvector_resource_config(dsn_env, db_schema)}
            tags = database_tags(dsn_env)
        elif dsn_env or db_schema:
            raise InvalidParams(f"{job} uses no database: it takes no dsn_env or db_schema.")
        return LaunchedRun(self.launch_job(job, run_config, tags), job, task, timestamp)

    def _named(self, request: Request) -> tuple[Request, str | None, str | None]:
        """`request` as it is sent, once what it names is checked (see launch_request), and the set's task and
        timestamp as far as the launch names them."""
        if isinstance(request, BackupRequest):
            task = task_key(request.task_id)
            return replace(request, task_id=task), task, None
        if isinstance(request, RestoreRequest):
            collections = tuple(dict.fromkeys([*request.collections, *request.rename]))
            task, timestamp = (
                (task_key(request.task_id), validate_set_timestamp(request.timestamp))
                if request.backup_path  # a set named by its path: the run finds it
                else self.check_named(request.task_id, request.timestamp, request.tables or None, collections)
            )
            return replace(request, task_id=task, timestamp=timestamp), task, timestamp
        if isinstance(request, DrillRequest):
            if request.timestamp:
                task, timestamp = self.check_named(request.task_id, request.timestamp)
            else:
                task, timestamp = self.check_task(request.task_id), ""
            return replace(request, task_id=task, timestamp=timestamp), task, timestamp or None
        if isinstance(request, CopyRequest):
            if request.other_root:
                raise InvalidParams(
                    named("other_root"),
                    " is for --direct (a copy in this process): through Dagster, the code server copies to or from "
                    f"its own other store (${OTHER_ROOT_ENV}).",
                )
            self.check_other_store()
            if request.direction == COPY_FROM_OTHER:
                task, timestamp = task_key(request.task_id), validate_set_timestamp(request.timestamp)
            else:
                task, timestamp = self.check_named(request.task_id, request.timestamp)
            return replace(request, task_id=task, timestamp=timestamp), task, timestamp
        return request, None, None

    def launch_truncate(
        self, tables: list[str] | None = None, *, dsn_env: str | None = None, db_schema: str | None = None
    ) -> LaunchedRun:
        """Launch vector_truncate_job: langchain_pg_embedding, or the tables named."""
        request = TruncateRequest(tables=tuple(tables)) if tables else TruncateRequest()
        return self.launch_request(request, dsn_env=dsn_env, db_schema=db_schema)

    def launch_copy(self, task_id: str | None, timestamp: str, direction: str = COPY_TO_OTHER) -> LaunchedRun:
        """Launch vector_copy_job: copy the set `timestamp` (or 'latest') of `task_id` (None: global) to the other
        store (direction 'to_other') or from it ('from_other'). InvalidParams before anything is sent when the code
        server has no other store, or (to the other store) when the inventory does not list the set. The inventory
        lists the backup store only: a copy from the other store is checked by its run."""
        request = CopyRequest(task_id=task_id or "", timestamp=timestamp, direction=direction)  # type: ignore[arg-type]
        return self.launch_request(request)

    def other_store(self) -> str | None:
        """The other store's root as the code server has it ($PGVECTOR_OTHER_BACKUP_ROOT when it loaded the code
        location): '' when it has none; None when its vector_copy_job does not say (an older version)."""
        selector = {**self._repository, "pipelineName": COPY_JOB}
        job = self._execute(JOB_METADATA, {"selector": selector})["pipelineOrError"]
        if job["__typename"] != "Pipeline":
            return None
        entries = {e["label"]: e for e in job["metadataEntries"]}
        entry = entries.get(OTHER_STORE_METADATA)
        return None if entry is None else entry.get("text", "")

    def check_other_store(self) -> None:
        """InvalidParams when the code server has no other store to copy to or from."""
        if self.other_store() == "":
            raise InvalidParams(
                "The code server has no other store to copy to or from: vector_copy_job copies between "
                "PGVECTOR_BACKUP_ROOT and PGVECTOR_OTHER_BACKUP_ROOT, which is not set for it. Set it where the code "
                "server starts (a directory or s3://bucket/prefix) and restart it, or copy in this process: "
                "pgvector-pipeline copy --direct --root SOURCE --other-root TARGET."
            )

    def launch_drill(
        self,
        task_id: str | None,
        timestamp: str = "",
        *,
        compare_live: bool = False,
        dsn_env: str | None = None,
        db_schema: str | None = None,
    ) -> LaunchedRun:
        """Launch vector_restore_drill_job: restore the set `timestamp` of `task_id` (None: global; empty timestamp:
        its newest complete set; or 'latest') into a scratch schema, compare it (with `compare_live`, the live tables
        of `db_schema` too), drop it. The set (with an empty timestamp, the task) is checked against the inventory
        first."""
        request = DrillRequest(task_id or "", timestamp, compare_live)
        return self.launch_request(request, dsn_env=dsn_env, db_schema=db_schema)

    def check_named(
        self,
        task_id: str | None,
        timestamp: str,
        tables: Sequence[str] | None = None,
        collections: Sequence[str] = (),
    ) -> tuple[str, str]:
        """The task and timestamp to send for the set a request names, once the inventory lists it holding `tables`
        (None: any) and `collections`; InvalidParams naming the nearest names it lists otherwise (ResourceNotFound
        for 'latest' without a complete set). 'latest' is sent as it is: the run resolves it. Not checked (only
        validated) when there is no inventory yet, or the set may be among those its table leaves out."""
        refuse_nul(
            {"task_id": task_id, "timestamp": timestamp, "tables": tables, "collections": collections}, "The launch"
        )
        task = task_key(task_id)
        inventory = self.inventory()
        if inventory is not None:
            listed = any(s["task_id"] == task and s["timestamp"] == timestamp for s in inventory.sets)
            if inventory.whole or listed:
                hint = inventory.stale_hint()
                check_listed_set(inventory.sets, inventory.root, task, timestamp, tables, collections, stale_hint=hint)
        return task, validate_set_timestamp(timestamp)

    def check_task(self, task_id: str | None) -> str:
        """The task key of `task_id`, once the inventory lists sets of it (see check_named)."""
        task = task_key(task_id)
        inventory = self.inventory()
        if task != GLOBAL_TASK_KEY and inventory is not None and inventory.whole:
            tasks = {s["task_id"] for s in inventory.sets}
            refuse_unknown_task(task, tasks, inventory.root, inventory.stale_hint())
        return task

    def launch_retention(
        self, keep_newest: int | None = None, max_age_days: float | None = None, *, dry_run: bool = True
    ) -> LaunchedRun:
        """Launch vector_retention_job (a dry run unless dry_run=False)."""
        return self.launch_request(RetentionRequest(keep_newest, max_age_days, dry_run))

    def run_status(self, run_id: str) -> RunInfo:
        """The run's status and tags, with its error once it has failed."""
        run = self._execute(RUN_STATUS, {"runId": run_id})["runOrError"]
        if run["__typename"] != "Run":
            raise PipelineClientError(
                f"Run {run_id}: {run.get('message', run['__typename'])}", error_type="INVALID_PARAMS", can_retry=False
            )
        info = RunInfo(
            run["runId"],
            run["jobName"],
            run["status"],
            {t["key"]: t["value"] for t in run["tags"]},
            started=run.get("startTime"),
            ended=run.get("endTime"),
        )
        if info.status == "FAILURE":
            return self._with_failure(info)
        return self._with_result(info) if info.status == "SUCCESS" else info

    def _run_events(self, run_id: str, document: str) -> list[dict[str, Any]]:
        """The events of the run that `document` (a logsForRun query with $runId and $after) selects, every page of
        them: a run that logged many progress lines has its failure or result far down."""
        events: list[dict[str, Any]] = []
        cursor = None
        while True:
            logs = self._execute(document, {"runId": run_id, "after": cursor})["logsForRun"]
            if logs["__typename"] != "EventConnection":
                return events
            events.extend(logs["events"])
            if not logs["hasMore"] or logs["cursor"] == cursor:
                return events
            cursor = logs["cursor"]

    def _with_result(self, info: RunInfo) -> RunInfo:
        """`info` with the result its op recorded (RESULT_METADATA), when it recorded one."""
        for event in self._run_events(info.run_id, RUN_RESULT):
            for entry in event.get("metadataEntries") or ():
                if entry["label"] == RESULT_METADATA and "jsonString" in entry:
                    return replace(info, result=json.loads(entry["jsonString"]))
        return info

    def _with_failure(self, info: RunInfo) -> RunInfo:
        events = self._run_events(info.run_id, RUN_FAILURE)
        for event in events:
            if event["__typename"] == "ExecutionStepFailureEvent":
                failure = event.get("failureMetadata") or {}
                entries = {e["label"]: e for e in failure.get("metadataEntries", [])}
                if "error_type" in entries:
                    return replace(
                        info,
                        error_type=entries["error_type"].get("text"),
                        can_retry=(entries.get("can_retry") or {}).get("boolValue"),
                        error_message=failure.get("description") or event["error"]["message"],
                        error_parts=_parts(entries.get(MESSAGE_PARTS_METADATA)),
                        # A failure may carry what the op found (a check's report: RESULT_METADATA).
                        result=_json_object(entries.get(RESULT_METADATA)),
                    )
        messages = [
            (event.get("error") or {}).get("message") or event.get("message")
            for event in events
            if event["__typename"] in ("ResourceInitFailureEvent", "RunFailureEvent", "ExecutionStepFailureEvent")
        ]
        message = " ".join(dict.fromkeys(filter(None, messages)))
        # A run refused at start (resource init) carries no metadata: its message begins "ERROR_TYPE: ...".
        refused = _REFUSAL.search(message)
        return replace(
            info,
            error_message=message,
            error_type=refused["type"] if refused else None,
            can_retry=False if refused else None,
        )

    def wait_for_run(
        self,
        run_id: str,
        timeout_s: float = 600,
        poll_s: float = 1.0,
        on_line: Callable[[str], None] | None = None,
    ) -> RunInfo:
        """Poll until the run ends and return it; TimeoutError (saying in which state) after `timeout_s`. With
        `on_line`, each progress line the run's op logs is passed to it as it arrives ("HH:MM:SS LEVEL message")."""
        deadline = time.monotonic() + timeout_s
        cursor: str | None = None
        while True:
            info = self.run_status(run_id)
            if on_line is not None:
                cursor = self._follow(run_id, cursor, on_line)
            if info.finished:
                return info
            if time.monotonic() > deadline:
                hint = (
                    " Runs wait in the queue until a dagster-daemon starts them (dagster dev runs one), and "
                    "one at a time per database."
                    if info.status == "QUEUED"
                    else ""
                )
                raise TimeoutError(f"Run {run_id} is still {info.status} after {timeout_s:g} s.{hint}")
            time.sleep(poll_s)

    def _follow(self, run_id: str, cursor: str | None, on_line: Callable[[str], None]) -> str | None:
        """Pass the op's log messages after `cursor` to `on_line`; the new cursor."""
        logs = self._execute(RUN_MESSAGES, {"runId": run_id, "after": cursor})["logsForRun"]
        if logs["__typename"] != "EventConnection":
            return cursor
        for event in logs["events"]:
            if event["__typename"] == "LogMessageEvent" and event.get("stepKey"):
                at = time.strftime("%H:%M:%S", time.localtime(int(event["timestamp"]) / 1000))
                on_line(f"{at} {event['level']} {event['message']}")
        return cast(str | None, logs["cursor"])

    def check_run(self, info: RunInfo) -> RunInfo:
        """`info` if the run succeeded; PipelineClientError with the run's error otherwise."""
        if info.status == "SUCCESS":
            return info
        raise PipelineClientError(
            f"Run {info.run_id} ({info.job_name}) ended {info.status}: {info.error_message or 'no error message'}",
            error_type=info.error_type,
            can_retry=info.can_retry,
            run_id=info.run_id,
        )

    def refresh_inventory(self, timeout_s: float = 300) -> None:
        """Re-scan the backup root now (vector_inventory_job) and wait for it."""
        self.check_run(self.wait_for_run(self.launch_job(INVENTORY_JOB), timeout_s))

    def list_backup_sets(
        self, *, global_only: bool = False, task_id: str | None = None, refresh: bool = False
    ) -> list[dict[str, Any]]:
        """Sets from the latest inventory (newest first). Runs that add or delete sets refresh it as they
        end; `refresh` re-scans the root first (sets copied in by hand)."""
        return self.list_sets(ListRequest(global_only, task_id or "", refresh))

    def list_sets(self, request: ListRequest) -> list[dict[str, Any]]:
        """The sets `request` asks for, from the latest inventory (see list_backup_sets)."""
        if request.refresh:
            self.refresh_inventory()
        inventory = self.inventory()
        sets = inventory.sets if inventory else []
        if request.global_only:
            sets = [s for s in sets if s["task_id"] == GLOBAL_TASK_KEY]
        if request.task_id:
            sets = [s for s in sets if s["task_id"] == task_key(request.task_id)]
        return sets

    def launch_check(self, *, dsn_env: str | None = None, db_schema: str | None = None) -> LaunchedRun:
        """Launch vector_check_job: the checks of `check` where the code server runs, on the database named by
        `dsn_env` (default PGVECTOR_DSN) and `db_schema`."""
        run_config = pgvector_resource_config(dsn_env, db_schema)
        return LaunchedRun(self.launch_job(CHECK_JOB, run_config, database_tags(dsn_env)), CHECK_JOB)

    def check_report(self, info: RunInfo) -> dict[str, Any] | None:
        """The report of a finished vector_check_job run, with the schedules' and sensors' state added from the
        webserver (the `automations` check, see pgvector_pipeline.automations): the shape `--direct check` prints, with
        the run's id. None when the run ended without a report (refused at start, canceled: see its error)."""
        if not info.finished or not isinstance(info.result.get("checks"), list):
            return None
        # In the order Check.as_dict gives its keys (Dagster's JSON metadata comes back with them sorted).
        checks = [{key: c.get(key) for key in ("name", "ok", "detail", "data")} for c in info.result["checks"]]
        recent = next((bool(c.get("ok")) for c in checks if c.get("name") == "recent_backup"), True)
        checks.append(self._automations_check(recent))
        problems = [c["name"] for c in checks if not c["ok"]]
        return {
            "run_id": info.run_id,
            "job_name": info.job_name,
            "status": "FAILURE" if problems else "SUCCESS",
            "duration_s": info.duration_s,
            "ok": not problems,
            "problems": problems,
            "checks": checks,
        }

    def _automations_check(self, recent_backup_holds: bool) -> dict[str, Any]:
        try:
            listed = self.automations()
        except PipelineClientError as error:
            return automations_unknown(f"(the webserver did not list them: {error.message})")
        return automations_check({a.name: a.status for a in listed}, recent_backup_holds)

    def check(
        self, *, dsn_env: str | None = None, db_schema: str | None = None, timeout_s: float = 600
    ) -> dict[str, Any]:
        """Check that the deployment works (vector_check_job, followed to its end) and return its report (see
        check_report): `problems` is empty when all hold. PipelineClientError when the run ended without one."""
        info = self.wait_for_run(self.launch_check(dsn_env=dsn_env, db_schema=db_schema).run_id, timeout_s)
        report = self.check_report(info)
        if report is None:
            self.check_run(info)  # raises, with the run's error
            raise PipelineClientError(f"Run {info.run_id} ({CHECK_JOB}) succeeded without a report.")
        return report

    def automations(self) -> list[Automation]:
        """Every schedule and sensor of the code location, as the webserver reports them: schedules first, each kind
        by name."""
        found = self._execute(AUTOMATIONS, {"repositorySelector": self._repository})["repositoryOrError"]
        if found["__typename"] != "Repository":
            raise PipelineClientError(
                f"The webserver did not list the schedules and sensors of code location {self.location_name}: "
                f"{found.get('message', found['__typename'])}",
                error_type=ErrorType.RESOURCE_NOT_FOUND,
                can_retry=False,
            )
        schedules = [Automation.from_graphql("schedule", node) for node in found["schedules"]]
        sensors = [Automation.from_graphql("sensor", node) for node in found["sensors"] or ()]
        return sorted(schedules, key=lambda a: a.name) + sorted(sensors, key=lambda a: a.name)

    def automation(self, name: str) -> Automation:
        """The schedule or sensor `name` of the code location; InvalidParams-typed PipelineClientError naming the
        nearest names when it has none of that name."""
        listed = self.automations()
        found = next((a for a in listed if a.name == name), None)
        if found is None:
            names = [a.name for a in listed]
            # A name cut short ('vector_restore_drill' for the schedule) is nearer than difflib's ratio says.
            holding = [n for n in names if len(name) >= 4 and name in n]
            raise PipelineClientError(
                f"{name!r:.80} is not a schedule or sensor of code location {self.location_name}"
                + (
                    f"; nearest: {', '.join(holding)}"
                    if holding
                    else nearest_phrase(name, names, "schedules and sensors")
                )
                + ". `pgvector-pipeline schedules` lists them.",
                error_type=ErrorType.INVALID_PARAMS,
                can_retry=False,
            )
        return found

    def inventory(self) -> Inventory | None:
        """The newest inventory of the backup store (None: it was never made)."""
        asset = self._execute(LIST_BACKUP_SETS, {"assetKey": {"path": [INVENTORY_ASSET]}})["assetOrError"]
        if asset["__typename"] != "Asset" or not asset["assetMaterializations"]:
            return None
        materialization = asset["assetMaterializations"][0]
        entries = {e["label"]: e for e in materialization["metadataEntries"]}
        sets = [_record(record) for record in entries["sets"]["table"]["records"]]
        total = (entries.get("dagster/row_count") or {}).get("intValue")
        return Inventory(
            sets,
            (entries.get("root") or {}).get("path") or "the backup store",
            whole=total is not None and total <= len(sets),
            refreshed_at=int(materialization["timestamp"]) / 1000,
        )

    def start_automation(self, name: str) -> str:
        """Switch a schedule or sensor of the code location on; its new status (one that runs already stays so)."""
        automation = self.automation(name)
        if automation.status == RUNNING:
            return RUNNING
        if automation.kind == "schedule":
            selector = {**self._repository, "scheduleName": name}
            result = self._execute(START_SCHEDULE, {"selector": selector})["startSchedule"]
            if result["__typename"] == "ScheduleStateResult":
                return cast(str, result["scheduleState"]["status"])
        else:
            selector = {**self._repository, "sensorName": name}
            result = self._execute(START_SENSOR, {"selector": selector})["startSensor"]
            if result["__typename"] == "Sensor":
                return cast(str, result["sensorState"]["status"])
        raise PipelineClientError(f"Starting {name} failed: {result.get('message', result['__typename'])}")

    def stop_automation(self, name: str) -> str:
        """Switch a schedule or sensor of the code location off; its new status (one that is off stays so)."""
        automation = self.automation(name)
        if automation.status == STOPPED:
            return STOPPED
        if automation.kind == "schedule":
            result = self._execute(STOP_SCHEDULE, {"id": automation.state_id})["stopRunningSchedule"]
            if result["__typename"] == "ScheduleStateResult":
                return cast(str, result["scheduleState"]["status"])
        else:
            result = self._execute(STOP_SENSOR, {"id": automation.state_id})["stopSensor"]
            if result["__typename"] == "StopSensorMutationResult":
                return cast(str, result["instigationState"]["status"])
        raise PipelineClientError(f"Stopping {name} failed: {result.get('message', result['__typename'])}")
