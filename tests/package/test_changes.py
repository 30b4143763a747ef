"""Scheduled re-runs: history of issued ratings, what changed, and the run lock."""
import fcntl
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from ratingflow.changes import run_archive, run_changes
from ratingflow.history import latest_snapshot

ROOT = Path(__file__).resolve().parents[2]


def rating(path: Path, a: float, extra: int = 0):
    stage = np.round(np.arange(0.5, 3.0, 0.01), 2)
    median = a * (stage - 0.2) ** 1.8
    table = pd.DataFrame({"stage_m": stage, "discharge_median_m3s": median,
                          "curve_hpdi90_lower_m3s": 0.95 * median, "curve_hpdi90_upper_m3s": 1.05 * median})
    table.to_csv(path / "table.csv", index=False)
    h = np.concatenate([np.linspace(0.6, 2.8, 10), np.linspace(1.05, 1.15, extra)])
    clean = pd.DataFrame({"line": np.arange(len(h)) + 2, "datetime": "", "stage_m": h,
                          "discharge_m3s": 10.0 * (h - 0.2) ** 1.8})
    clean.to_csv(path / "clean.csv", index=False)
    return path / "table.csv", path / "clean.csv"


def test_history_changes_and_shift(tmp_path):
    history = tmp_path / "history"
    first, second, third = (tmp_path / n for n in ("first", "second", "third"))
    for d in (first, second, third):
        d.mkdir()
    t1, c1 = rating(first, 10.0)
    out = run_changes(["s"], [t1], [c1], history, tmp_path / "changes.csv")
    assert out.loc[0, "change"] == "first rating"
    assert run_archive(["s"], [t1], [c1], history, tmp_path / "flag") == ["s"]
    assert run_archive(["s"], [t1], [c1], history, tmp_path / "flag") == []  # identical: not archived twice
    # same curve, two more gaugings: refitted, no shift
    t2, c2 = rating(second, 10.0, extra=2)
    row = run_changes(["s"], [t2], [c2], history, tmp_path / "changes.csv").iloc[0]
    assert row["new_gaugings"] == 2 and row["new_gauging_lines"] == "12 13" and row["change"] == "refitted"
    # 20 % more discharge everywhere: outside the previous +-5 % band
    t3, c3 = rating(third, 12.0)
    row = run_changes(["s"], [t3], [c3], history, tmp_path / "changes.csv").iloc[0]
    assert row["change"].startswith("possible rating shift")
    assert np.isclose(row["change_p50_pct"], 20.0)
    assert row["shift_p10"] and row["shift_p50"] and row["shift_p90"]
    run_archive(["s"], [t3], [c3], history, tmp_path / "flag")
    assert len(list((history / "s").iterdir())) == 2
    assert (latest_snapshot(history, "s") / "table.csv").read_bytes() == t3.read_bytes()


def test_second_run_exits_while_the_lock_is_held(tmp_path):
    lock = tmp_path / ".ratingflow.lock"
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        (tmp_path / ".ratingflow.lock.owner").write_text("pid 1 (test)")
        run = subprocess.run(["bash", str(ROOT / "bin" / "scheduled-run")], capture_output=True, text=True,
                             env={**os.environ, "RATINGFLOW_DIR": str(tmp_path)}, timeout=60)
    assert run.returncode == 75
    assert "another run holds" in run.stderr and "pid 1 (test)" in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ratingflow.lock", ".ratingflow.lock.owner"]


def test_new_gaugings_that_contradict_the_current_rating_are_reported(tmp_path):
    """Ten new gaugings 30 % above the issued rating's +-10 % new-gauging band: all outside it, binomial
    p = 1e-10; the same gaugings on the rating are not reported (0 outside)."""
    history = tmp_path / "history"
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    t1, c1 = rating(first, 10.0)
    table = pd.read_csv(t1)
    table["gauging_hpdi90_lower_m3s"] = 0.9 * table["discharge_median_m3s"]
    table["gauging_hpdi90_upper_m3s"] = 1.1 * table["discharge_median_m3s"]
    table.to_csv(t1, index=False)
    run_archive(["s"], [t1], [c1], history, tmp_path / "flag")
    t2, c2 = rating(second, 10.0)
    table.to_csv(t2, index=False)
    clean = pd.read_csv(c2)
    h = np.linspace(0.7, 2.5, 10)
    new = pd.DataFrame({"line": np.arange(10) + 20, "datetime": "", "stage_m": h, "discharge_m3s": 13.0 * (h - 0.2) ** 1.8})
    pd.concat([clean, new]).to_csv(c2, index=False)
    row = run_changes(["s"], [t2], [c2], history, tmp_path / "changes.csv").iloc[0]
    assert row["change"].startswith("new gaugings contradict the current rating: 10 of 10")
    new["discharge_m3s"] = 10.0 * (h - 0.2) ** 1.8 * 1.02
    pd.concat([clean, new]).to_csv(c2, index=False)
    row = run_changes(["s"], [t2], [c2], history, tmp_path / "changes.csv").iloc[0]
    assert row["new_gaugings_test"].startswith("0 of 10") and row["change"] == "refitted"


def test_only_the_current_period_is_compared(tmp_path):
    """A table with two periods: the comparison uses the last one's rows (the first is 5x larger)."""
    history = tmp_path / "history"
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    t1, c1 = rating(first, 10.0)
    current = pd.read_csv(t1)
    old = current.assign(discharge_median_m3s=5 * current["discharge_median_m3s"])
    two = pd.concat([old.assign(period=1, valid_from="", valid_to="2020-01-01T00:00:00"),
                     current.assign(period=2, valid_from="2020-01-01T00:00:00", valid_to="")])
    two.to_csv(t1, index=False)
    run_archive(["s"], [t1], [c1], history, tmp_path / "flag")
    t2, c2 = rating(second, 10.0)
    two.to_csv(t2, index=False)
    row = run_changes(["s"], [t2], [c2], history, tmp_path / "changes.csv").iloc[0]
    assert row["change"] == "unchanged" and np.isclose(row["change_p50_pct"], 0.0)


def test_a_station_whose_files_did_not_change_keeps_its_row_and_the_others_are_computed(tmp_path, monkeypatch):
    """changes and report keep each station's row with the digest of its files (ratingflow.reuse.RowCache): a
    scheduled run computes only the rows of stations whose files changed, and the table is the same."""
    import ratingflow.changes as changes

    history = tmp_path / "history"
    paths = {}
    for s in ("a", "b"):
        (tmp_path / s).mkdir()
        paths[s] = rating(tmp_path / s, 10.0)
    run_args = lambda: (["a", "b"], [paths[s][0] for s in "ab"], [paths[s][1] for s in "ab"], history,  # noqa: E731
                        tmp_path / "changes.csv")
    run_archive(*run_args()[:4], tmp_path / "flag")
    first = run_changes(*run_args())
    computed = []
    real = changes.station_changes
    monkeypatch.setattr(changes, "station_changes", lambda s, *a: computed.append(s) or real(s, *a))
    pd.testing.assert_frame_equal(run_changes(*run_args()), first)
    assert computed == []  # nothing changed: every row from the cache
    paths["b"] = rating(tmp_path / "b", 12.0)  # b's table changes
    assert run_changes(*run_args()).set_index("station_id").loc["b", "change"].startswith("possible rating shift")
    assert computed == ["b"]
    (tmp_path / ".cache" / "changes.rows.pkl").write_bytes(b"not a pickle")  # a broken cache costs time only
    pd.testing.assert_frame_equal(run_changes(*run_args()).iloc[:1], first.iloc[:1])
    assert computed == ["b", "a", "b"]
