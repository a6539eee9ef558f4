"""Reaching the Databricks workspace: bounded waits, and an error that says what to check.

The Databricks SDK waits up to 60 s for each answer and retries connection errors and timeouts
for up to 5 minutes, silently. Clients built here wait at most `HTTP_TIMEOUT_SECONDS` per request
and stop retrying after `RETRY_TIMEOUT_SECONDS`, so a sensor tick (60 s limit) ends in time; an
unreachable workspace then raises `DatabricksUnreachable`, naming `DATABRICKS_HOST` (never its
value, nor the token).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import requests
from databricks.sdk import WorkspaceClient
from databricks.sdk.config import Config

HTTP_TIMEOUT_SECONDS = 10.0
RETRY_TIMEOUT_SECONDS = 20


class DatabricksUnreachable(ConnectionError):
    """The workspace did not answer in time; the message says what to check."""


def bounded_client(
    config: Config | None = None,
    retry_timeout_seconds: int = RETRY_TIMEOUT_SECONDS,
    http_timeout_seconds: float = HTTP_TIMEOUT_SECONDS,
) -> WorkspaceClient:
    """A client on `config` (default: credentials from the environment, as the SDK resolves
    them) whose requests and retries are bounded as above."""
    config = config.copy() if config is not None else Config()
    config.http_timeout_seconds = min(http_timeout_seconds, retry_timeout_seconds)
    config.retry_timeout_seconds = retry_timeout_seconds
    return WorkspaceClient(config=config)


@contextmanager
def reaching_databricks(retry_timeout_seconds: int = RETRY_TIMEOUT_SECONDS) -> Iterator[None]:
    """Turns the SDK's timeout (or a connection error it does not retry) into
    `DatabricksUnreachable`; other errors (e.g. a rejected token) pass unchanged."""
    try:
        yield
    except (TimeoutError, requests.ConnectionError, requests.Timeout) as error:
        cause = error.__cause__ if isinstance(error, TimeoutError) and error.__cause__ else error
        raise DatabricksUnreachable(
            f"The Databricks workspace at DATABRICKS_HOST did not answer within "
            f"{retry_timeout_seconds} s ({_describe(cause)}): check that DATABRICKS_HOST is the "
            "workspace URL (https://adb-<workspace-id>.<n>.azuredatabricks.net) and that this "
            "machine can reach it (network, proxy, firewall)"
        ) from None


def _describe(error: BaseException) -> str:
    """What went wrong, without the URL (it holds the host)."""
    if isinstance(error, requests.Timeout):
        return "no answer"
    if isinstance(error, requests.ConnectionError):
        return "cannot connect"
    return type(error).__name__
