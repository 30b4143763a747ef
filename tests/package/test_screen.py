"""The candidate screen (ratingflow.screen), the starting metric of the chains and reuse of published outputs."""
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from ratingflow import reuse, synthetic
from ratingflow.choice import choose
from ratingflow.data import StationData
from ratingflow.initial import design, grid_fits, profile_fit, profile_grid
from ratingflow.candidates import Candidate, Structure
from ratingflow.screen import candidates_to_fit, loo_pointwise, own_offsets_check, screen

pytestmark = pytest.mark.package

CANDIDATES = [Candidate("seg1"), Candidate("seg2"), Candidate("seg3")]
STRUCTURE = Structure(3, transition=0.05)


def _station(rng, i, truth, n=60):
    return synthetic.station_data(truth, synthetic.gaugings(rng, truth, n))


def test_leave_one_out_density_equals_refitting_without_the_gauging():
    """The hat-matrix shortcut is exact for fixed gap and breakpoints: each gauging's density equals the one
    from a weighted least-squares fit without it (deterministic algebra)."""
    rng = np.random.default_rng(1)
    truth = synthetic.draw_truth(rng, "s", two_control_share=0.0)
    st = _station(rng, 0, truth, 25)
    lpd = loo_pointwise(st, Candidate("seg2"), STRUCTURE)
    fit = profile_fit(st, Candidate("seg2"), STRUCTURE, refine=True)
    x, y = st.stage_rel, np.log(st.discharge)
    var = st.sd_log**2 + fit["sigma"] ** 2
    X = design(x, fit["gap"], fit["breaks"])
    for i in (0, 7, 24):
        keep = np.arange(st.n) != i
        w = 1 / var[keep]
        coef = np.linalg.solve(X[keep].T @ (X[keep] * w[:, None]) + 1e-9 * np.eye(X.shape[1]), X[keep].T @ (w * y[keep]))
        pred_var = var[i] + X[i] @ np.linalg.inv(X[keep].T @ (X[keep] * w[:, None])) @ X[i]
        expected = -0.5 * (np.log(2 * np.pi * pred_var) + (y[i] - X[i] @ coef) ** 2 / pred_var)
        assert lpd[i] == pytest.approx(expected, rel=1e-6, abs=1e-8)


def _profiles_and_screens(stations):
    """Every candidate's profile fit (coarse and refined) and every screen table of ``stations``, computed afresh."""
    import ratingflow.initial as initial

    initial._PROFILES.clear()
    fits = [profile_fit(st, c, STRUCTURE, refine) for st in stations for c in CANDIDATES for refine in (False, True)]
    tables = [screen(st, CANDIDATES, STRUCTURE, 2.0) for st in stations]
    initial._PROFILES.clear()
    return fits, tables


def _assert_same(first, second):
    """Profile fits and screen tables of :func:`_profiles_and_screens`, equal bit for bit."""
    for a, b in zip(first[0], second[0]):
        assert a.keys() == b.keys()
        for key in a:
            assert np.array_equal(np.asarray(a[key]), np.asarray(b[key])), key
    for a, b in zip(first[1], second[1]):
        pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_the_grid_search_solves_every_gap_at_once_as_it_would_one_by_one(monkeypatch):
    """The profile's grid search solves many gaps in one batch (``_CHUNK`` bounds it); every (gap, breakpoints)
    is solved as on its own, so the optima, starts and screen figures do not depend on the batching: compared
    exactly with one gap per batch, on stations with one and two controls and every candidate. Every combination
    is solved directly here (the grid scored from sums is compared with this in the next test)."""
    import ratingflow.initial as initial

    monkeypatch.setattr(initial, "_sse_table", lambda *args: None)
    rng = np.random.default_rng(5)
    stations = [_station(rng, i, synthetic.draw_truth(rng, f"s{i}", two_control_share=share), n)
                for i, (share, n) in enumerate([(0.0, 20), (1.0, 45), (1.0, 130)])]
    batched = _profiles_and_screens(stations)
    monkeypatch.setattr(initial, "_CHUNK", 1)  # one gap per solve
    _assert_same(batched, _profiles_and_screens(stations))


