"""The SVG plotting layer (:mod:`ratingflow.svgplot`): ticks, scales, and the placeholder figure."""
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from ratingflow import status, svgplot


@pytest.mark.parametrize("lo,hi", [(0, 1), (0, 50_000), (-15.3, 8.4), (0.37, 0.41), (1002.5, 1003.1), (-2e-4, 3e-4)])
def test_linear_ticks_are_evenly_spaced_nice_numbers_inside_the_range(lo, hi):
    ticks = svgplot.linear_ticks(lo, hi)
    values = np.array([v for v, _ in ticks])
    assert 3 <= len(values) <= 12
    assert values.min() >= lo - 1e-12 and values.max() <= hi + 1e-12
    steps = np.diff(values)
    assert np.allclose(steps, steps[0])
    mantissa = steps[0] / 10 ** math.floor(math.log10(steps[0]))
    assert any(np.isclose(mantissa, m) for m in (1, 2, 2.5, 5))
    # each label reads back as its value, and no two labels are the same
    assert np.allclose([float(t.replace(svgplot.MINUS, "-")) for _, t in ticks], values, atol=steps[0] * 1e-6)
    assert len({t for _, t in ticks}) == len(ticks)


def test_log_ticks_label_decades_and_add_2_and_5_on_a_short_axis():
    major, minor = svgplot.log_ticks(0.004, 300)
    assert [t for _, t in major] == ["0.01", "0.1", "1", "10", "100"]
    assert 0.005 in minor and 200 in minor and 1 not in minor
    major, _ = svgplot.log_ticks(0.3, 12)
    assert [t for _, t in major] == ["0.5", "1", "2", "5", "10"]
    major, _ = svgplot.log_ticks(1e-3, 1e9)  # 12 decades: every other one labelled
    assert len(major) <= 8 and all(np.isclose(read_label(t), v) and v in {10.0 ** k for k in range(-3, 10)}
                                   for v, t in major)


def read_label(text: str) -> float:
    """The value of a tick label: plain, or a power of ten with superscripts (2×10⁻⁴)."""
    digits = str.maketrans("\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079", "-0123456789")
    text = text.replace(svgplot.MINUS, "-")
    if "10" in text and text.translate(digits) != text:
        mantissa, _, power = text.rpartition("×")
        return float(mantissa or 1) * 10.0 ** int(power[2:].translate(digits))
    return float(text)


@pytest.mark.parametrize("value", [1e-7, 3e-5, 2e-4, 0.001, 0.05, 1, 20, 10_000, 1e5, 5e6, 1e12])
def test_log_labels_read_back_as_their_values(value):
    label = svgplot.log_label(value)
    assert np.isclose(read_label(label), value)
    assert ("e+" not in label and "e-" not in label) and (len(label) <= 7)


def test_an_axes_drops_what_a_log_scale_cannot_show_and_breaks_its_lines():
    ax = svgplot.Axes((100, 50, 400, 300), xlog=True, name="t")
    ax.line([1, 10, 0, 100, 1000], [1, 2, 3, 4, 5], svgplot.BLUE)
    ax.points([-1, 10, 100], [1, 2, 3], xerr=[1, 5, 200])
    root = ET.fromstring(svgplot.document(600, 400, [ax.svg()]))
    ns = "{http://www.w3.org/2000/svg}"
    line = next(p for p in root.iter(f"{ns}path") if p.get("stroke") == svgplot.BLUE).get("d")
    assert line.count("M") == 2 and line.count("L") == 2  # broken at the zero
    assert len(list(root.iter(f"{ns}circle"))) == 2  # the negative discharge is left out
    sx, _ = ax.scales()
    assert sx.lo < 1 and sx.hi > 1000 and sx(10.0) == pytest.approx((sx(1.0) + sx(100.0)) / 2)


def test_a_station_not_fitted_gets_a_figure_with_its_reason(tmp_path):
    reason = "insufficient data: 2 valid gauging(s) < 3 " + "and a long explanation " * 10
    status.placeholder_figure(tmp_path / "s.svg", "s<1>", reason)
    text = " ".join(t.text for t in ET.parse(tmp_path / "s.svg").getroot().iter("{http://www.w3.org/2000/svg}text"))
    assert "s<1>: not fitted" in text and "insufficient data: 2 valid gauging(s)" in text


