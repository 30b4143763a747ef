from ratingflow.batches import assign, first_fit, priority, raw_row_count, stage_priority, summary_priority, work
from ratingflow.data import MIN_BUCKET
from ratingflow.sheet import StationSpec


def spec(sid, file, **kw):
    return StationSpec(sid, sid, file, "stage", "m", "q", "m3/s", **kw)


def test_batches_group_by_bucket_and_keep_sheet_order(tmp_path):
    sizes = {"a": 10, "b": 100, "c": 12, "d": 64, "e": 70, "f": 3}
    for sid, n in sizes.items():
        (tmp_path / f"{sid}.csv").write_text("stage,q\n" + "".join(f"{i},1\n" for i in range(n)))
    sheet = {sid: spec(sid, f"{sid}.csv") for sid in sizes}
    sheet["g"] = spec("g", "missing.csv")
    batches = assign(sheet, tmp_path, batch_size=2)
    assert batches == {"n64-000": ["a", "c"], "n64-001": ["d", "f"], "n64-002": ["g"], "n128-000": ["b", "e"]}
    # appending a station to the sheet changes only the last batch of its bucket
    (tmp_path / "h.csv").write_text("stage,q\n" + "1,1\n" * 5)
    sheet["h"] = spec("h", "h.csv")
    after = assign(sheet, tmp_path, batch_size=2)
    changed = {b for b in set(batches) | set(after) if batches.get(b) != after.get(b)}
    assert changed == {"n64-002"}
    # the scheduler's priority: each bucket's first batch (it makes the bucket's programs), the largest first; then
    # the largest batches, a one-station batch last
    order = sorted(batches, key=lambda b: -priority(b, len(batches[b])))
    assert order == ["n128-000", "n64-000", "n64-001", "n64-002"] and work("n128-000", 2) == 256
    assert priority("n64-000", 1) > priority("n256-001", 50) > priority("n128-002", 50) > priority("n256-003", 1)
    # summaries after every fit (the lowest fit priority is MIN_BUCKET: one station in the smallest bucket), the
    # largest first
    sizes = [("n64-001", 1), ("n64-002", 3), ("n64-000", 88), ("n128-001", 84), ("n256-000", 95), ("n1024-000", 1000)]
    summaries = [summary_priority(*b) for b in sizes]
    assert all(0 < p < 1 <= priority(f"n{MIN_BUCKET}-001", 1) for p in summaries) and summaries == sorted(summaries)


def test_the_first_fit_goes_alone_beside_the_other_batches_stages_before_theirs():
    """The jobs in the scheduler's order: the first fit's stages and the fit itself, then every other batch's stages
    before the fit (each bucket's first batch first, then the largest), then the other fits in the same order, then
    the summaries."""
    batches = {"n64-000": 100, "n64-001": 43, "n128-000": 100, "n128-001": 57, "n256-000": 100, "n256-001": 41}
    first = first_fit({b: [None] * n for b, n in batches.items()})
    assert first == "n256-000" and first_fit({}) is None
    jobs = [(b, fit) for b in batches for fit in (False, True)]
    order = sorted(jobs, key=lambda j: -stage_priority(j[0], batches[j[0]], first, j[1]))
    assert order[:2] == [("n256-000", False), ("n256-000", True)]  # its stages before it come first as they must
    before, fits = order[2:7], order[7:]
    assert all(not fit for _, fit in before) and all(fit for _, fit in fits)
    assert [b for b, _ in before] == [b for b, _ in fits] == ["n128-000", "n64-000", "n256-001", "n128-001", "n64-001"]
    assert min(stage_priority(b, n, first, True) for b, n in batches.items()) >= MIN_BUCKET > summary_priority("n256-000", 100)


def test_long_format_rows_are_counted_per_station(tmp_path):
    (tmp_path / "long.csv").write_text("site,stage,q\nA,1,1\nB,1,1\nA,2,2\n")
    assert raw_row_count(spec("A", "long.csv", station_column="site"), tmp_path) == 2
    assert raw_row_count(spec("x", "long.csv", station_column="site", station_code="B"), tmp_path) == 1


def test_a_fit_job_cuts_its_batch_into_parts_of_whole_calls():
    """ratingflow.fit.parts: as few parts as the size allows, in order, of one length but the last (which is not
    longer), that length a multiple of 8 stations (a one-control fit's call holds 8 fits) where it is over 8."""
    from ratingflow.fit import parts

    for n in range(1, 400):
        items = list(range(n))
        got = parts(items, 56)
        assert [x for part in got for x in part] == items
        assert len(got) == -(-n // 56)
        assert all(len(part) <= 56 for part in got)
        assert len({len(part) for part in got[:-1]}) <= 1 and len(got[-1]) <= len(got[0])
        assert all(len(part) % 8 == 0 for part in got[:-1] if len(part) > 8)
