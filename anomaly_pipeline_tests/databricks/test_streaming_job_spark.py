"""The Databricks streaming job's logic on a real local SparkSession: JSON file source,
`availableNow` trigger, `foreachBatch` MERGEs into local Delta tables (deltalake), checked against
the embedded engine run on the same events."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from anomaly_pipeline.partitions import DEFAULT_START, FIRST_HOUR
from anomaly_pipeline.resources.delta_store import DeltaStore
from anomaly_pipeline.resources.event_stream import EventRecord
from anomaly_pipeline.resources.stream_engine import LocalStreamEngine
from anomaly_pipeline.streaming.events import MAX_COUNT, decode_body, printable_body
from anomaly_pipeline.streaming.parse import MAX_CREATED_AHEAD, MalformedEvent, parse_event_body
from anomaly_pipeline.tables import DEAD_LETTER_EVENTS, HOURLY_TWEET_METRICS, TWEETS

if shutil.which("java") is None:
    pytest.skip("Java is not installed: a local SparkSession cannot start", allow_module_level=True)

pyspark = pytest.importorskip("pyspark")

from anomaly_pipeline.databricks import streaming_job as job  # noqa: E402

BASE = datetime(2026, 11, 22, 18, 0, tzinfo=timezone.utc)


def _body(tweet_id, minute, likes, **extra):
    event = {"id": str(tweet_id), "created_at": (BASE + timedelta(minutes=minute)).isoformat(),
             "like_count": likes, "retweet_count": 1, "reply_count": 0, "quote_count": 0,
             "lang": "en", "query": "#Azure"}
    event.update(extra)
    return json.dumps(event)


def _bodies() -> list[str]:
    return [
        _body(1, 5, 3),
        _body(2, 10, 4),
        _body(1, 5, 3),  # redelivered copy of the first event
        _body(3, 70, 10, retweet_count=2, quote_count=1),
        _body(2, 10, 7),  # tweet 2 again with more likes: the latest counts win
        json.dumps({"id": 4, "created_at": "2026-11-22T19:59:59+01:00", "like_count": 0}),
        json.dumps({"id": "5", "created_at": "2026-11-22T20:01:00.123456Z", "like_count": 2,
                    "lang": None}),
        "not json",
        "[1, 2]",
        json.dumps({"id": "x1", "created_at": "2026-11-22T18:00:00Z", "like_count": 1}),
        json.dumps({"id": "6", "created_at": "2026-11-22T18:00:00", "like_count": 1}),
        json.dumps({"id": "7", "created_at": "2026-11-22T18:00:00Z", "like_count": -1}),
        json.dumps({"id": "8", "created_at": "2026-11-22T18:00:00Z", "like_count": "3"}),
        json.dumps({"id": "9", "created_at": "2026-11-22T18:00:00Z"}),
        json.dumps({"id": "10", "created_at": "2026-11-22T18:00:00Z", "like_count": 1.5}),
        json.dumps({"id": "11", "created_at": "2026-11-22T18:00:00Z", "like_count": 1, "lang": 5}),
        json.dumps({"id": -12, "created_at": "2026-11-22T18:00:00Z", "like_count": 1}),
        json.dumps({"id": "99999999999999999999", "created_at": "2026-11-22T18:00:00Z", "like_count": 1}),
        json.dumps({"created_at": "2026-11-22T18:00:00Z", "like_count": 1}),
        json.dumps({"id": True, "created_at": "2026-11-22T18:00:00Z", "like_count": 1}),
        json.dumps({"id": "13", "created_at": "2026-13-45T18:00:00Z", "like_count": 1}),
        *POISON_BODIES,
    ]


POISON_BODIES = [  # out of range: created_at (overflowing its UTC conversion, or not), counts
    json.dumps({"id": "20", "created_at": "0001-01-01T00:00:00+01:00", "like_count": 1}),
    json.dumps({"id": "21", "created_at": "9999-12-31T23:59:59-01:00", "like_count": 1}),
    json.dumps({"id": "22", "created_at": "9999-06-01T00:00:00Z", "like_count": 1}),
    json.dumps({"id": "23", "created_at": (BASE + timedelta(days=3)).isoformat(), "like_count": 1}),
    json.dumps({"id": "24", "created_at": (FIRST_HOUR - timedelta(seconds=1)).isoformat(), "like_count": 1}),
    json.dumps({"id": "25", "created_at": "2026-11-22T18:00:00Z", "like_count": 2**63 - 1}),
    json.dumps({"id": "26", "created_at": "2026-11-22T18:00:00Z", "like_count": 1, "retweet_count": MAX_COUNT + 1}),
    json.dumps({"id": "27", "created_at": "2026-11-22T18:00:00Z", "like_count": 1, "lang": "\ud800"}),
]


LATER_BODIES = [
    _body(1, 5, 3),  # redelivered again in a later run: dropped within the watermark
    _body(14, 30, 5),  # a new tweet in an hour already aggregated: the hour is recomputed exactly
    _body(3, 70, 12, retweet_count=2, quote_count=1),  # tweet 3's newer counts
    json.dumps({"id": 4, "created_at": "2026-11-22T21:30:00Z", "like_count": 1}),  # moved 3 hours
    json.dumps({"id": "5", "created_at": "2026-11-23T02:00:00Z", "like_count": 2}),  # to the next day
    "{}",
]


def _records(bodies=None, first_sequence=0) -> list[EventRecord]:
    bodies = _bodies() if bodies is None else bodies
    return [
        EventRecord(partition_id=str(i % 2), sequence_number=i, body=body,
                    enqueued_time=BASE + timedelta(seconds=i))
        for i, body in enumerate(bodies, start=first_sequence)
    ]


def _all_records() -> list[EventRecord]:
    first = _records()
    return first + _records(LATER_BODIES, first_sequence=len(first))


def _write_events(directory, records, name):
    directory.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"partition_id": r.partition_id, "sequence_number": r.sequence_number,
                         "enqueued_time": r.enqueued_time.isoformat(), "body": r.body})
             for r in records]
    (directory / name).write_text("\n".join(lines) + "\n")


class _ListStream:
    """The embedded engine's view of an event stream, over a fixed list of records."""

    def __init__(self, records):
        self.records = records
        self.positions: dict[str, int] = {}

    def load_checkpoints(self, consumer_group):
        return dict(self.positions)

    def save_checkpoints(self, positions, consumer_group):
        self.positions = dict(positions)

    def read(self, after, max_events):
        return [r for r in self.records if r.sequence_number > after.get(r.partition_id, -1)][:max_events]


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("anomaly-pipeline-databricks-test")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.streaming.noDataMicroBatches.enabled", "false")
        .config("spark.driver.extraJavaOptions", "-Dderby.system.home=/tmp")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def spark_run(spark, tmp_path_factory):
    """Two availableNow runs on one checkpoint over the same input, then a run with new events.

    Returns the store and the table versions after the first and the second run."""
    root = tmp_path_factory.mktemp("spark")
    events_dir, delta_root, checkpoint = root / "events", root / "delta", root / "checkpoint"
    _write_events(events_dir, _records(), "part-0.json")
    sink = job.DeltalakeSink(str(delta_root))
    store = DeltaStore(root_uri=str(delta_root))

    def run_once():
        query = job.start_query(spark, {"format": "json", "path": str(events_dir)}, sink,
                                checkpoint_location=str(checkpoint), trigger="availableNow",
                                earliest=FIRST_HOUR)
        query.awaitTermination(120)
        assert query.exception() is None

    run_once()
    first = {spec.name: store.version(spec) for spec in (TWEETS, HOURLY_TWEET_METRICS, DEAD_LETTER_EVENTS)}
    run_once()
    second = {spec.name: store.version(spec) for spec in (TWEETS, HOURLY_TWEET_METRICS, DEAD_LETTER_EVENTS)}
    _write_events(events_dir, _all_records()[len(_records()):], "part-1.json")
    run_once()
    return store, first, second


