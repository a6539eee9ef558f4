"""The Databricks job that runs `streaming_job.py`, and its idempotent deployment.

One job, one `spark_python_task` on a job cluster, `max_concurrent_runs=1` (two queries on one
checkpoint would conflict). Every argument of the script is a job parameter, so a run can override
one (the Dagster sensor passes `mode=available-now`); the task's arguments reference them as
`{{job.parameters.<name>}}`.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path

from databricks.sdk import WorkspaceClient
from databricks.sdk.service import compute, jobs, workspace

DEFAULT_JOB_NAME = "anomaly-pipeline-stream"
DEFAULT_SCRIPT_PATH = "/Shared/anomaly-pipeline/streaming_job.py"
SCRIPT_FILE = Path(__file__).with_name("streaming_job.py")
PARAMETER_ARGS = {
    # job parameter -> script argument
    "mode": "--mode",
    "delta_root": "--delta-root",
    "checkpoint": "--checkpoint",
    "eventhub_namespace": "--eventhub-namespace",
    "eventhub_name": "--eventhub-name",
    "secret_scope": "--secret-scope",
    "secret_key": "--secret-key",
    "partitions_start": "--partitions-start",
}


@dataclass(frozen=True)
class JobConfig:
    """What varies between deployments (defaults from `from_env`). No secret is ever part of it:
    the job reads the Event Hubs connection string from `secret_scope`/`secret_key` at run time."""

    delta_root: str
    checkpoint: str
    eventhub_namespace: str
    eventhub_name: str = "tweets"
    secret_scope: str = "anomaly-pipeline"
    secret_key: str = "eventhub-connection-string"
    mode: str = "available-now"
    partitions_start: str = field(default_factory=lambda: os.environ.get("PARTITIONS_START") or "2025-01-01")
    job_name: str = DEFAULT_JOB_NAME
    script_path: str = DEFAULT_SCRIPT_PATH
    spark_version: str = "16.4.x-scala2.12"
    node_type_id: str = "Standard_D4ds_v5"
    num_workers: int = 1
    timeout_seconds: int = 0

    @classmethod
    def from_env(cls, **overrides) -> "JobConfig":
        """Defaults from `DATABRICKS_DELTA_ROOT`, `DATABRICKS_CHECKPOINT`, `EVENTHUB_NAMESPACE`,
        `EVENTHUB_NAME`, `EVENTHUB_SECRET_SCOPE`, `EVENTHUB_SECRET_KEY`; `overrides` win when not None."""
        env = {
            "delta_root": os.environ.get("DATABRICKS_DELTA_ROOT", "abfss://lake@ACCOUNT.dfs.core.windows.net/anomaly"),
            "checkpoint": os.environ.get("DATABRICKS_CHECKPOINT", "abfss://lake@ACCOUNT.dfs.core.windows.net/anomaly/_checkpoints/stream"),
            "eventhub_namespace": os.environ.get("EVENTHUB_NAMESPACE", "NAMESPACE"),
            "eventhub_name": os.environ.get("EVENTHUB_NAME", cls.eventhub_name),
            "secret_scope": os.environ.get("EVENTHUB_SECRET_SCOPE", cls.secret_scope),
            "secret_key": os.environ.get("EVENTHUB_SECRET_KEY", cls.secret_key),
        }
        env.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**env)


def build_job_settings(config: JobConfig) -> jobs.JobSettings:
    """The job definition for `config`."""
    defaults = {name: getattr(config, name) for name in PARAMETER_ARGS}
    arguments: list[str] = []
    for name, flag in PARAMETER_ARGS.items():
        arguments += [flag, f"{{{{job.parameters.{name}}}}}"]
    return jobs.JobSettings(
        name=config.job_name,
        description="anomaly-pipeline: Event Hubs -> hourly tweet metrics (Delta), started by Dagster.",
        max_concurrent_runs=1,
        timeout_seconds=config.timeout_seconds,
        tags={"project": "anomaly-pipeline"},
        parameters=[jobs.JobParameterDefinition(name=k, default=str(v)) for k, v in defaults.items()],
        job_clusters=[
            jobs.JobCluster(
                job_cluster_key="stream",
                new_cluster=compute.ClusterSpec(
                    spark_version=config.spark_version,
                    node_type_id=config.node_type_id,
                    num_workers=config.num_workers,
                    spark_conf={"spark.sql.session.timeZone": "UTC"},
                    data_security_mode=compute.DataSecurityMode.SINGLE_USER,
                ),
            )
        ],
        tasks=[
            jobs.Task(
                task_key="stream",
                job_cluster_key="stream",
                spark_python_task=jobs.SparkPythonTask(
                    python_file=config.script_path,
                    parameters=arguments,
                    source=jobs.Source.WORKSPACE,
                ),
                max_retries=0,
            )
        ],
    )


def upload_script(client: WorkspaceClient, script_path: str) -> None:
    """Upload the packaged `streaming_job.py` to the workspace file `script_path` (overwriting)."""
    client.workspace.mkdirs(script_path.rsplit("/", 1)[0])
    client.workspace.upload(
        script_path, SCRIPT_FILE.read_bytes(), format=workspace.ImportFormat.AUTO, overwrite=True
    )


def deploy_job(client: WorkspaceClient, spec: jobs.JobSettings) -> int:
    """Create the job named `spec.name`, or reset the existing one to `spec`; returns its job id.

    Fails if several jobs already carry that name (resetting one of them would be a guess).
    """
    existing = [job for job in client.jobs.list(name=spec.name) if job.settings and job.settings.name == spec.name]
    if len(existing) > 1:
        ids = ", ".join(str(job.job_id) for job in existing)
        raise RuntimeError(f"several Databricks jobs are named {spec.name!r} ({ids}); delete all but one")
    if existing:
        job_id = int(existing[0].job_id)
        client.jobs.reset(job_id=job_id, new_settings=spec)
        return job_id
    accepted = inspect.signature(jobs.JobsAPI.create).parameters
    fields = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}
    created = client.jobs.create(**{k: v for k, v in fields.items() if v is not None and k in accepted})
    return int(created.job_id)
