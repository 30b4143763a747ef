import arviz as az
import numpy as np
import pytest
from numpyro.diagnostics import hpdi

from ratingflow.data import StationData
from ratingflow.posterior import inference_data
from ratingflow.sampler import FitResult
from ratingflow.candidates import Candidate, structure_for
from ratingflow.predict import stage_grid
from ratingflow.summarise import diagnostics, rating_table, table_dataset

THRESHOLDS = {"rhat_max": 1.01, "ess_bulk_min": 400, "ess_tail_min": 400, "max_divergences": 0, "bfmi_min": 0.3}


def fake_idata(rng, a, b, h0, sigma, spread=0.0, shift_chain=0.0, rel_sd=0.0, chains=4, draws=1000):
    stage = np.array([100.5, 101.0, 101.8, 102.5, 103.0])  # datum 100 m below
    q = a * (stage - h0) ** b
    st = StationData("fake", stage, q, rel_sd * q)
    shape = (chains, draws)

    def noisy(value, scale):
        x = value + scale * rng.standard_normal(shape)
        return x + shift_chain * np.arange(chains)[:, None]

    bb = noisy(b, spread * 0.05)
    gap = st.stage_offset - noisy(h0, spread * 0.02)
    log_a = np.log(a) + noisy(0.0, spread * 0.03)
    stage_ref = st.stage_ref
    post = {  # raw draws as the sampler gives them: one segment
        "b": bb[..., None].astype(np.float32),
        "gap": gap.astype(np.float32),
        "log_a": log_a[..., None].astype(np.float32),
        "log_q_ref": (log_a + bb * np.log(stage_ref + gap)).astype(np.float32),
        "sigma": np.abs(noisy(sigma, spread * 0.01)).astype(np.float32),
    }
    stats = {
        "diverging": np.zeros(shape, bool),
        "energy": rng.standard_normal(shape),
        "lp": np.zeros(shape),
    }
    seg1 = Candidate("seg1")
    res = FitResult(st, seg1, st.context(seg1, structure_for([seg1])), post, stats, np.zeros(shape + (st.n,)))
    prior = az.from_dict(prior={"b": bb[None, :1]})
    return inference_data(res, prior, {"seed": 1})


def test_stage_grid_is_on_step_multiples():
    g = stage_grid(0.184, 0.658, 0.01, 0.1, 0.25)
    np.testing.assert_allclose(np.diff(g), 0.01, atol=1e-9)
    assert g[0] <= 0.184 - 0.0474 + 1e-9 and g[-1] >= 0.658 + 0.1185 - 1e-9
    assert np.all(np.abs(g * 100 - np.round(g * 100)) < 1e-9)


def test_degenerate_posterior_gives_the_formula():
    idata = fake_idata(np.random.default_rng(0), a=12.0, b=1.7, h0=100.2, sigma=0.0)
    table = rating_table(idata, seed=1, step=0.01, below=0.1, above=0.25)
    depth = np.clip(table["stage_m"] - 100.2, 0, None)
    expected = 12.0 * depth**1.7
    np.testing.assert_allclose(table["discharge_median_m3s"], expected, rtol=2e-4, atol=1e-9)
    for prob in ("90", "95"):
        np.testing.assert_allclose(table[f"curve_hpdi{prob}_lower_m3s"], expected, rtol=2e-4, atol=1e-9)
        np.testing.assert_allclose(table[f"gauging_hpdi{prob}_upper_m3s"], expected, rtol=2e-4, atol=1e-9)


