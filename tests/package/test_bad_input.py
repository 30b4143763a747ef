"""The bad-input corpus (tests/data/bad/cases.yaml): each case's outcome is asserted."""
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ratingflow.clean import CleaningError, clean, run
from ratingflow.sheet import SheetError, load_sheet

BAD = Path(__file__).parents[1] / "data" / "bad"
CORPUS = yaml.safe_load((BAD / "cases.yaml").read_text())
CASES = CORPUS["cases"]
OUTCOME_KEYS = {"id", "error", "sheet_error", "status", "clean", "rejected", "checks", "extra_rows", "warnings"}
DEFAULT = {"kind": "percent_2sd", "value": 7}


def write_sheet(tmp_path, case) -> Path:
    rows = [{**CORPUS["defaults"], "station_id": case["id"],
             **{k: v for k, v in case.items() if k not in OUTCOME_KEYS}}]
    rows += [{**CORPUS["defaults"], **extra} for extra in case.get("extra_rows", [])]
    path = tmp_path / "stations.tsv"
    pd.DataFrame(rows).fillna("").astype(str).to_csv(path, sep="\t", index=False)
    return path


def test_corpus_is_large_enough():
    assert len(CASES) >= 40
    assert len({c["id"] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case(case, tmp_path):
    sheet = write_sheet(tmp_path, case)
    if "sheet_error" in case:
        with pytest.raises(SheetError, match=case["sheet_error"]) as err:
            load_sheet(sheet, BAD)
        assert str(sheet) in str(err.value)
        return
    spec = load_sheet(sheet, BAD)[case["id"]]
    path = BAD / spec.file
    if "error" in case:
        with pytest.raises(CleaningError, match=case["error"]) as err:
            clean(spec, path, DEFAULT)
        assert f"station {case['id']}" in str(err.value) and spec.file in str(err.value)
        # in the pipeline the same error becomes the station's status, and the run goes on
        out = {k: tmp_path / f"out.{k}" for k in ("clean", "rejected", "status")}
        status = run(spec, path, out["clean"], out["rejected"], out["status"], {"default_uncertainty": DEFAULT})
        assert status["status"] == "error" and status["message"] == str(err.value)
        assert pd.read_csv(out["clean"]).empty
        return
    res = clean(spec, path, DEFAULT)
    assert res.status["status"] == case["status"]
    assert len(res.clean) == case["clean"]
    assert res.rejected["reason_code"].value_counts().to_dict() == case["rejected"]
    assert len(res.clean) + len(res.rejected) == res.status["raw_rows"]
    assert all(len(str(r)) > 0 for r in res.rejected["reason"])
    if "warnings" in case:
        assert any(re.search(case["warnings"], w) for w in res.status["warnings"]), res.status["warnings"]
    else:
        assert res.status["warnings"] == []
    for column, expected in case.get("checks", {}).items():
        if column == "relative_sd":
            actual = (res.clean["discharge_sd_m3s"] / res.clean["discharge_m3s"]).tolist()
        else:
            actual = res.clean[column].tolist()
        if isinstance(expected[0], str):
            assert actual == expected, column
        else:
            np.testing.assert_allclose(actual, expected, rtol=1e-9, err_msg=column)


def test_rejected_rows_keep_their_text_and_line():
    spec = load_sheet(write_sheet(Path(pytest.importorskip("tempfile").mkdtemp()),
                                  {"id": "t", "file": "text_in_stage.csv"}), BAD)["t"]
    res = clean(spec, BAD / spec.file, DEFAULT)
    row = res.rejected.iloc[0]
    assert row["line"] == 3 and row["stage"] == "about 1.2" and row["q"] == "20"
    assert row["reason"] == "unparseable number (stage in column 'stage')"


def test_200000_rows(tmp_path):
    n = 200_000
    rng = np.random.default_rng(0)
    stage = rng.uniform(0.2, 5.0, n).round(4)
    q = (12 * stage**1.8).round(3)
    text = pd.DataFrame({"datetime": pd.date_range("1990-01-01", periods=n, freq="h").strftime("%Y-%m-%d %H:%M"),
                         "stage": stage.astype(str), "q": q.astype(str)})
    text.loc[::1000, "q"] = "bad"
    path = tmp_path / "big.csv"
    text.to_csv(path, index=False)
    sheet = write_sheet(tmp_path, {"id": "big", "file": "big.csv", "datetime_column": "datetime",
                                   "valid_from": "1991-01-01"})
    spec = load_sheet(sheet, tmp_path)["big"]
    start = time.perf_counter()
    res = clean(spec, path, DEFAULT)
    seconds = time.perf_counter() - start
    print(f"200 000 rows cleaned in {seconds:.1f} s")
    assert res.status["raw_rows"] == n
    assert res.rejected["reason_code"].value_counts().to_dict() == {
        "unparseable_number": 200, "outside_validity_window": 8760 - 9,
    }
    assert len(res.clean) == n - 200 - 8751


def test_rows_of_unknown_stations_in_a_long_file_are_listed(tmp_path):
    sheet = write_sheet(tmp_path, {"id": "A", "file": "long_format.csv", "station_column": "site",
                                   "extra_rows": [{"station_id": "B", "file": "long_format.csv", "station_column": "site"}]})
    from ratingflow.clean import unassigned_rows

    table = unassigned_rows(list(load_sheet(sheet, BAD).values()), BAD)
    assert table.to_dict("records") == [{"file": "long_format.csv", "line": 8, "station_code": "C", "text": "C,1,1"}]


def test_long_file_whose_every_row_belongs_to_a_sheet_station(tmp_path):
    """Issue 18, case 8: a service's one export with all its stations in the sheet left no row over, and
    building the empty table crashed (ValueError: Buffer has wrong number of dimensions)."""
    from ratingflow.clean import UNASSIGNED_COLUMNS, unassigned_rows

    others = [{"station_id": sid, "file": "long_format.csv", "station_column": "site"} for sid in ("B", "C")]
    sheet = write_sheet(tmp_path, {"id": "A", "file": "long_format.csv", "station_column": "site", "extra_rows": others})
    table = unassigned_rows(list(load_sheet(sheet, BAD).values()), BAD)
    assert table.empty and list(table.columns) == UNASSIGNED_COLUMNS
    out = tmp_path / "unassigned.csv"
    table.to_csv(out, index=False)
    assert pd.read_csv(out).empty
