"""The prior check's figure where the check fails only, its reuse, and publish removing what a run no longer wrote."""
import json
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd

from ratingflow import prior_check, publish, reuse
from ratingflow.candidates import ModelSettings

SETTINGS = {"num_samples": 200, "interval": 0.99, "min_share": 0.9}


def write_station(folder, sid, discharge_scale=1.0):
    """A clean table of a power-law station; ``discharge_scale`` 1e6 puts its discharge far outside the prior."""
    stage = np.linspace(0.3, 2.5, 25)
    q = discharge_scale * 8.0 * (stage - 0.1) ** 1.7
    pd.DataFrame({"line": np.arange(2, 27), "stage_m": stage, "discharge_m3s": q,
                  "discharge_sd_m3s": 0.05 * q}).to_csv(folder / f"{sid}.csv", index=False)
    (folder / f"{sid}.status.json").write_text(json.dumps({"status": "ok"}))


def run_batch(tmp_path, stations, out, previous=None, settings=SETTINGS):
    out.mkdir(parents=True, exist_ok=True)
    clean = tmp_path / "clean"
    inputs = {"clean": [str(clean / f"{s}.csv") for s in stations],
              "status": [str(clean / f"{s}.status.json") for s in stations]}
    outputs = {k: [str(out / f"{s}.{e}") for s in stations] for k, e in (("nc", "nc"), ("verdict", "json"), ("plot", "svg"))}
    prior_check.run_batch(stations, inputs, outputs, 7, settings, models=ModelSettings(candidates=("seg1",)),
                          previous=previous)


def test_prior_figure_only_where_the_check_fails_and_reuse_keeps_it(tmp_path):
    (tmp_path / "clean").mkdir()
    write_station(tmp_path / "clean", "good")
    write_station(tmp_path / "clean", "wrong_unit", 1e6)  # about 8e6 m3/s: far outside the prior of ln Q
    batch = tmp_path / "batch" / "prior"
    run_batch(tmp_path, ["good", "wrong_unit"], batch)
    verdicts = {s: json.loads((batch / f"{s}.json").read_text()) for s in ("good", "wrong_unit")}
    assert verdicts["good"]["passed"] and not verdicts["wrong_unit"]["passed"]
    assert not (batch / "good.svg").exists()
    assert (batch / "wrong_unit.svg").stat().st_size > 10_000
    # the figure: the 25 gaugings as dots, 40 prior curves, the verdict in the title
    root = ET.parse(batch / "wrong_unit.svg").getroot()
    ns = "{http://www.w3.org/2000/svg}"
    assert len([c for c in root.iter(f"{ns}circle") if c.get("r") == "2.4"]) == 25 + 1  # + the legend's sample
    assert len([p for p in root.iter(f"{ns}path") if p.get("stroke-opacity") == "0.6"]) == 40
    assert "wrong_unit: prior check FLAGGED" in [t.text for t in root.iter(f"{ns}text")]

    results = tmp_path / "results"
    publish.publish([batch], results, tmp_path / "published.tsv")
    assert (results / "prior" / "wrong_unit.svg").exists() and not (results / "prior" / "good.svg").exists()

    # a rerun with the same inputs links both stations' published files, the optional figure included
    again = tmp_path / "again" / "prior"
    run_batch(tmp_path, ["good", "wrong_unit"], again, previous=str(results / "prior"))
    for name in ("good.nc", "good.json", "wrong_unit.nc", "wrong_unit.json", "wrong_unit.svg"):
        assert (again / name).samefile(results / "prior" / name), name
    assert not (again / "good.svg").exists()

    # figures: all draws the figure of a station that passes too
    every = tmp_path / "every" / "prior"
    run_batch(tmp_path, ["good"], every, settings={**SETTINGS, "figures": "all"})
    assert (every / "good.svg").stat().st_size > 10_000


def test_publish_removes_a_stations_file_its_batch_no_longer_writes(tmp_path):
    results, batch = tmp_path / "results", tmp_path / "batches" / "b1" / "prior"
    batch.mkdir(parents=True)
    (results / "prior").mkdir(parents=True)
    for name in ("s1.json", "s1.nc"):  # s1 now passes its check: no figure
        (batch / name).write_text(name)
    (results / "prior" / "s1.png").write_text("the figure of a check that failed last time")
    (results / "prior" / "s1_b.png").write_text("another station's, in another batch")
    (results / "prior" / "s2.png").write_text("a station of another batch")
    table = publish.publish([batch], results, tmp_path / "published.tsv")
    assert sorted(p.name for p in (results / "prior").iterdir()) == ["s1.json", "s1.nc", "s1_b.png", "s2.png"]
    assert list(table.loc[table["how"].str.startswith("removed"), "file"]) == [str(results / "prior" / "s1.png")]


def test_reuse_links_optional_files_only_where_published(tmp_path):
    published, batch = tmp_path / "results", tmp_path / "batch"
    published.mkdir(), batch.mkdir()
    (published / "a.nc").write_text("nc")
    reuse.record(published / "a.nc", "k")
    assert reuse.reuse(published, [batch / "a.nc"], "k", optional=[batch / "a.png"])
    assert (batch / "a.nc").exists() and not (batch / "a.png").exists()
    (published / "a.png").write_text("png")
    assert reuse.reuse(published, [batch / "a.nc"], "k", optional=[batch / "a.png"])
    assert (batch / "a.png").read_text() == "png"


def test_the_prior_draws_are_drawn_at_once_not_in_a_loop(tmp_path):
    """The prior check's program vectorises its draws (Predictive(parallel=True)): NumPyro's default loop of one
    step per draw took 7-9 ms of a station's 25-30 (issue 16): it has none of that loop (only the random generator's
    own loop is left)."""
    from functools import partial

    import jax

    from ratingflow.candidates import Priors
    from ratingflow.data import StationData, bucket_size
    from ratingflow.exported import on_device
    from lowering import lowered_loops, numpyro_default_loop

    (tmp_path / "clean").mkdir()
    write_station(tmp_path / "clean", "s1")
    station = StationData.from_clean("s1", pd.read_csv(tmp_path / "clean" / "s1.csv"))
    models = ModelSettings(candidates=("seg1",))
    candidate = models.candidate_list()[0]
    structure = models.structure([candidate])
    arrays = station.padded(bucket_size(station.n))
    args = (jax.random.PRNGKey(0), *on_device((arrays["stage"], arrays["discharge_sd_log"])),
            on_device(station.context(candidate, structure, Priors())), on_device(arrays["mask"]))
    fn = partial(prior_check._prior_draws, num_samples=100, structure=structure, priors=Priors())
    with numpyro_default_loop():
        looped = lowered_loops(fn, args)
    assert lowered_loops(fn, args) < looped
    draws = jax.jit(fn)(*args)
    assert draws["log_discharge"].shape == (100, len(arrays["stage"]))
