"""Segmented and generalized power laws fitted with NUTS, model choice by PSIS-LOO, equations.

Every statistical assertion states its false-failure probability (see tests/stats.py): truths are
checked at 4 posterior SD (P(|Z| > 4) = 6.3e-5 each, union bound over a test's checks)."""
from pathlib import Path

import arviz as az
import numpy as np
import pytest

from ratingflow import synthetic
from ratingflow.choice import compare, fit_and_choose
from ratingflow.posterior import loo_idata
from ratingflow.data import StationData
from ratingflow.candidates import Candidate, ModelSettings, structure_for
from ratingflow.posterior import candidate_posterior, inference_data
from ratingflow.sampler import BatchedNUTS, SamplerSettings
from ratingflow.sheet import load_sheet
from ratingflow.summarise import equations, rating_table
from stats import normal_two_sided, z_of_truth

ROOT = Path(__file__).resolve().parents[2]
SEGS = [Candidate("seg1"), Candidate("seg2"), Candidate("seg3")]
SETTINGS = SamplerSettings(num_warmup=500, num_samples=500, target_accept=0.95, dense_mass=True)
#: truths within this many posterior SD of the median
Z = 4.0


def transitions(settings: SamplerSettings) -> int:
    return settings.num_chains * settings.num_samples


@pytest.fixture(scope="module")
def two_control():
    """Shared h0 at 10 m, exponent 2.6 below the breakpoint at 11.2 m, 1.5 above (the default model's form)."""
    truth = synthetic.two_controls("two", a=8.0, b=2.6, h0=10.0, sigma=0.03, breakpoint=11.2, b2=1.5)
    st = synthetic.station_data(truth, synthetic.gaugings(np.random.default_rng(5), truth, 40))
    driver = BatchedNUTS(ModelSettings(transition=0.0).structure(SEGS), SETTINGS)
    return st, truth, driver.fit([st], SEGS, seed=3)[0]


def test_two_controls_are_found_and_recovered(two_control):
    """Two segments beat one by far more than 4 SE of the difference, and the breakpoint and both
    exponents lie within 4 posterior SD (false failure at most 3 x 6.3e-5 = 1.9e-4)."""
    st, truth, fits = two_control
    chosen, table = compare({name: fit.log_likelihood for name, fit in fits.items()})
    print(table.to_string())
    assert chosen in ("seg2", "seg3")
    rows = table.set_index("model")
    assert rows.loc["seg2", "elpd_loo"] - rows.loc["seg1", "elpd_loo"] > 4 * rows.loc["seg1", "dse"]
    post = candidate_posterior(fits["seg2"])
    checks = {"breakpoint": (post["breakpoint"], truth.breakpoint), "b1": (post["b"][..., 0], truth.b),
              "b2": (post["b"][..., 1], truth.b2)}
    assert len(checks) * normal_two_sided(Z) < 1e-3
    for name, (draws, true) in checks.items():
        assert abs(z_of_truth(draws, true)) <= Z, (name, z_of_truth(draws, true))
    assert fits["seg2"].sample_stats["diverging"].sum() <= 0.001 * transitions(SETTINGS)


@pytest.fixture(scope="module")
def offsets_fit():
    """models.segment_offsets: a riffle (h0 10.0 m, b 2.6) hands over at 10.8 m to a channel control whose
    zero flow lies at 10.4 m (b 1.5)."""
    truth = synthetic.two_controls("offsets", a=8.0, b=2.6, h0=10.0, sigma=0.02, breakpoint=10.8, b2=1.5, h02=10.4)
    st = synthetic.station_data(truth, synthetic.gaugings(np.random.default_rng(11), truth, 60))
    models = ModelSettings(candidates=("seg2",), transition=0.0, segment_offsets=True)
    driver = BatchedNUTS(models.structure(SEGS[1:2]), SETTINGS)
    (fits,) = driver.fit([st], SEGS[1:2], seed=4)
    return st, truth, fits["seg2"], models


