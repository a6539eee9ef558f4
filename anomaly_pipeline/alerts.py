"""Alerts: a message when an anomaly event starts, when a run fails, and when verdicts stop arriving.

Off by default; switched on by the environment (see `.env.example`):
- `ALERT_WEBHOOK_URL` (secret: such URLs embed their token): each alert is a JSON POST there.
- `SLACK_TOKEN` (secret) and `SLACK_CHANNEL`: each alert is a Slack message (dagster-slack).
- `ALERT_MIN_SEVERITY` (0 .. 1, default 0): flagged hours of lower severity are not alerted.
- `UI_BASE_URL` (default http://127.0.0.1:3000): where the links in the alerts point.
- `FRESHNESS_LAG_HOURS` (default 3): alert when the newest verdict's hour closed longer ago.

An anomaly event is a run of consecutive flagged hours of one metric: it is alerted once, when
first seen among the verdicts of the last 24 hours (older hours, e.g. of a backfill, are history),
with the value, expected value, band and severity of its most severe hour and a link to that
partition. Alerted hours are kept in the pipeline's `StateStore` (`alerts/anomaly/<metric>/<hour>`),
so neither a re-judged hour, nor an event growing by an hour, nor a restart alerts again. A
delivery that fails raises (the sensor tick fails and is retried) and leaves the event unmarked.
Secrets are `dagster.EnvVar`s, kept out of reprs, and no error names the webhook URL.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import dagster as dg
import polars as pl
import requests
from dagster_slack import SlackResource
from pydantic import Field
from slack_sdk.errors import SlackClientError
from slack_sdk.web.client import WebClient

from anomaly_pipeline.partitions import hour_start, partition_key
from anomaly_pipeline.resources.delta_store import DeltaStore
from anomaly_pipeline.resources.state_store import StateStore
from anomaly_pipeline.settings import SettingsError
from anomaly_pipeline.tables import TWEET_ANOMALIES

WEBHOOK_VARIABLE = "ALERT_WEBHOOK_URL"
SLACK_TOKEN_VARIABLE = "SLACK_TOKEN"
DEFAULT_UI_BASE_URL = "http://127.0.0.1:3000"
DEFAULT_FRESHNESS_LAG_HOURS = 3
ALERT_WINDOW_HOURS = 24  # events first seen later than this after their newest hour are history
ANOMALY_CHECK_SECONDS = 60
FRESHNESS_CHECK_SECONDS = 300
REQUEST_TIMEOUT_SECONDS = 10.0
STATE_PREFIX = "alerts/anomaly"
ANOMALIES_ASSET = "tweet_anomalies"


class AlertDeliveryError(RuntimeError):
    """An alert could not be delivered (the message never names the webhook URL or a token)."""


@dataclass(frozen=True)
class AlertSettings:
    """Which alert channels are on and how alerts are made; secrets are only known to be set."""

    webhook: bool = False
    slack_channel: str | None = None
    min_severity: float = 0.0
    ui_base_url: str = DEFAULT_UI_BASE_URL
    freshness_lag_hours: int = DEFAULT_FRESHNESS_LAG_HOURS

    @property
    def enabled(self) -> bool:
        return self.webhook or self.slack_channel is not None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "AlertSettings":
        env = os.environ if environ is None else environ

        def text(name: str) -> str | None:
            return env.get(name, "").strip() or None

        slack_token, slack_channel = text(SLACK_TOKEN_VARIABLE), text("SLACK_CHANNEL")
        if bool(slack_token) != bool(slack_channel):
            missing = "SLACK_CHANNEL" if slack_token else SLACK_TOKEN_VARIABLE
            raise SettingsError(f"Slack alerts need both SLACK_TOKEN and SLACK_CHANNEL; {missing} is not set")
        ui_base_url = (text("UI_BASE_URL") or DEFAULT_UI_BASE_URL).rstrip("/")
        if not ui_base_url.startswith(("http://", "https://")):
            raise SettingsError(f"UI_BASE_URL must be an http(s) URL, got {ui_base_url!r}")
        return cls(
            webhook=text(WEBHOOK_VARIABLE) is not None,
            slack_channel=slack_channel,
            min_severity=_bounded("ALERT_MIN_SEVERITY", text("ALERT_MIN_SEVERITY"), 0.0, float, 0.0, 1.0),
            ui_base_url=ui_base_url,
            freshness_lag_hours=_bounded(
                "FRESHNESS_LAG_HOURS", text("FRESHNESS_LAG_HOURS"), DEFAULT_FRESHNESS_LAG_HOURS, int, 1
            ),
        )


def _bounded(name: str, raw: str | None, default: float, kind: type, low: float, high: float | None = None):
    """`raw` as a `kind` (int or float) in [low, high], `default` when unset; errors name `name`."""
    if raw is None:
        return default
    try:
        value = kind(raw)
    except ValueError:
        noun = "an integer" if kind is int else "a number"
        raise SettingsError(f"{name} must be {noun}, got {raw!r}") from None
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise SettingsError(f"{name} must be {bounds}, got {raw}")
    return value


@dataclass(frozen=True)
class Alert:
    """One message: a line for people, a link into the UI and machine-readable details."""

    kind: str  # anomaly | run_failure | stale_verdicts
    text: str
    url: str
    details: dict[str, object] = field(default_factory=dict)

    def payload(self) -> dict[str, object]:
        """The webhook's JSON body."""
        return {"kind": self.kind, "text": self.text, "url": self.url, **self.details}


