"""Group stations into batches: one job per batch and stage, per-station outputs.

Process start, imports, tracing and compilation cost seconds per job, more than sampling one
station; so every stage runs one job per batch of stations. Stations are grouped by their shape
bucket (from the raw file's row count, known when the workflow loads), so that a fit job traces
and compiles (or loads from the persistent cache) one program only, then cut into batches of at
most ``batch_size`` in sheet order.

Incremental runs: new gaugings at a station re-run the jobs of its batch only (the batch's
outputs are written together). A station whose new row count crosses a bucket boundary moves to
another bucket's batch; new stations appended to the sheet join the last batch of their bucket.
A station's draws never depend on its batch (each is padded to its own bucket).
"""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from .data import bucket_size
from .sheet import EXCEL_SUFFIXES, StationSpec


def raw_row_count(spec: StationSpec, raw_dir) -> int:
    """Data rows of the station in its raw file (0 when the file is missing or unreadable)."""
    if spec.station_column:
        return _long_file_counts(spec, raw_dir)[spec.code]
    path = Path(raw_dir) / spec.file
    try:
        if path.suffix.lower() in EXCEL_SUFFIXES:
            import openpyxl

            book = openpyxl.load_workbook(path, read_only=True)
            sheet = book[spec.worksheet] if spec.worksheet in book.sheetnames else book.worksheets[0]
            rows = max((sheet.max_row or 1) - 1, 0)
            book.close()
            return rows
        # one station per file: its lines but the header (only the bucket depends on it, and a byte
        # count is far faster than parsing when the workflow loads 10 000 files)
        data = path.read_bytes()
        return max(data.count(b"\n") + (not data.endswith(b"\n")) - 1, 0) if data else 0
    except (OSError, ValueError, KeyError):
        return 0


def _long_file_counts(spec: StationSpec, raw_dir) -> Counter:
    """Rows per station code of a long-format file (read once for all its stations)."""
    counts: Counter = Counter()
    try:
        with open(Path(raw_dir) / spec.file, newline="", encoding=spec.encoding, errors="replace") as fh:
            reader = csv.reader(fh, delimiter=spec.delimiter)
            header = [h.strip().lstrip("\ufeff") for h in next(reader, [])]
            col = header.index(spec.station_column)
            counts.update(row[col].strip() for row in reader if len(row) > col)
    except (OSError, ValueError, csv.Error):
        pass
    return counts


def assign(stations: dict[str, StationSpec], raw_dir, batch_size: int) -> dict[str, list[str]]:
    """Batch id -> station ids. Ids look like ``n64-002``: bucket 64, third batch of that bucket."""
    by_bucket: dict[int, list[str]] = {}
    long_files: dict[tuple, Counter] = {}
    for sid, spec in stations.items():
        if spec.station_column:
            key = (spec.file, spec.station_column, spec.delimiter, spec.encoding)
            if key not in long_files:
                long_files[key] = _long_file_counts(spec, raw_dir)
            rows = long_files[key][spec.code]
        else:
            rows = raw_row_count(spec, raw_dir)
        by_bucket.setdefault(bucket_size(max(rows, 1)), []).append(sid)
    batches: dict[str, list[str]] = {}
    for bucket in sorted(by_bucket):
        members = by_bucket[bucket]
        for k in range(0, len(members), batch_size):
            batches[f"n{bucket}-{k // batch_size:03d}"] = members[k : k + batch_size]
    return batches


def work(batch_id: str, n_stations: int) -> int:
    """A batch's expected work: its shape bucket (the gaugings each station is padded to) times its stations."""
    return int(batch_id[1:].split("-")[0]) * n_stations


#: above any batch's :func:`work`: the first batch of each bucket goes before every other batch
_FIRST = 10**9


def priority(batch_id: str, n_stations: int) -> int:
    """The scheduler's job priority of a batch's stages up to the fit. The first batch of each bucket first, the
    largest of them first: it makes the bucket's programs (a cold cache), and two batches of one bucket side by side
    would both make them. Then the largest batches: a run whose last job is a large bucket's fit ends with one core
    working alone, and with the largest batches first it ends on small jobs."""
    return work(batch_id, n_stations) + (_FIRST if batch_id.endswith("-000") else 0)


#: above any batch's :func:`priority`: the stages before the fit of every batch go before every fit but the run's first
_BEFORE_FITS = 2 * 10**9


def first_fit(batches: dict[str, list]) -> str | None:
    """The batch whose fit the run starts with: the one of highest :func:`priority` (None: no batches)."""
    return max(batches, key=lambda b: priority(b, len(batches[b])), default=None)


def stage_priority(batch_id: str, n_stations: int, first: str | None, fit: bool) -> int:
    """The scheduler's priority of a batch's fit (``fit``) or of a stage before it (cleaning, periods, prior check):
    the run's ``first`` fit (:func:`first_fit`) and its stages before every other job; then the stages before the fit
    of every other batch; then the other fits, in the order of :func:`priority`.

    So the first fit runs alone for a while, beside the other batches' stages before theirs (on the benchmark's 500
    stations about 40 job-s), and the fits after it load what it made. Some programs serve every batch: the NUTS
    programs are traced once per structure and settings for every bucket (:func:`ratingflow.sampler._any_bucket`),
    and the importance sampler's program serves every bucket up to 256 gaugings (:data:`ratingflow.importance.MIN_SIZE`).
    In a cold run the first two fits, side by side, both traced and compiled them: about 11 s of tracing and the
    importance sampler's compilation, 24 and 29 s, twice (docs/time_budget.md, twenty-third session)."""
    base = priority(batch_id, n_stations)
    if batch_id == first:
        return base + 2 * _BEFORE_FITS
    return base + (0 if fit else _BEFORE_FITS)


def summary_priority(batch_id: str, n_stations: int) -> float:
    """The scheduler's priority of a batch's summary: below every job up to the fit (those are at least
    :data:`~ratingflow.data.MIN_BUCKET`), so that the fits go first, and among summaries the largest batches first,
    in (0, 1). In the benchmark's warm run the summaries ran in no order, the last one (a 256-gauging batch's) alone
    on one core for its 29 s."""
    work_ = work(batch_id, n_stations)
    return work_ / (work_ + 1000.0)
