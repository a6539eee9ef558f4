"""Where the Delta tables live: a local directory or an ADLS Gen2 path, with its credentials.

`root_uri` is a local directory or `abfss://<container>@<account>.dfs.core.windows.net/<prefix>`
(`abfss://<container>/<prefix>` also works when the account comes from
`AZURE_STORAGE_ACCOUNT_NAME`). `storage_options` is dagster-deltalake's `LocalConfig` or
`AzureConfig` (discriminated on `provider`); `storage_options_dict()` is what `deltalake` /
`polars` calls take.

Azure credentials, read by `dagster.EnvVar` at run time and never stored or printed:

* account key: `AZURE_STORAGE_ACCOUNT_KEY`, or
* service principal: `AZURE_CLIENT_ID` + `AZURE_CLIENT_SECRET` + `AZURE_TENANT_ID`
  (the principal needs "Storage Blob Data Contributor" on the container).

`DeltaLocation.from_root(root)` builds the resource for a root, choosing the credential by which
variables are set.

Reaching ADLS: every request waits at most `request_timeout_seconds` and retries stop after
`retry_timeout_seconds` (the object store's own defaults would retry for 3 minutes). A run's
first use of an `abfss://` root checks that the container answers, and if it does not, fails with
a message that names the storage account and says what to check, instead of deltalake's
"Generic MicrosoftAzure error".
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

import dagster as dg
from dagster_deltalake import AzureConfig, LocalConfig
from deltalake import DeltaTable
from pydantic import Field

ACCOUNT_NAME = "AZURE_STORAGE_ACCOUNT_NAME"
ACCOUNT_KEY = "AZURE_STORAGE_ACCOUNT_KEY"
CLIENT_ID = "AZURE_CLIENT_ID"
CLIENT_SECRET = "AZURE_CLIENT_SECRET"
TENANT_ID = "AZURE_TENANT_ID"
SERVICE_PRINCIPAL = (CLIENT_ID, CLIENT_SECRET, TENANT_ID)

_ABFSS = re.compile(
    r"^abfss://(?P<container>[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])?)"
    r"(?:@(?P<account>[a-z0-9]{3,24})\.dfs\.core\.windows\.net)?"
    r"(?:/(?P<prefix>.*))?$"
)
_TABLE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
ROOT_FORMAT = "abfss://<container>@<account>.dfs.core.windows.net/<prefix>"
PROBE_TIMEOUT_SECONDS = 10.0
"""The reachability check lists one small prefix: it needs less time per request than a write."""


class DeltaLocationError(ValueError):
    """The Delta location is misconfigured; the message names variables, never secret values."""


@dataclass(frozen=True)
class AdlsPath:
    container: str
    account: str | None
    prefix: str


def is_remote(root_uri: str) -> bool:
    return "://" in root_uri


def parse_abfss(root_uri: str, variable: str = "DELTA_ROOT") -> AdlsPath:
    """Split an `abfss://` root; a clear error naming `variable` if it is not one."""
    match = _ABFSS.match(root_uri.strip())
    if not match:
        raise DeltaLocationError(
            f"{variable} must be a local directory or {ROOT_FORMAT} "
            f"(ADLS Gen2, lowercase container and account names), got {root_uri!r}"
        )
    return AdlsPath(match["container"], match["account"], (match["prefix"] or "").strip("/"))


class DeltaLocation(dg.ConfigurableResource):
    """The root of the pipeline's Delta tables and the storage options to reach it."""

    root_uri: str = Field(description=f"Local directory or {ROOT_FORMAT}.")
    storage_options: LocalConfig | AzureConfig = Field(
        default_factory=LocalConfig,
        discriminator="provider",
        repr=False,
        description="dagster-deltalake storage config: LocalConfig or AzureConfig.",
    )
    request_timeout_seconds: float = Field(
        default=30.0, description="ADLS: how long one request may take (connecting: at most 5 s)."
    )
    retry_timeout_seconds: float = Field(
        default=30.0, description="ADLS: no retry of a failed request starts after this."
    )

    @classmethod
    def from_root(cls, root_uri: str, environ: Mapping[str, str] | None = None) -> "DeltaLocation":
        """The location for `root_uri`, credentials as `EnvVar`s chosen by which are set.

        Only the presence of the variables is looked at here; their values are resolved by
        Dagster at run time.
        """
        if not is_remote(root_uri):
            return cls(root_uri=root_uri, storage_options=LocalConfig())
        env = os.environ if environ is None else environ
        present = {name for name in (ACCOUNT_NAME, ACCOUNT_KEY, *SERVICE_PRINCIPAL)
                   if env.get(name, "").strip()}
        path = parse_abfss(root_uri)
        if ACCOUNT_NAME in present:
            account: str = dg.EnvVar(ACCOUNT_NAME)
        elif path.account:
            account = path.account
        else:
            raise DeltaLocationError(
                f"DELTA_ROOT={root_uri!r} names no storage account: use {ROOT_FORMAT} "
                f"or set {ACCOUNT_NAME}"
            )
        if ACCOUNT_KEY in present:
            options = AzureConfig(account_name=account, account_key=dg.EnvVar(ACCOUNT_KEY))
        elif present >= set(SERVICE_PRINCIPAL):
            options = AzureConfig(
                account_name=account,
                client_id=dg.EnvVar(CLIENT_ID),
                client_secret=dg.EnvVar(CLIENT_SECRET),
                tenant_id=dg.EnvVar(TENANT_ID),
            )
        else:
            raise DeltaLocationError(_missing_credentials(present))
        return cls(root_uri=root_uri, storage_options=options)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.validate_location()
        self.check_reachable()

    def check_reachable(self) -> None:
        """For an `abfss://` root: fail fast, naming the account and what to check, when the
        container does not answer or refuses the credential."""
        if not is_remote(self.root_uri):
            return
        options = {
            **self.storage_options_dict(),
            "timeout": _seconds(min(self.request_timeout_seconds, PROBE_TIMEOUT_SECONDS)),
        }
        try:
            DeltaTable.is_deltatable(self.root_uri, storage_options=options)
        except OSError as error:
            raise DeltaLocationError(self._unreachable(error)) from None

    def _unreachable(self, error: OSError) -> str:
        path = parse_abfss(self.root_uri)
        account = path.account or self.storage_options.account_name
        return (
            f"Azure storage (ADLS Gen2, DELTA_ROOT) cannot be used: {_storage_cause(error)}. "
            f"Check the storage account ({account}) and container ({path.container}) in "
            f"DELTA_ROOT, that this machine can reach {account}.dfs.core.windows.net (network, "
            f"firewall, private endpoint), and the credential ({_credential_alternatives()})"
        )

    def validate_location(self) -> None:
        """Fail fast on a root and storage options that cannot work together."""
        options = self.storage_options
        if not is_remote(self.root_uri):
            if not isinstance(options, LocalConfig):
                raise DeltaLocationError(
                    f"Delta root {self.root_uri!r} is a local directory but storage_options are "
                    f"for {options.provider}"
                )
            return
        path = parse_abfss(self.root_uri)
        if not isinstance(options, AzureConfig):
            raise DeltaLocationError(
                f"Delta root {self.root_uri!r} is on ADLS Gen2 but storage_options are local: "
                f"set {ACCOUNT_NAME} (or put the account in the root) and "
                f"{_credential_alternatives()}"
            )
        account = options.account_name
        if not _given(account):
            raise DeltaLocationError(f"no storage account for {self.root_uri!r}: set {ACCOUNT_NAME}")
        if path.account and not isinstance(account, dg.EnvVar) and account.strip() != path.account:
            raise DeltaLocationError(
                f"{ACCOUNT_NAME} names a different storage account than DELTA_ROOT "
                f"({path.account!r})"
            )
        if _has_credential(options):
            return
        present = {
            name
            for name, value in (
                (CLIENT_ID, options.client_id),
                (CLIENT_SECRET, options.client_secret),
                (TENANT_ID, options.tenant_id),
            )
            if _given(value)
        }
        raise DeltaLocationError(_missing_credentials(present))

    def table_uri(self, name: str) -> str:
        if not _TABLE_NAME.match(name):
            raise ValueError(f"not a table name: {name!r}")
        return f"{self.root_uri.rstrip('/')}/{name}"

    def storage_options_dict(self) -> dict[str, str]:
        """The `storage_options` mapping for `deltalake` / `polars` (no `provider` key)."""
        self.validate_location()
        options = self.storage_options.str_dict()
        options.pop("provider", None)
        if is_remote(self.root_uri):
            options.update(
                timeout=_seconds(self.request_timeout_seconds),
                connect_timeout=_seconds(min(self.request_timeout_seconds, 5.0)),
                retry_timeout=_seconds(self.retry_timeout_seconds),
            )
        return options


