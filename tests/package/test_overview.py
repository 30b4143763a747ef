"""The overview page (results/report.html) as HTML: every station a row with its links, text escaped, one
figure loaded at a time, light at 500 stations. Its rendering in Chromium is tested in tests/workflow."""
import pandas as pd

from ratingflow.overview import render


def stations(n: int) -> pd.DataFrame:
    return pd.DataFrame({"station_id": [f"s{i:03d}" for i in range(n)], "name": ["River <at> Bridge"] * n,
                         "status": ["ok", "flagged", "insufficient data", "error"] * (n // 4),
                         "flags": ["", "residual SD of ln Q 0.37 is 10x ...", "2 valid gauging(s)", "file not found"] * (n // 4),
                         "model": ["seg2"] * n, "equation": ["Q = 1 * (H - 0.1)^2 for 0.1 < H <= 1 m; Q = 2 * (H - 0.1)^1.5 for H > 1 m"] * n,
                         "gaugings_used": [30] * n, "change_since_previous_run": ["first rating"] * n})


def test_every_station_is_a_row_with_its_links():
    page = render(stations(8))
    assert page.count('<tr data-plot="plots/') == 8
    for link in ("plots/s005.svg", "tables/s005.csv", "diagnostics/s005.json", "fit/s005.models.csv"):
        assert f'href="{link}"' in page
    assert "River &lt;at&gt; Bridge" in page and "<at>" not in page
    assert '<td class="flagged">flagged</td>' in page and '<td class="insufficient">insufficient data</td>' in page
    assert "ok: 2" in page and "one rating (no periods)" in page
    # only the selected station's figures are loaded (by the script): no image has a source in the page
    assert page.count("<img") == 2 and "<img src" not in page and 'img id="figure" src' not in page
    assert "hydrograph" not in page.split("<tbody>")[1].split("</tbody>")[0]  # no station here has a discharge series


def test_a_station_with_a_discharge_series_links_its_hydrograph():
    table = stations(4).assign(discharge_status=["ok", "flagged", "no stage record", "no rating"],
                               discharge_from="2018-01-01T00:30:00Z", discharge_to="2022-06-01T23:45:00Z",
                               discharge_steps=24545, discharge_gaps=[0, 17, 0, 0], steps_beyond_limit=[0, 766, 0, 0],
                               steps_above_gauged=[0, 2957, 0, 0])
    page = render(table)
    assert page.count('data-hydrograph="discharge/') == 2 and 'href="discharge/s001.daily.csv"' in page
    assert "2018-01-01 to 2022-06-01, 24545 steps; 17 gap(s); 766 beyond the limit (missing)" in page
    assert "<td>no stage record</td>" in page


def test_a_station_whose_prior_check_failed_links_its_prior_figure():
    page = render(stations(4).assign(prior_check_passed=[True, False, None, True]))
    assert page.count('href="prior/') == 1 and 'href="prior/s001.svg"' in page


def test_light_at_500_stations():
    page = render(stations(500))
    assert page.count('<tr data-plot="plots/') == 500
    assert len(page.encode()) < 500_000 and page.count("<img") == 2