def test_segment_offsets_recover_a_channel_control_with_its_own_zero_flow(offsets_fit):
    """The offset model finds the breakpoint, the channel's offset and both exponents, and its curve holds
    the true curve at 9 stages, each within 4 posterior SD (13 checks: false failure at most 8.2e-4)."""
    st, truth, fit, _ = offsets_fit
    assert fit.sample_stats["diverging"].sum() <= 0.001 * transitions(SETTINGS)
    post = candidate_posterior(fit)
    checks = {"breakpoint": (post["breakpoint"], truth.breakpoint), "offset_2": (post["offset"][..., 1], truth.h02),
              "b1": (post["b"][..., 0], truth.b), "b2": (post["b"][..., 1], truth.b2)}
    # the segment equations Q = a_k (H - offset_k)^b_k, per draw, against the true curve
    check = np.linspace(st.stage.min(), st.stage.max(), 9)
    flat = {k: np.asarray(post[k], float).reshape(-1, *post[k].shape[2:]) for k in ("a", "b", "offset", "breakpoint")}
    segment = (check[None, :] > flat["breakpoint"]).astype(int)
    pick = lambda v: np.take_along_axis(v, segment, 1)  # noqa: E731
    log_curve = np.log(pick(flat["a"])) + pick(flat["b"]) * np.log(np.clip(check - pick(flat["offset"]), 1e-9, None))
    for j, true_q in enumerate(truth.discharge(check)):
        checks[f"ln Q at {check[j]:.2f} m"] = (log_curve[:, j], np.log(true_q))
    assert len(checks) * normal_two_sided(Z) < 1e-3
    for name, (draws, true) in checks.items():
        assert abs(z_of_truth(draws, true)) <= Z, (name, z_of_truth(draws, true))


