"""The stacking mixture (issue 17): the rating table and the discharge series draw from the fitted candidates mixed by
their PSIS-LOO stacking weights (``ratingflow.mixture``). Fake fits whose draws are all one curve make every figure
exact: a mixture of two such curves has them as its only values, in the weights' proportions."""
import json
from types import SimpleNamespace

import arviz as az
import numpy as np
import pandas as pd
import pytest

from ratingflow import mixture
from ratingflow.candidates import Candidate, ModelSettings, Structure, structure_for
from ratingflow.data import StationData
from ratingflow.io import load_groups, load_idata, save_idata
from ratingflow.posterior import inference_data
from ratingflow.sampler import FitResult
from ratingflow.summarise import rating_table

PASS = {"rhat_max": 100.0, "ess_bulk_min": 0, "ess_tail_min": 0, "max_divergences": 0}
FAIL = {**PASS, "ess_bulk_min": 1e9}
TABLE = {"stage_step_m": 0.05, "extend_below": 0.0, "extend_above": 0.0, "hpdi_probs": [0.5, 0.9]}


def _station():
    stage = np.array([100.5, 101.0, 101.5, 102.0, 102.5, 103.0])
    return StationData("mix", stage, 10.0 * (stage - 100.0) ** 1.8, 0.05 * 10.0 * (stage - 100.0) ** 1.8)


def _fit(st, name, log_a, chains=4, draws=250, rng=None):
    """A fit whose every draw is the same curve: h0 100 m, exponent 1.8, coefficient exp(log_a) (both segments of a
    seg2 alike, breakpoint mid-range). ``rng``: draws that vary (for the convergence gate)."""
    c = Candidate(name)
    k = c.n_segments
    shape = (chains, draws)
    gap = np.full(shape, st.stage_offset - 100.0)
    post = {"gap": gap.astype(np.float32), "b": np.full(shape + (k,), 1.8, np.float32),
            "log_a": np.full(shape + (k,), log_a, np.float32), "sigma": np.full(shape, 1e-4, np.float32)}
    post["log_q_ref"] = (log_a + 1.8 * np.log(st.stage_ref + post["gap"])).astype(np.float32)
    if k > 1:
        post["break_u"] = np.zeros(shape + (k - 1,), np.float32)
        post["breakpoint_rel"] = np.full(shape + (k - 1,), 1.25, np.float32)
    if rng is not None:  # independent normal draws: R-hat near 1, large ESS
        post = {name: (v + 0.01 * rng.standard_normal(v.shape)).astype(np.float32) for name, v in post.items()}
    structure = structure_for([Candidate("seg1"), Candidate("seg2")], transition=0.0)
    stats = {"diverging": np.zeros(shape, bool), "energy": np.ones(shape), "lp": np.zeros(shape)}
    return FitResult(st, c, st.context(c, structure), post, stats, np.zeros(shape + (st.n,)))


def _choice(fits: dict, chosen: str, w: dict):
    table = pd.DataFrame({"model": list(fits), "weight": [w[n] for n in fits]})
    return SimpleNamespace(chosen=chosen, fits=fits, table=table, fit=fits[chosen])


