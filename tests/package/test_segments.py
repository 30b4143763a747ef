"""The segmented power law as a function (no fitting), the model-choice rule, sheet breakpoint ranges."""

import jax.numpy as jnp
import numpy as np
import pytest
from numpyro import handlers

from ratingflow.choice import compare
from ratingflow.posterior import loo_idata
from ratingflow.data import StationData
from ratingflow.candidates import Candidate, structure_for
from ratingflow.model import ordered_breakpoints, rating_model
from ratingflow.sheet import SheetError, load_sheet



def test_breakpoints_are_ordered_and_inside_their_ranges():
    rng = np.random.default_rng(0)
    lo, hi = jnp.array([0.2, 0.2]), jnp.array([3.0, 3.0])
    for _ in range(200):
        b = np.asarray(ordered_breakpoints(jnp.asarray(rng.normal(0, 4, 2)), lo, hi))
        assert 0.2 <= b[0] <= b[1] <= 3.0
    # sheet ranges that do not overlap: each breakpoint stays in its own
    b = np.asarray(ordered_breakpoints(jnp.array([-9.0, 9.0]), jnp.array([0.5, 2.0]), jnp.array([1.0, 2.5])))
    np.testing.assert_allclose(b, [0.5, 2.5], atol=1e-3)


def _curve(params, stage, candidate, transition=0.0, segment_offsets=True, control_types=()):
    """ln Q of the model's curve for fixed unconstrained-free parameter values."""
    structure = structure_for([candidate], transition=transition, segment_offsets=segment_offsets)
    st = StationData("s", np.linspace(0.0, 4.0, 9), np.ones(9), np.full(9, 0.05), control_types=control_types)
    context = {k: jnp.asarray(v) for k, v in st.context(candidate, structure).items()}
    params = dict(params)
    shift = params.pop("offset_shift", None)
    if shift is not None:  # the sampled site is each upper control's log depth at its breakpoint
        breaks = np.asarray(ordered_breakpoints(params["break_u"], context["break_lo"], context["break_hi"]))
        offset, log_depth = -params["gap"], []
        for k, bk in enumerate(breaks):
            log_depth.append(np.log(bk - offset) + float(shift[k]))
            offset = bk - np.exp(log_depth[-1])
        params["offset_log_depth"] = jnp.asarray(log_depth, jnp.float32)
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
    breaks, log_a, b, e = out["breakpoint_rel"], out["log_a"], out["b_control"], out["offset_rel"]
    assert e[0] == pytest.approx(-0.3) and e[1] > e[0]  # a shift < 0: the upper control's zero flow lies higher
    segment = np.searchsorted(breaks, stage, side="right")
    expected = log_a[segment] + b[segment] * np.log(stage - e[segment])
    np.testing.assert_allclose(out["log_curve"], expected, atol=2e-5)
    jumps = np.abs(np.diff(out["log_curve"]))
    assert jumps.max() < 0.01  # no step anywhere, breakpoints included
    # one h0 for all segments: the same, with every offset at h0
    shared = _curve(params, stage, Candidate("seg3"), segment_offsets=False)
    segment = np.searchsorted(shared["breakpoint_rel"], stage, side="right")
    b = np.array([2.6, 1.5, 2.2])
    np.testing.assert_allclose(shared["log_curve"], shared["log_a"][segment] + b[segment] * np.log(stage + 0.3),
                               atol=2e-5)
    assert "offset_shift" not in shared
    # a 2-segment candidate ignores the third exponent, the second breakpoint and its offset
    two = _curve(params, stage, Candidate("seg2"))
    other = _curve({**params, "b": jnp.array([2.6, 1.5, 9.0]), "break_u": jnp.array([-0.5, -3.0]),
                    "offset_shift": jnp.array([-0.7, 1.5])}, stage, Candidate("seg2"))
    np.testing.assert_allclose(two["log_curve"], other["log_curve"], atol=1e-6)