class AlertNotifier(dg.ConfigurableResource):
    """Delivers alerts to a webhook (a JSON POST) and/or a Slack channel (dagster-slack)."""

    webhook_url: str | None = Field(
        default=None, repr=False, description=f"JSON POST target (from env {WEBHOOK_VARIABLE})."
    )
    slack_token: str | None = Field(
        default=None, repr=False, description=f"Slack bot token (from env {SLACK_TOKEN_VARIABLE})."
    )
    slack_channel: str | None = Field(default=None, description="Slack channel, e.g. #alerts.")
    slack_api_url: str = Field(default=WebClient.BASE_URL, description="Slack's Web API base URL.")
    ui_base_url: str = Field(default=DEFAULT_UI_BASE_URL, description="The Dagster UI, for links.")

    def send(self, alert: Alert) -> None:
        """Deliver `alert` to every configured channel; raises AlertDeliveryError on failure."""
        if self.webhook_url:
            self._post_webhook(alert)
        if self.slack_token and self.slack_channel:
            self._post_slack(alert)

    def _post_webhook(self, alert: Alert) -> None:
        try:
            response = requests.post(self.webhook_url, json=alert.payload(), timeout=REQUEST_TIMEOUT_SECONDS)
        except requests.RequestException as error:  # its message would hold the URL
            raise AlertDeliveryError(f"alert webhook unreachable ({type(error).__name__})") from None
        if not response.ok:
            raise AlertDeliveryError(f"alert webhook answered HTTP {response.status_code}")

    def _post_slack(self, alert: Alert) -> None:
        client = SlackResource(token=self.slack_token).get_client()
        client.base_url = self.slack_api_url
        try:
            client.chat_postMessage(channel=self.slack_channel, text=f"{alert.text}\n{alert.url}")
        except (SlackClientError, OSError) as error:
            raise AlertDeliveryError(f"Slack did not take the alert ({type(error).__name__})") from None


def partition_url(ui_base_url: str, key: str, asset: str = ANOMALIES_ASSET) -> str:
    return f"{ui_base_url}/assets/{asset}?{urlencode({'view': 'partitions', 'partition': key})}"


# ---------------------------------------------------------------- anomaly events


