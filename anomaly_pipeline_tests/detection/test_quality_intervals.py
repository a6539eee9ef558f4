"""The quality benchmark's paired file-bootstrap interval and its fold selection (bench/bench_quality.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from bench_quality import Series, choose, corpus_figures, cross_validate, paired_interval  # noqa: E402
from nab import FileScore  # noqa: E402

CORPUS = "NAB all 53"


def _files(n: int) -> list[Series]:
    return [Series(f"f{i}", f"f{i}", (CORPUS,), np.zeros(10), 300, nab_windows=[]) for i in range(n)]


def _scores(files: list[Series], raws: list[float]) -> dict[str, FileScore]:
    return {f.name: FileScore(raw=r, null=-1.0, perfect=1.0, tp=0, fp=0, fn=0) for f, r in zip(files, raws)}


def test_the_same_scores_differ_by_nothing_on_every_draw():
    files = _files(8)
    scores = _scores(files, list(np.linspace(-1, 1, 8)))
    assert paired_interval(scores, scores, files, CORPUS, "score") == (0.0, 0.0, 0.0)


def test_a_detector_better_on_every_file_has_an_interval_above_zero():
    files = _files(12)
    rng = np.random.default_rng(1)
    theirs = list(rng.uniform(-1, 0.5, 12))
    ours, base = _scores(files, [t + 0.2 for t in theirs]), _scores(files, theirs)
    gap, low, high = paired_interval(ours, base, files, CORPUS, "score")
    expected = corpus_figures(ours, files, CORPUS)["score"] - corpus_figures(base, files, CORPUS)["score"]
    assert gap == pytest.approx(expected) == pytest.approx(10.0)  # 0.2 of a perfect-minus-null of 2 a file
    assert low == pytest.approx(10.0) and high == pytest.approx(10.0)  # every draw shows the same gain


def test_a_gap_made_by_one_file_has_an_interval_that_reaches_zero():
    files = _files(10)
    ours, base = _scores(files, [1.0] + [0.0] * 9), _scores(files, [-1.0] + [0.0] * 9)
    gap, low, high = paired_interval(ours, base, files, CORPUS, "score")
    assert gap == pytest.approx(10.0) and low == pytest.approx(0.0) and high > gap


def test_no_interval_where_a_detector_has_no_figure():
    files = _files(3)
    scores = _scores(files, [0.0, 0.0, 0.0])
    assert paired_interval(scores, {"f0": scores["f0"]}, files, CORPUS, "score") is None


def _grid(files: list[Series], default: list[float], other: list[float]) -> dict[str, dict]:
    return {"default": _scores(files, default), "other": _scores(files, other)}


def test_a_gain_within_the_files_noise_does_not_move_the_default():
    files = _files(12)
    base = list(np.random.default_rng(2).uniform(-1, 0.5, 12))
    gains = [0.3] + [0.2, -0.2] * 5 + [0.2]  # better in total, by less than the files disagree
    per_point = _grid(files, base, [b + g for b, g in zip(base, gains)])
    assert choose(per_point, files, "default", np.random.default_rng(0), standard_errors=0.0) == "other"
    assert choose(per_point, files, "default", np.random.default_rng(0), standard_errors=1.0) == "default"


def test_a_point_that_wins_on_every_file_is_chosen():
    files = _files(12)
    rng = np.random.default_rng(3)
    base = list(rng.uniform(-1, 0.5, 12))
    per_point = _grid(files, base, [b + rng.uniform(0.05, 0.15) for b in base])
    assert choose(per_point, files, "default", np.random.default_rng(0), standard_errors=1.0) == "other"


def test_each_fold_is_judged_by_the_choice_made_without_it():
    files = _files(6)
    gains = [0.6, -0.4, 0.4, -0.4, 0.4, -0.4]
    per_point = _grid(files, [0.0] * 6, gains)
    oof, _, chosen, choices = cross_validate(per_point, files, "default", standard_errors=0.0)
    assert chosen == "other"  # the plain argmax: +0.2 in total
    # without f0 or f2 "other" loses; without f1 it wins (+0.6), and judges f1, where it loses
    assert [choices[f"f{i}"] for i in range(3)] == ["default", "other", "default"]
    assert oof["f1"] == per_point["other"]["f1"] and oof["f0"] == per_point["default"]["f0"]
    oof, insample, chosen, choices = cross_validate(per_point, files, "default", standard_errors=1.0)
    assert chosen == "default" and set(choices.values()) == {"default"}
    assert oof == per_point["default"] and insample == per_point["default"]