def test_date_ticks_fall_on_the_first_of_a_month_or_year():
    lo, hi = svgplot.days(["2018-01-03", "2022-08-01"])
    ticks = svgplot.date_ticks(lo, hi)
    assert [t for _, t in ticks] == ["2019", "2020", "2021", "2022"]
    assert [v for v, _ in ticks] == list(svgplot.days(["2019-01-01", "2020-01-01", "2021-01-01", "2022-01-01"]))
    lo, hi = svgplot.days(["2021-02-10", "2021-09-01"])
    assert [t for _, t in svgplot.date_ticks(lo, hi)] == [f"2021-{m:02d}" for m in range(3, 10)]


def test_the_periods_figure_places_shifts_and_residuals_on_its_date_axis(tmp_path):
    """:func:`ratingflow.figures.plot_periods`: a known shift on 1 January 2020 is drawn at the 2020 tick, a detected one
    with its interval shaded between the two gaugings around it, each gauging's residual at its date, coloured by
    period. Deterministic (no draws)."""
    import json
    from types import SimpleNamespace

    import pandas as pd
    import xarray as xr

    from ratingflow import figures

    times = pd.date_range("2018-03-01", "2021-10-01", periods=12)
    period = np.where(times < "2020-01-01", 1, 2)
    stage = np.linspace(0.5, 2.0, 12)
    q = 5.0 * (stage - 0.2) ** 1.6 * np.where(period == 1, 1.0, 1.3)
    grid = np.linspace(0.4, 2.2, 50)
    table = pd.concat([pd.DataFrame({"period": p, "stage_m": grid, "discharge_median_m3s": 5.0 * f * (grid - 0.2) ** 1.6,
                                     "curve_hpdi90_lower_m3s": 4.5 * f * (grid - 0.2) ** 1.6,
                                     "curve_hpdi90_upper_m3s": 5.5 * f * (grid - 0.2) ** 1.6})
                       for p, f in ((1, 1.0), (2, 1.3))])
    views = [SimpleNamespace(constant_data=xr.Dataset({"stage": ("g", stage[period == p]),
                                                       "discharge": ("g", q[period == p])}),
                             attrs={"valid_from": "" if p == 1 else "2020-01-01"}) for p in (1, 2)]
    shifts = [{"source": "known", "date": "2020-01-01"},
              {"source": "detected", "date": "2021-01-15", "interval_start": "2020-12-01", "interval_end": "2021-02-01"}]
    idata = SimpleNamespace(constant_data=xr.Dataset({"gauging_time": ("g", times.values), "gauging_period": ("g", period)}),
                            attrs={"station": "s", "model_description": "power law", "shifts": json.dumps(shifts)})
    figures.plot_periods(idata, views, table, tmp_path / "p.svg")
    root = ET.parse(tmp_path / "p.svg").getroot()
    ns = "{http://www.w3.org/2000/svg}"
    panels = [g for g in root.iter(f"{ns}g") if g.get("clip-path")]
    assert len(panels) == 2
    curves, residuals = panels
    dots = [(float(c.get("cx")), float(c.get("cy"))) for c in residuals.iter(f"{ns}circle")]
    assert len(dots) == 12 and len(list(curves.iter(f"{ns}circle"))) == 12
    fills = {g.get("fill") for g in residuals.iter(f"{ns}g") if g.get("fill")}
    assert len(fills) == 2  # one colour per period
    # the date axis: tick labels 2019, 2020, 2021; a gauging's dot where its date falls between them
    ticks = {t.text: float(t.get("x")) for t in root.iter(f"{ns}text") if t.text in ("2019", "2020", "2021")}
    assert set(ticks) == {"2019", "2020", "2021"}
    per_day = (ticks["2021"] - ticks["2020"]) / 366  # 2020 is a leap year
    xs = sorted(x for x, _ in dots)
    expect = ticks["2020"] + (svgplot.days(times) - svgplot.days(["2020-01-01"])[0]) * per_day
    assert np.allclose(xs, expect, atol=0.3)
    known = [p for p in residuals.iter(f"{ns}path") if p.get("stroke") == svgplot.RED]
    assert len(known) == 1 and abs(float(known[0].get("d")[1:].split(",")[0]) - ticks["2020"]) < 0.11
    span = next(r for r in residuals.iter(f"{ns}rect"))
    start = ticks["2021"] - 31 * per_day
    assert abs(float(span.get("x")) - start) < 0.3 and abs(float(span.get("width")) - 62 * per_day) < 0.3