def test_the_grid_scored_from_sums_finds_what_solving_every_combination_finds(monkeypatch):
    """A grid with breakpoints is scored from each gap's sums (``_sse_table``, issue 16) and each gap's best
    combination solved again directly: the optima, starts and screen figures must be exactly those of solving every
    (gap, combination) directly, and the scores those sums of squares to rounding, with the same combinations out
    (exponents outside 0.2-8); on stations with one and two controls, short and long, and a range in the sheet."""
    import ratingflow.initial as initial

    rng = np.random.default_rng(8)
    stations = [_station(rng, i, synthetic.draw_truth(rng, f"s{i}", two_control_share=share), n)
                for i, (share, n) in enumerate([(0.0, 12), (0.0, 60), (1.0, 45), (1.0, 130), (1.0, 250)])]
    stations.append(replace(stations[3], h0_range=(stations[3].stage.min() - 0.4, stations[3].stage.min() - 0.05)))
    summed = _profiles_and_screens(stations)
    for st in stations:
        for c in CANDIDATES[1:]:
            args = (*initial._weighted(st), *profile_grid(st, c, STRUCTURE))
            table = initial._sse_table(*args)
            direct = initial._best_at_direct(*args)[1]
            assert np.array_equal(np.isfinite(table), np.isfinite(direct))
            scale = np.sum(args[2] * args[1] ** 2)
            assert np.allclose(table[np.isfinite(table)], direct[np.isfinite(direct)], rtol=0, atol=1e-9 * scale)
    monkeypatch.setattr(initial, "_sse_table", lambda *args: None)  # every combination solved directly
    _assert_same(summed, _profiles_and_screens(stations))


def test_the_profile_finds_a_gap_between_the_coarse_grid_points_and_then_sees_no_second_segment(monkeypatch):
    """On an exact power law whose gap lies between two coarse grid gaps, the refined grid search finds the gap
    within its step (about 4 %); without the refinement the coarse gap's misfit is curvature that a breakpoint
    takes up, and the screen saw a gain for seg2 that the data do not have (deterministic: no noise)."""
    import ratingflow.initial as initial

    stage = np.linspace(0.2, 3.0, 60)
    st0 = StationData("exact", stage, np.ones_like(stage), np.full(60, 0.05))
    gaps, _ = profile_grid(st0, Candidate("seg1"), STRUCTURE)
    gap = float(np.sqrt(gaps[10] * gaps[11]))  # half-way between two coarse gaps, geometrically
    x = stage - stage.min()
    st = StationData("exact", stage, 7.0 * (x + gap) ** 1.7, 0.05 * 7.0 * (x + gap) ** 1.7)

    def seg2_gain(st):
        initial._PROFILES.clear()
        lpd = {c.name: loo_pointwise(st, c, STRUCTURE) for c in CANDIDATES[:2]}
        return float(np.sum(lpd["seg2"] - lpd["seg1"])), profile_fit(st, Candidate("seg1"), STRUCTURE, refine=True)

    gain, fit = seg2_gain(st)
    assert fit["gap"] == pytest.approx(gap, rel=0.04)
    assert gain < 0.5  # an extra segment gains nothing on a power law
    monkeypatch.setattr(initial, "N_REFINE", 0)
    coarse_gain, coarse = seg2_gain(st)
    initial._PROFILES.clear()
    assert abs(coarse["gap"] / gap - 1) > 0.1
    assert coarse_gain > gain + 1.0