@pytest.mark.parametrize("adapted", [False, True])
def test_importance_sampling_of_the_baratin_form_agrees_with_nuts(offsets_fit, adapted, monkeypatch):
    """The importance sampler over a breakpoint grid (ratingflow.importance) on the same station and model, with the
    fit of five seeds whose weights' Pareto k is smallest: that k is at most 0.7 and its ESS at least 400 (the fit
    stands; on the development VM the five k were 0.49-0.69, and -0.05 to 0.05 for the second stage, so all five
    above 0.7 has probability under 1e-3 even at 25 % per seed), it holds the truths within 4 posterior SD (13
    checks: 8.2e-4 at most), and its posterior median of ln Q at 9 stages is NUTS's within 5 Monte Carlo SE of their difference (each median's MCSE about
    sqrt(pi/2) SD / sqrt(ESS): 9 x 5.7e-7). The summary reports its Pareto k and no BFMI (it has no energy).
    ``adapted``: the same of the second stage's draws (its proposal adapted to the first stage's weights, whose Pareto
    k is made to fail): a wrong density of the adapted proposal would show here."""
    from ratingflow import importance
    from ratingflow.importance import GridImportance
    from ratingflow.posterior import convergence
    from ratingflow.summarise import diagnostics

    if adapted:
        first, draw, resample = {}, importance._draw_weighted, importance._resample

        def forced(propose_and_weigh, *args):
            def propose(key, adapt):
                first["now"] = not np.any(adapt[0])  # the first stage: the cells unshifted
                return propose_and_weigh(key, adapt)
            return draw(propose, *args)

        def failing_first(*args):
            picks, k, ess, w = resample(*args)
            return picks, float("inf") if first["now"] else k, ess, w

        monkeypatch.setattr(importance, "_draw_weighted", forced)
        monkeypatch.setattr(importance, "_resample", failing_first)
    st, truth, nuts_fit, models = offsets_fit
    driver = GridImportance(BatchedNUTS(models.structure(SEGS[1:2]), SETTINGS))
    fit = min((driver.fit_one(st, SEGS[1], seed=seed) for seed in range(4, 9)), key=lambda f: f.convergence["pareto_k"])
    conv = fit.convergence
    assert conv["pareto_k"] <= 0.7 and conv["ess_bulk_min"] >= 400, conv
    assert ("adapted" in conv["sampler"]) == adapted
    post, nuts_post = candidate_posterior(fit), candidate_posterior(nuts_fit)
    checks = {"breakpoint": (post["breakpoint"], truth.breakpoint), "offset_2": (post["offset"][..., 1], truth.h02),
              "b1": (post["b"][..., 0], truth.b), "b2": (post["b"][..., 1], truth.b2)}
    check = np.linspace(st.stage.min(), st.stage.max(), 9)

    def log_curve(p):
        flat = {k: np.asarray(p[k], float).reshape(-1, *p[k].shape[2:]) for k in ("a", "b", "offset", "breakpoint")}
        segment = (check[None, :] > flat["breakpoint"]).astype(int)
        pick = lambda v: np.take_along_axis(v, segment, 1)  # noqa: E731
        return np.log(pick(flat["a"])) + pick(flat["b"]) * np.log(np.clip(check - pick(flat["offset"]), 1e-9, None))

    mine, theirs = log_curve(post), log_curve(nuts_post)
    for j, true_q in enumerate(truth.discharge(check)):
        checks[f"ln Q at {check[j]:.2f} m"] = (mine[:, j], np.log(true_q))
    assert len(checks) * normal_two_sided(Z) < 1e-3
    for name, (draws, true) in checks.items():
        assert abs(z_of_truth(draws, true)) <= Z, (name, z_of_truth(draws, true))
    nuts_ess = convergence(nuts_post, nuts_fit.sample_stats)["ess_bulk_min"]
    assert 9 * normal_two_sided(5.0) < 1e-3
    for j in range(len(check)):
        sd = mine[:, j].std()
        se = np.sqrt(np.pi / 2) * sd * np.sqrt(1 / conv["ess_bulk_min"] + 1 / nuts_ess)
        assert abs(np.median(mine[:, j]) - np.median(theirs[:, j])) <= 5 * se, (j, se)
    idata = inference_data(fit, az.from_dict(prior={"b": np.zeros((1, 10))}), {"seed": 4}, models)
    diag = diagnostics(idata, {"rhat_max": 1.01, "ess_bulk_min": 400, "ess_tail_min": 400, "max_divergences": 0,
                               "bfmi_min": 0.3})
    assert diag["passed"] and diag["pareto_k"] == conv["pareto_k"] and "bfmi_min" not in diag


def test_the_importance_samplers_weights_are_exact_for_any_adaptation(offsets_fit):
    """The proposal's density is exact however a second stage adapts it (importance._adapted: the cells' shift, the
    whitened coordinates' mean and scale): the posterior means of the unconstrained sites estimated from two
    adaptations, one only widened and one grossly moved and widened, agree within 5 Monte Carlo SE of their
    difference (self-normalised weights: SD / sqrt(ESS) each; 7 sites: 7 x 5.7e-7 where the estimates are normal).
    Both proposals are wider than the posterior, so their weights' Pareto k stays well under 1, where the estimates
    converge (0.32-0.60 over 8 pairs of keys on the development VM, |z| at most 2.7 over their 56 differences); a
    density that left out the adaptation weighs the draws wrongly and fails (|z| 6.2 and 8.3 at two of the sites)."""
    import jax
    from ratingflow import importance

    st, _, _, models = offsets_fit
    grid = importance.GridImportance(BatchedNUTS(models.structure(SEGS[1:2]), SETTINGS))
    arrays, context, _, z0 = grid.inputs(st, SEGS[1])
    dim = sum(int(np.size(v)) for v in z0.values()) - 1
    rng = np.random.default_rng(2)
    adapts = {"widened": (np.zeros(importance.NODES), np.zeros(dim), 1.4 * np.eye(dim)),
              "moved": (rng.normal(0.0, 1.0, importance.NODES), np.full(dim, 0.5),
                        1.6 * np.eye(dim) + 0.3 * np.tril(np.ones((dim, dim)), -1))}
    estimates = {}
    for name, adapt in adapts.items():
        sets = [grid.weighed(jax.random.PRNGKey(i), adapt, z0, arrays, context) for i in range(2)]
        flats = np.concatenate([s[0] for s in sets], axis=1).reshape(-1, dim + 1)
        log_w = np.concatenate([s[1] for s in sets], axis=1)
        _, k, ess, w = importance._resample(log_w, 10, np.random.default_rng(0))
        assert k < 1.0, (name, k)
        mean = w.reshape(-1) @ flats
        sd = np.sqrt(w.reshape(-1) @ (flats - mean) ** 2)
        estimates[name] = mean, sd / np.sqrt(ess)
    (m1, se1), (m2, se2) = estimates.values()
    assert (dim + 1) * normal_two_sided(5.0) < 1e-3
    z = np.abs(m1 - m2) / np.hypot(se1, se2)
    assert np.all(z <= 5.0), z


