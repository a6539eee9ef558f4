"""One hour is judged by one run: `history_sensor` never takes the hour `hourly_detection_schedule`
owns, nor an hour a detection run has queued or in flight (both once judged 19:00 at 20:03, and the
history run re-published that hour's tweets)."""

from __future__ import annotations

from datetime import datetime, timedelta

import dagster as dg
import pytest
from dagster._core.storage.tags import PARTITION_NAME_TAG
from dagster._core.utils import make_new_run_id

from anomaly_pipeline.automation import build_history_sensor, detect_job, hourly_detection_schedule
from anomaly_pipeline.partitions import hours_between, partition_key
from anomaly_pipeline_tests.conftest import utc

HISTORY_HOURS = 24
NEWEST_CLOSED = utc(2026, 6, 1, 19)
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def _judge(instance: dg.DagsterInstance, hours: list[datetime]) -> None:
    for hour in hours:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key="tweet_anomalies", partition=partition_key(hour))
        )


def _history_tick(instance: dg.DagsterInstance, now: datetime):
    sensor = build_history_sensor(HISTORY_HOURS, first_hour=utc(2026, 1, 1), clock=lambda: now)
    return sensor(dg.build_sensor_context(instance=instance))


def _requested_hours(request) -> set[str]:
    if isinstance(request, dg.SkipReason):
        return set()
    if request.partition_key:
        return {request.partition_key}
    start = datetime.strptime(request.tags[RANGE_START], "%Y-%m-%d-%H:%M").replace(tzinfo=NEWEST_CLOSED.tzinfo)
    end = datetime.strptime(request.tags[RANGE_END], "%Y-%m-%d-%H:%M").replace(tzinfo=NEWEST_CLOSED.tzinfo)
    return {partition_key(hour) for hour in hours_between(start, end + timedelta(hours=1))}


@pytest.mark.parametrize("minute", [1, 3, 19])
def test_the_schedule_and_the_history_sensor_never_take_the_same_hour(instance, minute):
    """Every older hour judged; it is 20:MM. The schedule's 20:03 tick takes 19:00; the history
    sensor, ticking at any minute around it, must not."""
    _judge(instance, hours_between(NEWEST_CLOSED - timedelta(hours=HISTORY_HOURS), NEWEST_CLOSED))
    now = NEWEST_CLOSED + timedelta(hours=1, minutes=minute)
    schedule_hours = _requested_hours(
        hourly_detection_schedule(dg.build_schedule_context(scheduled_execution_time=NEWEST_CLOSED + timedelta(hours=1, minutes=3)))
    )
    assert schedule_hours == {"2026-06-01-19:00"}
    history = _history_tick(instance, now)
    assert isinstance(history, dg.SkipReason), history
    assert not schedule_hours & _requested_hours(history)


def test_first_start_seeds_up_to_the_hour_the_schedule_is_about_to_judge(instance):
    seed = _history_tick(instance, NEWEST_CLOSED + timedelta(hours=1, minutes=1))
    assert seed.tags[RANGE_START] == partition_key(NEWEST_CLOSED + timedelta(hours=1) - timedelta(hours=HISTORY_HOURS))
    assert seed.tags[RANGE_END] == "2026-06-01-18:00"  # 19:00 is the schedule's, at 20:03


def test_an_hour_the_schedule_missed_is_filled_once_its_turn_has_passed(instance):
    _judge(instance, hours_between(NEWEST_CLOSED - timedelta(hours=HISTORY_HOURS), NEWEST_CLOSED))
    fill = _history_tick(instance, NEWEST_CLOSED + timedelta(hours=1, minutes=25))
    assert _requested_hours(fill) == {"2026-06-01-19:00"}


def test_an_hour_a_detection_run_is_judging_is_left_to_it(instance):
    """The schedule's run for 19:00 is still queued or running at 20:25: the history sensor waits;
    once it has finished (and failed), the hour is the history sensor's to fill."""
    _judge(instance, hours_between(NEWEST_CLOSED - timedelta(hours=HISTORY_HOURS), NEWEST_CLOSED))
    now = NEWEST_CLOSED + timedelta(hours=1, minutes=25)
    for status in (dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTED):
        run = instance.add_run(dg.DagsterRun(
            job_name=detect_job.name, run_id=make_new_run_id(), status=status,
            tags={PARTITION_NAME_TAG: partition_key(NEWEST_CLOSED)},
        ))  # fmt: skip
        assert isinstance(_history_tick(instance, now), dg.SkipReason), status
        instance.report_run_failed(run)
    assert _requested_hours(_history_tick(instance, now)) == {"2026-06-01-19:00"}


def test_a_fill_never_spans_an_hour_taken_in_between(instance):
    """Two gaps with judged hours between them: one run per gap, oldest first, never re-judging
    the hours between."""
    window = hours_between(NEWEST_CLOSED - timedelta(hours=HISTORY_HOURS - 1), NEWEST_CLOSED + timedelta(hours=1))
    gaps = [window[5:8], window[20:22]]
    _judge(instance, [hour for hour in window if not any(hour in gap for gap in gaps)])
    now = NEWEST_CLOSED + timedelta(hours=1, minutes=30)
    assert _requested_hours(_history_tick(instance, now)) == {partition_key(hour) for hour in gaps[0]}
    _judge(instance, gaps[0])
    assert _requested_hours(_history_tick(instance, now)) == {partition_key(hour) for hour in gaps[1]}
