"""The null law of the carrier cosine, Fisher's combination and the carriers (roomscan/radioactive/stats.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from roomscan.radioactive.stats import combine_pvalues, cosine_pvalue, random_carriers, row_cosines


def _random_cosines(n: int, d: int, seed: int) -> np.ndarray:
    """Cosines between a fixed random unit vector and ``n`` uniformly random directions, by direct simulation."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(d)
    u /= np.linalg.norm(u)
    out = []
    for start in range(0, n, 20_000):
        g = rng.standard_normal((min(20_000, n - start), d))
        out.append(g @ u / np.linalg.norm(g, axis=1))
    return np.concatenate(out)


# wrong_d: a dimension the tolerance must tell apart from d (so the test has power). At d=128 an error of one
# dimension is below what 200k draws resolve (the KS test below checks off-by-one at small d); one of 16 is not.
@pytest.mark.parametrize(
    ("d", "thresholds", "wrong_d"),
    [(16, (-0.3, 0.0, 0.1, 0.3, 0.5, 0.7), 15), (128, (-0.1, 0.05, 0.1, 0.2, 0.3), 112)],
)
def test_pvalue_matches_monte_carlo_null(d, thresholds, wrong_d):
    n = 200_000
    cos = _random_cosines(n, d, seed=d)
    wrong_formula_seen = False
    for t in thresholds:
        empirical = float((cos >= t).mean())
        p = float(cosine_pvalue(t, d))
        sd = math.sqrt(p * (1 - p) / n)
        assert abs(empirical - p) <= 4.5 * sd + 1 / n, (d, t, empirical, p)
        off = float(cosine_pvalue(t, wrong_d))
        wrong_formula_seen |= abs(empirical - off) > 4.5 * sd + 1 / n
    assert wrong_formula_seen


def test_pvalues_of_random_directions_are_uniform_and_an_off_by_one_d_is_not():
    d = 8
    cos = _random_cosines(50_000, d, seed=3)
    assert sps.kstest(cosine_pvalue(cos, d), "uniform").pvalue > 1e-3
    assert sps.kstest(cosine_pvalue(cos, d - 1), "uniform").pvalue < 1e-3
    assert sps.kstest(cosine_pvalue(cos, d + 1), "uniform").pvalue < 1e-3


def test_pvalue_shape_symmetry_and_extremes():
    c = np.linspace(-1, 1, 41)
    p = cosine_pvalue(c, 64)
    assert p.shape == c.shape
    assert np.all(np.diff(p) <= 0), "a larger cosine can never be less surprising"
    np.testing.assert_allclose(p + cosine_pvalue(-c, 64), 1.0, atol=1e-12)
    assert cosine_pvalue(0.0, 64) == pytest.approx(0.5)
    assert cosine_pvalue(1.0, 64) == 0.0
    assert cosine_pvalue(-1.0, 64) == 1.0
    assert cosine_pvalue(1 + 1e-7, 64) == 0.0  # float32 rounding just past 1 is tolerated


@pytest.mark.parametrize(("c", "d"), [(0.2, 4096), (0.05, 100_000), (0.999999, 3), (0.9, 512)])
def test_pvalue_far_tail_is_accurate(c, d):
    """Against the Beta(1/2, (d-1)/2) law of c^2, computed by scipy another way (log survival function)."""
    p = float(cosine_pvalue(c, d))
    expected = 0.5 * math.exp(sps.beta.logsf(c * c, 0.5, (d - 1) / 2))
    assert p > 0
    assert p == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    ("c", "d", "message"),
    [(0.1, 1, "at least 2"), (0.1, 2.5, "whole number"), (0.1, True, "whole number"),
     (1.5, 16, r"\[-1, 1\]"), (float("nan"), 16, "NaN")],
)  # fmt: skip
def test_pvalue_bad_input(c, d, message):
    with pytest.raises(ValueError, match=message):
        cosine_pvalue(c, d)


def test_fisher_on_known_inputs():
    assert combine_pvalues([0.5]) == pytest.approx(
        0.5
    )  # one p-value: -2 ln p ~ chi2(2), whose sf is p itself
    # Two: chi2(4) survival at -2 ln P is P (1 - ln P), P the product.
    assert combine_pvalues([0.1, 0.2]) == pytest.approx(0.02 * (1 - math.log(0.02)))
    ps = [0.01, 0.2, 0.5, 0.03]
    assert combine_pvalues(ps) == pytest.approx(sps.combine_pvalues(ps, method="fisher").pvalue)
    assert combine_pvalues([1.0, 1.0]) == pytest.approx(1.0)
    tiny = combine_pvalues([0.0, 0.5])
    assert 0 < tiny < 1e-300 or tiny == 0.0
    assert not math.isnan(tiny)


@pytest.mark.parametrize("ps", [[], [1.2], [-0.1], [float("nan")]])
def test_fisher_bad_input(ps):
    with pytest.raises(ValueError):
        combine_pvalues(ps)


def test_random_carriers_are_seeded_unit_rows():
    u = random_carriers(5, 32, seed=4)
    assert u.shape == (5, 32)
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(u, random_carriers(5, 32, seed=4))
    assert not np.allclose(u, random_carriers(5, 32, seed=5))
    assert random_carriers(40, 8, seed=0).shape == (
        40,
        8,
    )  # more carriers than dimensions: fine unless orthogonal


def test_orthogonal_carriers():
    u = random_carriers(6, 16, seed=1, orthogonal=True)
    np.testing.assert_allclose(u @ u.T, np.eye(6), atol=1e-12)
    with pytest.raises(ValueError, match="do not fit"):
        random_carriers(17, 16, seed=1, orthogonal=True)


def test_carriers_are_uniform_directions():
    """Their cosines with a fixed vector follow the null law the p-value assumes."""
    u = random_carriers(20_000, 12, seed=2)
    fixed = np.eye(12)[0]
    assert sps.kstest(cosine_pvalue(u @ fixed, 12), "uniform").pvalue > 1e-3


def test_row_cosines():
    a = np.array([[1.0, 0.0], [1.0, 1.0]])
    np.testing.assert_allclose(row_cosines(a, [[2.0, 0.0], [-1.0, -1.0]]), [1.0, -1.0])
    with pytest.raises(ValueError, match="zero length"):
        row_cosines([[0.0, 0.0]], [[1.0, 0.0]])
    with pytest.raises(ValueError, match="shapes"):
        row_cosines([[1.0, 0.0]], [[1.0, 0.0, 0.0]])
