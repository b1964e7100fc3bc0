"""Benford: Nigrini's first-digit MAD per key and month, chance-corrected."""

from __future__ import annotations

import datetime as dt
import gc

import numpy as np
import pytest

from detectors.benford import _BANK, EXPECTED, Benford, band, expected_mad, first_digits
from tests.detectors.helpers import end_to_end, part_bounds, restored

JUNE = dt.datetime(2026, 6, 10, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp()


def columns(amounts, key="ORG1", t=JUNE):
    n = len(amounts)
    return {"key": np.array([key] * n, dtype=object), "amount": np.asarray(amounts, dtype=float), "t": np.full(n, t)}


def test_first_digits_match_the_written_number():
    rng = np.random.default_rng(0)
    a = np.concatenate([10 ** rng.uniform(1, 13, 50_000), 10.0 ** np.arange(1, 16), [99.99, 10.0, 9.99, 0.0, -5.0, np.nan]])
    want = [int(f"{x:.15e}"[0]) if np.isfinite(x) and x >= 10 else 0 for x in a]
    assert first_digits(a).tolist() == want


def test_bands_and_expected_mad():
    assert [band(x) for x in (0.004, 0.006, 0.013, 0.0151)] == ["close", "acceptable", "marginal", "nonconformity"]
    assert EXPECTED.sum() == pytest.approx(1.0)
    # chance alone: four times the amounts, half the MAD
    assert expected_mad(np.array([400]))[0] == pytest.approx(2 * expected_mad(np.array([1600]))[0])


def test_benford_amounts_stay_below_the_threshold_made_up_ones_cross_it():
    rng = np.random.default_rng(1)
    det = Benford(min_count=300)
    real = det.process_many(columns(10 ** rng.uniform(2, 6, 3000)))
    assert real.scores.max() < 0.5
    fake = det.process_many(columns(rng.choice([50_000.0, 60_000.0, 70_000.0, 80_000.0], 600)))
    assert fake.scores[-1] > 0.6
    last = fake.row(599)
    assert last["band"] == "nonconformity" and last["period"] == "2026-06" and last["digit"] in (5, 6, 7, 8)
    assert last["mad"] > last["expected_mad"] + 0.01


def test_only_over_represented_digits_carry_the_score():
    rng = np.random.default_rng(2)
    det = Benford(min_count=100)
    det.learn_many(columns(np.concatenate([10 ** rng.uniform(2, 6, 400), np.full(300, 70_000.0)])))
    s = det.score_many(columns([70_000.0, 1_500.0]))
    assert s.scores[0] > 0.5 and s.scores[1] == 0.0


def test_months_and_keys_are_apart_and_old_months_forgotten():
    det = Benford(min_count=10, keep_months=2)
    for month in range(1, 5):
        t = dt.datetime(2026, month, 15, tzinfo=dt.timezone.utc).timestamp()
        det.learn_many(columns([123.0] * 20, "ORG1", t))
        det.learn_many(columns([456.0] * 5, "ORG2", t))
    assert sorted(det.month_mad()) == [("ORG1", "2026-03"), ("ORG1", "2026-04"), ("ORG2", "2026-03"), ("ORG2", "2026-04")]
    assert det.month_mad()[("ORG2", "2026-04")][1] == 5


def test_batches_and_restores_change_nothing():
    rng = np.random.default_rng(3)
    amounts = np.concatenate([10 ** rng.uniform(2, 6, 1500), rng.choice([60_000.0, 90_000.0], 500)])
    rng.shuffle(amounts)
    whole = Benford(min_count=200).process_many(columns(amounts)).scores
    a = Benford(min_count=200)
    parts = [a.process_many(columns(amounts[:7])).scores, a.process_many(columns(amounts[7:900])).scores]
    parts.append(restored(a).process_many(columns(amounts[900:])).scores)
    assert np.array_equal(np.concatenate(parts), whole) and whole.max() > 0.5


def test_pooled_scoring_equals_one_org_at_a_time():
    # Orgs' models share keys here (the same counterparty ids): pooling must keep their counts apart.
    rng = np.random.default_rng(2)
    one_by_one, pooled = [Benford(min_count=30) for _ in range(4)], [Benford(min_count=30) for _ in range(4)]
    scored = 0
    for batch in range(60):
        parts = []
        for _ in range(4):
            n = int(rng.integers(1, 20))
            made_up = rng.choice([5e4, 6e4, 0.0, 5.0], n)
            parts.append({"key": np.array(rng.choice(["A", "B"], n), dtype=object),
                          "amount": np.where(rng.random(n) < 0.3, made_up, 10 ** rng.uniform(1, 6, n)),
                          "t": JUNE + batch * 86400 + rng.uniform(0, 86400, n)})
        want = [model.process_many(X) for model, X in zip(one_by_one, parts)]
        bounds = part_bounds(parts)
        whole = Benford.process_pooled(pooled, end_to_end(parts), bounds)
        got = [whole.part(a, b) for a, b in bounds]
        for a, b in zip(want, got):
            assert np.array_equal(a.scores, b.scores)
            assert all(np.array_equal(a.details[k].astype(str), b.details[k].astype(str)) for k in a.details)
            scored += int((b.scores > 0).sum())
    assert scored > 0  # the made-up amounts were caught: the comparison covered real scores
    for a, b in zip(one_by_one, pooled):
        assert a.state() == b.state()


def test_a_models_counts_leave_the_bank_with_it():
    """Every model's counts are rows of one bank; a model that is gone (a store
    dropping its cache, an org moving away) takes its rows along at the next write."""
    det = Benford(min_count=10)
    det.process_many(columns([123.0] * 20, "ORG1"))
    owner = det._owner
    assert len(_BANK.rows_of(owner)) == 1 and det.key_count() == 1
    del det
    gc.collect()
    other = Benford(min_count=10)
    other.process_many(columns([456.0] * 3, "ORG2"))
    assert other._owner != owner and len(_BANK.rows_of(owner)) == 0
    assert other.key_count() == 1 and other.month_mad()["ORG2", "2026-06"][1] == 3
