"""Segmented power law, generalized power law, model choice by PSIS-LOO, equations."""
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from numpyro import handlers
from numpyro.diagnostics import hpdi

from ratingflow.choice import compare
from ratingflow.data import StationData
from ratingflow.posterior import candidate_posterior, inference_data
from ratingflow.sampler import BatchedNUTS, SamplerSettings
from ratingflow.model import Candidate, ModelSettings, ordered_breakpoints, rating_model, structure_for
from ratingflow.sheet import SheetError, load_sheet
from ratingflow.summarise import equations, rating_table

ROOT = Path(__file__).resolve().parents[2]
SEGS = [Candidate("seg1"), Candidate("seg2"), Candidate("seg3")]


def test_breakpoints_are_ordered_and_inside_their_ranges():
    rng = np.random.default_rng(0)
    lo, hi = jnp.array([0.2, 0.2]), jnp.array([3.0, 3.0])
    for _ in range(200):
        b = np.asarray(ordered_breakpoints(jnp.asarray(rng.normal(0, 4, 2)), lo, hi))
        assert 0.2 <= b[0] <= b[1] <= 3.0
    # sheet ranges that do not overlap: each breakpoint stays in its own
    b = np.asarray(ordered_breakpoints(jnp.array([-9.0, 9.0]), jnp.array([0.5, 2.0]), jnp.array([1.0, 2.5])))
    np.testing.assert_allclose(b, [0.5, 2.5], atol=1e-3)


def _curve(params, stage, candidate, transition=0.0, segment_offsets=True):
    """ln Q of the model's curve for fixed unconstrained-free parameter values."""
    structure = structure_for([candidate], transition=transition, segment_offsets=segment_offsets)
    st = StationData("s", np.linspace(0.0, 4.0, 9), np.ones(9), np.full(9, 0.05))
    context = {k: jnp.asarray(v) for k, v in st.context(candidate, structure).items()}
    model = handlers.substitute(handlers.seed(rating_model, 0), params)
    trace = handlers.trace(model).get_trace(jnp.asarray(stage, jnp.float32), jnp.zeros(len(stage)), context,
                                            structure=structure)
    return {k: np.asarray(v["value"], np.float64) for k, v in trace.items()}


def test_segments_are_power_laws_joined_continuously():
    """With a sharp transition, each segment is exactly Q = a_k (H - e_k)^b_k with its own offset e_k
    (e_1 = h0), and the curve is continuous at the breakpoints."""
    params = {"gap": 0.3, "log_q_ref": 2.0, "sigma": 0.05, "b": jnp.array([2.6, 1.5, 2.2]),
              "break_u": jnp.array([-0.5, 0.8]), "offset_shift": jnp.array([-0.7, 0.4])}
    stage = np.linspace(0.0, 4.0, 4001)
    out = _curve(params, stage, Candidate("seg3"))
    breaks, log_a, b, e = out["breakpoint_rel"], out["log_a"], np.array([2.6, 1.5, 2.2]), out["offset_rel"]
    assert e[0] == pytest.approx(-0.3) and e[1] > e[0]  # a shift < 0: the upper control's zero flow lies higher
    segment = np.searchsorted(breaks, stage, side="right")
    expected = log_a[segment] + b[segment] * np.log(stage - e[segment])
    np.testing.assert_allclose(out["log_curve"], expected, atol=2e-5)
    jumps = np.abs(np.diff(out["log_curve"]))
    assert jumps.max() < 0.01  # no step anywhere, breakpoints included
    # one h0 for all segments: the same, with every offset at h0
    shared = _curve(params, stage, Candidate("seg3"), segment_offsets=False)
    segment = np.searchsorted(shared["breakpoint_rel"], stage, side="right")
    np.testing.assert_allclose(shared["log_curve"], shared["log_a"][segment] + b[segment] * np.log(stage + 0.3),
                               atol=2e-5)
    assert "offset_shift" not in shared
    # a 2-segment candidate ignores the third exponent, the second breakpoint and its offset
    two = _curve(params, stage, Candidate("seg2"))
    other = _curve({**params, "b": jnp.array([2.6, 1.5, 9.0]), "break_u": jnp.array([-0.5, -3.0]),
                    "offset_shift": jnp.array([-0.7, 1.5])}, stage, Candidate("seg2"))
    np.testing.assert_allclose(two["log_curve"], other["log_curve"], atol=1e-6)


