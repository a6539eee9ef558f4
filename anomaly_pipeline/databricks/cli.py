"""`anomaly-pipeline databricks deploy-job [--dry-run]`: upload the streaming script and create or
update the Databricks job (credentials: `DATABRICKS_HOST` + `DATABRICKS_TOKEN`, or any auth the
Databricks SDK resolves from the environment). An unreachable workspace ends the command within
`--timeout` seconds, with a message that says what to check."""

from __future__ import annotations

import argparse
import json
import sys

_OPTIONS = ("delta_root", "checkpoint", "eventhub_namespace", "eventhub_name", "secret_scope",
            "secret_key", "job_name", "script_path", "spark_version", "node_type_id")


def register(subparsers) -> None:
    group = subparsers.add_parser("databricks", help="the Databricks streaming variant")
    commands = group.add_subparsers(dest="databricks_command", required=True)
    deploy = commands.add_parser("deploy-job", help="upload streaming_job.py and create/update the job")
    deploy.add_argument("--dry-run", action="store_true", help="print the job JSON, touch nothing")
    for name in _OPTIONS:
        deploy.add_argument("--" + name.replace("_", "-"), dest=name, default=None)
    deploy.add_argument("--num-workers", type=int, default=None)
    deploy.add_argument("--timeout", type=int, default=None, metavar="SECONDS",
                        help="give up on an unreachable workspace after this (default 20)")
    deploy.set_defaults(func=run_deploy)


def run_deploy(args: argparse.Namespace) -> int:
    # the Databricks SDK is heavy: only this command pays for it, not `anomaly-pipeline --help`
    from anomaly_pipeline.databricks.job_spec import JobConfig, build_job_settings, deploy_job, upload_script

    overrides = {name: getattr(args, name) for name in (*_OPTIONS, "num_workers")}
    config = JobConfig.from_env(**overrides)
    settings = build_job_settings(config)
    if args.dry_run:
        print(json.dumps(settings.as_dict(), indent=2, sort_keys=True))
        return 0
    from anomaly_pipeline.databricks.workspace import (
        RETRY_TIMEOUT_SECONDS,
        DatabricksUnreachable,
        bounded_client,
        reaching_databricks,
    )

    timeout = args.timeout or RETRY_TIMEOUT_SECONDS
    print(f"Deploying {config.job_name!r} to the Databricks workspace at DATABRICKS_HOST...", file=sys.stderr)
    try:
        with reaching_databricks(timeout):
            client = bounded_client(retry_timeout_seconds=timeout)
            upload_script(client, config.script_path)
            job_id = deploy_job(client, settings)
    except DatabricksUnreachable as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Databricks job {config.job_name!r}: job_id={job_id} (set DATABRICKS_JOB_ID={job_id})")
    return 0
