"""Alerts, delivered to a real HTTP server on 127.0.0.1 that records what it receives: one alert per
anomaly event (not per hour, not again on re-judging), one per failed run, one when verdicts go
stale; Slack's wire format through dagster-slack; secrets in no repr or error."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import polars as pl
import pytest

from anomaly_pipeline.alerts import (
    Alert,
    AlertDeliveryError,
    AlertNotifier,
    AlertSettings,
    build_anomaly_alert_sensor,
    build_freshness_sensor,
    run_failure_alert_sensor,
)
from anomaly_pipeline.definitions import build_definitions
from anomaly_pipeline.partitions import hour_start, partition_key
from anomaly_pipeline.settings import Settings, SettingsError
from anomaly_pipeline.tables import TWEET_ANOMALIES

SECRET_PATH = "/hooks/T000-secret-token-4242"


class Recorder:
    """A local HTTP server that records each POST (path, headers, JSON or form body)."""

    def __init__(self):
        self.received: list[dict] = []
        self.status = 200
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                recorder.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
                answer = json.dumps({"ok": True, "channel": "C1", "ts": "1.0"}).encode()  # Slack's answer
                self.send_response(recorder.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def payloads(self) -> list[dict]:
        return [json.loads(item["body"]) for item in self.received]


@pytest.fixture
def recorder():
    server = Recorder()
    yield server
    server.server.shutdown()


@pytest.fixture
def notifier(recorder):
    return AlertNotifier(webhook_url=recorder.url + SECRET_PATH, ui_base_url="http://ui.test:3000")


NOW_HOUR = hour_start(datetime.now(timezone.utc))


def verdicts(metric: str, hours: dict[int, float | None]) -> pl.DataFrame:
    """Verdict rows for NOW_HOUR - h for each h; a severity flags the hour (None: normal)."""
    rows = []
    for back, severity in hours.items():
        flagged = severity is not None
        rows.append({
            "hour": NOW_HOUR - timedelta(hours=back), "metric": metric, "status": "ok",
            "value": 300.0 + back if flagged else 100.0, "expected_value": 100.0,
            "upper_margin": 50.0, "lower_margin": 40.0, "is_anomaly": flagged,
            "is_positive_anomaly": flagged, "is_negative_anomaly": False,
            "severity": severity or 0.0, "period": 24, "points_used": 500, "detector": "local", "sensitivity": 95,
            "detected_at": datetime.now(timezone.utc),
        })  # fmt: skip
    return pl.DataFrame(rows, schema_overrides={"hour": pl.Datetime("us", "UTC")})


def evaluate(sensor, instance, resources, cursor=None):
    context = dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor)
    result = sensor(context)
    return result, context.cursor


def test_a_three_hour_event_is_one_alert_and_rejudging_it_sends_none(resources, instance, recorder, notifier):
    store = resources["delta_store"]
    sensor = build_anomaly_alert_sensor(min_severity=0.5)
    sensor_resources = {"delta_store": store, "pipeline_state": resources["pipeline_state"], "alert_notifier": notifier}
    rows = pl.concat([
        verdicts("tweet_count", {9: None, 8: 0.7, 7: 0.9, 6: 0.8, 5: None, 40: 0.9}),  # 40 h ago: history
        verdicts("avg_likes", {7: 0.2, 6: None}),  # flagged, but below ALERT_MIN_SEVERITY
    ])  # fmt: skip
    store.merge(TWEET_ANOMALIES, rows)
    _, cursor = evaluate(sensor, instance, sensor_resources)

    (alert,) = recorder.payloads()
    peak = NOW_HOUR - timedelta(hours=7)
    assert recorder.received[0]["path"] == SECRET_PATH
    assert alert["kind"] == "anomaly" and alert["metric"] == "tweet_count" and alert["hours"] == 3
    assert alert["first_hour"] == partition_key(NOW_HOUR - timedelta(hours=8))
    assert alert["last_hour"] == partition_key(NOW_HOUR - timedelta(hours=6))
    assert alert["hour"] == partition_key(peak) and alert["severity"] == 0.9
    assert (alert["value"], alert["expected"], alert["band_low"], alert["band_high"]) == (307.0, 100.0, 60.0, 150.0)
    assert alert["direction"] == "above"
    assert alert["url"] == (
        "http://ui.test:3000/assets/tweet_anomalies?view=partitions&partition="
        + partition_key(peak).replace(":", "%3A")
    )
    assert "tweet_count" in alert["text"] and "307.00" in alert["text"] and "60.00 .. 150.00" in alert["text"]

    # re-judged with the same verdicts (a new table version): nothing new
    store.merge(TWEET_ANOMALIES, rows.with_columns(detected_at=pl.lit(datetime.now(timezone.utc))))
    _, cursor = evaluate(sensor, instance, sensor_resources, cursor)
    # the event grows by an hour: still the same event
    store.merge(TWEET_ANOMALIES, verdicts("tweet_count", {5: 0.6}))
    _, cursor = evaluate(sensor, instance, sensor_resources, cursor)
    assert len(recorder.received) == 1

    # a new event after a normal hour is a new alert
    store.merge(TWEET_ANOMALIES, verdicts("tweet_count", {4: None, 3: 0.95}))
    evaluate(sensor, instance, sensor_resources, cursor)
    assert len(recorder.received) == 2
    assert recorder.payloads()[1]["first_hour"] == partition_key(NOW_HOUR - timedelta(hours=3))


def test_an_undelivered_alert_is_sent_on_the_next_evaluation(resources, instance, recorder, notifier):
    store = resources["delta_store"]
    sensor = build_anomaly_alert_sensor(min_severity=0.0)
    sensor_resources = {"delta_store": store, "pipeline_state": resources["pipeline_state"], "alert_notifier": notifier}
    store.merge(TWEET_ANOMALIES, verdicts("avg_likes", {2: 0.4}))
    recorder.status = 503
    with pytest.raises(AlertDeliveryError, match="HTTP 503") as failure:
        evaluate(sensor, instance, sensor_resources)
    assert SECRET_PATH not in str(failure.value) and "127.0.0.1" not in str(failure.value)
    recorder.status = 200
    evaluate(sensor, instance, sensor_resources)  # the failed tick left the cursor where it was
    assert len(recorder.received) == 2 and recorder.payloads()[1]["metric"] == "avg_likes"


def test_a_failed_run_is_alerted_with_its_error_and_a_link(instance, recorder, notifier):
    @dg.op
    def fetch_hour():
        raise RuntimeError("upstream went away")

    @dg.job
    def broken_job():
        fetch_hour()

    result = broken_job.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    context = dg.build_run_status_sensor_context(
        sensor_name=run_failure_alert_sensor.name,
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        resources={"alert_notifier": notifier},
    ).for_run_failure()
    run_failure_alert_sensor(context)

    (alert,) = recorder.payloads()
    assert alert["kind"] == "run_failure" and alert["job"] == "broken_job"
    assert alert["run_id"] == result.run_id
    assert alert["url"] == f"http://ui.test:3000/runs/{result.run_id}"
    assert "fetch_hour" in alert["error"] and "broken_job" in alert["text"]


def test_stale_verdicts_are_alerted_once(resources, instance, recorder, notifier):
    store = resources["delta_store"]
    sensor = build_freshness_sensor(lag_hours=3)
    sensor_resources = {"delta_store": store, "alert_notifier": notifier}
    result, cursor = evaluate(sensor, instance, sensor_resources)
    assert "No verdicts yet" in result.skip_message and not recorder.received

    store.merge(TWEET_ANOMALIES, verdicts("tweet_count", {12: None, 10: None}))  # newest closed 9+ h ago
    _, cursor = evaluate(sensor, instance, sensor_resources, cursor)
    (alert,) = recorder.payloads()
    assert alert["kind"] == "stale_verdicts" and alert["newest_hour"] == partition_key(NOW_HOUR - timedelta(hours=10))
    assert alert["lag_hours"] == 3 and alert["hours_late"] > 9
    _, cursor = evaluate(sensor, instance, sensor_resources, cursor)
    assert len(recorder.received) == 1  # still stale: not again

    store.merge(TWEET_ANOMALIES, verdicts("tweet_count", {1: None}))
    result, _ = evaluate(sensor, instance, sensor_resources, cursor)
    assert "fresh" in result.skip_message and len(recorder.received) == 1


def test_slack_alerts_go_through_dagster_slack_in_slacks_wire_format(recorder):
    notifier = AlertNotifier(
        slack_token="xoxb-secret-999", slack_channel="#alerts", slack_api_url=recorder.url + "/api/"
    )
    notifier.send(Alert(kind="stale_verdicts", text="No new verdicts", url="http://ui.test/assets/tweet_anomalies"))
    (request,) = recorder.received
    assert request["path"] == "/api/chat.postMessage"
    assert request["headers"]["Authorization"] == "Bearer xoxb-secret-999"
    assert "#alerts" in request["body"] and "No new verdicts" in request["body"]


def test_alerts_are_off_by_default_and_secrets_stay_out_of_reprs(tmp_path, monkeypatch):
    settings = Settings.from_env({"DATA_DIR": str(tmp_path)})
    repository = build_definitions(settings, AlertSettings.from_env({})).get_repository_def()
    assert not {"anomaly_alert_sensor", "run_failure_alert_sensor", "verdict_freshness_sensor"} & {
        s.name for s in repository.sensor_defs
    }

    monkeypatch.setenv("ALERT_WEBHOOK_URL", "https://hooks.example.test" + SECRET_PATH)
    alerts = AlertSettings.from_env({"ALERT_WEBHOOK_URL": "set", "ALERT_MIN_SEVERITY": "0.4", "UI_BASE_URL": "http://ui:3000/"})
    assert (alerts.min_severity, alerts.ui_base_url, alerts.freshness_lag_hours) == (0.4, "http://ui:3000", 3)
    repository = build_definitions(settings, alerts).get_repository_def()
    sensors = {s.name: s for s in repository.sensor_defs}
    assert {"anomaly_alert_sensor", "run_failure_alert_sensor", "verdict_freshness_sensor"} <= set(sensors)
    assert all(sensors[name].default_status == dg.DefaultSensorStatus.RUNNING for name in sensors)
    notifier = repository.get_top_level_resources()["alert_notifier"]
    assert SECRET_PATH not in repr(notifier)
    resolved = AlertNotifier(webhook_url="https://hooks.example.test" + SECRET_PATH, slack_token="xoxb-s3cret")
    assert SECRET_PATH not in repr(resolved) and "xoxb-s3cret" not in repr(resolved)
    with pytest.raises(AlertDeliveryError) as failure:  # nothing listens on port 9
        AlertNotifier(webhook_url="http://127.0.0.1:9" + SECRET_PATH).send(
            Alert(kind="anomaly", text="t", url="u")
        )
    assert SECRET_PATH not in str(failure.value) and failure.value.__cause__ is None


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"SLACK_TOKEN": "x"}, "SLACK_CHANNEL is not set"),
        ({"SLACK_CHANNEL": "#a"}, "SLACK_TOKEN is not set"),
        ({"ALERT_WEBHOOK_URL": "x", "ALERT_MIN_SEVERITY": "high"}, "ALERT_MIN_SEVERITY must be a number, got 'high'"),
        ({"ALERT_WEBHOOK_URL": "x", "ALERT_MIN_SEVERITY": "2"}, "ALERT_MIN_SEVERITY must be between 0.0 and 1.0"),
        ({"ALERT_WEBHOOK_URL": "x", "FRESHNESS_LAG_HOURS": "0"}, "FRESHNESS_LAG_HOURS must be at least 1"),
        ({"ALERT_WEBHOOK_URL": "x", "UI_BASE_URL": "localhost:3000"}, "UI_BASE_URL must be an http(s) URL"),
    ],
)
def test_bad_alert_settings_name_the_variable(environ, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        AlertSettings.from_env(environ)
