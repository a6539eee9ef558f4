"""raw_tweets in live mode: the cursor advances after a publish, and a deferred poll loses nothing."""

from __future__ import annotations

from datetime import datetime, timezone

import dagster as dg

from anomaly_pipeline.assets.ingest import TWEET_CURSOR_KEY, raw_tweets
from anomaly_pipeline.partitions import partition_key
from anomaly_pipeline.resources.tweet_source import TweetSource, TweetSourceDeferred


class RateLimitedSource(TweetSource):
    """Stands in for the X API source while it is rate limited past its wait bound."""

    def fetch_new(self, since_id, now):
        raise TweetSourceDeferred("rate limited until the window resets", retry_after_seconds=600)


def materialize_current_hour(resources, instance):
    return dg.materialize(
        [raw_tweets], resources=resources, instance=instance,
        partition_key=partition_key(datetime.now(timezone.utc)),
    )  # fmt: skip


def test_a_deferred_poll_publishes_nothing_and_keeps_the_cursor(resources, instance):
    state, stream = resources["pipeline_state"], resources["event_stream"]
    assert materialize_current_hour(resources, instance).success
    cursor = state.get(TWEET_CURSOR_KEY)
    published = sum(n + 1 for n in stream.last_sequence_numbers().values())
    assert cursor is not None and published > 0

    result = materialize_current_hour({**resources, "tweet_source": RateLimitedSource()}, instance)
    assert result.success
    (materialization,) = result.asset_materializations_for_node("raw_tweets")
    assert materialization.metadata["deferred"].value == "rate limited until the window resets"
    assert state.get(TWEET_CURSOR_KEY) == cursor
    assert sum(n + 1 for n in stream.last_sequence_numbers().values()) == published