def _embedded(tmp_path):
    """The embedded engine over the same events, in the same two runs as `spark_run`."""
    store = DeltaStore(root_uri=str(tmp_path / "embedded"))
    stream = _ListStream(_records())
    LocalStreamEngine().process_available(stream, store)
    stream.records = _all_records()
    LocalStreamEngine().process_available(stream, store)
    return store


def _frame(store, spec, sort):
    return store.scan(spec).collect().sort(sort)


def test_schemas_mirror_the_table_specs():
    from pyspark.sql.pandas.types import from_arrow_schema

    for spec in (TWEETS, HOURLY_TWEET_METRICS, DEAD_LETTER_EVENTS):
        spark_schema, keys, partitions = job.TABLES[spec.name]
        assert spark_schema == from_arrow_schema(spec.schema), spec.name
        assert keys == spec.merge_key
        assert partitions == spec.partition_by
    assert job.COUNTED_TABLES == ("tweets", "hourly_tweet_metrics")


def test_bounds_mirror_the_embedded_rules():
    assert job.MAX_COUNT == MAX_COUNT
    assert job.MAX_CREATED_AHEAD_HOURS * 3600 == MAX_CREATED_AHEAD.total_seconds()
    assert job.DEFAULT_PARTITIONS_START == DEFAULT_START
    assert job.build_arg_parser().parse_args(
        ["--delta-root", "d", "--checkpoint", "c", "--eventhub-namespace", "n", "--eventhub-name", "e",
         "--partitions-start", "2026-03-01"]
    ).partitions_start == datetime(2026, 3, 1, tzinfo=timezone.utc)