def test_reselecting_leave_one_out_equals_the_grid_search_run_again_without_the_gauging():
    """With ``reselect`` each gauging's density is that of the grid point chosen without it: the same as
    searching the whole grid again on the other gaugings and predicting the held-out one (deterministic)."""
    rng = np.random.default_rng(4)
    truth = synthetic.draw_truth(rng, "s", two_control_share=0.0)
    st = _station(rng, 0, truth, 20)
    candidate = Candidate("seg2")
    lpd = loo_pointwise(st, candidate, STRUCTURE, reselect=True)
    fit = profile_fit(st, candidate, STRUCTURE, refine=True)
    x, y = st.stage_rel, np.log(st.discharge)
    var = st.sd_log**2 + fit["sigma"] ** 2
    gaps, combos = profile_grid(st, candidate, STRUCTURE)
    for i in (0, 9, 19):
        keep = np.arange(st.n) != i
        w = 1 / var[keep]
        best = (np.inf, None)
        for gap in gaps:
            sensible = grid_fits(x, y, 1 / var, gap, combos)[3]  # the exponent check is made on every gauging
            for combo in combos[sensible]:
                X = design(x, gap, combo)
                gram = X[keep].T @ (X[keep] * w[:, None])
                coef = np.linalg.solve(gram, X[keep].T @ (w * y[keep]))
                sse = np.sum(w * (y[keep] - X[keep] @ coef) ** 2)
                if sse < best[0]:
                    pred_var = var[i] + X[i] @ np.linalg.inv(gram) @ X[i]
                    best = (sse, -0.5 * (np.log(2 * np.pi * pred_var) + (y[i] - X[i] @ coef) ** 2 / pred_var))
        assert lpd[i] == pytest.approx(best[1], rel=1e-5, abs=1e-6)


def test_screen_keeps_a_clear_break_and_rules_out_most_segmented_fits_of_one_control():
    """Pooled over 30 stations of each kind, threshold z = 1. Two controls with a strong change of exponent
    (2.6 -> 1.4 at mid-range, 60 gaugings, 3 % scatter): seg2 is kept at all of them; the profile gain is
    then tens of SE, so a miss would need a wrong profile fit, not noise. One control: the optimistic gain
    stays within 1 SE at about half the stations (50 % of 87 on the simulation, docs/screen.md); fewer than
    5 rulings-out of 30 has probability P(Binomial(30, 0.45) <= 4) < 2e-4."""
    rng = np.random.default_rng(20261202)
    two = [_station(rng, i, synthetic.two_controls(f"t{i}", 5.0, 2.6, 0.0, 0.03, 1.5, 1.4)) for i in range(30)]
    one = [_station(rng, i, synthetic.Truth(f"o{i}", 1, 5.0, 1.8, 0.0, 0.03)) for i in range(30)]
    kept_two, tables = candidates_to_fit(two, CANDIDATES, STRUCTURE, 1.0)
    assert all(Candidate("seg2") in kept for kept in kept_two)
    assert all(t["fitted"].iloc[0] for t in tables)  # the first candidate is always fitted
    kept_one, _ = candidates_to_fit(one, CANDIDATES, STRUCTURE, 1.0)
    assert sum(Candidate("seg2") not in kept for kept in kept_one) >= 5
    # no screen: every candidate, no table
    every, none = candidates_to_fit(one[:2], CANDIDATES, STRUCTURE, None)
    assert every == [CANDIDATES, CANDIDATES] and none == [None, None]


def test_gplm_and_period_modes_are_always_fitted():
    rng = np.random.default_rng(3)
    st = _station(rng, 0, synthetic.Truth("o", 1, 5.0, 1.8, 0.0, 0.03))
    table = screen(st, [Candidate("seg1"), Candidate("gplm"), Candidate("seg2")], STRUCTURE, 1e9)
    assert table["fitted"].tolist() == [True, True, False]
    assert table.loc[2, "screen"].startswith("screened out")