def test_rounded_transition_stays_close_to_the_segments():
    params = {"gap": 0.3, "log_q_ref": 2.0, "sigma": 0.05, "b": jnp.array([2.6, 1.5]), "break_u": jnp.array([0.0]),
              "offset_shift": jnp.array([0.0])}
    stage = np.linspace(0.0, 4.0, 2001)
    sharp = _curve(params, stage, Candidate("seg2"))["log_curve"]
    round_ = _curve(params, stage, Candidate("seg2"), transition=0.05)["log_curve"]
    gap = np.abs(sharp - round_)
    assert 0 < gap.max() <= 0.05 * np.log(2) * 1.1 + 1e-3  # at most width * ln 2 * |b2 - b1| (+ ln a shift)
    # with its own offset (d = d' e^0.5) the bound is width * ln 2 * |b2 d'/d - b1|
    moved = {**params, "offset_shift": jnp.array([0.5])}
    gap = np.abs(_curve(moved, stage, Candidate("seg2"))["log_curve"]
                 - _curve(moved, stage, Candidate("seg2"), transition=0.05)["log_curve"])
    assert 0 < gap.max() <= 0.05 * np.log(2) * abs(1.5 * np.exp(-0.5) - 2.6) * 1.1 + 1e-3


def two_control_station(rng, n=40):
    """Shared h0, exponent 2.6 below the breakpoint at 1.2 m, 1.5 above."""
    h0, breakpoint, b1, b2, a1 = 10.0, 11.2, 2.6, 1.5, 8.0
    depth = np.exp(rng.uniform(np.log(0.15), np.log(4.0), n))
    stage = h0 + depth
    log_q = np.log(a1) + b1 * np.log(depth)
    upper = stage > breakpoint
    log_q[upper] = np.log(a1) + b1 * np.log(breakpoint - h0) + b2 * (np.log(depth[upper]) - np.log(breakpoint - h0))
    q = np.exp(log_q + rng.normal(0, 0.04, n))
    return StationData("two", stage, q, 0.03 * q), {"breakpoint": breakpoint, "b": [b1, b2], "h0": h0}


@pytest.fixture(scope="module")
def two_control():
    st, truth = two_control_station(np.random.default_rng(5))
    models = ModelSettings(transition=0.0)
    driver = BatchedNUTS(models.structure(SEGS), SamplerSettings(num_warmup=500, num_samples=500, target_accept=0.95,
                                                                 dense_mass=True))
    return st, truth, driver.fit([st], SEGS, seed=3)[0]


def test_two_controls_are_found_and_recovered(two_control):
    st, truth, fits = two_control
    chosen, table = compare({name: fit.log_likelihood for name, fit in fits.items()})
    print(table.to_string())
    assert chosen in ("seg2", "seg3")
    seg1, seg2 = table.set_index("model").loc[["seg1", "seg2"], "elpd_loo"]
    assert seg2 - seg1 > 10
    post = candidate_posterior(fits["seg2"])
    lo, hi = hpdi(post["breakpoint"].reshape(-1), 0.9)
    assert lo <= truth["breakpoint"] <= hi, (lo, hi)
    for k, b in enumerate(truth["b"]):
        lo, hi = hpdi(post["b"][..., k].reshape(-1).astype(float), 0.99)
        assert lo <= b <= hi, (k, lo, hi)
    assert fits["seg2"].sample_stats["diverging"].sum() == 0


@pytest.fixture(scope="module")
def offsets_fit():
    """models.segment_offsets: a riffle (h0 10.0 m, b 2.6) hands over at 10.8 m to a channel control whose
    zero flow lies at 10.4 m (b 1.5), as in ratingflow.synthetic."""
    from ratingflow.synthetic import Truth

    truth = Truth("offsets", 2, a=8.0, b=2.6, h0=10.0, sigma=0.02, breakpoint=10.8, b2=1.5, h02=10.4)
    truth.a2 = truth.a * (truth.breakpoint - truth.h0) ** truth.b / (truth.breakpoint - truth.h02) ** truth.b2
    rng = np.random.default_rng(11)
    stage = np.sort(truth.h0 + np.exp(rng.uniform(np.log(0.1), np.log(3.0), 60)))
    q = truth.discharge(stage) * np.exp(rng.normal(0, 0.04, 60))
    st = StationData("offsets", stage, q, 0.03 * q)
    models = ModelSettings(candidates=("seg2",), transition=0.0, segment_offsets=True)
    driver = BatchedNUTS(models.structure(SEGS[1:2]), SamplerSettings(num_warmup=500, num_samples=500,
                                                                      target_accept=0.95, dense_mass=True))
    (fits,) = driver.fit([st], SEGS[1:2], seed=4)
    return st, truth, fits["seg2"], models