@dataclass(frozen=True)
class AnomalyEvent:
    """Consecutive flagged hours of one metric (their verdict rows, in hour order)."""

    metric: str
    rows: tuple[dict, ...]

    @property
    def event_id(self) -> str:
        return f"{self.metric}@{partition_key(self.rows[0]['hour'])}"

    def alert(self, ui_base_url: str) -> Alert:
        peak = max(self.rows, key=lambda row: row["severity"])
        low = peak["expected_value"] - peak["lower_margin"]
        high = peak["expected_value"] + peak["upper_margin"]
        side = "above" if peak["is_positive_anomaly"] else "below"
        first, last = partition_key(self.rows[0]["hour"]), partition_key(self.rows[-1]["hour"])
        hours = len(self.rows)
        return Alert(
            kind="anomaly",
            text=(
                f"Anomaly in {self.metric} from {first} UTC ({hours} h so far): {peak['value']:.2f} "
                f"{side} the band {low:.2f} .. {high:.2f} (expected {peak['expected_value']:.2f}, "
                f"severity {peak['severity']:.2f})"
            ),
            url=partition_url(ui_base_url, partition_key(peak["hour"])),
            details={
                "metric": self.metric, "first_hour": first, "last_hour": last, "hours": hours,
                "hour": partition_key(peak["hour"]), "value": peak["value"],
                "expected": peak["expected_value"], "band_low": low, "band_high": high,
                "severity": peak["severity"], "direction": side,
            },
        )  # fmt: skip


def anomaly_events(verdicts: pl.DataFrame, min_severity: float) -> list[AnomalyEvent]:
    """The anomaly events among `verdicts`: flagged hours of at least `min_severity`, grouped
    into runs of consecutive hours per metric."""
    flagged = verdicts.filter(pl.col("is_anomaly") & (pl.col("severity") >= min_severity))
    events: list[AnomalyEvent] = []
    current: list[dict] = []
    for row in flagged.sort("metric", "hour").iter_rows(named=True):
        if current and (
            row["metric"] != current[-1]["metric"] or row["hour"] - current[-1]["hour"] != timedelta(hours=1)
        ):
            events.append(AnomalyEvent(current[-1]["metric"], tuple(current)))
            current = []
        current.append(row)
    if current:
        events.append(AnomalyEvent(current[-1]["metric"], tuple(current)))
    return events


def notify_new_anomaly_events(
    store: DeltaStore, state: StateStore, notifier: AlertNotifier, min_severity: float, now: datetime
) -> list[AnomalyEvent]:
    """Alert every anomaly event among the last 24 hours' verdicts that holds no hour alerted
    before, then mark all its hours as alerted. Returns the events alerted."""
    end = hour_start(now) + timedelta(hours=1)
    verdicts = store.read_hours(TWEET_ANOMALIES, end - timedelta(hours=ALERT_WINDOW_HOURS), end)
    alerted = []
    for event in anomaly_events(verdicts, min_severity):
        keys = [f"{STATE_PREFIX}/{event.metric}/{partition_key(row['hour'])}" for row in event.rows]
        known = [value for value in map(state.get, keys) if value is not None]
        event_id = known[0] if known else event.event_id
        if not known:
            if not state.compare_and_set(keys[0], None, event_id):
                continue  # another evaluation claimed it just now
            try:
                notifier.send(event.alert(notifier.ui_base_url))
            except Exception:
                state.delete(keys[0])  # not delivered: alert it on the next evaluation
                raise
            alerted.append(event)
        for key in keys:  # an event that grows stays one event
            state.compare_and_set(key, None, event_id)
    return alerted


