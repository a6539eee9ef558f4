"""The Databricks streaming job as a Dagster resource: its runs (through the Databricks Jobs API)
and the hours it updated (from the hourly Delta table).

Runs are started with `jobs.run_now` and never waited on: the job may stream for hours, and the
sensor (`anomaly_pipeline.databricks.sensor`) checks on it at each tick instead. Every call to the
workspace is bounded (`retry_timeout_seconds`), so an unreachable workspace fails the tick in time
with `DatabricksUnreachable`, which says what to check.

Updated hours: each recomputed hour's row carries `updated_at` (set by the writer just before its
MERGE commits). Writers are sequential (the job has `max_concurrent_runs=1`), so the hours updated
by the commits after table version `v` are exactly the rows with `updated_at` later than the
timestamp of commit `v` in the table history. This needs no time travel and works the same for
tables written by Spark on Databricks and by the embedded engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import dagster as dg
import polars as pl
from dagster_databricks import DatabricksClientResource
from databricks.sdk import WorkspaceClient
from databricks.sdk.service.jobs import BaseRun, RunLifeCycleState, RunResultState
from pydantic import Field

from anomaly_pipeline.databricks.workspace import (
    HTTP_TIMEOUT_SECONDS,
    RETRY_TIMEOUT_SECONDS,
    bounded_client,
    reaching_databricks,
)
from anomaly_pipeline.resources.delta_store import DeltaStore
from anomaly_pipeline.tables import HOURLY_TWEET_METRICS

NOT_YET_EXISTING = -1
"""A table version meaning "before the table existed": every hour in it counts as updated."""

# RunInfo keeps the SDK's states as their string values
_ENDED = {
    state.value
    for state in (RunLifeCycleState.TERMINATED, RunLifeCycleState.INTERNAL_ERROR, RunLifeCycleState.SKIPPED)
}
_SUCCEEDED = {RunResultState.SUCCESS.value}


@dataclass(frozen=True)
class RunInfo:
    """What the sensor needs to know about one Databricks job run."""

    run_id: int
    life_cycle_state: str | None = None
    result_state: str | None = None
    state_message: str = ""
    run_page_url: str = ""

    @property
    def ended(self) -> bool:
        return self.life_cycle_state in _ENDED

    @property
    def succeeded(self) -> bool:
        return self.ended and self.result_state in _SUCCEEDED

    @property
    def state(self) -> str:
        return self.result_state or self.life_cycle_state or "UNKNOWN"

    @classmethod
    def from_run(cls, run: BaseRun) -> "RunInfo":
        state = run.state
        return cls(
            run_id=int(run.run_id),
            life_cycle_state=state.life_cycle_state.value if state and state.life_cycle_state else None,
            result_state=state.result_state.value if state and state.result_state else None,
            state_message=(state.state_message or "") if state else "",
            run_page_url=run.run_page_url or "",
        )


class DatabricksStreamingJob(dg.ConfigurableResource):
    """The deployed streaming job (`anomaly-pipeline databricks deploy-job` prints its id)."""

    databricks: DatabricksClientResource = Field(
        description="Workspace credentials, e.g. host=EnvVar('DATABRICKS_HOST'), token=EnvVar('DATABRICKS_TOKEN')"
    )
    job_id: int = Field(description="The job id (DATABRICKS_JOB_ID)")
    delta_store: DeltaStore = Field(description="The Delta tables the job writes (same root as the job's --delta-root)")
    consumer_group: str = Field(
        default="databricks",
        description="Event stream consumer group whose checkpoints track what the job has processed",
    )
    http_timeout_seconds: float = Field(
        default=HTTP_TIMEOUT_SECONDS, description="How long one request to the workspace may wait"
    )
    retry_timeout_seconds: int = Field(
        default=RETRY_TIMEOUT_SECONDS,
        description="No retry of a failed request starts after this (keeps a sensor tick under 60 s)",
    )

    def workspace_client(self) -> WorkspaceClient:
        config = self.databricks.get_client().workspace_client.config
        return bounded_client(config, self.retry_timeout_seconds, self.http_timeout_seconds)

    def active_run(self) -> RunInfo | None:
        """The job's queued/pending/running/terminating run, if any (the newest)."""
        with reaching_databricks(self.retry_timeout_seconds):
            runs = self.workspace_client().jobs.list_runs(job_id=self.job_id, active_only=True)
            run = next(iter(runs), None)
        return RunInfo.from_run(run) if run is not None else None

    def start_run(self, parameters: dict[str, str]) -> int:
        """Start a run with these job parameters (e.g. {"mode": "available-now"}); returns its run
        id at once, without waiting for the run."""
        with reaching_databricks(self.retry_timeout_seconds):
            waiter = self.workspace_client().jobs.run_now(job_id=self.job_id, job_parameters=parameters)
        return int(waiter.response.run_id)

    def run_state(self, run_id: int) -> RunInfo:
        with reaching_databricks(self.retry_timeout_seconds):
            return RunInfo.from_run(self.workspace_client().jobs.get_run(run_id=run_id))

    def updated_hours_since(self, version: int | None) -> tuple[list[datetime], int | None]:
        """Hours of `hourly_tweet_metrics` updated by the commits after table `version`, and the
        current version. `version=None` (never looked) reports nothing and returns the current
        version as a baseline; `NOT_YET_EXISTING` reports every hour."""
        current = self.delta_store.version(HOURLY_TWEET_METRICS)
        if current is None:
            return [], NOT_YET_EXISTING if version is None else version
        if version is None or current <= version:
            return [], current
        rows = self.delta_store.scan(HOURLY_TWEET_METRICS)
        if version != NOT_YET_EXISTING:
            rows = rows.filter(pl.col("updated_at") > self._commit_time(version))
        hours = rows.select("hour").unique().sort("hour").collect().get_column("hour").to_list()
        return hours, current

    def _commit_time(self, version: int) -> datetime:
        """When commit `version` was written; the epoch if the log no longer holds it (then every
        hour counts as updated: over-reporting is harmless, missing an update is not)."""
        table = self.delta_store.open_table(HOURLY_TWEET_METRICS)
        entry = next((h for h in table.history() if h.get("version") == version), None)
        millis = entry["timestamp"] if entry else 0
        return datetime.fromtimestamp(millis / 1000, tz=timezone.utc)
