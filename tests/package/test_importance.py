"""The BaRatin form's importance sampler as a driver (:mod:`ratingflow.importance`): which fits it takes, NUTS where
its weights fail, and how its draws pass the diagnostics gate. Fake samplers stand in for both (deterministic); the
sampler itself is checked against NUTS in tests/slow/test_segments_nuts.py."""
from types import SimpleNamespace

import numpy as np
import pytest

from ratingflow import importance
from ratingflow.candidates import Candidate, Structure
from ratingflow.posterior import gate
from ratingflow.sampler import BatchedNUTS, FitResult, SamplerSettings, driver_cache

pytestmark = pytest.mark.package

OWN = Structure(max_segments=3, segment_offsets=True)
THRESHOLDS = {"rhat_max": 1.01, "ess_bulk_min": 400, "ess_tail_min": 400, "max_divergences": 0}


class FakeNUTS:
    def __init__(self, structure=OWN):
        self.structure, self.settings, self.priors, self.calls = structure, SamplerSettings(), None, []

    def fit(self, stations, candidates, seed):
        self.calls += [(st.station_id, c.name) for st in stations for c in candidates]
        return [{c.name: f"nuts {st.station_id} {c.name}" for c in candidates} for st in stations]


class FakeGrid:
    """The importance sampler's result: a fit whose weights have Pareto k ``k[station]`` (or (k, R-hat))."""

    def __init__(self, k):
        self.k, self.calls = k, []

    def fit_one(self, station, candidate, seed):
        self.calls.append((station.station_id, candidate.name))
        fit = FitResult(station, candidate, {}, {}, {}, np.zeros(0))
        k = self.k[station.station_id]
        k, rhat = k if isinstance(k, tuple) else (k, 1.0)  # (Pareto k, R-hat), or k with chains that agree
        fit.convergence = {"pareto_k": k, "ess_bulk_min": 5000.0, "rhat_max": rhat}
        return fit


def test_one_breakpoint_fits_go_to_the_importance_sampler_and_nuts_takes_the_rest():
    nuts = FakeNUTS()
    driver = importance.GridFirst(nuts)
    grid = driver._grids[2] = FakeGrid({"a": 0.3, "b": 0.9, "c": (0.3, 1.02)})
    stations = [SimpleNamespace(station_id=s) for s in "abc"]
    out = driver.fit(stations, [Candidate("seg2"), Candidate("seg3")], seed=1)
    # seg2 of every station tried by importance; b's weights fail (k 0.9 > 0.7) and c's chains differ (R-hat 1.02):
    # NUTS; seg3 (two breakpoints): NUTS
    assert grid.calls == [("a", "seg2"), ("b", "seg2"), ("c", "seg2")]
    assert sorted(nuts.calls) == [("a", "seg3"), ("b", "seg2"), ("b", "seg3"), ("c", "seg2"), ("c", "seg3")]
    assert out[0]["seg2"].convergence["pareto_k"] == 0.3
    assert out[1]["seg2"] == "nuts b seg2" and out[0]["seg3"] == "nuts a seg3"


def test_with_more_than_one_cpu_thread_nuts_fits_everything(monkeypatch):
    """XLA's CPU runtime wedged on the importance sampler's programs with a pool of two threads: NUTS then."""
    monkeypatch.setenv("PJRT_NPROC", "2")
    nuts = FakeNUTS()
    driver = importance.GridFirst(nuts)
    grid = driver._grids[2] = FakeGrid({"a": 0.3})
    out = driver.fit([SimpleNamespace(station_id="a")], [Candidate("seg2")], seed=1)
    assert grid.calls == [] and nuts.calls == [("a", "seg2")] and out[0]["seg2"] == "nuts a seg2"


def test_only_the_timeless_one_breakpoint_baratin_form_is_served():
    assert importance.serves(OWN, Candidate("seg2"))
    assert not importance.serves(OWN, Candidate("seg3"))
    assert not importance.serves(Structure(max_segments=2), Candidate("seg2"))  # one h0: NUTS
    assert not importance.serves(Structure(max_segments=2, segment_offsets=True, varying_sigma=True), Candidate("seg2"))


