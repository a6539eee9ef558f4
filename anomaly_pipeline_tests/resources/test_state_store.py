"""StateStore: get/set/delete, compare_and_set, durability and atomicity across processes."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from anomaly_pipeline.resources.state_store import StateStore

INCREMENTS = 40


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore(path=str(tmp_path / "deep" / "state.sqlite"))


def test_get_set_delete_and_durability(store):
    assert store.get("tweet_cursor") is None
    store.set("tweet_cursor", "1861234567890123456")
    store.set("tweet_cursor", "1861234567890123999")
    store.set("other", "x")
    reopened = StateStore(path=store.path)
    assert reopened.get("tweet_cursor") == "1861234567890123999"
    assert reopened.items() == {"other": "x", "tweet_cursor": "1861234567890123999"}
    reopened.delete("other")
    assert store.get("other") is None
    with pytest.raises(TypeError, match="text"):
        store.set("n", 5)  # type: ignore[arg-type]


def test_compare_and_set(store):
    assert store.compare_and_set("cursor", None, "10")  # None = absent
    assert not store.compare_and_set("cursor", None, "11")
    assert not store.compare_and_set("cursor", "9", "11")
    assert store.compare_and_set("cursor", "10", "11")
    assert store.get("cursor") == "11"


def _increment(path: str) -> None:
    store = StateStore(path=path)
    done = 0
    while done < INCREMENTS:
        current = store.get("counter")
        if store.compare_and_set("counter", current, str(int(current or 0) + 1)):
            done += 1


def test_compare_and_set_is_atomic_across_processes(tmp_path):
    path = str(tmp_path / "state.sqlite")
    # fork: fast on Linux (no re-import); each process still opens its own SQLite connection.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    workers = [context.Process(target=_increment, args=(path,)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert StateStore(path=path).get("counter") == str(3 * INCREMENTS)