def test_segment_offsets_recover_a_channel_control_with_its_own_zero_flow(offsets_fit):
    """The offset model finds the breakpoint, the channel's offset and both exponents, and its curve band
    holds the true curve."""
    st, truth, fit, _ = offsets_fit
    assert fit.sample_stats["diverging"].sum() == 0
    post = candidate_posterior(fit)
    for draws, true in ((post["breakpoint"], truth.breakpoint), (post["offset"][..., 1], truth.h02),
                        (post["b"][..., 0], truth.b), (post["b"][..., 1], truth.b2)):
        lo, hi = hpdi(np.asarray(draws, float).reshape(-1), 0.95)
        assert lo <= true <= hi, (true, lo, hi)
    # the segment equations Q = a_k (H - offset_k)^b_k, per draw, hold the true curve
    check = np.linspace(st.stage.min(), st.stage.max(), 9)
    flat = {k: np.asarray(post[k], float).reshape(-1, *post[k].shape[2:]) for k in ("a", "b", "offset", "breakpoint")}
    segment = (check[None, :] > flat["breakpoint"]).astype(int)
    pick = lambda v: np.take_along_axis(v, segment, 1)  # noqa: E731
    log_curve = np.log(pick(flat["a"])) + pick(flat["b"]) * np.log(np.clip(check - pick(flat["offset"]), 1e-9, None))
    bands = [hpdi(log_curve[:, j], 0.9) for j in range(len(check))]
    assert all(lo <= np.log(t) <= hi for (lo, hi), t in zip(bands, truth.discharge(check)))


@pytest.mark.parametrize("offsets", [False, True])
def test_equations_reproduce_the_table(offsets, request):
    """The equations (posterior medians) give the table's median curve to within a few per cent, with one
    h0 and with segment offsets (each segment's own offset in its equation)."""
    import arviz as az

    if offsets:
        st, truth, fit, models = request.getfixturevalue("offsets_fit")
    else:
        st, truth, fits = request.getfixturevalue("two_control")
        fit, models = fits["seg2"], ModelSettings(transition=0.0)
    idata = inference_data(fit, az.from_dict(prior={"b": np.zeros((1, 10))}), {"seed": 3}, models)
    eq = equations(idata)
    if offsets:
        assert eq["segments"][1]["offset_m"] == pytest.approx(truth.h02, abs=0.1)
        assert eq["segments"][0]["offset_m"] == pytest.approx(eq["segments"][0]["stage_from_m"])
    assert len(eq["segments"]) == 2 and eq["segments"][0]["stage_to_m"] == eq["segments"][1]["stage_from_m"]
    table = rating_table(idata, seed=3, step=0.01, below=0.0, above=0.0)
    for seg in eq["segments"]:
        top = seg["stage_to_m"] or np.inf
        rows = table[(table["stage_m"] > seg["stage_from_m"] + 0.05) & (table["stage_m"] < top - 0.05)]
        q = seg["a"] * (rows["stage_m"] - seg["offset_m"]) ** seg["b"]
        np.testing.assert_allclose(q, rows["discharge_median_m3s"], rtol=0.05)
    assert set(table["segment"]) == {1, 2}


def test_choice_takes_the_simplest_within_two_se():
    rng = np.random.default_rng(0)
    base = rng.normal(-1.0, 0.3, (4, 500, 40))
    same = {"seg1": base, "seg2": base + rng.normal(0, 0.01, base.shape)}
    chosen, table = compare(same, se_factor=2.0)
    assert chosen == "seg1" and table["chosen"].sum() == 1
    better = {"seg1": base, "seg2": base + 0.5}  # 40 gaugings x 0.5: far beyond 2 SE
    chosen, table = compare(better, se_factor=2.0)
    assert chosen == "seg2" and table.loc[table["chosen"], "reason"].item() == "best elpd"
    assert {"elpd_loo", "se", "elpd_diff", "dse", "weight", "n_pareto_k_high"} <= set(table.columns)


