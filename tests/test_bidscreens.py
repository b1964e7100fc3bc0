"""The bid-rigging screens against values worked by hand and against scipy."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from monitor.core.bidscreens import SCREENS, screen, screens, steps, ties


def test_four_bids_worked_by_hand():
    # bids 100, 102, 103, 105: mean 102.5, squared deviations 6.25 + 0.25 + 0.25 + 6.25 = 13, s = sqrt(13/3)
    s = screens([105, 100, 103, 102])
    assert s.n == 4
    assert s.cv == pytest.approx(math.sqrt(13 / 3) / 102.5)  # 0.02031
    assert s.diffp == pytest.approx(0.02)  # (102 - 100) / 100
    # losing bids 102, 103, 105: mean 103.33, squared deviations 1.78 + 0.11 + 2.78 = 4.67, s = sqrt(4.67 / 2)
    assert s.rd == pytest.approx(2 / math.sqrt((14 / 3) / 2))  # 1.3093
    assert s.rdnor == pytest.approx(2 / ((105 - 100) / 3))  # 1.2: the gap against the mean gap
    assert s.skewness == pytest.approx(0.0, abs=1e-12)  # symmetric about the mean
    # 20/6 * (2 * 2.5**4 + 2 * 0.5**4) / (13/3)**2 - 3 * 3**2 / (2 * 1)
    assert s.kurtosis == pytest.approx(20 / 6 * 78.25 / (13 / 3) ** 2 - 13.5)  # 0.3905


@pytest.mark.parametrize("bids", [[10, 20, 30, 100], [5.0, 5.1, 5.15, 5.3, 7.9, 8.4], [1, 2, 4, 8, 16, 32, 64]])
def test_skewness_and_kurtosis_are_scipys_unbiased_estimates(bids):
    s = screens(bids)
    assert s.skewness == pytest.approx(stats.skew(bids, bias=False))
    assert s.kurtosis == pytest.approx(stats.kurtosis(bids, bias=False))
    assert s.cv == pytest.approx(stats.variation(bids, ddof=1))


def test_a_rigged_looking_lot_against_a_competitive_one():
    """Cover bids a fixed step above the winner: low spread; a competitive lot spreads."""
    rigged = screens([1_000_000, 1_010_000, 1_020_000, 1_030_000, 1_040_000])
    competitive = screens([870_000, 1_000_000, 1_050_000, 1_190_000, 1_310_000])
    assert rigged.cv < 0.02 < competitive.cv


def test_too_few_bids_or_no_spread():
    with pytest.raises(ValueError):
        screens([100, 200])
    with pytest.raises(ValueError):
        screens([0, 100, 200])
    flat = screens([100, 100, 100, 100])
    assert flat.cv == 0 and math.isnan(flat.rd) and math.isnan(flat.skewness) and math.isnan(flat.kurtosis)


def test_the_rule_languages_aggregates_are_the_screens():
    bids = [1_000_000, 1_040_000, 1_046_000, 1_051_000, 1_058_000]
    s = screens(bids)
    assert [screen(name, bids) for name in SCREENS] == [s.cv, s.diffp, s.rd, s.rdnor, s.kurtosis, s.skewness]
    assert math.isnan(screen("cv", [1.0, 2.0])) and math.isnan(screen("cv", [0.0, 1.0, 2.0]))


@pytest.mark.parametrize("bids, tied, stepped", [
    ([100, 100, 100, 103], 3, 2),
    ([100, 110, 120, 130, 131], 0, 4),
    ([100, 110, 120, 120, 130], 2, 3),  # the tie breaks the run
    ([130, 100, 120, 110], 0, 4),  # in any order
    ([100, 110, 121, 133], 0, 2),  # steps 10, 11, 12: 10% apart
    ([], 0, 0),
])
def test_identical_bids_and_regular_steps(bids, tied, stepped):
    assert (ties(bids), steps(bids)) == (tied, stepped)