@pytest.mark.parametrize("offsets", [False, True])
def test_equations_reproduce_the_table(offsets, request):
    """The equations (posterior medians) give the table's median curve to within a few per cent, with one
    h0 and with segment offsets (each segment's own offset in its equation)."""
    if offsets:
        st, truth, fit, models = request.getfixturevalue("offsets_fit")
    else:
        st, truth, fits = request.getfixturevalue("two_control")
        fit, models = fits["seg2"], ModelSettings(transition=0.0)
    idata = inference_data(fit, az.from_dict(prior={"b": np.zeros((1, 10))}), {"seed": 3}, models)
    eq = equations(idata)
    if offsets:
        post_offset = np.asarray(idata.posterior["offset"].values[..., 1], float)
        assert abs(eq["segments"][1]["offset_m"] - np.median(post_offset)) < 1e-9
        assert eq["segments"][0]["offset_m"] == pytest.approx(eq["segments"][0]["stage_from_m"])
    assert len(eq["segments"]) == 2 and eq["segments"][0]["stage_to_m"] == eq["segments"][1]["stage_from_m"]
    table = rating_table(idata, seed=3, step=0.01, below=0.0, above=0.0)
    for seg in eq["segments"]:
        top = seg["stage_to_m"] or np.inf
        rows = table[(table["stage_m"] > seg["stage_from_m"] + 0.05) & (table["stage_m"] < top - 0.05)]
        q = seg["a"] * (rows["stage_m"] - seg["offset_m"]) ** seg["b"]
        np.testing.assert_allclose(q, rows["discharge_median_m3s"], rtol=0.05)
    assert set(table["segment"]) == {1, 2}


