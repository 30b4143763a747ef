"""The benchmark's reading of the fit logs (bench/run.py, ``fit_parts``): each part's seconds and stations, and the
log lines it looks for still being the ones the package writes."""
import importlib.util
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    sys.path.insert(0, str(ROOT / "bench"))  # bench/run.py imports bench/ratingcurve_env.py
    try:
        spec = importlib.util.spec_from_file_location("ratingflow_bench_run", ROOT / "bench" / "run.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return module


def test_fit_parts_sums_each_part_from_the_line_that_starts_it_to_the_next(tmp_path):
    bench = _bench()
    logs = tmp_path / "logs" / "fit"
    logs.mkdir(parents=True)
    (logs / "n128-000.log").write_text(
        "2026-12-05T22:24:31Z 50 stations x 3 candidate models: sampling\n"
        "2026-12-05T22:24:40Z station syn0001: fitted\n"
        "2026-12-05T22:24:49Z 3 station(s) whose one-h0 seg2 fit the own-offsets check flags or that failed the gate "
        "with most of the stacking weight: seg2 fitted in the BaRatin form (1000 warm-up + 2000 draws per chain)\n"
        "2026-12-05T22:25:19Z 1 station(s) whose chosen seg2 fit failed the diagnostics gate: fitted again with 1000\n"
        "2026-12-05T22:25:25Z 2 station(s) whose chosen seg3 fit failed the diagnostics gate: fitted again with 1000\n"
        "2026-12-05T22:25:30Z 50 stations (buckets [128]) sampled in 59.1 s, including trace and compile\n"
        "2026-12-05T22:25:32Z jax persistent compilation cache: 38 hit(s), 0 miss(es)\n")
    (logs / "n256-000.log").write_text(
        "2026-12-05T22:30:00Z 10 stations x 3 candidate models: sampling\n"
        "2026-12-05T22:30:04Z 1 station(s) with rating periods x 2 candidate models (program of 2 periods, 1 "
        "segment(s)): sampling\n"
        "2026-12-05T22:30:10Z 10 stations (buckets [256]) sampled in 10.0 s, including trace and compile\n")
    assert bench.fit_parts(tmp_path) == (
        "fit job-s by part (from the fit logs' timestamps): first round 22 (60 stations), own-offsets round 30 "
        "(3 stations), retries 11 (3 stations), rating periods 6 (1 stations)")
    # a job killed in its retries: its last part ends at the log's last write (the traceback)
    killed = logs / "n64-000.log"
    killed.write_text("2026-12-05T23:00:00Z 5 stations x 3 candidate models: sampling\n"
                      "2026-12-05T23:00:08Z 1 station(s) whose chosen seg1 fit failed the diagnostics gate: fitted again\n"
                      "Traceback (most recent call last):\n")
    end = datetime(2026, 12, 5, 23, 0, 20, tzinfo=timezone.utc).timestamp()
    os.utime(killed, (end, end))
    assert bench.fit_parts(tmp_path) == (
        "fit job-s by part (from the fit logs' timestamps): first round 30 (65 stations), own-offsets round 30 "
        "(3 stations), retries 23 (4 stations), rating periods 6 (1 stations)")


def test_the_lines_fit_parts_looks_for_are_the_ones_the_fit_logs():
    bench = _bench()
    source = "".join((ROOT / "src" / "ratingflow" / f).read_text() for f in ("fit.py", "choice.py"))
    for key, _ in bench.FIT_PARTS:  # each within one string literal of a progress() call
        assert key in source, key
    assert " sampled in " in source
