"""The GraphQL documents the client (pgvector_pipeline.entry_points.client) sends to the Dagster webserver, kept apart from the
code that sends them (as dagster-graphql keeps its client_queries.py): the client's logic reads without them, and a
change of Dagster's schema is a change of this file."""

LAUNCH_RUN = """
mutation LaunchRun($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on RunConfigValidationInvalid { errors { message reason path } }
    ... on PipelineNotFoundError { message }
    ... on InvalidSubsetError { message }
    ... on RunConflict { message }
    ... on PresetNotFoundError { message }
    ... on ConflictingExecutionParamsError { message }
    ... on UnauthorizedError { message }
    ... on PythonError { message }
  }
}
"""

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

RUN_STATUS = """
query RunStatus($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { runId jobName status startTime endTime tags { key value } }
    ... on RunNotFoundError { message }
    ... on PythonError { message }
  }
}
"""

# The messages the run's op logged (its progress lines), after a cursor.
RUN_MESSAGES = """
query RunMessages($runId: ID!, $after: String) {
  logsForRun(runId: $runId, afterCursor: $after, limit: 500) {
    __typename
    ... on EventConnection {
      cursor
      events { __typename ... on LogMessageEvent { message level stepKey timestamp } }
    }
  }
}
"""

# Queries of a run's events taking $runId and $after are read page by page (see _run_events).
RUN_FAILURE = """
query RunFailure($runId: ID!, $after: String) {
  logsForRun(runId: $runId, afterCursor: $after, limit: 1000) {
    __typename
    ... on EventConnection {
      cursor
      hasMore
      events {
        __typename
        ... on ExecutionStepFailureEvent {
          stepKey
          error { message }
          failureMetadata {
            description
            metadataEntries {
              label
              ... on TextMetadataEntry { text }
              ... on BoolMetadataEntry { boolValue }
              ... on JsonMetadataEntry { jsonString }
            }
          }
        }
        ... on ResourceInitFailureEvent { message error { message } }
        ... on RunFailureEvent { message }
      }
    }
    ... on RunNotFoundError { message }
    ... on PythonError { message }
  }
}
"""

# What a run's op recorded as its result (contract.RESULT_METADATA).
RUN_RESULT = """
query RunResult($runId: ID!, $after: String) {
  logsForRun(runId: $runId, afterCursor: $after, limit: 1000) {
    __typename
    ... on EventConnection {
      cursor
      hasMore
      events {
        __typename
        ... on ExecutionStepOutputEvent { metadataEntries { label ... on JsonMetadataEntry { jsonString } } }
      }
    }
  }
}
"""

# The newest inventory: its table of sets, the store's root, and how many sets it lists of how many there are.
LIST_BACKUP_SETS = """
query BackupSets($assetKey: AssetKeyInput!) {
  assetOrError(assetKey: $assetKey) {
    __typename
    ... on Asset {
      assetMaterializations(limit: 1) {
        timestamp
        metadataEntries {
          label
          ... on TableMetadataEntry { table { records } }
          ... on PathMetadataEntry { path }
          ... on IntMetadataEntry { intValue }
        }
      }
    }
  }
}
"""

# A job's metadata (vector_copy_job's names the other store).
JOB_METADATA = """
query JobMetadata($selector: PipelineSelector!) {
  pipelineOrError(params: $selector) {
    __typename
    ... on Pipeline { metadataEntries { label ... on TextMetadataEntry { text } } }
    ... on PipelineNotFoundError { message }
    ... on PythonError { message }
  }
}
"""

START_SCHEDULE = """
mutation StartSchedule($selector: ScheduleSelector!) {
  startSchedule(scheduleSelector: $selector) {
    __typename
    ... on ScheduleStateResult { scheduleState { status } }
    ... on UnauthorizedError { message }
    ... on PythonError { message }
  }
}
"""

START_SENSOR = """
mutation StartSensor($selector: SensorSelector!) {
  startSensor(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { status } }
    ... on SensorNotFoundError { message }
    ... on UnauthorizedError { message }
    ... on PythonError { message }
  }
}
"""

# Every schedule and sensor of the code location, as the webserver knows them: its state (with the default status
# applied), the id stopping takes, the next tick (while it runs) and the last tick.
AUTOMATIONS = """
query Automations($repositorySelector: RepositorySelector!) {
  repositoryOrError(repositorySelector: $repositorySelector) {
    __typename
    ... on Repository {
      schedules {
        name
        cronSchedule
        executionTimezone
        pipelineName
        description
        scheduleState {
          id
          status
          nextTick { timestamp }
          ticks(limit: 1) { status timestamp skipReason error { message } }
        }
      }
      sensors {
        name
        minIntervalSeconds
        description
        targets { pipelineName }
        sensorState {
          id
          status
          nextTick { timestamp }
          ticks(limit: 1) { status timestamp skipReason error { message } }
        }
      }
    }
    ... on RepositoryNotFoundError { message }
    ... on PythonError { message }
  }
}
"""

STOP_SCHEDULE = """
mutation StopSchedule($id: String!) {
  stopRunningSchedule(id: $id) {
    __typename
    ... on ScheduleStateResult { scheduleState { status } }
    ... on UnauthorizedError { message }
    ... on PythonError { message }
  }
}
"""

STOP_SENSOR = """
mutation StopSensor($id: String!) {
  stopSensor(id: $id) {
    __typename
    ... on StopSensorMutationResult { instigationState { status } }
    ... on UnauthorizedError { message }
    ... on PythonError { message }
  }
}
"""
