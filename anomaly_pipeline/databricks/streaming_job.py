"""The Databricks variant of the streaming step: a Spark structured-streaming job.

Event Hubs (through its Kafka-compatible endpoint) -> parse/validate (malformed or out-of-range
events, and bodies that are not UTF-8, become dead letters with a reason) -> drop redelivered copies
within a watermark -> `foreachBatch`: upsert the latest event of each tweet into `tweets` (one row
per id across the table), recompute every hour a tweet left or entered exactly from `tweets` with a
1-hour window aggregation and MERGE it into `hourly_tweet_metrics`, MERGE the dead letters into
`dead_letter_events`. The tables are created by the query's first batch; a later batch that finds
`tweets` or `hourly_tweet_metrics` missing fails naming it instead of recreating it empty. The
rules and table schemas are those of the embedded engine (`anomaly_pipeline.streaming`,
`anomaly_pipeline.tables`); the tests run both on the same events.

The module is self-contained (only pyspark at import time) so that it can be uploaded as a single
file and run as a Databricks `spark_python_task`:

    streaming_job.py --mode available-now --delta-root abfss://... --checkpoint abfss://.../_ckpt \
        --eventhub-namespace NS --eventhub-name tweets --secret-scope anomaly --secret-key eh-conn \
        --partitions-start 2025-01-01

The Event Hubs connection string (the Kafka SASL password, user `$ConnectionString`) comes from the
Databricks secret `--secret-scope/--secret-key`, or else from the environment variable
`EVENTHUB_CONNECTION_STRING` (e.g. a cluster env var `{{secrets/<scope>/<key>}}`). It is never
printed or logged. Needs Spark >= 4.0 or Databricks Runtime >= 15.4 (VARIANT type checks,
`dropDuplicatesWithinWatermark`).

Locally (tests), the same functions run on a local SparkSession with a JSON file source and
`DeltalakeSink`, which writes through `anomaly_pipeline.resources.delta_store.DeltaStore`
(the `deltalake` package) because delta-spark is not needed there.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from datetime import datetime, timezone
from typing import Protocol

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

# --- table schemas: mirror anomaly_pipeline.tables exactly (a test checks they are equal) -------

TWEETS_SCHEMA = T.StructType(
    [
        T.StructField("tweet_id", T.LongType()),
        T.StructField("created_at", T.TimestampType()),
        T.StructField("hour", T.TimestampType()),
        T.StructField("day", T.DateType()),
        T.StructField("like_count", T.LongType()),
        T.StructField("retweet_count", T.LongType()),
        T.StructField("reply_count", T.LongType()),
        T.StructField("quote_count", T.LongType()),
        T.StructField("lang", T.StringType()),
        T.StructField("query", T.StringType()),
        T.StructField("ingested_at", T.TimestampType()),
    ]
)
HOURLY_SCHEMA = T.StructType(
    [
        T.StructField("hour", T.TimestampType()),
        T.StructField("tweet_count", T.LongType()),
        T.StructField("like_sum", T.LongType()),
        T.StructField("avg_likes", T.DoubleType()),
        T.StructField("retweet_sum", T.LongType()),
        T.StructField("reply_sum", T.LongType()),
        T.StructField("quote_sum", T.LongType()),
        T.StructField("updated_at", T.TimestampType()),
    ]
)
DEAD_LETTER_SCHEMA = T.StructType(
    [
        T.StructField("partition_id", T.StringType()),
        T.StructField("sequence_number", T.LongType()),
        T.StructField("enqueued_time", T.TimestampType()),
        T.StructField("body", T.StringType()),
        T.StructField("reason", T.StringType()),
        T.StructField("received_at", T.TimestampType()),
    ]
)
TABLES = {
    # name: (schema, merge key (unique across the table), partition columns)
    "tweets": (TWEETS_SCHEMA, ("tweet_id",), ("day",)),
    "hourly_tweet_metrics": (HOURLY_SCHEMA, ("hour",), ()),
    "dead_letter_events": (DEAD_LETTER_SCHEMA, ("partition_id", "sequence_number"), ()),
}
COUNTED_TABLES = ("tweets", "hourly_tweet_metrics")
"""Once the query has committed a batch, these must exist (see `prepare_tables`)."""

RAW_EVENT_SCHEMA = T.StructType(
    [
        T.StructField("partition_id", T.StringType()),
        T.StructField("sequence_number", T.LongType()),
        T.StructField("enqueued_time", T.TimestampType()),
        T.StructField("body", T.StringType()),
    ]
)
"""One stream event as the job sees it (also the line format of the local JSON file source)."""

COUNT_FIELDS = ("like_count", "retweet_count", "reply_count", "quote_count")
EVENT_FIELDS = ("id", "created_at", *COUNT_FIELDS, "lang", "query")
EVENT_SCHEMA = T.StructType([T.StructField(name, T.StringType()) for name in EVENT_FIELDS])
"""`from_json` schema of an event body: every field as its JSON text, whatever its JSON type; the
JSON type of each field is checked separately on a VARIANT parse of the body."""

MAX_COUNT = 2**31 - 1
"""The largest count accepted (`anomaly_pipeline.streaming.events.MAX_COUNT`)."""
MAX_CREATED_AHEAD_HOURS = 24
"""How far after its enqueued time a `created_at` may lie (`streaming.parse.MAX_CREATED_AHEAD`)."""
DEFAULT_PARTITIONS_START = "2025-01-01"
"""The first partition's day when `--partitions-start` / `PARTITIONS_START` is not given
(`anomaly_pipeline.partitions.DEFAULT_START`); no `created_at` before it is accepted."""
_INTEGER_TYPES = ("TINYINT", "SMALLINT", "INT", "BIGINT")
_ISO_WITH_ZONE = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}(:?\d{2})?)$"
DEFAULT_WATERMARK = "2 hours"
DEFAULT_LOGIN_MODULE = "kafkashaded.org.apache.kafka.common.security.plain.PlainLoginModule"


# --- source -------------------------------------------------------------------------------------


def eventhubs_kafka_options(
    namespace: str,
    eventhub: str,
    connection_string: str,
    *,
    login_module: str = DEFAULT_LOGIN_MODULE,
    starting_offsets: str = "earliest",
    max_offsets_per_trigger: int = 200_000,
) -> dict[str, str]:
    """Kafka source options for an Event Hubs namespace's Kafka endpoint (port 9093, SASL_SSL PLAIN,
    user `$ConnectionString`, password = the namespace or hub connection string).

    `login_module` is Databricks' shaded class; on open-source Spark use
    `org.apache.kafka.common.security.plain.PlainLoginModule`.
    """
    secret = connection_string.replace("\\", "\\\\").replace('"', '\\"')
    return {
        "format": "kafka",
        "kafka.bootstrap.servers": f"{namespace}.servicebus.windows.net:9093",
        "subscribe": eventhub,
        "kafka.security.protocol": "SASL_SSL",
        "kafka.sasl.mechanism": "PLAIN",
        "kafka.sasl.jaas.config": (
            f'{login_module} required username="$ConnectionString" password="{secret}";'
        ),
        "kafka.request.timeout.ms": "60000",
        "kafka.session.timeout.ms": "30000",
        "startingOffsets": starting_offsets,
        "failOnDataLoss": "false",
        "maxOffsetsPerTrigger": str(max_offsets_per_trigger),
    }


def build_event_stream(spark: SparkSession, source_options: dict[str, str]) -> DataFrame:
    """A streaming DataFrame of `RAW_EVENT_SCHEMA` rows.

    `source_options["format"]` is `kafka` (see `eventhubs_kafka_options`: partition -> partition_id,
    Kafka offset -> sequence_number, record timestamp -> enqueued_time, value -> body) or `json`
    (local tests: `path` is a directory of JSON-lines files with the `RAW_EVENT_SCHEMA` fields).
    """
    options = dict(source_options)
    fmt = options.pop("format")
    if fmt == "kafka":
        return kafka_to_raw_events(spark.readStream.format("kafka").options(**options).load())
    if fmt == "json":
        path = options.pop("path")
        return spark.readStream.schema(RAW_EVENT_SCHEMA).options(**options).json(path)
    raise ValueError(f"unsupported source format {fmt!r} (kafka or json)")


def kafka_to_raw_events(records: DataFrame) -> DataFrame:
    """Kafka source rows as `RAW_EVENT_SCHEMA` rows. The `value` bytes become the body unchanged,
    even when they are not UTF-8 (`parse_events` dead-letters those)."""
    return records.select(
        F.col("partition").cast("string").alias("partition_id"),
        F.col("offset").cast("long").alias("sequence_number"),
        F.col("timestamp").alias("enqueued_time"),
        F.col("value").cast("string").alias("body"),
    )


# --- parse / validate ---------------------------------------------------------------------------


def _json_type(field: str) -> Column:
    """The JSON type of a top-level body field ('STRING', 'BIGINT', 'OBJECT<...>', 'VOID' for
    null, null when absent), from the VARIANT parse `_v`."""
    return F.expr(f"schema_of_variant(variant_get(_v, '$.{field}'))")


def _absent(field: str) -> Column:
    kind = _json_type(field)
    return kind.isNull() | (kind == "VOID")


def _integer_problem(field: str, required: bool) -> Column:
    kind = _json_type(field)
    value = F.expr(f"try_cast(_e.{field} AS BIGINT)")
    whole = kind.isin(*_INTEGER_TYPES) | kind.rlike(r"^DECIMAL\(\d+,0\)$")
    return (
        F.when(_absent(field), F.lit(f"missing field '{field}'") if required else F.lit(None))
        .when(
            kind.isin(*_INTEGER_TYPES) & (value >= 0) & (value <= MAX_COUNT),
            F.lit(None),
        )
        .when(
            whole & ~F.col(f"_e.{field}").startswith("-"),
            F.concat(
                F.lit(f"field '{field}' is above {MAX_COUNT}, the largest count accepted: "),
                F.col(f"_e.{field}"),
            ),
        )
        .when(
            whole,
            F.concat(F.lit(f"field '{field}' must be a non-negative integer, got "), F.col(f"_e.{field}")),
        )
        .otherwise(
            F.concat(F.lit(f"field '{field}' must be an integer, got "), F.lower(kind))
        )
    )


def _string_problem(field: str) -> Column:
    kind = _json_type(field)
    return F.when(_absent(field) | (kind == "STRING"), F.lit(None)).otherwise(
        F.concat(F.lit(f"field '{field}' must be a string, got "), F.lower(kind))
    )


def _normalize_iso(text: Column) -> Column:
    """ISO-8601 variants Python's `datetime.fromisoformat` accepts, rewritten to the extended
    form Spark's timestamp cast reads: basic format (20261122T180405Z), no seconds (18:04Z),
    more than 6 fractional digits (truncated to microseconds, as Python does)."""
    text = F.regexp_replace(text, r"^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})", "$1-$2-$3T$4:$5:$6")
    text = F.regexp_replace(text, r"^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2})(Z|[+-])", "$1:00$2")
    return F.regexp_replace(text, r"(\.\d{6})\d+", "$1")


def parse_events(
    df: DataFrame,
    earliest: datetime | None = None,
    max_ahead_hours: int = MAX_CREATED_AHEAD_HOURS,
) -> DataFrame:
    """Parse event bodies: the input columns plus the `TWEETS` columns (except `ingested_at`) and
    `reason`, null for a valid tweet, else why the event is a dead letter (the first rule it breaks).

    Rules (those of `anomaly_pipeline.streaming.parse`): the body is UTF-8 holding a JSON object;
    `id` a decimal string or non-negative integer (<= 2**63-1); `created_at` ISO-8601 with a
    timezone -> UTC, not before `earliest` (default `DEFAULT_PARTITIONS_START`) and at most
    `max_ahead_hours` after `enqueued_time`; `like_count` a required integer in 0..`MAX_COUNT`; the
    other counts optional integers in that range (default 0); `lang`/`query` optional strings.
    A dead letter's `body` is made valid UTF-8 (each invalid byte becomes U+FFFD).
    """
    earliest = earliest or partitions_start(DEFAULT_PARTITIONS_START)
    df = df.withColumn("_v", F.expr("try_parse_json(body)")).withColumn(
        "_e", F.from_json("body", EVENT_SCHEMA)
    )
    body_kind = F.expr("schema_of_variant(_v)")
    id_kind = _json_type("id")
    id_value = F.expr("try_cast(_e.id AS BIGINT)")
    created_text = F.col("_e.created_at")
    created_at = F.try_to_timestamp(_normalize_iso(created_text))
    checks = [
        F.when(~F.is_valid_utf8("body"), F.lit("body is not valid UTF-8")),
        F.when(F.col("_v").isNull(), F.lit("body is not valid JSON")),
        F.when(
            ~body_kind.startswith("OBJECT"),
            F.concat(F.lit("body is a JSON "), F.lower(F.regexp_extract(body_kind, r"^(\w+)", 1)),
                     F.lit(", not an object")),
        ),
        F.when(_absent("id"), F.lit("missing field 'id'"))
        .when(
            (id_kind == "STRING") & ~F.col("_e.id").rlike("^[0-9]+$"),
            F.concat(F.lit("field 'id' is not a decimal number: "), F.substring(F.col("_e.id"), 1, 40)),
        )
        .when(
            ((id_kind == "STRING") | id_kind.isin(*_INTEGER_TYPES) | id_kind.rlike(r"^DECIMAL\(\d+,0\)$"))
            & (id_value.isNull() | (id_value < 0)),
            F.concat(F.lit("field 'id' is out of range: "), F.col("_e.id")),
        )
        .when(
            ~((id_kind == "STRING") | id_kind.isin(*_INTEGER_TYPES)),
            F.concat(F.lit("field 'id' must be a decimal string or integer, got "), F.lower(id_kind)),
        ),
        F.when(_absent("created_at"), F.lit("missing field 'created_at'"))
        .when(
            _json_type("created_at") != "STRING",
            F.lit("field 'created_at' must be an ISO-8601 string"),
        )
        .when(
            ~_normalize_iso(created_text).rlike(_ISO_WITH_ZONE) | created_at.isNull(),
            F.concat(
                F.lit("field 'created_at' is not an ISO-8601 timestamp with a timezone: "),
                F.substring(created_text, 1, 40),
            ),
        )
        .when(
            created_at < F.lit(earliest),
            F.concat(
                F.lit(f"field 'created_at' is before PARTITIONS_START ({earliest:%Y-%m-%dT%H:%M:%SZ}): "),
                F.substring(created_text, 1, 40),
            ),
        )
        .when(
            created_at > F.col("enqueued_time") + F.expr(f"INTERVAL {max_ahead_hours} HOURS"),
            F.concat(
                F.lit(f"field 'created_at' is more than {max_ahead_hours} hours after the event was enqueued: "),
                F.substring(created_text, 1, 40),
            ),
        ),
        *[_integer_problem(name, required=(name == "like_count")) for name in COUNT_FIELDS],
        _string_problem("lang"),
        _string_problem("query"),
    ]
    parsed = df.select(
        *[F.col(c) for c in RAW_EVENT_SCHEMA.fieldNames()],
        id_value.alias("tweet_id"),
        created_at.alias("created_at"),
        *[F.coalesce(F.expr(f"try_cast(_e.{n} AS BIGINT)"), F.lit(0)).cast("long").alias(n) for n in COUNT_FIELDS],
        F.col("_e.lang").alias("lang"),
        F.col("_e.query").alias("query"),
        F.coalesce(*checks).alias("reason"),
    )
    valid = F.col("reason").isNull()
    return parsed.select(
        *[F.make_valid_utf8(c).alias(c) if c == "body" else c for c in RAW_EVENT_SCHEMA.fieldNames()],
        F.when(valid, F.col("tweet_id")).alias("tweet_id"),
        F.when(valid, F.col("created_at")).alias("created_at"),
        F.when(valid, F.date_trunc("hour", "created_at")).alias("hour"),
        F.when(valid, F.to_date("created_at")).alias("day"),
        *[F.when(valid, F.col(n)).alias(n) for n in COUNT_FIELDS],
        F.when(valid, F.col("lang")).alias("lang"),
        F.when(valid, F.col("query")).alias("query"),
        "reason",
    )


def deduplicate(df: DataFrame, watermark: str = DEFAULT_WATERMARK) -> DataFrame:
    """Drop redelivered copies of an event within `watermark` of event-hub time (`enqueued_time`).

    A valid event's key is its tweet id *and content*, so a later event of the same tweet with new
    counts is kept (and wins in the MERGE, as in the embedded engine); a dead letter's key is its
    stream position, so distinct malformed events are never merged.
    """
    content = F.to_json(
        F.struct("tweet_id", "created_at", *COUNT_FIELDS, "lang", "query")
    )
    key = F.when(F.col("reason").isNull(), F.concat(F.lit("t:"), content)).otherwise(
        F.concat(F.lit("d:"), F.col("partition_id"), F.lit(":"), F.col("sequence_number").cast("string"))
    )
    return (
        df.withColumn("_dedupe_key", key)
        .withWatermark("enqueued_time", watermark)
        .dropDuplicatesWithinWatermark(["_dedupe_key"])
        .drop("_dedupe_key")
    )


def latest_per_tweet(tweets: DataFrame) -> DataFrame:
    """One row per tweet id: the last one in stream order (enqueued time, then sequence number)."""
    from pyspark.sql.window import Window

    order = Window.partitionBy("tweet_id").orderBy(
        F.col("enqueued_time").desc(), F.col("sequence_number").desc(), F.col("partition_id").desc()
    )
    return tweets.withColumn("_rank", F.row_number().over(order)).where("_rank = 1").drop("_rank")


def hourly_metrics(tweets: DataFrame, hours: DataFrame, updated_at: datetime) -> DataFrame:
    """`HOURLY_SCHEMA` rows for exactly the hours in `hours` (column `hour`), aggregated with a
    1-hour tumbling window over the deduplicated `tweets`; an hour without tweets gets counts of 0
    and a null `avg_likes`."""
    sums = {"like_sum": "like_count", "retweet_sum": "retweet_count",
            "reply_sum": "reply_count", "quote_sum": "quote_count"}
    aggregated = (
        tweets.join(F.broadcast(hours), "hour", "left_semi")
        .groupBy(F.window("created_at", "1 hour").alias("w"))
        .agg(
            F.count(F.lit(1)).cast("long").alias("tweet_count"),
            *[F.sum(source).cast("long").alias(name) for name, source in sums.items()],
        )
        .withColumn("hour", F.col("w.start"))
        .drop("w")
    )
    metrics = hours.join(aggregated, "hour", "left").fillna(0, subset=["tweet_count", *sums])
    return metrics.select(
        "hour",
        "tweet_count",
        "like_sum",
        F.when(F.col("tweet_count") > 0, F.col("like_sum") / F.col("tweet_count"))
        .cast("double")
        .alias("avg_likes"),
        "retweet_sum",
        "reply_sum",
        "quote_sum",
        F.lit(updated_at).cast("timestamp").alias("updated_at"),
    )


# --- sinks --------------------------------------------------------------------------------------


class DeltaSink(Protocol):
    """Where `foreach_batch` writes: tells whether a table exists, creates it empty, reads it as a
    Spark DataFrame, MERGEs rows into it on the table's key (update all columns when matched,
    insert when not), the target optionally pruned to `target_partitions` ({column: values})."""

    def exists(self, spark: SparkSession, table: str) -> bool: ...

    def create(self, spark: SparkSession, table: str) -> None: ...

    def read(self, spark: SparkSession, table: str) -> DataFrame: ...

    def merge(self, table: str, rows: DataFrame, target_partitions: dict | None = None) -> None: ...


class MissingTableError(RuntimeError):
    """A table the query already wrote is missing (`anomaly_pipeline.resources.delta_store`)."""


def merge_condition(keys, target_partitions: dict | None) -> str:
    """`t.k = s.k AND ...`, plus `t.column IN ('value', ...)` per pruned partition column."""
    terms = [f"t.{key} = s.{key}" for key in keys]
    for column, values in (target_partitions or {}).items():
        literals = sorted("'" + str(value).replace("'", "''") + "'" for value in set(values))
        terms.append(f"t.{column} IN ({', '.join(literals)})")
    return " AND ".join(terms)


class SparkDeltaSink:
    """Databricks: Delta Lake through Spark (`delta.tables.DeltaTable` MERGE) under `delta_root`."""

    def __init__(self, delta_root: str):
        self.delta_root = delta_root.rstrip("/")

    def _path(self, table: str) -> str:
        return f"{self.delta_root}/{table}"

    def exists(self, spark: SparkSession, table: str) -> bool:
        from delta.tables import DeltaTable

        return DeltaTable.isDeltaTable(spark, self._path(table))

    def create(self, spark: SparkSession, table: str) -> None:
        from delta.tables import DeltaTable

        schema, _, partitions = TABLES[table]
        builder = DeltaTable.createIfNotExists(spark).location(self._path(table)).addColumns(schema)
        if partitions:
            builder = builder.partitionedBy(*partitions)
        builder.execute()

    def read(self, spark: SparkSession, table: str) -> DataFrame:
        if not self.exists(spark, table):
            return spark.createDataFrame([], TABLES[table][0])
        return spark.read.format("delta").load(self._path(table))

    def merge(self, table: str, rows: DataFrame, target_partitions: dict | None = None) -> None:
        from delta.tables import DeltaTable

        schema, keys, _ = TABLES[table]
        (
            DeltaTable.forPath(rows.sparkSession, self._path(table))
            .alias("t")
            .merge(rows.select(*schema.fieldNames()).alias("s"), merge_condition(keys, target_partitions))
            .whenMatchedUpdateAll()
            .whenNotMatchedInsertAll()
            .execute()
        )


class DeltalakeSink:
    """Local runs and tests: the `deltalake` package through the embedded engine's `DeltaStore`
    (same MERGE helper, same table specs). Needs pyspark >= 4.0 (`DataFrame.toArrow`)."""

    def __init__(self, delta_root: str):
        from anomaly_pipeline.resources.delta_store import DeltaStore

        self.store = DeltaStore(root_uri=delta_root)

    @staticmethod
    def _spec(table: str):
        from anomaly_pipeline.tables import ALL_TABLES

        return next(spec for spec in ALL_TABLES if spec.name == table)

    def exists(self, spark: SparkSession, table: str) -> bool:
        return self.store.exists(self._spec(table))

    def create(self, spark: SparkSession, table: str) -> None:
        self.store.ensure_table(self._spec(table))

    def read(self, spark: SparkSession, table: str) -> DataFrame:
        arrow = self.store.scan(self._spec(table)).collect().to_arrow()
        return spark.createDataFrame(arrow.to_pylist(), TABLES[table][0])  # [] when empty

    def merge(self, table: str, rows: DataFrame, target_partitions: dict | None = None) -> None:
        import polars as pl

        self.store.merge(self._spec(table), pl.from_arrow(rows.toArrow()), target_partitions)


# --- micro-batch --------------------------------------------------------------------------------


def prepare_tables(spark: SparkSession, sink: DeltaSink, batch_id: int) -> None:
    """Create missing tables on the query's first batch (`batch_id` 0: a new checkpoint, which
    replays the stream from the start). On a later batch a missing counted table was deleted
    after the query wrote it: `MissingTableError` naming it, before anything is written."""
    missing = [table for table in TABLES if not sink.exists(spark, table)]
    lost = [table for table in missing if table in COUNTED_TABLES and batch_id > 0]
    if lost:
        raise MissingTableError(
            f"Delta table '{lost[0]}' is missing, but the streaming query already committed "
            f"batches into it (this is batch {batch_id}): it was deleted or the Delta root moved. "
            f"Nothing was written; restore the table, or rebuild it by starting the query on a new "
            f"checkpoint (if the event hub still holds every event)."
        )
    for table in missing:
        sink.create(spark, table)


def foreach_batch(batch_df: DataFrame, batch_id: int, *, sink: DeltaSink) -> None:
    """Write one micro-batch of `parse_events` rows: MERGE the dead letters; recompute the hours
    that re-sent tweets leave (their stored `created_at` is in another hour) without them; upsert
    the latest event of each tweet by id across the table; recompute the hours the tweets are in
    now exactly from `tweets` and MERGE them.

    Idempotent: a replayed batch (after a failure before the checkpoint commit) rewrites the same
    rows and recomputes the same hours; a tweet already moved by the failed attempt is found in
    its new hour, whose recomputation the replay repeats (the embedded engine's order).
    """
    spark = batch_df.sparkSession
    prepare_tables(spark, sink, batch_id)
    now = datetime.now(timezone.utc)
    batch_df.persist()
    try:
        tweets = (
            latest_per_tweet(batch_df.where(F.col("reason").isNull()))
            .withColumn("ingested_at", F.lit(now).cast("timestamp"))
            .select(*TWEETS_SCHEMA.fieldNames())
        ).persist()
        dead_letters = batch_df.where(F.col("reason").isNotNull()).select(
            "partition_id", "sequence_number", "enqueued_time", "body", "reason",
            F.lit(now).cast("timestamp").alias("received_at"),
        )
        if not dead_letters.isEmpty():
            sink.merge("dead_letter_events", dead_letters)
        if not tweets.isEmpty():
            _upsert_tweets(spark, sink, tweets, now)
        tweets.unpersist()
    finally:
        batch_df.unpersist()


def _upsert_tweets(spark: SparkSession, sink: DeltaSink, tweets: DataFrame, now: datetime) -> None:
    arriving = tweets.select("tweet_id", F.col("hour").alias("_new_hour"))
    stored = sink.read(spark, "tweets").join(arriving, "tweet_id").select(
        "tweet_id", "hour", "day", "_new_hour"
    ).collect()  # only the re-sent tweets of the batch
    moved = [row for row in stored if row.hour != row._new_hour]
    if moved:
        left_days = spark.createDataFrame([(row.day,) for row in moved], "day date").distinct()
        leaving = spark.createDataFrame([(row.tweet_id,) for row in moved], "tweet_id long")
        remaining = (
            sink.read(spark, "tweets")
            .join(F.broadcast(left_days), "day", "left_semi")
            .join(F.broadcast(leaving), "tweet_id", "left_anti")
        )
        left_hours = spark.createDataFrame([(row.hour,) for row in moved], "hour timestamp").distinct()
        sink.merge("hourly_tweet_metrics", hourly_metrics(remaining, left_hours, now))
    days = {row.day for row in tweets.select("day").distinct().collect()} | {row.day for row in stored}
    sink.merge("tweets", tweets, target_partitions={"day": days})
    hours = tweets.select("hour").distinct()
    # semi-join on the partition column first: Delta/Spark prune to the touched days
    touched = sink.read(spark, "tweets").join(F.broadcast(tweets.select("day").distinct()), "day", "left_semi")
    sink.merge("hourly_tweet_metrics", hourly_metrics(touched, hours, now))


def start_query(
    spark: SparkSession,
    source_options: dict[str, str],
    sink: DeltaSink,
    *,
    checkpoint_location: str,
    trigger: str = "availableNow",
    processing_time: str = "1 minute",
    watermark: str = DEFAULT_WATERMARK,
    query_name: str = "anomaly_pipeline_tweets",
    earliest: datetime | None = None,
):
    """Start the streaming query and return its `StreamingQuery`.

    `trigger`: `availableNow` (process everything available now, in batches, then stop: the mode
    the Dagster sensor starts), `processingTime` (a micro-batch every `processing_time`, runs until
    stopped) or `continuous` (an alias of processingTime: `foreachBatch` cannot run on Spark's
    experimental continuous trigger). Progress (stream offsets + dedupe state) lives in
    `checkpoint_location`, so a restarted query never reprocesses a committed batch. `earliest`
    is the first accepted `created_at` (`PARTITIONS_START`, see `parse_events`).
    """
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    events = deduplicate(parse_events(build_event_stream(spark, source_options), earliest), watermark)
    writer = (
        events.writeStream.queryName(query_name)
        .option("checkpointLocation", checkpoint_location)
        .foreachBatch(functools.partial(foreach_batch, sink=sink))
    )
    if trigger == "availableNow":
        writer = writer.trigger(availableNow=True)
    elif trigger in ("processingTime", "continuous"):
        writer = writer.trigger(processingTime=processing_time)
    else:
        raise ValueError(f"unknown trigger {trigger!r}")
    return writer.start()


# --- entry point (Databricks spark_python_task) -------------------------------------------------


def build_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streaming_job", description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("available-now", "continuous"), default="available-now")
    parser.add_argument("--delta-root", required=True, help="root of the Delta tables (abfss://...)")
    parser.add_argument("--checkpoint", required=True, help="streaming checkpoint location")
    parser.add_argument("--eventhub-namespace", required=True)
    parser.add_argument("--eventhub-name", required=True)
    parser.add_argument("--secret-scope", default="", help="Databricks secret scope of the connection string")
    parser.add_argument("--secret-key", default="", help="secret key of the Event Hubs connection string")
    parser.add_argument("--processing-time", default="1 minute", help="micro-batch interval (continuous)")
    parser.add_argument("--watermark", default=DEFAULT_WATERMARK)
    parser.add_argument(
        "--partitions-start",
        type=partitions_start,
        default=os.environ.get("PARTITIONS_START") or DEFAULT_PARTITIONS_START,
        help="the first partition's day (YYYY-MM-DD, the pipeline's PARTITIONS_START): tweets "
        "created before it are dead letters",
    )
    return parser


def partitions_start(day: str) -> datetime:
    """Midnight UTC of a `YYYY-MM-DD` day."""
    try:
        return datetime.strptime(day.strip(), "%Y-%m-%d").replace(tzinfo=timezone.utc)
    except ValueError:
        raise argparse.ArgumentTypeError(f"PARTITIONS_START must be a date like 2026-11-01, got {day!r}") from None


def read_connection_string(spark: SparkSession, scope: str, key: str) -> str:
    """The Event Hubs connection string from the Databricks secret scope, else from the
    `EVENTHUB_CONNECTION_STRING` environment variable. Never printed."""
    if scope and key:
        from pyspark.dbutils import DBUtils  # only on Databricks

        return DBUtils(spark).secrets.get(scope=scope, key=key)
    value = os.environ.get("EVENTHUB_CONNECTION_STRING", "")
    if not value:
        raise SystemExit("no Event Hubs connection string: pass --secret-scope/--secret-key")
    return value


def main(argv: list[str] | None = None) -> int:
    args = build_arg_parser().parse_args(argv)
    spark = SparkSession.builder.getOrCreate()
    options = eventhubs_kafka_options(
        args.eventhub_namespace,
        args.eventhub_name,
        read_connection_string(spark, args.secret_scope, args.secret_key),
    )
    query = start_query(
        spark,
        options,
        SparkDeltaSink(args.delta_root),
        checkpoint_location=args.checkpoint,
        trigger="availableNow" if args.mode == "available-now" else "processingTime",
        processing_time=args.processing_time,
        watermark=args.watermark,
        earliest=args.partitions_start,
    )
    print(f"started streaming query {query.id} ({args.mode}) into {args.delta_root}", flush=True)
    query.awaitTermination()
    return 0


if __name__ == "__main__":
    sys.exit(main())
