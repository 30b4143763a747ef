"""R-hat and ESS of many parameters at once (ratingflow.chain_stats) against ArviZ's own, parameter by parameter."""
import warnings

import arviz as az
import numpy as np
import pytest

from ratingflow.chain_stats import rhat_ess
from ratingflow.posterior import convergence

pytestmark = pytest.mark.package


def _chains(rng, dtype):
    """(4 chains, 1000 draws, P) parameters of every kind a fit can give: independent draws, slow AR(1) chains
    (long Geyer sequences), antithetic ones (negative lag-1 autocorrelation), a stuck chain, resampled draws
    (many ties, as importance draws have), heavy tails, and a constant."""
    c, d = 4, 1000
    cols = [rng.normal(size=(c, d))]
    for phi in (0.9, 0.99, -0.6):
        e = rng.normal(size=(c, d))
        ar = np.empty((c, d))
        ar[:, 0] = e[:, 0]
        for t in range(1, d):
            ar[:, t] = phi * ar[:, t - 1] + e[:, t]
        cols.append(ar)
    stuck = rng.normal(size=(c, d))
    stuck[0] += 3.0
    cols.append(stuck)
    pool = rng.normal(size=150)
    cols.append(pool[rng.integers(0, 150, size=(c, d))])
    cols.append(rng.standard_cauchy(size=(c, d)))
    cols.append(np.full((c, d), 2.5))
    return np.stack(cols, axis=2).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rhat_and_ess_are_arviz_figures(dtype):
    """Each parameter's rank R-hat, bulk ESS and tail ESS are ArviZ's to 1e-10 (the order of sums differs)."""
    x = _chains(np.random.default_rng(2), dtype)
    rhat, bulk, tail = rhat_ess(x)
    data = az.convert_to_dataset({"p": x})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = [az.rhat(data)["p"].values, az.ess(data, method="bulk")["p"].values,
                    az.ess(data, method="tail")["p"].values]
    for got, want in zip((rhat, bulk, tail), expected):
        np.testing.assert_allclose(got, want, rtol=1e-10)
    assert rhat[4] > 1.1 and bulk[2] < 200 < bulk[0]  # the stuck chain and the slow chain are seen


def test_a_parameter_with_a_nan_draw_gets_nan_alone():
    x = _chains(np.random.default_rng(4), np.float64)
    x[1, 7, 3] = np.nan
    rhat, bulk, tail = rhat_ess(x)
    assert np.isnan(rhat[3]) and np.isnan(bulk[3]) and np.isnan(tail[3])
    clean = np.delete(x, 3, axis=2)
    for got, want in zip((rhat, bulk, tail), rhat_ess(clean)):
        np.testing.assert_allclose(np.delete(got, 3), want, rtol=1e-12)


def test_convergence_reports_the_worst_of_each_parameter_as_arviz_gives_it():
    """posterior.convergence (worst R-hat and ESS of each reported parameter, over its elements) is what the
    ArviZ calls it replaced give, for parameters of both precisions and shapes."""
    rng = np.random.default_rng(6)
    x = _chains(rng, np.float32)
    posterior = {"a": x[:, :, 0:2], "b": x[:, :, 2:4], "h0": x[:, :, 4].astype(np.float64), "sigma": x[:, :, 6],
                 "log_a": x[:, :, 5]}
    got = convergence(posterior, {"diverging": np.zeros((4, 1000), bool)})
    data = az.convert_to_dataset({k: v for k, v in posterior.items() if k != "log_a"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rhat, bulk, tail = az.rhat(data), az.ess(data, method="bulk"), az.ess(data, method="tail")
    assert list(got["per_parameter"]) == ["a", "b", "h0", "sigma"]
    for name, figures in got["per_parameter"].items():
        assert figures["rhat"] == pytest.approx(float(np.max(rhat[name].values)), rel=1e-10)
        assert figures["ess_bulk"] == pytest.approx(float(np.min(bulk[name].values)), rel=1e-10)
        assert figures["ess_tail"] == pytest.approx(float(np.min(tail[name].values)), rel=1e-10)
    assert got["rhat_max"] == max(f["rhat"] for f in got["per_parameter"].values())


def test_one_chain_has_no_rhat_and_too_few_draws_no_figures():
    """As ArviZ: R-hat needs two chains (ESS does not), and every figure needs 4 draws a chain."""
    x = _chains(np.random.default_rng(8), np.float64)
    rhat, bulk, tail = rhat_ess(x[:1])
    assert np.isnan(rhat).all()
    data = az.convert_to_dataset({"p": x[:1]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_allclose(bulk, az.ess(data, method="bulk")["p"].values, rtol=1e-10)
        np.testing.assert_allclose(tail, az.ess(data, method="tail")["p"].values, rtol=1e-10)
        assert np.isnan(az.rhat(data)["p"].values).all()
    assert all(np.isnan(a).all() for a in rhat_ess(x[:, :3]))