def test_bands_nest_and_match_hpdi_of_the_draws():
    idata = fake_idata(np.random.default_rng(1), a=12.0, b=1.7, h0=100.2, sigma=0.05, spread=1.0, rel_sd=0.04)
    table = rating_table(idata, seed=1, step=0.01, below=0.1, above=0.25)
    inside = ~table["extrapolated"]
    assert (table["curve_hpdi90_lower_m3s"] <= table["discharge_median_m3s"]).all()
    assert (table["discharge_median_m3s"] <= table["curve_hpdi90_upper_m3s"]).all()
    assert (table["curve_hpdi95_lower_m3s"] <= table["curve_hpdi90_lower_m3s"] + 1e-12).all()
    assert (table["curve_hpdi95_upper_m3s"] >= table["curve_hpdi90_upper_m3s"] - 1e-12).all()
    width = lambda kind: table[f"{kind}_hpdi90_upper_m3s"] - table[f"{kind}_hpdi90_lower_m3s"]
    assert (width("gauging")[inside] > width("curve")[inside]).all()
    # the curve band at one stage is the HPDI of a (H - h0)^b over the draws
    row = table.iloc[len(table) // 2]
    post = idata.posterior
    draws = np.exp(post["log_a"].values.ravel().astype(float)) * (
        row["stage_m"] - post["h0"].values.ravel()
    ) ** post["b"].values.ravel().astype(float)
    lo, hi = hpdi(draws, 0.9)
    assert row["curve_hpdi90_lower_m3s"] == pytest.approx(lo, rel=1e-3)
    assert row["curve_hpdi90_upper_m3s"] == pytest.approx(hi, rel=1e-3)
    assert row["discharge_median_m3s"] == pytest.approx(np.median(draws), rel=1e-3)
    # extrapolation flag marks exactly the stages outside the gauged range
    stages = table["stage_m"]
    np.testing.assert_array_equal(table["extrapolated"], (stages < 100.5 - 1e-9) | (stages > 103.0 + 1e-9))
    ds = table_dataset(table)
    assert ds["stage_m"].attrs["units"] == "m" and ds["discharge_median_m3s"].attrs["units"] == "m3/s"


def test_diagnostics_pass_and_fail():
    good = diagnostics(fake_idata(np.random.default_rng(2), 12.0, 1.7, 100.2, 0.05, spread=1.0), THRESHOLDS)
    assert good["checks"]["rhat"] and good["divergences"] == 0
    bad = diagnostics(
        fake_idata(np.random.default_rng(3), 12.0, 1.7, 100.2, 0.05, spread=1.0, shift_chain=0.2), THRESHOLDS
    )
    assert not bad["passed"] and not bad["checks"]["rhat"]
    assert any(f.startswith("R-hat") for f in bad["failures"])


def test_an_archived_rating_does_not_make_a_timeless_station_summarise_again(tmp_path):
    """Issue 16, incremental runs: the archive writes every station's issued table to the history after a run. Issued
    tables matter only to a fit with rating periods, so a timeless station's summary is linked at the next run, not
    recomputed (it was: every station of a batch with one new gauging was summarised again); a changed fit is."""
    import os

    from ratingflow.io import save_idata
    from ratingflow.summarise import run_batch

    fit = tmp_path / "fit" / "fake.nc"
    fit.parent.mkdir()
    save_idata(fake_idata(np.random.default_rng(4), 12.0, 1.7, 100.2, 0.05, spread=1.0, draws=100), fit)
    kinds = {"table": "csv", "nc": "table.nc", "diagnostics": "json", "plot": "svg"}
    table_cfg = {"stage_step_m": 0.05, "extend_below": 0.1, "extend_above": 0.2, "hpdi_probs": [0.9, 0.95]}
    history = tmp_path / "history"

    def summarise(folder, previous=None):
        (tmp_path / folder).mkdir(exist_ok=True)
        outputs = {k: [str(tmp_path / folder / f"fake.{e}")] for k, e in kinds.items()}
        run_batch([str(fit)], outputs, 1, table_cfg, THRESHOLDS, history=str(history),
                  previous=previous and {k: str(tmp_path / previous) for k in kinds})
        return tmp_path / folder / "fake.csv"

    published = summarise("published")
    issued = history / "fake" / "2026-12-03T000000Z"
    issued.mkdir(parents=True)
    (issued / "table.csv").write_text(published.read_text())
    assert os.path.samefile(summarise("rerun", previous="published"), published)
    save_idata(fake_idata(np.random.default_rng(5), 12.0, 1.7, 100.2, 0.05, spread=1.0, draws=100), fit)
    assert not os.path.samefile(summarise("changed", previous="published"), published)


def _figure_inputs(scale, top, breaks):
    import pandas as pd

    stage = np.linspace(0.5, top, 12)
    q = scale * (stage - 0.2) ** 1.7
    station = StationData("s", stage, q * np.exp(0.05 * np.sin(7 * stage)), 0.05 * q)
    grid = stage_grid(stage.min(), stage.max(), 0.01 * top, 0.2, 0.2)
    median = scale * np.clip(grid - 0.2, 0, None) ** 1.7
    table = pd.DataFrame({"stage_m": grid, "discharge_median_m3s": median,
                          "extrapolated": (grid < stage.min()) | (grid > stage.max())})
    for kind, spread in (("curve", 0.1), ("gauging", 0.2)):
        table[f"{kind}_hpdi90_lower_m3s"] = median * (1 - spread)
        table[f"{kind}_hpdi90_upper_m3s"] = median * (1 + spread)
    residuals = np.log(station.discharge / (scale * (stage - 0.2) ** 1.7))
    return station, table, 0.2, residuals, "90", breaks


def _panels(path):
    """Per panel of an SVG fit figure: its circles (cx, cy), its tick labels ((x, text) below, (y, text) left)."""
    import xml.etree.ElementTree as ET

    ns = "{http://www.w3.org/2000/svg}"
    root = ET.parse(path).getroot()
    clips = [g for g in root.iter(f"{ns}g") if g.get("clip-path")]
    frames = [r for r in root.iter(f"{ns}rect") if r.get("stroke") == "#000000"]
    panels = []
    for clip, frame in zip(clips, frames):
        x0, y0 = float(frame.get("x")), float(frame.get("y"))
        bottom = y0 + float(frame.get("height"))
        dots = np.array([(float(c.get("cx")), float(c.get("cy"))) for c in clip.iter(f"{ns}circle")])
        labels = [t for t in root.iter(f"{ns}text") if t.get("text-anchor") in ("middle", "end") and "transform" not in t.attrib]
        below = [(float(t.get("x")), t.text) for t in labels
                 if abs(float(t.get("y")) - bottom - 19) < 0.01 and x0 <= float(t.get("x")) <= x0 + float(frame.get("width"))]
        left = [(float(t.get("y")) - 4.5, t.text) for t in labels
                if t.get("text-anchor") == "end" and abs(float(t.get("x")) - x0 + 8) < 0.01]
        panels.append({"dots": dots, "x": below, "y": left})
    return root, panels


def _value(text: str) -> float:
    from test_svgplot import read_label

    return read_label(text)


def test_the_fit_figure_puts_each_gauging_where_its_axes_ticks_say(tmp_path):
    """The SVG fit figure (:func:`ratingflow.figures.plot_fit`): on each panel, the pixel of a gauging's dot is
    the one its discharge (or residual) and stage take on the axis that the tick labels define (linear, or log10 on
    the log panel), to 0.2 px (both are written to 0.1 px); a gauging below the median h0 is left out of the log panel only. Deterministic (no
    draws)."""
    from ratingflow import figures

    station, table, h0, residuals, label, breaks = _figure_inputs(40.0, 50.0, (8.0, 20.0))
    h0 = 0.6  # the lowest gauging (0.5 m) is below it
    figures.plot_fit(station, table, h0, residuals, label, tmp_path / "f.svg", "title", breaks)
    _, (lin, log, res) = _panels(tmp_path / "f.svg")
    expect = [(station.discharge, station.stage, False), (station.discharge, station.stage - h0, True),
              (100 * residuals, station.stage, False)]
    for panel, (x, y, logged) in zip((lin, log, res), expect):
        keep = y > 0 if logged else np.ones_like(y, bool)
        assert len(panel["dots"]) == keep.sum() and len(panel["x"]) >= 2 and len(panel["y"]) >= 2
        f = np.log10 if logged else np.asarray
        for axis, values, column in (("x", x[keep], 0), ("y", y[keep], 1)):
            pixels, ticks = zip(*panel[axis])
            slope, offset = np.polyfit(f(np.array([_value(t) for t in ticks])), pixels, 1)
            assert np.allclose(panel["dots"][:, column], slope * f(values) + offset, atol=0.2), (axis, logged)
    assert len(lin["dots"]) == 12 and len(log["dots"]) == 11


def test_the_fit_figure_draws_breakpoints_and_the_extrapolated_curve(tmp_path):
    """Dotted red lines: one per breakpoint on each of the three panels, none without; the median curve dashed where
    extrapolated; the same file for the same input, whatever was drawn before."""
    from ratingflow import figures

    small, large = _figure_inputs(2.0, 3.0, ()), _figure_inputs(40.0, 50.0, (8.0, 20.0))
    figures.plot_fit(*small[:5], tmp_path / "first.svg", "small", small[5])
    figures.plot_fit(*large[:5], tmp_path / "large.svg", "large", large[5])
    figures.plot_fit(*small[:5], tmp_path / "after.svg", "small", small[5])
    assert (tmp_path / "first.svg").read_bytes() == (tmp_path / "after.svg").read_bytes()
    for name, n_breaks in (("first", 0), ("large", 2)):
        root, _ = _panels(tmp_path / f"{name}.svg")
        paths = list(root.iter("{http://www.w3.org/2000/svg}path"))
        red = [p for p in paths if p.get("stroke") == "#d62728"]
        assert len(red) == 3 * n_breaks + (n_breaks > 0), name  # and its legend's sample
        dashed = [p.get("d") for p in paths if p.get("stroke-dasharray") == "5,3"]
        assert len(dashed) == 3, name  # the linear and log panels, and the legend
        lin, log = (d for d in dashed if "h" not in d)  # the legend's sample is a short horizontal line
        assert lin.count("M") == 2  # linear: below and above the gaugings
        assert log.count("M") == (2 if name == "first" else 1)  # log: "large" is extrapolated below h0


def test_the_summary_reads_the_fits_convergence_and_it_is_what_the_draws_give(tmp_path):
    """The fit keeps its draws' convergence in the InferenceData (computed once, for the choice); the summary reads
    it instead of computing it again. After a round trip through netCDF it equals what the saved draws give, number
    for number, for a converged and an unconverged fit; a fit file without it (written before) is computed."""
    import json

    from ratingflow.io import load_idata, save_idata
    from ratingflow.posterior import CONVERGENCE_ATTR, convergence

    for i, shift in enumerate((0.0, 0.2)):
        idata = fake_idata(np.random.default_rng(4 + i), 12.0, 1.7, 100.2, 0.05, spread=1.0, shift_chain=shift)
        save_idata(idata, tmp_path / f"fit{i}.nc")
        back = load_idata(tmp_path / f"fit{i}.nc")
        recomputed = convergence({k: back.posterior[k].values for k in back.posterior.data_vars},
                                 {"diverging": back.sample_stats["diverging"].values})
        assert json.loads(back.attrs[CONVERGENCE_ATTR]) == json.loads(json.dumps(recomputed))
        stored = diagnostics(back, THRESHOLDS)
        del back.attrs[CONVERGENCE_ATTR]
        assert diagnostics(back, THRESHOLDS) == stored
        assert stored["passed"] == (shift == 0.0)


def fake_seg2(st, offsets: bool, rng):
    """A one-breakpoint fit of ``st`` as the sampler gives it (its figures do not matter to the check)."""
    from ratingflow.candidates import Structure

    seg2 = Candidate("seg2")
    structure = Structure(2, transition=0.05, segment_offsets=offsets)
    shape = (4, 100)
    post = {"gap": np.full(shape, 0.3, np.float32), "b": np.full(shape + (2,), 2.0, np.float32),
            "log_q_ref": np.zeros(shape, np.float32), "sigma": np.full(shape, 0.05, np.float32),
            "break_u": np.zeros(shape + (1,), np.float32), "breakpoint_rel": np.full(shape + (1,), 0.5, np.float32),
            "log_a": np.zeros(shape + (2,), np.float32)}
    if offsets:
        post.update(offset_rel=np.zeros(shape + (2,), np.float32), offset_log_depth=np.zeros(shape + (1,), np.float32),
                    offset_shift=np.zeros(shape + (1,), np.float32), b_control=post["b"])
    stats = {"diverging": np.zeros(shape, bool), "energy": rng.standard_normal(shape), "lp": np.zeros(shape)}
    res = FitResult(st, seg2, st.context(seg2, structure), post, stats, np.zeros(shape + (st.n,)))
    return inference_data(res, az.from_dict(prior={"b": np.ones((1, 10))}), {"seed": 1})


def test_a_one_h0_segmented_fit_whose_controls_suit_their_own_zero_flow_is_flagged():
    """The summary runs the BaRatin form's profile check on a timeless segmented fit with one h0 (the station's
    gaugings from the fit file give the check's figures) and flags it; a power law or a fit that already has own
    offsets is not checked."""
    from ratingflow import synthetic
    from ratingflow.candidates import Structure
    from ratingflow.screen import own_offsets_check
    from ratingflow.summarise import own_offsets, plausibility

    rng = np.random.default_rng(20261205)
    truth = synthetic.two_controls("t", 5.0, 2.6, 0.0, 0.03, 1.0, 1.3, h02=0.8)
    st = synthetic.station_data(truth, synthetic.gaugings(rng, truth, 100))
    idata = fake_seg2(st, False, rng)
    check = own_offsets(idata)
    direct = own_offsets_check(st, Candidate("seg2"), Structure(2, transition=0.05))
    for key in ("gain", "se", "h0_m", "offsets_m", "breakpoints_m"):
        assert np.allclose(check[key], direct[key], rtol=1e-9)
    assert check["gain"] > 1.5 * check["se"]
    _, flags = plausibility(idata, np.arange(st.n) + 2)
    assert any(f.startswith("one h0 for every control does not suit these gaugings") for f in flags)
    assert own_offsets(fake_seg2(st, True, rng)) is None
    assert own_offsets(fake_idata(rng, 12.0, 1.7, 100.2, 0.05, spread=1.0)) is None


def test_the_fit_file_keeps_the_choices_pointwise_loo_and_the_summary_reads_it():
    """The chosen fit's pointwise PSIS-LOO is computed once (:func:`ratingflow.posterior.fit_loo`, the choice's)
    and kept in the fit file; the summary's gauging checks read it. Its tail length follows the fit's relative
    efficiency (mean bulk ESS / draws), not a fifth of the draws as with a bare log-likelihood (whose ESS is NaN).
    A file without it is computed as before. Deterministic: NumPy's draws, and each check compares the same
    arithmetic."""
    from ratingflow.posterior import LOO_ATTR, fit_convergence, fit_loo, stored_loo
    from ratingflow.summarise import plausibility

    rng = np.random.default_rng(7)
    st = StationData("s", np.linspace(1.0, 3.0, 30), np.linspace(1.0, 30.0, 30), np.full(30, 0.5))
    shape = (4, 100)
    ll = rng.normal(-1.0, 0.1, shape + (st.n,))
    ll[..., 3] = rng.standard_t(1.5, shape) - 3.0  # one gauging with a heavy-tailed log-likelihood: large k
    post = {"gap": rng.lognormal(-1, 0.1, shape), "b": rng.lognormal(0.7, 0.1, shape + (2,)),
            "log_q_ref": rng.normal(size=shape), "sigma": rng.lognormal(-3, 0.1, shape),
            "break_u": rng.normal(size=shape + (1,)), "breakpoint_rel": rng.uniform(0.4, 0.6, shape + (1,)),
            "log_a": rng.normal(size=shape + (2,))}
    res = FitResult(st, Candidate("seg2"), st.context(Candidate("seg2"), structure_for([Candidate("seg2")])), post,
                    {"diverging": np.zeros(shape, bool), "energy": rng.standard_normal(shape)}, ll)
    loo = fit_loo(res)
    assert fit_loo(res) is loo  # computed once
    reff = np.mean([p["ess_bulk"] for p in fit_convergence(res)["per_parameter"].values()]) / 400
    assert 0.3 < reff < 3 and np.isfinite(reff)
    _, k3 = az.psislw(ll[..., 3].reshape(-1) * -1.0, reff)
    assert np.isclose(float(np.asarray(loo.pareto_k)[3]), float(k3))
    stored = inference_data(res, az.from_dict(prior={"b": np.ones((1, 10))}), {"seed": 1})
    k, loo_i = stored_loo(stored)
    assert np.allclose(k, loo.pareto_k) and np.allclose(loo_i, loo.loo_i) and k[3] > 0.7
    influential, _ = plausibility(stored, np.arange(st.n) + 2)
    assert [g["line"] for g in influential] == [int(i) + 2 for i in np.flatnonzero(k > 0.7)]
    del stored.attrs[LOO_ATTR]  # a fit file written before: computed from the file's own draws
    arviz_own = az.InferenceData(**{group: stored[group] for group in stored.groups()})
    assert np.allclose(stored_loo(stored)[1], az.loo(arviz_own, pointwise=True).loo_i)


def _from_dataframe(table):
    """The netCDF rating table as xarray's ``Dataset.from_dataframe`` lays it out (the summary's code before it wrote
    the file through netCDF4 directly)."""
    import xarray as xr

    if "period" not in table:
        table = table.assign(period=1, valid_from="", valid_to="")
    per_period = [c for c in ("valid_from", "valid_to", "issued") if c in table]
    validity = table.groupby("period")[per_period].first()
    flat = table.drop(columns=per_period).assign(extrapolated=table["extrapolated"].astype(float))
    ds = xr.Dataset.from_dataframe(flat.set_index(["period", "stage_m"]))
    for name in per_period:
        ds[name] = ("period", validity[name].to_numpy(str))
    ds["valid_from"].attrs["meaning"] = ds["valid_to"].attrs["meaning"] = "UTC; empty: open-ended"
    if "issued" in ds:
        ds["issued"].attrs["meaning"] = "the history snapshot this period's table was kept from ('' : issued now)"
    ds["stage_m"].attrs.update(units="m", long_name="stage (station datum)")
    for name in ds.data_vars:
        if name.endswith("_m3s"):
            ds[name].attrs["units"] = "m3/s"
    ds["extrapolated"] = ds["extrapolated"].fillna(1).astype("int8")
    ds["extrapolated"].attrs["meaning"] = "1 where the stage lies outside the period's gauged range (or its grid)"
    ds.attrs.update(table.attrs)
    ds.attrs["bands"] = ("curve_*: HPDI of the rating curve (parameter uncertainty); gauging_*: HPDI of a new gauging "
                         "(plus residual spread and the station's typical gauging uncertainty)")
    return ds


def test_the_netcdf_table_reads_back_as_xarray_lays_the_table_out(tmp_path):
    """The rating table's netCDF file is written through netCDF4 directly (xarray's encoding took 8-10 ms of a table's
    10). It reads back as the Dataset ``from_dataframe`` makes of the table and ``to_netcdf`` writes, dtypes
    included: one period; two periods on different grids (NaN outside a period's grid, an integer column then
    float, ``extrapolated`` 1); two periods on one grid (integers kept)."""
    import pandas as pd
    import xarray as xr

    from ratingflow.io import save_variables
    from ratingflow.summarise import table_variables

    one = rating_table(fake_idata(np.random.default_rng(8), 12.0, 1.7, 100.2, 0.05, spread=1.0, draws=200),
                       seed=1, step=0.05, below=0.1, above=0.25)
    first = one.assign(period=1, valid_from="", valid_to="2020-01-01T00:00:00", issued="2026-12-03T000000Z", segment=1)
    second = one.iloc[5:].assign(stage_m=one["stage_m"].iloc[5:] + 0.02, period=2, valid_from="2020-01-01T00:00:00",
                                 valid_to="", issued="", segment=2)
    two = pd.concat([first, second], ignore_index=True)
    same_grid = pd.concat([first, first.assign(period=2, segment=3)], ignore_index=True)
    for table in (one, two, same_grid):
        table.attrs = {**one.attrs, "typical_gauging_sd_log": 0.05}
        expected = _from_dataframe(table)
        xr.testing.assert_identical(table_dataset(table), expected)
        expected.to_netcdf(tmp_path / "xarray.nc", engine="netcdf4")
        save_variables(tmp_path / "direct.nc", *table_variables(table))
        with xr.open_dataset(tmp_path / "xarray.nc") as a, xr.open_dataset(tmp_path / "direct.nc") as b:
            xr.testing.assert_identical(a.load(), b.load())
            assert {k: v.dtype for k, v in a.variables.items()} == {k: v.dtype for k, v in b.variables.items()}
    assert table_dataset(two)["segment"].dtype == np.float64 and np.isnan(table_dataset(two)["segment"][1, :5]).all()
    assert table_dataset(same_grid)["segment"].dtype == np.int64


def test_the_summary_reads_a_fits_loo_from_the_file_or_from_its_log_likelihood(tmp_path):
    """The summary reads a fit's posterior, sample statistics and constant data, not its log-likelihood, as the fit
    keeps its PSIS-LOO in its attributes; a file written before that reads the log-likelihood too. Both give the
    same influential gaugings (one with a heavy-tailed log-likelihood). Deterministic: NumPy's draws."""
    import json

    from ratingflow.io import save_idata
    from ratingflow.posterior import LOO_ATTR, stored_loo
    from ratingflow.summarise import run

    rng = np.random.default_rng(9)
    idata = fake_idata(rng, 12.0, 1.7, 100.2, 0.05, spread=1.0, draws=200)
    ll = rng.normal(-1.0, 0.1, (4, 200, 5))
    ll[..., 2] = rng.standard_t(1.5, (4, 200)) - 3.0
    idata.log_likelihood["log_discharge"].values[...] = ll
    del idata.attrs[LOO_ATTR]
    k, loo_i = stored_loo(idata)  # from the log-likelihood
    idata.attrs[LOO_ATTR] = json.dumps({"pareto_k": k.tolist(), "loo_i": loo_i.tolist()})
    save_idata(idata, tmp_path / "kept.nc")
    del idata.attrs[LOO_ATTR]
    save_idata(idata, tmp_path / "before.nc")
    table_cfg = {"stage_step_m": 0.05, "extend_below": 0.1, "extend_above": 0.2, "hpdi_probs": [0.9, 0.95]}
    found = {}
    for name in ("kept", "before"):
        paths = [tmp_path / f"{name}.{e}" for e in ("csv", "table.nc", "json", "svg")]
        run(tmp_path / f"{name}.nc", *paths, 1, table_cfg, THRESHOLDS)
        found[name] = json.loads(paths[2].read_text())["influential"]
    assert found["kept"] == found["before"] and [g["line"] for g in found["kept"]] == [4]