def test_own_offset_bends_the_exponent_but_keeps_the_rise():
    """With own offsets an upper segment's sampled ``b`` is its exponent as if it kept the offset of the control
    below (ratingflow.model.control_exponents): whatever the own offset, the rise of ln Q from the breakpoint
    to the highest gauging is that of the one-h0 curve, and with no shift the own exponent is ``b`` itself.
    Where the sheet gives the control types, ``b`` is each control's own exponent as it is."""
    top = 4.0  # the highest gauging of _curve's station
    params = {"gap": 0.3, "log_q_ref": 2.0, "sigma": 0.05, "b": jnp.array([2.6, 1.5]), "break_u": jnp.array([0.3])}
    rises, exponents = [], []
    for shift in (-0.7, 0.0, 0.4):
        out = _curve({**params, "offset_shift": jnp.array([shift])}, np.array([0.0, 1.0, top]), Candidate("seg2"))
        brk = float(out["breakpoint_rel"][0])
        at_break = _curve({**params, "offset_shift": jnp.array([shift])}, np.array([brk]), Candidate("seg2"))
        rises.append(out["log_curve"][2] - at_break["log_curve"][0])
        exponents.append(out["b_control"][1])
    expected = 1.5 * np.log((top + 0.3) / (brk + 0.3))
    np.testing.assert_allclose(rises, expected, rtol=1e-5)
    assert exponents[1] == pytest.approx(1.5, rel=1e-6)
    # a zero-flow stage higher up (shift < 0) curves the segment more, so its own exponent is smaller
    assert exponents[0] < 1.5 < exponents[2]
    typed = _curve({**params, "offset_shift": jnp.array([-0.7])}, np.array([0.0, top]), Candidate("seg2"),
                   control_types=("riffle", "channel"))
    np.testing.assert_allclose(typed["b_control"], [2.6, 1.5], rtol=1e-6)


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