def test_the_baratin_forms_driver_is_wrapped_only_where_the_settings_ask():
    on = SamplerSettings.from_config({"offsets": {"importance": True}})
    for_ = driver_cache(Structure(max_segments=2), on, None)
    assert isinstance(importance.grid_first(for_(OWN)), importance.GridFirst)
    assert importance.grid_first(for_(OWN)) is importance.grid_first(for_(OWN))  # built once per job
    assert importance.grid_first(for_()) is for_()  # one h0: NUTS
    off = driver_cache(Structure(max_segments=2), SamplerSettings(), None)(OWN)
    assert importance.grid_first(off) is off
    # the switch reaches the fit keys only through the form's settings (stations that may be fitted in it)
    assert on.key() == SamplerSettings().key()
    # and leaves the NUTS programs' cache keys alone
    assert repr(for_(OWN).settings) == repr(BatchedNUTS(OWN, SamplerSettings()).settings)


def test_resampled_draws_count_no_more_than_the_weights_ess_and_the_gate_checks_pareto_k():
    conv = {"rhat_max": 1.001, "ess_bulk_min": 7900.0, "ess_tail_min": 7000.0, "divergences": 0,
            "per_parameter": {"b": {"rhat": 1.001, "ess_bulk": 7900.0, "ess_tail": 7000.0}}}
    out = importance.weights_convergence(conv, pareto_k=0.5, ess=1200.0)
    assert (out["ess_bulk_min"], out["ess_tail_min"], out["per_parameter"]["b"]["ess_bulk"]) == (1200.0, 1200.0, 1200.0)
    assert gate(out, THRESHOLDS)[1] == []
    assert gate({**out, "pareto_k": 0.8}, THRESHOLDS)[1] == ["importance weights' Pareto k 0.80 > 0.7"]
    assert "ESS 300.0 < 400" in "; ".join(gate(importance.weights_convergence(conv, 0.5, 300.0), THRESHOLDS)[1])


def test_the_weights_are_smoothed_over_all_chains_and_each_chain_resamples_its_own_proposals():
    """One Pareto k of all chains' weights (the largest of four chains' k is biased up); draws stay in their chain."""
    rng = np.random.default_rng(3)
    # log weights of a proposal whose tail is light: k well under 0.7
    log_w = rng.normal(0.0, 0.3, (4, 4000))
    picks, k, ess, w = importance._resample(log_w, 500, np.random.default_rng(0))
    assert k < 0.5 and 4 * 4000 * 0.8 < ess <= 4 * 4000  # all chains' weights count; normal(0, 0.3): ESS ~ 0.91 n
    assert len(picks) == 4 and all(p.shape == (500,) and p.max() < 4000 for p in picks)
    assert w.shape == (4, 4000) and np.isclose(w.sum(), 1.0) and np.isclose(ess, 1 / np.sum(w**2))
    # a chain with no finite weight would have no draws of its own: k infinite (NUTS takes the fit)
    log_w[3] = -np.inf
    assert importance._resample(log_w, 500, np.random.default_rng(0))[1] == float("inf")
    # a heavy tail (log weights with an exponential right tail of scale 1: k near 1) fails, pooled or not
    heavy = rng.exponential(1.0, (4, 4000))
    assert importance._resample(heavy, 500, np.random.default_rng(0))[1] > 0.7
    # too few finite weights: k infinite, no ESS
    assert importance._resample(np.full((4, 4000), -np.inf), 10, np.random.default_rng(0))[1:3] == (float("inf"), 0.0)


def fake_proposals(keys, adapts, log_weights):
    """``propose_and_weigh(key, adapt)`` of :func:`importance._draw_weighted` with NumPy's ``log_weights(n)`` for
    the n-th call; proposals at zero, cells and whitened coordinates made up; keys and adapts recorded."""
    def propose_and_weigh(key, adapt):
        keys.append(np.asarray(key).tolist())
        adapts.append(adapt)
        rng = np.random.default_rng(len(keys))
        cells = rng.integers(0, importance.NODES, (4, 4000))
        where = (cells, rng.normal(size=(4, 4000, 2)), np.full(importance.NODES, -np.log(importance.NODES)))
        return np.zeros((4, 4000, 2)), log_weights(len(keys), rng), where
    return propose_and_weigh


