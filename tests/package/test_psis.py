"""PSIS-LOO over all gaugings at once (ratingflow.psis) against ArviZ's own ``az.loo``, gauging by gauging."""
import warnings

import arviz as az
import numpy as np
import pytest

from ratingflow.posterior import loo_idata
from ratingflow.choice import elpd_differences
from ratingflow.psis import loo, psislw, psislw_row

pytestmark = pytest.mark.package


def _log_likelihood(rng, chains=4, draws=1000, points=60, dtype=np.float32, outliers=3):
    """A normal model's pointwise log-likelihood over posterior draws of its mean and SD: most points typical,
    ``outliers`` far out (heavy PSIS tails, Pareto k above 0.7)."""
    y = rng.normal(0.0, 1.0, points)
    y[:outliers] += np.linspace(4.0, 8.0, outliers)
    mu = rng.normal(y.mean(), 1.0 / np.sqrt(points), (chains, draws, 1))
    sd = np.exp(rng.normal(0.0, 0.1, (chains, draws, 1)))
    return (-0.5 * ((y - mu) / sd) ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi)).astype(dtype)


def _arviz(ll, reff):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return az.loo(loo_idata(ll), pointwise=True, reff=reff)


def _ours(ll, reff):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return loo(ll, reff)


@pytest.mark.parametrize("dtype, tol", [(np.float32, 2e-5), (np.float64, 1e-10)])
@pytest.mark.parametrize("reff", [None, 0.3, 1.4])
def test_loo_is_arviz_loo(dtype, tol, reff):
    """Every figure az.loo gives, to the precision of the log-likelihood (the sums run in another order), at
    tail lengths set by reff; outlying points have Pareto k above ArviZ's threshold, and the warning flag agrees."""
    ll = _log_likelihood(np.random.default_rng(3), dtype=dtype)
    expected, got = _arviz(ll, reff), _ours(ll, reff)
    for key in ("elpd_loo", "se", "p_loo"):
        assert float(got[key]) == pytest.approx(float(expected[key]), rel=tol, abs=tol)
    for key in ("loo_i", "pareto_k"):
        np.testing.assert_allclose(np.asarray(got[key]), np.asarray(expected[key]), rtol=50 * tol, atol=50 * tol)
    assert np.asarray(expected.pareto_k).max() > 0.7
    assert bool(got.warning) == bool(expected.warning)
    assert (got.n_samples, got.n_data_points, got.scale, got.good_k) == (
        expected.n_samples, expected.n_data_points, expected.scale, expected.good_k)


def test_ties_and_vanishing_weights_go_through_arviz_per_point(monkeypatch):
    """Points whose tail is not the largest draws alone (repeated draws tied at the cut-off, as resampled draws
    have; weights below the smallest float; a constant point) get ArviZ's own per-point result, from ArviZ's own
    function as copied (called for those three points only)."""
    import ratingflow.psis as psis

    calls = []
    per_point = psis._psislw_row
    monkeypatch.setattr(psis, "_psislw_row", lambda *a, **kw: calls.append(1) or per_point(*a, **kw))
    rng = np.random.default_rng(5)
    ll = _log_likelihood(rng, dtype=np.float64, points=8)
    flat = ll.reshape(4000, -1)
    flat[:, 0] = np.round(flat[:, 0], 1)  # few distinct values: ties at the cut-off
    flat[:, 1] = np.where(np.arange(4000) % 2 == 0, -2000.0, flat[:, 1])  # half the weights below the tiniest float
    flat[:, 2] = -1.25  # every draw the same
    got = _ours(ll, None)
    assert len(calls) == 3
    expected = _arviz(ll, None)
    np.testing.assert_allclose(np.asarray(got.loo_i), np.asarray(expected.loo_i), rtol=1e-10)
    np.testing.assert_array_equal(np.isinf(got.pareto_k), np.isinf(expected.pareto_k))
    finite = np.isfinite(np.asarray(expected.pareto_k))
    np.testing.assert_allclose(np.asarray(got.pareto_k)[finite], np.asarray(expected.pareto_k)[finite], rtol=1e-10)
    assert float(got.elpd_loo) == pytest.approx(float(expected.elpd_loo), rel=1e-10)


def test_psislw_weights_are_arviz_weights():
    """The smoothed, normalised log weights themselves, point by point."""
    lw = -_log_likelihood(np.random.default_rng(7), dtype=np.float64, points=12).reshape(4000, -1).T
    ours, k = psislw(lw, 0.8)
    theirs, k_az = az.psislw(lw.copy(), 0.8)
    np.testing.assert_allclose(ours, np.asarray(theirs), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(k, np.asarray(k_az), rtol=1e-10)


def test_choice_table_is_unchanged():
    """The choice's differences (elpd_diff, dse, stacking weight) from our LOO are az.compare's from ArviZ's, to the
    precision of the log-likelihood; from the same LOO (ArviZ's own), to the last bit, for two and three candidates,
    a weight of 0 among them."""
    rng = np.random.default_rng(11)
    base = _log_likelihood(rng)
    lls = {"seg1": base, "seg2": _log_likelihood(rng) + np.float32(0.02), "seg3": base - np.float32(0.3)}
    for names in (["seg1", "seg2"], ["seg1", "seg2", "seg3"]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = {k: _arviz(lls[k], None) for k in names}
            expected = az.compare(theirs)
            got = elpd_differences({k: _ours(lls[k], None) for k in names})
            same = elpd_differences(theirs)
        for column in ("elpd_diff", "dse", "weight"):
            np.testing.assert_allclose(got.loc[names, column], expected.loc[names, column].astype(float), rtol=1e-4,
                                       atol=1e-6)
            np.testing.assert_array_equal(same.loc[names, column], expected.loc[names, column].astype(float))
        assert list(same.index) == list(expected.index)
    assert expected.loc["seg3", "weight"] < 1e-6


def test_one_row_is_az_psislw():
    """The importance sampler's smoothing (one row of weights, heavy-tailed or with ties, in float64 and float32) is
    az.psislw's to the last bit."""
    rng = np.random.default_rng(13)
    for dtype in (np.float64, np.float32):
        for x in (rng.standard_t(1.5, 16000), np.round(rng.standard_t(4.0, 3000), 1), rng.normal(0, 1e-3, 200)):
            x = (x - x.max()).astype(dtype)
            with np.errstate(over="ignore"):
                expected, k_az = az.psislw(x.copy())
                got, k = psislw_row(x)
            np.testing.assert_array_equal(got, np.asarray(expected))
            assert got.dtype == np.asarray(expected).dtype and k == float(k_az)