def test_shares_are_split_by_largest_remainder_and_spread_evenly():
    assert mixture.allocate({"seg1": 0.3, "seg2": 0.7}, 4000) == {"seg1": 1200, "seg2": 2800}
    counts = mixture.allocate({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, 1000)
    assert sum(counts.values()) == 1000 and sorted(counts.values()) == [333, 333, 334]
    rows = mixture.spread(4000, 1000)
    assert len(rows) == 1000 and rows[0] == 0 and rows[-1] == 3999 and np.all(np.diff(rows) >= 3)
    assert len(mixture.spread(4000, 0)) == 0


def test_the_weights_keep_the_chosen_one_and_the_others_that_pass_the_gate_and_weigh_enough():
    st = _station()
    rng = np.random.default_rng(1)
    fits = {"seg1": _fit(st, "seg1", np.log(10.0), rng=rng), "seg2": _fit(st, "seg2", np.log(12.0), rng=rng)}
    assert mixture.weights(_choice(fits, "seg1", {"seg1": 0.2, "seg2": 0.6}), PASS) == pytest.approx(
        {"seg1": 0.25, "seg2": 0.75})
    # a candidate that fails the gate, or weighs under MIN_WEIGHT, is left out: the chosen one alone
    assert mixture.weights(_choice(fits, "seg1", {"seg1": 0.2, "seg2": 0.8}), FAIL) == {"seg1": 1.0}
    assert mixture.weights(_choice(fits, "seg1", {"seg1": 0.995, "seg2": 0.005}), PASS) == {"seg1": 1.0}
    # the chosen one stays even when it fails the gate or weighs nothing
    assert mixture.weights(_choice(fits, "seg2", {"seg1": 1.0, "seg2": 0.0}), PASS) == {"seg1": 1.0, "seg2": 0.0}
    assert mixture.weights(_choice({"seg1": fits["seg1"]}, "seg1", {"seg1": 1.0}), PASS) == {"seg1": 1.0}


def test_the_fit_file_carries_the_mixture_and_the_table_is_its_median_and_hpdi(tmp_path):
    """Chosen seg1 (Q = 10 d^1.8) at weight 0.3, seg2 (Q = 12 d^1.8) at 0.7: the mixture's median is seg2's curve, its
    50 % band is seg2's curve alone (70 % of the draws), its 90 % band reaches from seg1's curve to seg2's; the chosen
    fit's own table is seg1's curve. Read back from the fit file as the summary reads it."""
    st = _station()
    fits = {"seg1": _fit(st, "seg1", np.log(10.0)), "seg2": _fit(st, "seg2", np.log(12.0))}
    choice = _choice(fits, "seg1", {"seg1": 0.3, "seg2": 0.7})
    models = ModelSettings(candidates=("seg1", "seg2"), transition=0.0)
    idata = inference_data(fits["seg1"], az.from_dict(prior={"b": np.ones((1, 10))}), {"seed": 1}, models)
    idata.attrs[mixture.ATTR], extra = mixture.groups(choice, {"seg1": 0.3, "seg2": 0.7}, models)
    path = tmp_path / "mix.nc"
    save_idata(idata, path, extra)
    back = load_idata(path)
    assert "mixture_seg2" not in back.groups()  # not an ArviZ group: read with load_groups
    entries = json.loads(back.attrs[mixture.ATTR])
    assert [(e["model"], e["group"]) for e in entries] == [("seg1", ""), ("seg2", "mixture_seg2")]
    parts = mixture.components(back, load_groups(path, mixture.PREFIX))
    assert [(c.name, len(c.samples["gap"])) for c in parts] == [("seg1", 300), ("seg2", 700)]
    assert parts[1].structure == Structure.from_attrs(Structure(2, transition=0.0).as_attrs())

    alone = rating_table(back, 1, TABLE["stage_step_m"], 0.0, 0.0, (0.5, 0.9))
    mixed = rating_table(back, 1, TABLE["stage_step_m"], 0.0, 0.0, (0.5, 0.9), components=parts)
    depth = mixed["stage_m"].to_numpy() - 100.0
    low, high = 10.0 * depth**1.8, 12.0 * depth**1.8
    assert np.allclose(alone["discharge_median_m3s"], low, rtol=1e-4)
    assert np.allclose(mixed["discharge_median_m3s"], high, rtol=1e-4)
    assert np.allclose(mixed["curve_hpdi50_lower_m3s"], high, rtol=1e-4)
    assert np.allclose(mixed["curve_hpdi90_lower_m3s"], low, rtol=1e-4)
    assert np.allclose(mixed["curve_hpdi90_upper_m3s"], high, rtol=1e-4)
    assert "seg1 0.30, seg2 0.70" in mixed.attrs["mixture"]


def test_a_station_without_a_mixture_keeps_its_table():
    """The chosen candidate alone (no mixture listed, or all the weight): its own draws and key, as before."""
    st = _station()
    idata = inference_data(_fit(st, "seg1", np.log(10.0), rng=np.random.default_rng(2)),
                           az.from_dict(prior={"b": np.ones((1, 10))}), {"seed": 1})
    parts = mixture.components(idata, {})
    assert len(parts) == 1 and len(parts[0].samples["gap"]) == 1000
    assert np.array_equal(parts[0].samples["gap"], idata.posterior["gap"].values.reshape(-1))
    before = rating_table(idata, 1, 0.05, 0.1, 0.1, (0.9,))
    pd.testing.assert_frame_equal(before, rating_table(idata, 1, 0.05, 0.1, 0.1, (0.9,), components=parts))


def test_the_discharge_series_draws_from_the_mixture_too(tmp_path):
    """The same two curves through the discharge step (no stage error; the structural error is 1e-4): its median is
    seg2's curve and its 90 % band reaches down to seg1's, with the settings' 1000 draws split 300 / 700; the status
    says the bands mix the candidates."""
    from ratingflow.discharge import run
    from ratingflow.sheet import StationSpec

    st = _station()
    fits = {"seg1": _fit(st, "seg1", np.log(10.0)), "seg2": _fit(st, "seg2", np.log(12.0))}
    models = ModelSettings(candidates=("seg1", "seg2"), transition=0.0)
    idata = inference_data(fits["seg1"], az.from_dict(prior={"b": np.ones((1, 10))}), {"seed": 1}, models)
    idata.attrs[mixture.ATTR], extra = mixture.groups(_choice(fits, "seg1", {"seg1": 0.3, "seg2": 0.7}),
                                                       {"seg1": 0.3, "seg2": 0.7}, models)
    save_idata(idata, tmp_path / "fit.nc", extra)
    h = np.linspace(100.6, 102.9, 48)
    raw = tmp_path / "raw"
    raw.mkdir()
    times = pd.date_range("2021-03-01", periods=len(h), freq="h")
    (raw / "stage.csv").write_text("time;stage\n" + "".join(f"{t:%Y-%m-%d %H:%M};{x:.4f}\n" for t, x in zip(times, h)))
    spec = StationSpec("mix", "test", "g.csv", "stage", "m", "q", "m3/s", stage_file="stage.csv",
                       stage_time_column="time", stage_level_column="stage", delimiter=";")
    out = tmp_path / "out"
    out.mkdir()
    status = run(spec, raw, tmp_path / "fit.nc", None, out, {"draws": 1000, "stage_error": False}, 1)
    assert status["draws"] == 1000 and status["mixture"] == "seg1 0.30, seg2 0.70"
    assert "mixed by their stacking weights" in status["bands"]
    table = pd.read_csv(out / "mix.csv")
    stage = table["stage_m"].to_numpy()
    low, high = 10.0 * (stage - 100.0) ** 1.8, 12.0 * (stage - 100.0) ** 1.8
    np.testing.assert_allclose(table["discharge_median_m3s"], high, rtol=2e-3)
    np.testing.assert_allclose(table["discharge_hpdi90_lower_m3s"], low, rtol=2e-3)
    np.testing.assert_allclose(table["discharge_hpdi90_upper_m3s"], high, rtol=2e-3)


def test_the_coverage_study_reads_its_bands_off_the_same_mixture():
    """The study's predictive draws (:class:`ratingflow.coverage_study.study.Fitter`) take each candidate's share of the
    chosen fit's draws as the rating table does: 300 of seg1's curve and 700 of seg2's, and the chosen fit alone
    without ``mixed``."""
    import jax

    from ratingflow.candidates import Priors
    from ratingflow.coverage_study.study import Fitter
    from ratingflow.sampler import SamplerSettings

    st = _station()
    fits = {"seg1": _fit(st, "seg1", np.log(10.0)), "seg2": _fit(st, "seg2", np.log(12.0))}
    fitter = Fitter(ModelSettings(candidates=("seg1", "seg2"), transition=0.0, stacking=True), SamplerSettings(),
                    Priors())
    fitter.mixtures[st.station_id] = [(fits["seg1"], 0.3), (fits["seg2"], 0.7)]
    stage = np.array([101.0, 102.0, 103.0])
    curve, gauging, sd = fitter.predictive(fits["seg1"], stage, np.full(3, 0.05), jax.random.PRNGKey(0))
    assert curve.shape == gauging.shape == sd.shape == (1000, 3)
    low, high = np.log(10.0 * (stage - 100.0) ** 1.8), np.log(12.0 * (stage - 100.0) ** 1.8)
    assert np.allclose(curve[:300], low, atol=1e-4) and np.allclose(curve[300:], high, atol=1e-4)
    alone = fitter.predictive(fits["seg1"], stage, np.full(3, 0.05), jax.random.PRNGKey(0), mixed=False)[0]
    assert alone.shape == (1000, 3) and np.allclose(alone, low, atol=1e-4)