def test_generalized_power_law_samples_and_predicts():
    """The exponent falls from 2.6 to 1.5 across the range, as in the data: the fitted exponent's median
    falls by more than 0.3 (its posterior SD is about 0.1 here), and the curve follows the gaugings
    (mean |ln residual| below 0.1, against 2-8 % noise)."""
    truth = synthetic.two_controls("gplm", a=8.0, b=2.6, h0=10.0, sigma=0.02, breakpoint=11.2, b2=1.5)
    st = synthetic.station_data(truth, synthetic.gaugings(np.random.default_rng(8), truth, 30))
    gplm = Candidate("gplm")
    driver = BatchedNUTS(structure_for([gplm]), SamplerSettings(num_warmup=300, num_samples=300, dense_mass=True))
    fit = driver.fit([st], [gplm], seed=1)[0]["gplm"]
    idata = inference_data(fit, az.from_dict(prior={"b": np.zeros((1, 10))}), {"seed": 1})
    table = rating_table(idata, seed=1, step=0.05, below=0.0, above=0.0)
    exponent = table["exponent_median"].to_numpy()
    assert exponent[: len(exponent) // 5].mean() > exponent[-len(exponent) // 5:].mean() + 0.3
    resid = np.log(st.discharge / np.interp(st.stage, table["stage_m"], table["discharge_median_m3s"]))
    assert np.abs(resid).mean() < 0.1


@pytest.fixture(scope="module")
def acceptance():
    """Three demo stations with the pipeline's settings (config/config.yaml), fitted and chosen as the
    pipeline does (choice.fit_and_choose)."""
    import yaml

    from ratingflow.clean import clean
    from ratingflow.candidates import Priors

    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    sheet = load_sheet(ROOT / "config" / "stations.tsv", ROOT / "data" / "raw")
    stations = []
    for sid in ("simulated_3seg", "green_channel", "mahurangi"):
        result = clean(sheet[sid], ROOT / "data" / "raw" / sheet[sid].file, cfg["default_uncertainty"])
        stations.append(StationData.from_clean(sid, result.clean))
    models = ModelSettings.from_config(cfg["models"])
    driver = BatchedNUTS(models.structure(models.candidate_list()), SamplerSettings.from_config(cfg["sampler"]),
                         Priors.from_config(cfg["priors"]))
    choices = fit_and_choose(driver, stations, models.candidate_list(), cfg["seed"], models.se_factor)
    return {st.station_id: choice for st, choice in zip(stations, choices)}


def elpd_diff_mcse(fits: dict, name: str, best: str) -> float:
    """Monte Carlo SE of the elpd difference best - name: the SD of the per-chain differences over sqrt(chains)
    (each chain's PSIS-LOO on its own draws)."""
    diffs = []
    for c in range(fits[name].log_likelihood.shape[0]):
        elpd = {k: float(az.loo(loo_idata(fits[k].log_likelihood[c:c + 1])).elpd_loo) for k in (name, best)}
        diffs.append(elpd[best] - elpd[name])
    return float(np.std(diffs, ddof=1) / np.sqrt(len(diffs)))


def test_acceptance_model_choice(acceptance):
    """simulated_3seg (noise-free, three controls): the 3-segment model is within 2 SE of the best, up to
    4 Monte Carlo SE of the difference (the criterion is on the posterior, the check on a finite sample:
    false failure 3.2e-5 by a normal MC error). green_channel and mahurangi: several segments beat one by
    more than 2 SE, with margins of 2-3 x that (23 +- 5, 46 +- 10 elpd). The chosen fits converge: R-hat
    at most 1.02 and at most 1 % divergent transitions. Not the pipeline's gate (1.01, no divergence): how
    many divergences a fit near its geometry's edge shows depends on the processor (green_channel's
    2-segment fit: 0 on one machine, 16 of 4000 on another), so the gate is not a test of chance."""
    sim = acceptance["simulated_3seg"]
    table = sim.table.set_index("model")
    print(table.drop(columns=["reason", "description"]).to_string())
    best = table["elpd_loo"].idxmax()
    if best != "seg3":
        mcse = elpd_diff_mcse(sim.fits, "seg3", best)
        assert table.loc["seg3", "elpd_diff"] <= 2 * table.loc["seg3", "dse"] + 4 * mcse, mcse
    table = acceptance["green_channel"].table.set_index("model")
    assert table.loc["seg2", "elpd_loo"] > table.loc["seg1", "elpd_loo"] + 2 * table.loc["seg1", "dse"]
    assert acceptance["green_channel"].chosen != "seg1"
    table = acceptance["mahurangi"].table.set_index("model")
    best_multi = table.loc[["seg2", "seg3"], "elpd_loo"].max()
    assert best_multi - table.loc["seg1", "elpd_loo"] > 2 * table.loc["seg1", "dse"]
    assert acceptance["mahurangi"].chosen != "seg1"
    for sid, choice in acceptance.items():
        row = choice.table.set_index("model").loc[choice.chosen]
        assert row["rhat_max"] <= 1.02, (sid, row["rhat_max"])
        assert row["divergences"] <= 0.01 * 4000, (sid, row["divergences"])
