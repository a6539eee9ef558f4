"""`anomaly-pipeline` command line: one sub-command group per module, registered below."""

from __future__ import annotations

import argparse
import importlib
import sys

# Each module exposes `register(subparsers)`, adding its sub-commands with `set_defaults(func=...)`.
# `func(args)` returns the process exit code.
COMMAND_MODULES = [
    "anomaly_pipeline.detection.cli",
    "anomaly_pipeline.databricks.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anomaly-pipeline",
        description="Hour-by-hour anomaly detection on a tweet stream.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