def test_choice_compares_the_pointwise_loo_it_computed_as_arviz_does_from_the_log_likelihood():
    """compare() hands az.compare the LOO it already computed (not recomputed per candidate; ratingflow.psis, every
    gauging at once); the table must be what az.compare makes of the InferenceData themselves, to the precision of
    floating-point sums (a weight of 0 may come out as 1e-16)."""
    import warnings

    import arviz as az

    rng = np.random.default_rng(1)
    base = rng.normal(-1.0, 0.3, (4, 500, 30))
    lls = {"seg1": base, "seg2": base + rng.normal(0.05, 0.2, base.shape), "seg3": base + rng.normal(0, 0.4, base.shape)}
    _, table = compare(lls, se_factor=2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = az.compare({name: loo_idata(ll) for name, ll in lls.items()})
    for column in ("elpd_diff", "dse", "weight"):
        np.testing.assert_allclose(table.set_index("model")[column], expected.loc[list(lls), column], rtol=1e-10,
                                   atol=1e-12)


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


def test_report_states_a_breakpoint_disagreement():
    from ratingflow.report import breakpoint_disagreements

    params = {"breakpoint_1_median": 2.0, "breakpoint_1_hpdi90_lower": 1.8, "breakpoint_1_hpdi90_upper": 2.2}
    assert breakpoint_disagreements([1.9], params) == []
    (flag,) = breakpoint_disagreements([1.128], params)
    assert "1.128 m" in flag and "1.800-2.200 m" in flag
    (flag,) = breakpoint_disagreements([1.0], {})
    assert "has none" in flag



@pytest.mark.parametrize("offsets", [False, True])
def test_saved_fit_predicts_the_curve_it_was_sampled_with(offsets):
    """A fit written as InferenceData and read back (model_of, flat_draws) gives, through predict, the very
    curve each draw had in the sampler: every sampled site the curve needs is saved (a missing one would
    be drawn from its prior)."""
    import arviz as az
    import jax
    from numpyro.infer import Predictive

    from ratingflow.candidates import ModelSettings
    from ratingflow.posterior import inference_data, model_of
    from ratingflow.predict import flat_draws, predict
    from ratingflow.sampler import FitResult

    models = ModelSettings(candidates=("seg1", "seg2"), segment_offsets=offsets)
    structure = models.structure(models.candidate_list())
    st = StationData("s", np.linspace(1.0, 3.0, 12), np.exp(np.linspace(0, 3, 12)), np.full(12, 0.1),
                     control_types=("riffle", "channel"))
    candidate = Candidate("seg2")
    context = st.context(candidate, structure)
    draws = Predictive(lambda *a: rating_model(*a, structure=structure), num_samples=20)(
        jax.random.PRNGKey(0), jnp.asarray(st.stage_rel, jnp.float32), jnp.asarray(st.sd_log, jnp.float32),
        {k: jnp.asarray(v) for k, v in context.items()})
    post = {k: np.asarray(v).reshape((4, 5) + v.shape[1:]) for k, v in draws.items() if k != "log_discharge"}
    fit = FitResult(st, candidate, context, post, {"diverging": np.zeros((4, 5), bool)}, np.zeros((4, 5, 12)))
    idata = inference_data(fit, az.InferenceData(), {}, models)
    _, saved_structure, saved_context = model_of(idata)
    assert saved_structure.segment_offsets == offsets
    curve, _ = predict(jax.random.PRNGKey(1), flat_draws(idata.posterior), st.stage_rel, saved_context, 0.05,
                       saved_structure)
    np.testing.assert_allclose(np.log(curve), post["log_curve"].reshape(20, 12), atol=1e-4)


def test_own_offsets_keep_gaugings_beyond_the_breakpoints():
    """Where each control has its own offset, the breakpoint range leaves own_offset_margin gaugings at each
    end (an upper segment has three parameters); with one h0, one gauging."""
    from ratingflow.data import own_offset_margin

    for n in (12, 50):
        x = np.linspace(0.0, 4.0, n)
        st = StationData("s", x[::-1], np.ones(n), np.full(n, 0.05))
        lo, hi = st.break_ranges_rel(1, 2)
        np.testing.assert_allclose([lo[0], hi[0]], [x[1], x[-2]], rtol=1e-6)
        m = own_offset_margin(n)
        assert m == (3 if n == 12 else 5)
        lo, hi = st.break_ranges_rel(1, 2, own_offsets=True)
        np.testing.assert_allclose([lo[0], hi[0]], [x[m], x[-m - 1]], rtol=1e-6)
        context = st.context(Candidate("seg2"), structure_for([Candidate("seg2")], segment_offsets=True))
        assert context["break_lo"][0] == np.float32(x[m])


def test_own_offsets_keep_a_share_of_the_stage_range_beyond_the_breakpoints():
    """Where the gaugings crowd the low stages, own_offset_margin gaugings span a few centimetres: the BaRatin
    form's breakpoint range then also leaves OWN_OFFSET_MIN_SHARE of the gauged stage range at each end. The one-h0
    range and a sheet's range stay as they were."""
    from ratingflow.data import OWN_OFFSET_MIN_SHARE, own_offset_margin

    n = 60
    x = 4.0 * np.linspace(0.0, 1.0, n) ** 3  # half the gaugings in the lowest eighth of the range
    st = StationData("s", x + 100.0, np.ones(n), np.full(n, 0.05))
    m = own_offset_margin(n)
    assert x[m] < OWN_OFFSET_MIN_SHARE * 4.0  # the margin alone would leave the lower control 4 mm
    lo, hi = st.break_ranges_rel(1, 2, own_offsets=True)
    np.testing.assert_allclose([lo[0], hi[0]], [OWN_OFFSET_MIN_SHARE * 4.0, x[-m - 1]], rtol=1e-6)
    lo, hi = st.break_ranges_rel(1, 2)
    np.testing.assert_allclose([lo[0], hi[0]], [x[1], x[-2]], rtol=1e-6)
    sheet = StationData("s", x + 100.0, np.ones(n), np.full(n, 0.05), break_ranges=((100.01, 100.02),))
    lo, hi = sheet.break_ranges_rel(1, 2, own_offsets=True)
    np.testing.assert_allclose([lo[0], hi[0]], [0.01, 0.02], atol=1e-5)


def test_a_change_of_the_own_offset_form_refits_only_the_stations_fitted_in_it(tmp_path, monkeypatch):
    """fit.station_key: OFFSETS_FORM enters the key of a station fitted in the BaRatin form (two or more control
    types, or models.segment_offsets) and no other, so a change of that form leaves other published fits reused."""
    from ratingflow import fit
    from ratingflow.candidates import ModelSettings

    clean = tmp_path / "s.csv"
    clean.write_text("line,stage_m,discharge_m3s\n2,1.0,2.0\n")
    plain, typed = {}, {"control_types": ["riffle", "channel"]}

    def keys(models=ModelSettings()):
        return [fit.station_key([str(clean)], {"models": str(models)}, extra, models, 1) for extra in (plain, typed)]

    before = keys()
    monkeypatch.setattr(fit, "OFFSETS_FORM", fit.OFFSETS_FORM + "-next")
    after = keys()
    assert after[0] == before[0] and after[1] != before[1]
    own = ModelSettings(segment_offsets=True)
    first = keys(own)
    monkeypatch.setattr(fit, "OFFSETS_FORM", fit.OFFSETS_FORM + "-again")
    assert all(a != b for a, b in zip(first, keys(own)))
