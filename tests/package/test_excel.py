"""Issue 18, case 8: gaugings kept in an Excel workbook, as hydrographers keep them (a Tideda or AQUARIUS
export): a sheet row names the .xlsx file and the worksheet. Line numbers are the spreadsheet's rows, dates
stored as Excel serial numbers are understood, and nothing is lost."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from ratingflow.batches import raw_row_count
from ratingflow.clean import CleaningError, clean
from ratingflow.sheet import load_sheet

ROOT = Path(__file__).resolve().parents[2]
DEMO = load_sheet(ROOT / "config" / "stations.tsv", ROOT / "data" / "raw")
DEFAULT = {"kind": "percent_2sd", "value": 7}
#: Excel's serial date of 2020-01-01 00:00 (days since 1899-12-30)
SERIAL_2020 = 43831


def workbook(path: Path, csv: Path, serial_dates: bool) -> int:
    """The isere gaugings (Kiang et al. 2018) as an export would hold them: a title worksheet first, then
    the data with real numbers, an empty row in the middle, and dates either as date cells or as serial
    numbers. Returns the spreadsheet row of the empty row."""
    table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    book = openpyxl.Workbook()
    book.active.title = "about"
    book.active.append(["exported from a hydrometric database"])
    sheet = book.create_sheet("gaugings")
    sheet.append(list(table.columns) + ["when"])
    blank = 2 + len(table) // 2
    for i, row in enumerate(table.itertuples(index=False)):
        if sheet.max_row + 1 == blank:
            sheet.append([None])
        when = pd.Timestamp("2020-01-01") + pd.Timedelta(days=i, hours=6)
        values = [float(v) if v.replace(".", "", 1).replace("-", "", 1).isdigit() else v for v in row]
        sheet.append(values + [(SERIAL_2020 + i + 0.25) if serial_dates else when.to_pydatetime()])
    for _ in range(3):  # an export's used range often ends in empty rows
        sheet.append([None])
    book.save(path)
    return blank


@pytest.mark.parametrize("serial_dates", [False, True])
def test_excel_gaugings_read_like_the_csv(tmp_path, serial_dates):
    spec = DEMO["isere"]
    csv = ROOT / "data" / "raw" / spec.file
    blank = workbook(tmp_path / "isere.xlsx", csv, serial_dates)
    xlsx = replace(spec, file="isere.xlsx", worksheet="gaugings", datetime_column="when")
    from_csv, from_xlsx = clean(spec, csv, DEFAULT), clean(xlsx, tmp_path / "isere.xlsx", DEFAULT)
    # nothing lost: every worksheet row but the header is used or rejected (the empty one, with its row number)
    n = len(from_csv.clean)
    assert from_xlsx.status["raw_rows"] == n + 1 and len(from_xlsx.clean) == n
    assert from_xlsx.rejected[["line", "reason_code"]].to_dict("records") == [{"line": blank, "reason_code": "empty_row"}]
    np.testing.assert_allclose(from_xlsx.clean["stage_m"], from_csv.clean["stage_m"], rtol=1e-12)
    np.testing.assert_allclose(from_xlsx.clean["discharge_m3s"], from_csv.clean["discharge_m3s"], rtol=1e-12)
    # spreadsheet row numbers: the header is row 1, the empty row shifts the rows below it
    lines = from_xlsx.clean["line"].to_numpy()
    assert lines[0] == 2 and blank not in lines and lines[-1] == n + 2
    # dates, whether date cells or serial numbers
    assert from_xlsx.clean["datetime"].iloc[0] == "2020-01-01T06:00:00"
    assert from_xlsx.clean["datetime"].iloc[-1] == (pd.Timestamp("2020-01-01 06:00") + pd.Timedelta(days=n - 1)).isoformat()
    assert raw_row_count(xlsx, tmp_path) >= n


def test_a_missing_worksheet_is_named(tmp_path):
    workbook(tmp_path / "isere.xlsx", ROOT / "data" / "raw" / DEMO["isere"].file, False)
    spec = replace(DEMO["isere"], file="isere.xlsx", worksheet="Gaugings 2012")
    with pytest.raises(CleaningError, match=r"station isere, file .*isere.xlsx: no worksheet 'Gaugings 2012' "
                                            r"\(sheet column 'worksheet'\); worksheets are 'about', 'gaugings'"):
        clean(spec, tmp_path / "isere.xlsx", DEFAULT)
    (tmp_path / "not.xlsx").write_text("stage,q\n1,2\n")
    with pytest.raises(CleaningError, match="not a readable Excel workbook"):
        clean(replace(spec, file="not.xlsx"), tmp_path / "not.xlsx", DEFAULT)