def test_the_candidate_the_sheet_describes_is_always_fitted():
    """A station whose sheet names two controls gets its seg2 fitted whatever the profile gain (the profile
    has one h0 and cannot express their own offsets); seg3 is still screened. With z = 1e9 no gain passes."""
    from dataclasses import replace

    rng = np.random.default_rng(3)
    st = _station(rng, 0, synthetic.Truth("o", 1, 5.0, 1.8, 0.0, 0.03))
    described = replace(st, control_types=("riffle", "channel"))
    assert screen(st, CANDIDATES, STRUCTURE, 1e9)["fitted"].tolist() == [True, False, False]
    table = screen(described, CANDIDATES, STRUCTURE, 1e9)
    assert table["fitted"].tolist() == [True, True, False]
    assert table.loc[1, "screen"].endswith("the sheet describes 2 controls")


class _Fit:
    """A fit as the choice sees it: its log-likelihood and its pointwise PSIS-LOO (ratingflow.posterior.fit_loo)."""

    def __init__(self, ll):
        import arviz as az

        from ratingflow.posterior import loo_idata

        self.log_likelihood = ll
        self.loo = az.loo(loo_idata(ll), pointwise=True)


def test_choice_table_lists_screened_out_candidates(monkeypatch):
    """A screened-out candidate is in the table, not fitted, never chosen, with the screen's reason."""
    import ratingflow.choice as choice

    monkeypatch.setattr(choice, "candidate_table", lambda fits, table: table)
    rng = np.random.default_rng(0)
    fits = {"seg1": _Fit(rng.normal(-1.0, 0.1, (2, 100, 20)))}
    screened = pd.DataFrame({"model": ["seg1", "seg2", "seg3"], "fitted": [True, False, False],
                             "screen_elpd": [-20.0, -19.5, -19.4], "screen_gain": [np.nan, 0.5, 0.1],
                             "screen_se": [np.nan, 1.0, 1.0],
                             "screen": ["first candidate: always fitted", "screened out: x", "screened out: y"]})
    out = choose(fits, 2.0, screened)
    assert out.chosen == "seg1"
    assert out.table["model"].tolist() == ["seg1", "seg2", "seg3"]
    assert out.table["fitted"].tolist() == [True, False, False]
    assert out.table["chosen"].tolist() == [True, False, False]
    assert out.table.loc[1, "reason"] == "screened out: x"
    assert out.table.loc[1, "screen_gain"] == 0.5


def test_laplace_metric_is_the_covariance_of_a_gaussian_potential():
    """For a Gaussian potential the inverse Hessian is its covariance (deterministic)."""
    import jax.numpy as jnp

    from ratingflow.sampler import laplace_metric

    cov = np.array([[4.0, 0.1], [0.1, 0.01]])
    prec = jnp.asarray(np.linalg.inv(cov))

    def potential(z):
        v = jnp.stack([z["a"], z["b"]])
        return 0.5 * v @ prec @ v

    metric = laplace_metric(potential, {"a": jnp.float32(0.1), "b": jnp.float32(-0.2)})
    np.testing.assert_allclose(np.asarray(metric), cov, rtol=1e-3, atol=1e-6)


def test_reuse_links_only_when_the_digest_matches(tmp_path):
    published, batch = tmp_path / "results", tmp_path / "batch"
    published.mkdir(), batch.mkdir()
    source = tmp_path / "in.csv"
    source.write_text("a\n1\n")
    key = reuse.digest([source], {"x": 1}, 7, "1")
    (published / "s1.nc").write_text("fit")
    (published / "s1.models.csv").write_text("models")
    reuse.record(published / "s1.nc", key)
    targets = [batch / "s1.nc", batch / "s1.models.csv"]
    assert reuse.reuse(published, targets, key)
    assert targets[1].read_text() == "models" and (batch / "s1.nc.inputs").read_text().strip() == key
    source.write_text("a\n2\n")  # a new gauging: another digest, nothing linked
    other = reuse.digest([source], {"x": 1}, 7, "1")
    assert other != key and other != reuse.digest([source], {"x": 2}, 7, "1")
    for t in targets:
        t.unlink()
    assert not reuse.reuse(published, targets, other)
    assert not any(t.exists() for t in targets)
    assert not reuse.reuse(None, targets, key)


