"""Issued past rating periods are kept on re-runs (issue 14): ratingflow.history.keep_issued."""
import pandas as pd

from ratingflow.history import keep_issued


def _table(scale, starts=("", "2020-01-01T00:00:00"), ends=("2020-01-01T00:00:00", "")):
    return pd.concat([pd.DataFrame({"period": p + 1, "valid_from": starts[p], "valid_to": ends[p],
                                    "stage_m": [1.0, 1.1], "discharge_median_m3s": [scale * (p + 1), scale * (p + 2)]})
                      for p in range(len(starts))], ignore_index=True)


def _clean(dates):
    return pd.DataFrame({"line": range(2, 2 + len(dates)), "datetime": dates, "stage_m": 1.0,
                         "discharge_m3s": [1.0 + i for i in range(len(dates))]})


def _issue(tmp_path, table, clean, stamp="2026-01-01T000000Z"):
    folder = tmp_path / "history" / "s" / stamp
    folder.mkdir(parents=True)
    table.to_csv(folder / "table.csv", index=False)
    clean.to_csv(folder / "clean.csv", index=False)


def test_a_past_period_with_the_same_gaugings_keeps_its_issued_table(tmp_path):
    dates = ["2019-05-01T00:00:00", "2019-06-01T00:00:00", "2020-05-01T00:00:00"]
    _issue(tmp_path, _table(1.0), _clean(dates))
    refit = _table(1.3)  # a refit moves every period
    kept, notes = keep_issued(refit, _clean(dates + ["2020-06-01T00:00:00"]), tmp_path / "history", "s")
    assert list(kept.loc[kept["period"] == 1, "discharge_median_m3s"]) == [1.0, 2.0]  # as issued
    assert kept.loc[kept["period"] == 2, "discharge_median_m3s"].round(6).tolist() == [2.6, 3.9]  # current: refitted
    assert list(kept["issued"]) == ["2026-01-01T000000Z"] * 2 + ["", ""]
    assert "kept as issued" in notes[0]


def test_a_past_period_whose_gaugings_changed_is_reissued(tmp_path):
    dates = ["2019-05-01T00:00:00", "2019-06-01T00:00:00", "2020-05-01T00:00:00"]
    _issue(tmp_path, _table(1.0), _clean(dates))
    late_find = _clean(["2019-05-01T00:00:00", "2019-07-01T00:00:00", "2019-06-01T00:00:00", "2020-05-01T00:00:00"])
    kept, notes = keep_issued(_table(1.3), late_find, tmp_path / "history", "s")
    assert list(kept.loc[kept["period"] == 1, "discharge_median_m3s"]) == [1.3, 2.6]
    assert kept["issued"].eq("").all() and "re-issued" in notes[0]


def test_closing_the_current_period_keeps_its_rating(tmp_path):
    dates = ["2019-05-01T00:00:00", "2019-06-01T00:00:00", "2020-05-01T00:00:00"]
    _issue(tmp_path, _table(1.0), _clean(dates))
    three = _table(1.3, ("", "2020-01-01T00:00:00", "2021-01-01T00:00:00"),
                   ("2020-01-01T00:00:00", "2021-01-01T00:00:00", ""))
    kept, _ = keep_issued(three, _clean(dates + ["2021-02-01T00:00:00"]), tmp_path / "history", "s")
    second = kept[kept["period"] == 2]
    assert list(second["discharge_median_m3s"]) == [2.0, 3.0] and second["valid_to"].iloc[0] == "2021-01-01T00:00:00"
