"""The run report's table (ratingflow.report.run)."""
import json
from dataclasses import replace

import pandas as pd

import ratingflow.report as report
from ratingflow.sheet import StationSpec


def _status(path, message):
    path.write_text(json.dumps({"status": "error", "message": message, "raw_rows": 3, "clean_rows": 0,
                                "rejected_rows": 3, "rejected_by_reason": {"stage_missing": 3},
                                "default_uncertainty_rows": 0, "suspect_lines": []}))
    return str(path)


def test_the_report_recomputes_the_row_of_a_station_whose_file_or_sheet_row_changed_only(tmp_path, monkeypatch):
    specs = [StationSpec(s, f"River {s}", f"{s}.csv", "H", "m", "Q", "m3/s") for s in ("a", "b")]
    inputs = {k: [None, None] for k in report.INPUTS}
    inputs["status"] = [_status(tmp_path / f"{s}.json", "no rows") for s in ("a", "b")]
    out = tmp_path / "report.csv"
    first = report.run(specs, inputs, out)
    computed = []
    real = report.station_row
    monkeypatch.setattr(report, "station_row", lambda spec, *a, **k: computed.append(spec.station_id) or real(spec, *a, **k))
    pd.testing.assert_frame_equal(report.run(specs, inputs, out), first)
    assert computed == []
    _status(tmp_path / "b.json", "a new reason")  # b's file changes
    specs[0] = replace(specs[0], name="River A renamed")  # a's sheet row changes
    table = report.run(specs, inputs, out).set_index("station_id")
    assert computed == ["a", "b"]
    assert table.loc["a", "name"] == "River A renamed" and "a new reason" in table.loc["b", "flags"]
    assert pd.read_csv(out).set_index("station_id").loc["b", "flags"] == table.loc["b", "flags"]