def test_more_sets_of_proposals_are_drawn_where_only_the_ess_falls_short():
    """A light tail (Pareto k under 0.7) but an ESS short of importance.BATCH_ESS: more sets of the same proposal,
    other keys, until the ESS reaches it (at most importance.BATCHES sets). Fake proposals: NumPy's log weights, one
    proposal in 60 carrying nearly all the weight (ESS about 270 per set of 4 x 4000)."""
    import jax

    keys, adapts = [], []

    def light(n, rng):
        big = rng.random((4, 4000)) < 1 / 60
        return np.where(big, 8.0 + rng.normal(0, 0.2, big.shape), 0.0)

    key = jax.random.PRNGKey(5)
    flats, picks, k, ess, stage = importance._draw_weighted(fake_proposals(keys, adapts, light), key, 100, 2)
    # the first set's ESS (about 270) is short: more sets until it reaches BATCH_ESS (about MIN_ESS per chain)
    assert k <= 0.7 and ess >= importance.BATCH_ESS and 1 < len(keys) <= importance.BATCHES and stage == 0
    assert flats.shape == (4, 4000 * len(keys), 2) and all(p.max() < flats.shape[1] for p in picks)
    assert keys[0] == np.asarray(key).tolist()  # the first set's key is the fit's
    assert len({tuple(k) for k in keys}) == len(keys)
    # every set of the first stage: the proposal as it is (cells unshifted, the Laplace approximations as they are)
    assert all(not a[0].any() and not a[1].any() and (a[2] == np.eye(2)).all() for a in adapts)


def test_a_heavy_tail_gets_a_second_stage_adapted_to_the_first_and_nuts_if_that_fails_too():
    """The first set's Pareto k above 0.7: no more of the same proposal, but a second stage adapted to its weights
    (other keys); its own weights alone decide. Heavy in both stages: its k is returned (NUTS then)."""
    import jax

    key = jax.random.PRNGKey(5)
    keys, adapts = [], []
    def heavy_then_light(n, rng):
        return rng.exponential(1.0, (4, 4000)) if n == 1 else rng.normal(0, 0.3, (4, 4000))

    flats, picks, k, ess, stage = importance._draw_weighted(fake_proposals(keys, adapts, heavy_then_light), key, 100, 2)
    assert stage == 1 and k < 0.5 and len(keys) == 2 and keys[0] == np.asarray(key).tolist() and keys[1] != keys[0]
    assert flats.shape == (4, 4000, 2)  # the second stage's proposals only
    shift, mean, chol = adapts[1]
    assert shift.shape == (importance.NODES,) and mean.shape == (2,) and chol.shape == (2, 2) and shift.any()
    keys.clear()
    adapts.clear()
    always_heavy = lambda n, rng: rng.exponential(1.0, (4, 4000))  # noqa: E731
    out = importance._draw_weighted(fake_proposals(keys, adapts, always_heavy), key, 100, 2)
    assert out[2] > 0.7 and out[4] == importance.STAGES - 1 and len(keys) == importance.STAGES


