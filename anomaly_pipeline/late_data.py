"""Late data: when the stream changes an hour that already has a verdict, that hour and every later
judged hour whose history includes it are judged again, in one run.

`late_data_sensor` reads the `hourly_tweet_metrics` materializations recorded since its cursor.
One recorded after the hour's newest verdict (a streaming run recomputing an hour that late or
moved tweets touched) marks the hour as changed. The sensor then requests
one `rejudge_anomalies_job` run over [the earliest changed hour, the newest judged hour]: the
online detector's memory is longer than any such range, so every verdict that saw the hour is
renewed. The run is tagged `reason: late data` and lists the changed hours, so the UI shows why.
"""

from __future__ import annotations

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from anomaly_pipeline.assets.anomalies import tweet_anomalies
from anomaly_pipeline.assets.metrics import hourly_tweet_metrics
from anomaly_pipeline.partitions import HOURLY_PARTITIONS

LATE_DATA_SENSOR = "late_data_sensor"
MAX_RECORDS_PER_TICK = 1000
MAX_LISTED_HOURS = 20  # changed hours named in the run's tags

rejudge_job = dg.define_asset_job(
    "rejudge_anomalies_job", selection=[tweet_anomalies], partitions_def=HOURLY_PARTITIONS,
    description="Judge again the hours whose history changed after they were judged (late data).",
)  # fmt: skip


def _latest_verdicts(instance: dg.DagsterInstance, partitions: set[str]) -> dict[str, int]:
    """The storage id of the newest `tweet_anomalies` materialization of each of `partitions`."""
    latest: dict[str, int] = {}
    cursor = None
    while True:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=tweet_anomalies.key, asset_partitions=sorted(partitions)),
            limit=MAX_RECORDS_PER_TICK,
            cursor=cursor,
        )
        for record in page.records:
            latest[record.partition_key] = max(latest.get(record.partition_key, 0), record.storage_id)
        if not page.has_more:
            return latest
        cursor = page.cursor


def changed_judged_hours(instance: dg.DagsterInstance, after_storage_id: int | None) -> tuple[list[str], int | None]:
    """Partition keys whose metrics changed, since `after_storage_id`, after their newest verdict;
    and the newest storage id read."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=hourly_tweet_metrics.key, after_storage_id=after_storage_id),
        limit=MAX_RECORDS_PER_TICK,
        ascending=True,
    ).records
    if not records:
        return [], after_storage_id
    verdicts = _latest_verdicts(instance, {r.partition_key for r in records if r.partition_key})
    changed = {r.partition_key for r in records if r.partition_key in verdicts and verdicts[r.partition_key] < r.storage_id}
    return sorted(changed), records[-1].storage_id


@dg.sensor(
    name=LATE_DATA_SENSOR,
    job=rejudge_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def late_data_sensor(context: dg.SensorEvaluationContext):
    """Re-judges hours whose metrics changed after their verdict, and every later judged hour."""
    cursor = int(context.cursor) if context.cursor else None
    changed, newest = changed_judged_hours(context.instance, cursor)
    if newest is not None:
        context.update_cursor(str(newest))
    if not changed:
        return dg.SkipReason("No judged hour changed since it was judged.")
    last_judged = max(context.instance.get_materialized_partitions(tweet_anomalies.key))
    listed = ", ".join(changed[:MAX_LISTED_HOURS]) + (" ..." if len(changed) > MAX_LISTED_HOURS else "")
    return dg.RunRequest(
        run_key=f"late-data-{newest}",
        tags={
            ASSET_PARTITION_RANGE_START_TAG: changed[0],
            ASSET_PARTITION_RANGE_END_TAG: last_judged,
            "reason": "late data",
            "changed_hours": listed,
        },
    )