def test_hourly_metrics_equal_the_embedded_engine(spark_run, tmp_path):
    spark_store, _, _ = spark_run
    embedded = _embedded(tmp_path)
    metrics = _frame(spark_store, HOURLY_TWEET_METRICS, "hour").drop("updated_at")
    expected = _frame(embedded, HOURLY_TWEET_METRICS, "hour").drop("updated_at")
    assert metrics.equals(expected), f"\n{metrics}\n{expected}"
    # hand-checked: 18:00 holds tweets 1 (3 likes), 2 (7 likes, its latest event), 4
    # (19:59:59+01:00 = 18:59:59Z, 0 likes) until the later run moves it to 21:00 (1 like) and
    # adds tweet 14 (5 likes); tweet 5 leaves 20:00 for the next day
    first = metrics.row(0, named=True)
    assert first["hour"] == BASE and first["tweet_count"] == 3 and first["like_sum"] == 15
    assert first["avg_likes"] == pytest.approx(15 / 3)
    by_hour = dict(zip(metrics["hour"], metrics["tweet_count"]))
    assert by_hour == {BASE: 3, BASE + timedelta(hours=1): 1, BASE + timedelta(hours=2): 0,
                       BASE + timedelta(hours=3): 1, BASE + timedelta(hours=8): 1}
    assert metrics.filter(pl.col("hour") == BASE + timedelta(hours=1)).get_column("like_sum").item() == 12


def test_tweets_and_dead_letters_equal_the_embedded_engine(spark_run, tmp_path):
    spark_store, _, _ = spark_run
    embedded = _embedded(tmp_path)
    tweets = _frame(spark_store, TWEETS, "tweet_id").drop("ingested_at")
    assert tweets.equals(_frame(embedded, TWEETS, "tweet_id").drop("ingested_at"))
    assert tweets.get_column("tweet_id").to_list() == [1, 2, 3, 4, 5, 14]
    assert tweets.filter(pl.col("tweet_id") == 2).get_column("like_count").item() == 7

    dead = _frame(spark_store, DEAD_LETTER_EVENTS, "sequence_number")
    expected = _frame(embedded, DEAD_LETTER_EVENTS, "sequence_number")
    assert dead.select("partition_id", "sequence_number", "enqueued_time", "body").equals(
        expected.select("partition_id", "sequence_number", "enqueued_time", "body"))
    assert dead.height == 15 + len(POISON_BODIES) and dead.get_column("reason").null_count() == 0
    reasons = dict(zip(dead.get_column("body"), dead.get_column("reason")))
    assert reasons["not json"] == "body is not valid JSON"
    assert reasons["[1, 2]"] == "body is a JSON array, not an object"
    # the malformed events the embedded engine rejects are exactly those the Spark job rejects
    for body, reason in reasons.items():
        with pytest.raises(MalformedEvent):
            parse_event_body(body, BASE)
        assert reason
    assert tweets.filter(pl.col("tweet_id").is_in([4, 5])).get_column("day").to_list() == [
        BASE.date(), (BASE + timedelta(days=1)).date()]


def test_second_available_now_run_adds_nothing(spark_run):
    _, first, second = spark_run
    assert first == second


TIMESTAMP_VARIANTS = [
    "2026-11-22T18:04:05+0530", "2026-11-22 18:04:05Z", "2026-11-22T18:04Z",
    "2026-11-22T18:04:05.5+01:00", "20261122T180405Z", "2026-11-22T18:04:05+05",
    "2026-11-22T18:04:05.1234567Z", "2026-11-22T18:04:05-00:00", "2026-11-22T18:04:05z",
    "2026-11-22T24:00:00Z", "2026-02-30T10:00:00Z", "2026-11-22", 1795372637,
]