def build_anomaly_alert_sensor(min_severity: float) -> dg.SensorDefinition:
    @dg.sensor(
        name="anomaly_alert_sensor",
        minimum_interval_seconds=ANOMALY_CHECK_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def anomaly_alert_sensor(
        context: dg.SensorEvaluationContext,
        delta_store: DeltaStore,
        pipeline_state: StateStore,
        alert_notifier: AlertNotifier,
    ):
        """One alert per new anomaly event (consecutive flagged hours of a metric) in the last
        24 hours' verdicts, checked whenever the verdict table has a new version."""
        version = delta_store.version(TWEET_ANOMALIES)
        if version is None or str(version) == context.cursor:
            return dg.SkipReason("No new verdicts.")
        now = datetime.now(timezone.utc)
        alerted = notify_new_anomaly_events(delta_store, pipeline_state, alert_notifier, min_severity, now)
        context.update_cursor(str(version))
        return dg.SkipReason(f"Verdicts version {version}: {len(alerted)} new anomaly event(s) alerted.")

    return anomaly_alert_sensor


# ---------------------------------------------------------------- failed runs, stale verdicts


@dg.run_failure_sensor(name="run_failure_alert_sensor", default_status=dg.DefaultSensorStatus.RUNNING)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, alert_notifier: AlertNotifier):
    """Alerts when a run of this code location fails, with its error and a link to the run."""
    run = context.dagster_run
    error = context.failure_event.message or "failed"
    alert_notifier.send(
        Alert(
            kind="run_failure",
            text=f"Run {run.run_id[:8]} of {run.job_name} failed: {error}",
            url=f"{alert_notifier.ui_base_url}/runs/{run.run_id}",
            details={
                "job": run.job_name,
                "run_id": run.run_id,
                "error": error,
                "partitions": {k: v for k, v in run.tags.items() if "partition" in k},
            },
        )
    )


def newest_verdict_hour(store: DeltaStore) -> datetime | None:
    return store.scan(TWEET_ANOMALIES).select(pl.col("hour").max()).collect().item()


def build_freshness_sensor(lag_hours: int) -> dg.SensorDefinition:
    @dg.sensor(
        name="verdict_freshness_sensor",
        minimum_interval_seconds=FRESHNESS_CHECK_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def verdict_freshness_sensor(
        context: dg.SensorEvaluationContext, delta_store: DeltaStore, alert_notifier: AlertNotifier
    ):
        """Alerts once when the newest verdict's hour closed more than FRESHNESS_LAG_HOURS ago
        (the schedule or the daemon stopped, or the runs keep failing)."""
        newest = newest_verdict_hour(delta_store)
        if newest is None:
            return dg.SkipReason("No verdicts yet.")
        key = partition_key(newest)
        late = datetime.now(timezone.utc) - (newest + timedelta(hours=1))
        if late <= timedelta(hours=lag_hours):
            return dg.SkipReason(f"Newest verdict {key} is fresh.")
        if context.cursor == key:
            return dg.SkipReason(f"Newest verdict {key} is stale; alerted already.")
        hours_late = late.total_seconds() / 3600
        alert_notifier.send(
            Alert(
                kind="stale_verdicts",
                text=f"No new verdicts: the newest, hour {key} UTC, closed {hours_late:.1f} h ago "
                f"(more than {lag_hours} h)",
                url=partition_url(alert_notifier.ui_base_url, key),
                details={"newest_hour": key, "hours_late": round(hours_late, 2), "lag_hours": lag_hours},
            )
        )
        context.update_cursor(key)
        return dg.SkipReason(f"Newest verdict {key} is stale; alert sent.")

    return verdict_freshness_sensor


# ---------------------------------------------------------------- wiring


def alert_resources(settings: AlertSettings) -> dict[str, object]:
    """The `alert_notifier` resource, secrets as `EnvVar`s; none when alerts are off."""
    if not settings.enabled:
        return {}
    return {
        "alert_notifier": AlertNotifier(
            webhook_url=dg.EnvVar(WEBHOOK_VARIABLE) if settings.webhook else None,
            slack_token=dg.EnvVar(SLACK_TOKEN_VARIABLE) if settings.slack_channel else None,
            slack_channel=settings.slack_channel,
            ui_base_url=settings.ui_base_url,
        )
    }


def alert_sensors(settings: AlertSettings) -> list[dg.SensorDefinition]:
    """The three alert sensors; none when alerts are off."""
    if not settings.enabled:
        return []
    return [
        build_anomaly_alert_sensor(settings.min_severity),
        run_failure_alert_sensor,
        build_freshness_sensor(settings.freshness_lag_hours),
    ]
