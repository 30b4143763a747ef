"""Pipeline stage ``fit``: every candidate model of a batch of stations in one vectorised run (per
shape bucket), one chosen per station by PSIS-LOO, its InferenceData and the comparison written.

The sampler is :mod:`ratingflow.sampler`, the InferenceData layout :mod:`ratingflow.posterior` and the
choice :mod:`ratingflow.choice`; this module only reads, calls and writes.
"""
from __future__ import annotations

import time

import pandas as pd

from . import status
from .choice import fit_and_choose
from .data import StationData, bucket_size
from .io import load_idata, save_idata
from .model import ModelSettings, Priors
from .posterior import inference_data
from .runtime import progress
from .sampler import BatchedNUTS, SamplerSettings


def run_batch(stations, clean_paths, prior_paths, out_paths, models_paths, seed: int, settings: SamplerSettings,
              priors: Priors, models: ModelSettings, attrs: dict, station_priors=None) -> None:
    """Fit, choose and write every station of a batch; a skipped station gets placeholders."""
    todo = []
    for i, station_id in enumerate(stations):
        prior = load_idata(prior_paths[i])
        if status.skipped(prior):
            save_idata(status.empty_idata(station_id, status.skipped(prior)), out_paths[i])
            pd.DataFrame(columns=["model"]).to_csv(models_paths[i], index=False)
            progress(f"station {station_id}: skipped ({status.skipped(prior)})")
            continue
        extra = (station_priors or [{}] * len(stations))[i] or {}
        station = StationData.from_clean(station_id, pd.read_csv(clean_paths[i]), extra.get("h0_range"),
                                         extra.get("break_ranges"))
        todo.append((station, prior, out_paths[i], models_paths[i]))
    if not todo:
        return
    candidates = models.candidate_list()
    start = time.perf_counter()
    driver = BatchedNUTS(models.structure(candidates), settings, priors)
    progress(f"{len(todo)} stations x {len(candidates)} candidate models: sampling")
    choices = fit_and_choose(driver, [station for station, *_ in todo], candidates, seed, models.se_factor)
    buckets = sorted({bucket_size(st.n) for st, *_ in todo})
    progress(f"{len(todo)} stations x {len(candidates)} candidate models (buckets {buckets}) sampled in "
             f"{time.perf_counter() - start:.1f} s, including trace and compile or cache load")
    for (station, prior, out, models_csv), choice in zip(todo, choices):
        choice.table.to_csv(models_csv, index=False, float_format="%.6g")
        progress(f"station {station.station_id}: chosen {choice.chosen}\n"
                 + choice.table.drop(columns=["description", "reason"]).to_string(index=False))
        idata = inference_data(choice.fit, prior, {"seed": int(seed), **attrs}, models)
        idata.attrs["model_choice"] = choice.table.loc[choice.table["chosen"], "reason"].iloc[0]
        save_idata(idata, out)