def _given(value: object) -> bool:
    """Set: a non-blank value, or an `EnvVar` Dagster has not resolved yet (outside a run)."""
    if isinstance(value, dg.EnvVar):
        return True
    if isinstance(value, str):
        return bool(value.strip())
    return bool(value)


def _has_credential(options: AzureConfig) -> bool:
    service_principal = all(
        _given(v) for v in (options.client_id, options.client_secret, options.tenant_id)
    )
    return service_principal or any(
        _given(v)
        for v in (
            options.account_key,
            options.sas_key,
            options.token,
            options.use_azure_cli,
            options.federated_token_file,
            options.msi_endpoint,
            options.msi_resource_id,
        )
    )


def _credential_alternatives() -> str:
    return f"either {ACCOUNT_KEY} or all of {', '.join(SERVICE_PRINCIPAL)}"


def _missing_credentials(present: set[str]) -> str:
    partial = [name for name in SERVICE_PRINCIPAL if name not in present]
    detail = (
        f" (service principal incomplete: missing {', '.join(partial)})"
        if len(partial) < len(SERVICE_PRINCIPAL)
        else ""
    )
    return (
        f"an abfss:// DELTA_ROOT needs a storage credential: set {_credential_alternatives()}"
        f"{detail}"
    )


def _seconds(value: float) -> str:
    """A duration as the object store's options spell it (`humantime`)."""
    return f"{max(1, round(value * 1000))}ms"


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _storage_cause(error: OSError) -> str:
    """The root cause in deltalake's nested object-store error, without URLs (a SAS token would
    ride in a query string): an HTTP status and the service's error code, or the innermost line
    ("operation timed out", "Connection refused")."""
    text = _ANSI.sub("", str(error))
    lines = [line.replace("\u21b3", "").strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    status = next((line for line in lines if re.match(r"^[1-5]\d\d [A-Za-z]", line)), None)
    code = re.search(r"<Code>([^<]+)</Code>", text)
    if status:
        return f"HTTP {status}" + (f" ({code[1]})" if code else "")
    return re.sub(r"https?://\S+", "<url>", lines[-1] if lines else type(error).__name__)