def test_generalized_power_law_samples_and_predicts():
    st, _ = two_control_station(np.random.default_rng(8), n=30)
    gplm = Candidate("gplm")
    driver = BatchedNUTS(structure_for([gplm]), SamplerSettings(num_warmup=300, num_samples=300, dense_mass=True))
    fit = driver.fit([st], [gplm], seed=1)[0]["gplm"]
    import arviz as az

    idata = inference_data(fit, az.from_dict(prior={"b": np.zeros((1, 10))}), {"seed": 1})
    table = rating_table(idata, seed=1, step=0.05, below=0.0, above=0.0)
    # the exponent falls from about 2.6 to about 1.5 across the range, as in the data
    exponent = table["exponent_median"].to_numpy()
    assert exponent[: len(exponent) // 5].mean() > exponent[-len(exponent) // 5:].mean() + 0.3
    resid = np.log(st.discharge / np.interp(st.stage, table["stage_m"], table["discharge_median_m3s"]))
    assert np.abs(resid).mean() < 0.1


def test_sheet_breakpoint_ranges(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "x.csv").write_text("h,q\n1,2\n")
    head = "station_id\tname\tfile\tstage_column\tstage_unit\tdischarge_column\tdischarge_unit\tbreakpoints_m\tcontrols\n"
    sheet = tmp_path / "s.tsv"
    sheet.write_text(head + "a\tA\tx.csv\th\tm\tq\tm3/s\t0.5-0.8;1.2-1.6\t3\n")
    spec = load_sheet(sheet, raw)["a"]
    assert spec.breakpoint_ranges() == ((0.5, 0.8), (1.2, 1.6)) and spec.controls == 3
    for bad, message in (("0.8-0.5", "empty"), ("a-b", "not a range"), ("1.2-1.6;0.5-0.8", "increasing"),
                         ("0.1-0.2;0.3-0.4;0.5-0.6", "at most 2")):
        sheet.write_text(head + f"a\tA\tx.csv\th\tm\tq\tm3/s\t{bad}\t\n")
        with pytest.raises(SheetError, match=rf"row 2 .*'breakpoints_m'.*{message}"):
            load_sheet(sheet, raw)


ACCEPTANCE = ROOT / "data" / "raw" / "ratingcurve"


@pytest.fixture(scope="module")
def acceptance():
    """The issue's three stations with the pipeline's settings (config/config.yaml)."""
    import yaml

    from ratingflow.clean import clean
    from ratingflow.model import Priors

    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    sheet = load_sheet(ROOT / "config" / "stations.tsv", ROOT / "data" / "raw")
    stations = []
    for sid in ("simulated_3seg", "green_channel", "mahurangi"):
        result = clean(sheet[sid], ROOT / "data" / "raw" / sheet[sid].file, cfg["default_uncertainty"])
        stations.append(StationData.from_clean(sid, result.clean))
    models = ModelSettings.from_config(cfg["models"])
    driver = BatchedNUTS(models.structure(models.candidate_list()), SamplerSettings.from_config(cfg["sampler"]),
                         Priors.from_config(cfg["priors"]))
    fits = driver.fit(stations, models.candidate_list(), cfg["seed"])
    out = {}
    for st, station_fits in zip(stations, fits):
        chosen, table = compare({k: f.log_likelihood for k, f in station_fits.items()}, models.se_factor)
        out[st.station_id] = (chosen, table.set_index("model"), station_fits)
    return out


def test_acceptance_model_choice(acceptance):
    import arviz as az

    chosen, table, _ = acceptance["simulated_3seg"]
    print(table.drop(columns="reason").to_string())
    # the 3-segment model is chosen or within 2 SE of the best
    assert chosen == "seg3" or table.loc["seg3", "elpd_diff"] <= 2 * table.loc["seg3", "dse"]
    chosen, table, _ = acceptance["green_channel"]
    assert table.loc["seg2", "elpd_loo"] > table.loc["seg1", "elpd_loo"] + 2 * table.loc["seg1", "dse"]
    assert chosen != "seg1"
    chosen, table, _ = acceptance["mahurangi"]
    best_multi = table.loc[["seg2", "seg3"], "elpd_loo"].max()
    assert best_multi - table.loc["seg1", "elpd_loo"] > 2 * table.loc["seg1", "dse"] and chosen != "seg1"
    # the chosen fits converge
    for sid, (chosen, _, fits) in acceptance.items():
        post = candidate_posterior(fits[chosen])
        rhat = az.rhat(az.convert_to_dataset({k: post[k] for k in ("a", "b", "h0", "sigma", "breakpoint") if k in post}))
        assert max(float(rhat[v].max()) for v in rhat.data_vars) <= 1.01, sid
        assert fits[chosen].sample_stats["diverging"].sum() == 0, sid


def test_report_states_a_breakpoint_disagreement():
    from ratingflow.report import breakpoint_disagreements

    params = {"breakpoint_1_median": 2.0, "breakpoint_1_hpdi90_lower": 1.8, "breakpoint_1_hpdi90_upper": 2.2}
    assert breakpoint_disagreements([1.9], params) == []
    (flag,) = breakpoint_disagreements([1.128], params)
    assert "1.128 m" in flag and "1.800-2.200 m" in flag
    (flag,) = breakpoint_disagreements([1.0], {})
    assert "has none" in flag