def test_parse_events_matches_embedded_parser(spark):
    bodies = _bodies() + LATER_BODIES + [
        json.dumps({"id": "1", "created_at": moment, "like_count": 1}) for moment in TIMESTAMP_VARIANTS
    ] + [json.dumps({"id": 1e3, "created_at": "2026-11-22T18:04:05Z", "like_count": 1}),
         json.dumps({"id": "1", "created_at": "2026-11-22T18:04:05Z", "like_count": True}),
         json.dumps({"id": "0012", "created_at": "2026-11-22T18:04:05Z", "like_count": 0,
                     "reply_count": None, "extra": [1]})]
    rows = [(str(i), i, BASE, body) for i, body in enumerate(bodies)]
    parsed = job.parse_events(spark.createDataFrame(rows, job.RAW_EVENT_SCHEMA), FIRST_HOUR).collect()
    for row, body in zip(sorted(parsed, key=lambda r: r.sequence_number), bodies):
        try:
            expected = parse_event_body(body, BASE)
        except MalformedEvent:
            expected = None
        assert (row.reason is None) == (expected is not None), (body, row.reason)
        if expected is not None:
            created_at = row.created_at.astimezone(timezone.utc)  # collected as naive local time
            got = (row.tweet_id, created_at, row.like_count, row.retweet_count, row.reply_count,
                   row.quote_count, row.lang, row.query)
            assert got == expected, body


NOT_JSON = "body is not valid JSON"
NOT_UTF8 = [b'{"id": "30", "created_at": "2026-11-22T18:00:00Z", "like_count": 1, "lang": "\xff"}', b"\xc3\x28"]


def test_poison_events_get_the_embedded_reasons(spark):
    """Each class of poison event, as Kafka records (bytes): the same dead-letter reason and stored
    body as the embedded engine, and the good event between them is valid."""
    good = _body(31, 1, 2).encode()
    values = [*NOT_UTF8, good, *(body.encode() for body in POISON_BODIES)]
    records = spark.createDataFrame(
        [(0, offset, BASE, value) for offset, value in enumerate(values)],
        "partition int, offset long, timestamp timestamp, value binary",
    )
    parsed = job.parse_events(job.kafka_to_raw_events(records), FIRST_HOUR).orderBy("sequence_number").collect()
    for row, value in zip(parsed, values):
        body = decode_body(value)
        try:
            parse_event_body(body, BASE)
            expected = None
        except MalformedEvent as problem:
            expected = str(problem)
        if expected and expected.startswith(NOT_JSON):
            expected = NOT_JSON  # the embedded parser adds its JSON parser's message
        assert row.reason == expected, value
        assert row.body == printable_body(body)
    assert [row.tweet_id for row in parsed if row.reason is None] == [31]
    assert [row.reason for row in parsed[:2]] == ["body is not valid UTF-8"] * 2


def test_a_deleted_counted_table_fails_the_next_batch_and_is_not_recreated(spark, tmp_path):
    from pyspark.errors import StreamingQueryException

    events_dir, delta_root = tmp_path / "events", tmp_path / "delta"
    sink, store = job.DeltalakeSink(str(delta_root)), DeltaStore(root_uri=str(delta_root))

    def run_once():
        query = job.start_query(spark, {"format": "json", "path": str(events_dir)}, sink,
                                checkpoint_location=str(tmp_path / "checkpoint"), trigger="availableNow")
        try:
            query.awaitTermination(120)
        except StreamingQueryException as problem:
            return problem
        return query.exception()

    _write_events(events_dir, _records(["not json"]), "part-0.json")
    assert run_once() is None
    assert all(store.exists(spec) for spec in (TWEETS, HOURLY_TWEET_METRICS, DEAD_LETTER_EVENTS))
    shutil.rmtree(store.table_uri(TWEETS))
    before = store.version(HOURLY_TWEET_METRICS)
    _write_events(events_dir, _records([_body(1, 5, 3)], first_sequence=1), "part-1.json")
    problem = run_once()
    assert problem is not None and "Delta table 'tweets' is missing" in str(problem)
    assert not store.exists(TWEETS) and store.version(HOURLY_TWEET_METRICS) == before
