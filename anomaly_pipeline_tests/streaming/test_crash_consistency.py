"""Crash consistency of the local stream step: `kill -9` at random moments, counts stay exact.

A second test stops a batch after each of its writes in turn (every crash point, deterministically)
and checks that the replay repairs it.

Each trial publishes new tweets, newer counts of earlier tweets, tweets moved to another hour or
day and poison events, starts the stream step in a subprocess (`stream_step_child`), kills it with
SIGKILL after a random delay (up to 1.5 times what an uninterrupted step took), and (every other trial; otherwise the next trial starts from the
crash) finishes the step in this process and checks the tables against the truth computed here:
every hour's counts exact (nothing lost, nothing counted twice), one row per tweet id, each
poison event exactly once in `dead_letter_events`.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from anomaly_pipeline.partitions import hour_start
from anomaly_pipeline.resources.delta_store import DeltaStore
from anomaly_pipeline.resources.local_event_log import LocalEventLog
from anomaly_pipeline.resources.stream_engine import LocalStreamEngine
from anomaly_pipeline.resources.tweet_source import Tweet
from anomaly_pipeline.streaming.events import encode_tweet_event
from anomaly_pipeline.tables import DEAD_LETTER_EVENTS, HOURLY_TWEET_METRICS, TWEETS

TRIALS = 20
BATCH = 40  # events per micro-batch: a step commits several batches, so kills land between them
REPO = Path(__file__).resolve().parents[2]
FIRST = hour_start(datetime.now(timezone.utc)) - timedelta(days=2)
HOURS = [FIRST + timedelta(hours=h) for h in range(0, 48, 2)]  # two days; a batch touches some


class Workload:
    """Publishes events and keeps the truth: the last event of each tweet id wins."""

    def __init__(self, stream: LocalEventLog, rng: random.Random):
        self.stream, self.rng = stream, rng
        self.truth: dict[int, Tweet] = {}
        self.poison = 0
        self.next_id = 1

    def _tweet(self, tweet_id: int, created_at: datetime | None = None, hours=HOURS) -> Tweet:
        rng = self.rng
        created_at = created_at or rng.choice(hours) + timedelta(seconds=rng.randrange(3600))
        counts = (rng.randrange(1000), rng.randrange(50), rng.randrange(9), rng.randrange(3))
        return Tweet(tweet_id, created_at, *counts, "en")

    def publish_chunk(self, new: int = 60, updated: int = 30, moved: int = 10, moved_to=HOURS) -> None:
        """New tweets, newer counts of known ones (same `created_at`), known ones moved to
        another `created_at` in `moved_to`, and three poison events."""
        rng, known = self.rng, list(self.truth)
        tweets = [self._tweet(i) for i in range(self.next_id, self.next_id + new)]
        self.next_id += new
        for tweet_id in rng.sample(known, min(updated, len(known))):
            tweets.append(self._tweet(tweet_id, self.truth[tweet_id].created_at))
        moving = rng.sample(known, min(moved, len(known)))
        tweets += [self._tweet(tweet_id, hours=moved_to) for tweet_id in moving]
        events = [(str(t.id), encode_tweet_event(t, "#crash")) for t in tweets]
        events += [("poison", body) for body in ("not json", '{"id": "1"}', "[]")]
        self.poison += 3
        self.stream.publish(events)
        self.truth.update({t.id: t for t in tweets})

    def expected_hours(self) -> dict[datetime, tuple[int, ...]]:
        sums: dict[datetime, list[int]] = defaultdict(lambda: [0] * 5)
        for t in self.truth.values():
            row = sums[hour_start(t.created_at)]
            for index, value in enumerate((1, t.like_count, t.retweet_count, t.reply_count, t.quote_count)):
                row[index] += value
        return {hour: tuple(row) for hour, row in sums.items()}


def spawn_step(events: Path, delta: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "anomaly_pipeline_tests.streaming.stream_step_child", str(events), str(delta),
         str(BATCH)],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )


def assert_exact(store: DeltaStore, workload: Workload, trial: int) -> None:
    columns = ("tweet_count", "like_sum", "retweet_sum", "reply_sum", "quote_sum")
    hourly = store.scan(HOURLY_TWEET_METRICS).collect()
    got = {row[0]: tuple(row[1:]) for row in hourly.select("hour", *columns).rows()}
    expected = workload.expected_hours()
    assert hourly.height == len(got), f"trial {trial}: an hour has two rows"
    assert set(expected) <= set(got), f"trial {trial}: hours lost"
    for hour, counts in got.items():
        assert counts == expected.get(hour, (0,) * 5), f"trial {trial}: hour {hour} {counts} != truth"
    ids = store.scan(TWEETS).select("tweet_id").collect().get_column("tweet_id")
    assert ids.len() == ids.n_unique() == len(workload.truth), f"trial {trial}: tweets table"
    assert store.scan(DEAD_LETTER_EVENTS).collect().height == workload.poison, f"trial {trial}: dead letters"


@pytest.fixture
def waiting():
    """Stream-step children started ahead of their trial (importing meanwhile); none outlives the test."""
    children: list[subprocess.Popen] = []
    yield children
    for child in children:
        child.kill()
        child.wait()


def test_kill_9_of_the_stream_step_at_random_moments_loses_and_double_counts_nothing(tmp_path, waiting):
    began = time.monotonic()
    events, delta = tmp_path / "events.sqlite", tmp_path / "delta"
    stream, store = LocalEventLog(path=str(events)), DeltaStore(root_uri=str(delta))
    engine = LocalStreamEngine(max_batch_events=BATCH)
    rng = random.Random(20261201)
    workload = Workload(stream, rng)
    waiting += [spawn_step(events, delta) for _ in range(2)]

    def start_step():
        child = waiting.pop(0)
        assert child.stdout.readline().strip() == "ready"
        if len(waiting) < TRIALS - 1 - trial:  # one child for each step still to come
            waiting.append(spawn_step(events, delta))
        child.stdin.write("go\n")
        child.stdin.flush()
        return child, time.monotonic()

    trial = -1  # calibration: one step of a chunk, not killed, sets the range of kill delays
    workload.publish_chunk()
    child, started = start_step()
    assert child.stdout.readline().strip() == "done" and child.wait() == 0
    step_seconds = time.monotonic() - started
    assert_exact(store, workload, trial)

    killed_running = killed_mid_stream = 0
    for trial in range(TRIALS):
        workload.publish_chunk()
        before = stream.load_checkpoints()
        child, _ = start_step()
        time.sleep(rng.uniform(0, 1.5 * step_seconds))
        killed_running += child.poll() is None
        child.send_signal(signal.SIGKILL)  # kill -9 (nothing if the step already finished)
        child.wait()
        killed_mid_stream += stream.load_checkpoints() != before and sum(stream.lag().values()) > 0
        if trial % 2:  # else the next trial's step starts from this crash
            engine.process_available(stream, store)
            assert sum(stream.lag().values()) == 0
            assert_exact(store, workload, trial)
    engine.process_available(stream, store)
    assert_exact(store, workload, TRIALS)
    assert not waiting
    print(f"{TRIALS} kills: {killed_running} while running, {killed_mid_stream} between two committed "
          f"batches; a step took {step_seconds:.2f} s; {time.monotonic() - began:.1f} s in all")
    assert killed_running >= TRIALS // 2, (killed_running, killed_mid_stream)
    assert killed_mid_stream >= 3, (killed_running, killed_mid_stream)


class SimulatedCrash(Exception):
    """Raised right after a write: everything durable stays, everything in memory is lost."""


def test_a_crash_after_any_write_of_a_batch_is_repaired_by_the_replay(tmp_path, monkeypatch):
    original_merge = DeltaStore.merge
    crash_point = 1
    while True:
        root = tmp_path / str(crash_point)
        stream, store = LocalEventLog(path=str(root / "events.sqlite")), DeltaStore(root_uri=str(root / "delta"))
        engine = LocalStreamEngine()
        workload = Workload(stream, random.Random(crash_point))
        workload.publish_chunk(moved=0)
        engine.process_available(stream, store)
        # only moves, out of hours no other event of the batch touches, plus poison
        workload.publish_chunk(new=0, updated=0, moved=20, moved_to=[FIRST + timedelta(days=1, hours=5)])
        writes = []

        def merge_then_crash(self, spec, rows, target_partitions=None):
            result = original_merge(self, spec, rows, target_partitions)
            writes.append(spec.name)
            if len(writes) == crash_point:
                raise SimulatedCrash(spec.name)
            return result

        monkeypatch.setattr(DeltaStore, "merge", merge_then_crash)
        try:
            engine.process_available(stream, store)
            crashed = False
        except SimulatedCrash:
            crashed = True
        monkeypatch.setattr(DeltaStore, "merge", original_merge)
        engine.process_available(stream, store)  # the replay
        assert_exact(store, workload, crash_point)
        if not crashed:
            break
        crash_point += 1
    assert crash_point >= 5  # left hours, tweets, dead letters, entered hours: all crash points seen
