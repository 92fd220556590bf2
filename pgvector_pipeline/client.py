"""Start backups from another program through the Dagster webserver's GraphQL API.

client = VectorBackupClient("127.0.0.1", 3000)
launched = client.launch_backup(task_id="task_20261123", truncate_after_backup=True)
client.wait_for_run(launched.run_id)
client.backup_set_of_run(launched.run_id)      # 'task_20261123|20261124_101500'
client.list_backup_sets(task_id="task_20261123", refresh=True)
"""

import json
import time
from dataclasses import dataclass

from dagster import DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError
from gql import Client, gql
from gql.transport.requests import RequestsHTTPTransport

from pgvector_pipeline.contract import (
    BACKUP_JOB,
    BACKUP_SET_TAG,
    INVENTORY_ASSET,
    INVENTORY_JOB,
    LOCATION_NAME,
    PARTITION_TAG,
    REPOSITORY_NAME,
    REQUEST_BACKUP_JOB,
    TASK_PARTITIONS,
    TIMESTAMP_PARTITIONS,
    backup_run_config,
    partition_key,
    request_run_config,
)
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY, task_key, validate_timestamp

ADD_DYNAMIC_PARTITION = """
mutation AddDynamicPartition($repositorySelector: RepositorySelector!, $partitionsDefName: String!, $partitionKey: String!) {
  addDynamicPartition(repositorySelector: $repositorySelector, partitionsDefName: $partitionsDefName, partitionKey: $partitionKey) {
    __typename
    ... on AddDynamicPartitionSuccess { partitionsDefName partitionKey }
    ... on DuplicateDynamicPartitionError { partitionName }
    ... on UnauthorizedError { message }
    ... on PythonError { message }
  }
}
"""

RUN_TAGS = """
query RunTags($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { tags { key value } }
    ... on RunNotFoundError { message }
    ... on PythonError { message }
  }
}
"""

LIST_BACKUP_SETS = """
query BackupSets($assetKey: AssetKeyInput!) {
  assetOrError(assetKey: $assetKey) {
    __typename
    ... on Asset {
      assetMaterializations(limit: 1) {
        timestamp
        metadataEntries { label ... on TableMetadataEntry { table { records } } }
      }
    }
  }
}
"""

_FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


@dataclass(frozen=True)
class LaunchedBackup:
    """A backup run launched over GraphQL."""

    run_id: str
    task: str
    # Known at launch only when the caller named the set; otherwise see backup_set_of_run.
    timestamp: str | None = None


class VectorBackupClient:
    """Launch backups and list backup sets through the Dagster webserver's GraphQL API, from any program.

    Needs only the webserver's host and port; it never loads the code location. Runs are launched by
    job name (see `pgvector_pipeline.contract`); errors come back as DagsterGraphQLClientError.
    """

    def __init__(self, hostname: str = "127.0.0.1", port: int = 3000, location_name: str = LOCATION_NAME):
        self.location_name = location_name
        self.dagster = DagsterGraphQLClient(hostname, port_number=port)
        self._graphql = Client(transport=RequestsHTTPTransport(url=f"http://{hostname}:{port}/graphql", timeout=60))

    def add_dynamic_partition(self, partitions_def_name: str, key: str) -> None:
        """Register a partition key; one that exists already is fine."""
        result = self._graphql.execute(
            gql(ADD_DYNAMIC_PARTITION),
            variable_values={
                "repositorySelector": {"repositoryLocationName": self.location_name, "repositoryName": REPOSITORY_NAME},
                "partitionsDefName": partitions_def_name,
                "partitionKey": key,
            },
        )["addDynamicPartition"]
        if result["__typename"] not in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"):
            raise DagsterGraphQLClientError(f"Adding partition {key!r} to {partitions_def_name} failed: {result}")

    def launch_backup(
        self,
        task_id: str | None = None,
        *,
        truncate_after_backup: bool = False,
        create_task_dir: bool = False,
        timestamp: str | None = None,
    ) -> LaunchedBackup:
        """Launch a backup; task_id None means global.

        Without `timestamp` it launches request_vector_backup_job, which claims a new set in the code
        location (so starts at the same moment get distinct sets). With one, it registers that set's
        partition and launches vector_backup_job for it; the run fails if another run has that set.
        """
        task = task_key(task_id)
        if timestamp is None:
            run_id = self.dagster.submit_job_execution(
                REQUEST_BACKUP_JOB,
                repository_location_name=self.location_name,
                repository_name=REPOSITORY_NAME,
                run_config=request_run_config(task, truncate_after_backup, create_task_dir),
            )
            return LaunchedBackup(run_id=run_id, task=task)
        key = partition_key(task, validate_timestamp(timestamp))
        self.add_dynamic_partition(TASK_PARTITIONS, task)
        self.add_dynamic_partition(TIMESTAMP_PARTITIONS, timestamp)
        run_id = self.dagster.submit_job_execution(
            BACKUP_JOB,
            repository_location_name=self.location_name,
            repository_name=REPOSITORY_NAME,
            run_config=backup_run_config(truncate_after_backup, create_task_dir),
            tags={PARTITION_TAG: key},
        )
        return LaunchedBackup(run_id=run_id, task=task, timestamp=timestamp)

    def backup_set_of_run(self, run_id: str) -> str | None:
        """The set ('task|timestamp') a backup run wrote or claimed; None before it claimed one."""
        run = self._graphql.execute(gql(RUN_TAGS), variable_values={"runId": run_id})["runOrError"]
        if run["__typename"] != "Run":
            raise DagsterGraphQLClientError(f"Run {run_id}: {run.get('message', run['__typename'])}")
        tags = {tag["key"]: tag["value"] for tag in run["tags"]}
        return tags.get(BACKUP_SET_TAG) or tags.get(PARTITION_TAG)

    def wait_for_run(self, run_id: str, timeout_s: float = 600, poll_s: float = 1.0) -> DagsterRunStatus:
        """Poll the run until it ends and return its status; TimeoutError after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.dagster.get_run_status(run_id)
            if status in _FINISHED:
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"Run {run_id} is still {status.value} after {timeout_s:.0f} s.")
            time.sleep(poll_s)

    def list_backup_sets(
        self, *, global_only: bool = False, task_id: str | None = None, refresh: bool = False
    ) -> list[dict]:
        """Sets from the latest vector_backup_inventory (newest first); `refresh` re-scans the root first."""
        if refresh:
            run_id = self.dagster.submit_job_execution(
                INVENTORY_JOB, repository_location_name=self.location_name, repository_name=REPOSITORY_NAME
            )
            if self.wait_for_run(run_id) != DagsterRunStatus.SUCCESS:
                raise DagsterGraphQLClientError(f"Refreshing the inventory failed (run {run_id}).")
        asset = self._graphql.execute(gql(LIST_BACKUP_SETS), variable_values={"assetKey": {"path": [INVENTORY_ASSET]}})[
            "assetOrError"
        ]
        if asset["__typename"] != "Asset" or not asset["assetMaterializations"]:
            return []
        entries = asset["assetMaterializations"][0]["metadataEntries"]
        records = next(e["table"]["records"] for e in entries if e["label"] == "sets")
        sets = [json.loads(record) for record in records]
        if global_only:
            sets = [s for s in sets if s["task_id"] == GLOBAL_TASK_KEY]
        if task_id:
            sets = [s for s in sets if s["task_id"] == task_key(task_id)]
        return sets