def test_the_second_stage_draws_cells_as_the_posterior_has_them_and_widens_the_weighted_draws():
    """importance._adapted: each cell's probability ADAPTED times the weights' mass in it plus the rest of the first
    stage's; the whitened coordinates' weighted mean, and their weighted covariance WIDEN^2 (DOF - 2) / DOF times."""
    rng = np.random.default_rng(0)
    nodes = importance.NODES
    base = np.log(np.full(nodes, 1.0 / nodes))
    cells = rng.integers(0, nodes, (4, 4000))
    # the posterior has all its mass in cell 7; in whitened coordinates it sits at (1, 0), SD (2, 0.5)
    white = rng.normal(size=(4, 4000, 2)) * [2.0, 0.5] + [1.0, 0.0]
    w = np.where(cells == 7, 1.0, 0.0)
    w /= w.sum()
    shift, mean, chol = importance._adapted(cells, white, w, base)
    p = np.exp(base + shift)
    assert np.isclose(p.sum(), 1.0)
    assert np.isclose(p[7], importance.ADAPTED + (1 - importance.ADAPTED) / nodes)
    assert np.allclose(np.delete(p, 7), (1 - importance.ADAPTED) / nodes)
    # a node without a Laplace approximation (probability zero in the first stage) keeps none, and no NaN spreads
    base[3] = -np.inf
    base[np.isfinite(base)] = -np.log(nodes - 1)
    shift = importance._adapted(cells, white, w, base)[0]
    assert np.isfinite(shift).all() and np.exp(base + shift)[3] == 0.0 and np.isclose(np.exp(base + shift).sum(), 1.0)
    # about 390 draws in cell 7 (NumPy's generator, the same on every machine); bounds at 5 SE: the mean's SE 0.10 in
    # the first coordinate, a variance's relative SE sqrt(2 / 390) = 7 %
    assert np.allclose(mean, [1.0, 0.0], atol=0.5)
    scale = (importance.DOF - 2) / importance.DOF * importance.WIDEN**2
    assert np.allclose(np.diag(chol @ chol.T) / scale, [4.0, 0.25], rtol=0.35)


def test_the_grids_newton_steps_reach_sigma_zero_with_finite_derivatives():
    """Where the gaugings' own uncertainty explains their scatter, the mode of the other sites given the breakpoint
    has ``sigma_z`` = 0, and the grid's Newton steps go there. The gaugings' padding (mask 0) must keep the density's
    gradient and Hessian finite there: padded with an uncertainty of 0, their SD was 0 at sigma 0, the derivatives
    NaN, the nodes dropped from the grid and their cells never proposed. The fits still passed the gate, with the
    breakpoint's mean half a posterior SD from NUTS's (the coverage study's sim0005: 3.29 against NUTS's 3.02-3.04,
    and 3.06 with the padding fixed; docs/time_budget.md)."""
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    from ratingflow import synthetic

    truth = synthetic.two_controls("pad", a=8.0, b=2.6, h0=10.0, sigma=0.02, breakpoint=10.8, b2=1.5, h02=10.4)
    st = synthetic.station_data(truth, synthetic.gaugings(np.random.default_rng(3), truth, 40))
    grid = importance.GridImportance(BatchedNUTS(Structure(max_segments=2, segment_offsets=True), SamplerSettings()))
    arrays, context, _, z0 = grid.inputs(st, Candidate("seg2"))
    assert arrays["mask"].shape[0] >= importance.MIN_SIZE > st.n  # padded gaugings in the likelihood
    potential = grid._sites(arrays, context)[0]
    flat, unravel = ravel_pytree({**z0, "sigma_z": jnp.zeros_like(z0["sigma_z"])})
    energy = lambda x: potential(unravel(x))  # noqa: E731
    assert np.isfinite(float(energy(flat)))
    assert np.all(np.isfinite(np.asarray(jax.grad(energy)(flat))))
    assert np.all(np.isfinite(np.asarray(jax.hessian(energy)(flat))))


def test_a_newton_step_with_no_finite_derivatives_stays_where_it_is():
    """A damped Newton step reaches a quadratic's minimum; where the step is not finite, the point stays (before,
    the "no step" try was 0 x NaN, and a node stayed NaN from then on)."""
    import jax.numpy as jnp

    quadratic = lambda th: jnp.sum((th - jnp.array([1.0, -2.0])) ** 2)  # noqa: E731
    np.testing.assert_allclose(importance._newton_step(quadratic, jnp.zeros(2)), [1.0, -2.0], atol=1e-6)
    # sqrt(|x|) at 0: an infinite gradient, a NaN step; before, 0 x NaN made even "no step" NaN
    kink = lambda th: jnp.sum(jnp.sqrt(jnp.abs(th)))  # noqa: E731
    np.testing.assert_array_equal(importance._newton_step(kink, jnp.array([0.0, 1.0])), [0.0, 1.0])