def test_screen_study_tables_count_fits_choices_and_gains_per_method():
    """The study's summary and gain tables from per-station rows (deterministic)."""
    from ratingflow.screen_study import gain_column, gains, summary

    rows = []
    for sid, controls, full, gain in (("a", 1, "seg1", 0.5), ("b", 2, "seg2", 4.0)):
        rows.append({"station": sid, "controls": controls, "method": "", "z": np.inf, "chosen": full,
                     "segmented_fits": 2, gain_column("seg2", "at optimum"): gain,
                     gain_column("seg2", "reselect"): gain - 1.0})
        for method in ("at optimum", "reselect"):
            keep = gain > 1.0 if method == "at optimum" else gain - 1.0 > 1.0
            rows.append({"station": sid, "controls": controls, "method": method, "z": 1.0,
                         "chosen": full if keep or full == "seg1" else "seg1", "segmented_fits": int(keep)})
    rows = pd.DataFrame(rows)
    rows["segments"] = [Candidate(name).n_segments for name in rows["chosen"]]
    table = summary(rows).set_index(["leave-one-out", "threshold z"])
    assert table.loc[("-", "no screen"), "segmented NUTS fits"] == 4
    assert table.loc[("at optimum", "1"), "segmented NUTS fits"] == 1
    assert table.loc[("at optimum", "1"), "two controls found"] == "1/1"
    assert table.loc[("at optimum", "1"), "choice differs from no screen"] == 0
    assert gain_column("seg2", "at optimum") == "seg2_gain_se" and gain_column("seg2", "reselect") == "seg2_gain_se_reselect"
    medians = gains(rows).set_index(["leave-one-out", "controls"])["median"]
    assert medians[("at optimum", 2)] == 4.0 and medians[("reselect", 1)] == -0.5


def test_the_own_offsets_check_finds_a_channel_control_with_its_own_zero_flow_and_not_one_control():
    """The BaRatin form's profile gain over one h0 (the summary's flag for one-h0 segmented fits). 20 stations of
    100 gaugings whose channel control (b 1.3) takes over at 1 m from a section control (b 2.6) with its own zero
    flow at 0.8 m (h0 0): every one is flagged (gain > 1.5 SE; z was 3.1-6.5 when written, so a miss needs a wrong
    profile, not noise) and the profile puts the channel's zero flow within 10 cm of the truth at most of them.
    20 one-control stations: on the coverage study's 356 one-control stations the check would flag 2 (0.6 %); with a
    rate of 2 %, 4 or more of 20 has probability below 6e-4 (the data are NumPy's, the same on every machine)."""
    rng = np.random.default_rng(20261205)
    two = [_station(rng, i, synthetic.two_controls(f"t{i}", 5.0, 2.6, 0.0, 0.03, 1.0, 1.3, h02=0.8), 100)
           for i in range(20)]
    one = [_station(rng, i, synthetic.Truth(f"o{i}", 1, 5.0, 1.8, 0.0, 0.03), 100) for i in range(20)]
    checks = [own_offsets_check(st, Candidate("seg2"), STRUCTURE) for st in two]
    assert all(c["gain"] > 1.5 * c["se"] for c in checks)
    assert np.median([abs(c["offsets_m"][0] - 0.8) for c in checks]) < 0.1
    assert all(abs(c["h0_m"]) < 0.25 and 0.9 < c["breakpoints_m"][0] < 1.1 for c in checks)  # h0: 0.25-0.6 m below the data
    flagged = sum(c["gain"] > 1.5 * c["se"] for c in (own_offsets_check(st, Candidate("seg2"), STRUCTURE) for st in one))
    assert flagged <= 3
    # two segments only: without a breakpoint, with two, or a form the profile cannot express, there is no check
    for name in ("seg1", "seg3", "gplm"):
        assert own_offsets_check(two[0], Candidate(name), STRUCTURE) is None
