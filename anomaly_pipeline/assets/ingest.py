"""Ingestion: the raw tweet stream, from the tweet source to the event stream."""


from datetime import datetime, timezone

import dagster as dg

from anomaly_pipeline.partitions import HOURLY_PARTITIONS, hour_start
from anomaly_pipeline.resources.event_stream import EventStream
from anomaly_pipeline.resources.state_store import StateStore
from anomaly_pipeline.resources.tweet_source import Tweet, TweetSource, TweetSourceDeferred
from anomaly_pipeline.streaming.events import encode_tweet_event

TWEET_CURSOR_KEY = "raw_tweets.since_id"


@dg.asset(
    partitions_def=HOURLY_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="ingest",
    kinds={"python", "twitter"},
    owners=["team:anomaly-pipeline"],
    tags={"layer": "bronze"},
)
def raw_tweets(
    context: dg.AssetExecutionContext,
    tweet_source: TweetSource,
    event_stream: EventStream,
    pipeline_state: StateStore,
) -> dg.MaterializeResult:
    """The raw tweet stream: one JSON event per original tweet, published to the event stream.

    For the current (open) hour it polls the tweet source for tweets newer than the durable
    id cursor, and advances the cursor only after the publish succeeded. For past hours (a
    backfill) it fetches the hours' tweets by time interval and leaves the cursor alone. A poll
    the source defers (e.g. rate limited) publishes nothing and keeps the cursor.
    Retweets are dropped. Events carry id, created_at, like/retweet/reply/quote counts, lang
    and the query; the tweet id is the partition key, so a tweet always lands in one partition.
    """
    window = context.partition_time_window
    now = datetime.now(timezone.utc)
    current_hour = hour_start(now)

    fetched: list[Tweet] = []
    closed_end = min(window.end, current_hour)
    if window.start < closed_end:
        fetched += tweet_source.fetch_interval(window.start, closed_end)
    live = window.end > current_hour
    cursor = pipeline_state.get(TWEET_CURSOR_KEY) if live else None
    new_cursor, deferred = cursor, None
    if live:
        try:
            polled = tweet_source.fetch_new(since_id=int(cursor) if cursor else None, now=now)
        except TweetSourceDeferred as reason:
            # e.g. rate limited: nothing was returned, so the cursor stays and the next tick
            # picks up every tweet this one would have.
            context.log.warning(f"Tweet source deferred this poll: {reason}")
            polled, deferred = [], str(reason)
        fetched += polled
        if polled:
            new_cursor = str(max(tweet.id for tweet in polled))

    originals = [tweet for tweet in fetched if not tweet.is_retweet]
    report = event_stream.publish(
        [(str(tweet.id), encode_tweet_event(tweet, tweet_source.query)) for tweet in originals]
    )
    if new_cursor != cursor:
        pipeline_state.set(TWEET_CURSOR_KEY, new_cursor)

    dropped = len(fetched) - len(originals)
    context.log.info(f"Published {report.event_count} tweets ({dropped} retweets dropped)")
    return dg.MaterializeResult(
        metadata={
            "events_published": report.event_count,
            "retweets_dropped": dropped,
            "mode": "live" if live else "backfill",
            "deferred": deferred or "no",
            "since_id_cursor": new_cursor or "none",
            "query": tweet_source.query,
        }
    )
