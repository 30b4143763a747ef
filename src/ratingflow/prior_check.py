"""Prior predictive check: do the priors allow the station's gaugings at all?

Draws from the model with ``discharge=None`` (``Predictive(model, num_samples=...)``), and counts the
share of gaugings inside the prior predictive central interval at their stage. A low share means
the priors (or the units in the sheet) do not fit the station.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from functools import cache, partial
from pathlib import Path

import jax
import numpy as np
import xarray as xr

from . import status
from .data import StationData, bucket_size
from .exported import cached_jit, on_device
from .figures import plot_prior
from .io import load_json, save_groups, save_idata, save_json
from .keys import station_keys
from .candidates import ModelSettings, Priors
from .model import rating_model
from .predict import flat_draws, predict, stage_grid
from .runtime import progress

PRIOR_SITES = ("gap", "b", "log_q_ref", "sigma", "log_a")


#: raised when the prior check's outputs change for the same inputs
VERSION = "4"  # 4: the figure is SVG (a flagged station reused from before would have lost its PNG)


def _prior_draws(key, stage, sd_log, context, mask, num_samples, structure, priors):
    from numpyro.infer import Predictive  # NumPyro only where the program is traced (model._numpyro)

    # parallel: the draws vectorised (vmap), not one after the other (Predictive's default, a loop of num_samples
    # steps): 1.1-1.5 ms a station against 7.2-8.9 (issue 16); the same keys, draws equal to float32's rounding
    predictive = Predictive(
        partial(rating_model, structure=structure, priors=priors), num_samples=num_samples,
        return_sites=[*PRIOR_SITES, "log_discharge"], parallel=True,
    )
    return predictive(key, stage, sd_log, context, mask)


@cache
def _program(num_samples: int, structure, priors: Priors):
    """:func:`_prior_draws`, traced once across jobs (:mod:`ratingflow.exported`), not again in every job."""
    return cached_jit(partial(_prior_draws, num_samples=num_samples, structure=structure, priors=priors),
                      f"prior|{num_samples}|{structure!r}|{priors!r}")


def prior_check(station: StationData, seed: int, num_samples: int, interval: float, min_share: float,
                priors: Priors = Priors(), models: ModelSettings = ModelSettings()) -> tuple[dict, dict]:
    """Prior draws as the groups of an InferenceData (prior, prior_predictive, observed_data: xarray Datasets laid
    out as ``az.from_dict`` lays them out, made without ArviZ, which took 1.3 s of a prior-check job's 2.3 s of
    imports) and a verdict.

    The check uses the simplest candidate model: it asks whether the priors and the units allow
    the gaugings at all, which the extra segments of the others do not change."""
    candidate = models.candidate_list()[0]
    structure = models.structure([candidate])
    arrays = station.padded(bucket_size(station.n))
    context = on_device(station.context(candidate, structure, priors))
    key = station_keys(seed, station.station_id)["prior"]
    stage, sd_log, mask = on_device((arrays["stage"], arrays["discharge_sd_log"], arrays["mask"]))
    draws = jax.device_get(_program(num_samples, structure, priors)(key, stage, sd_log, context, mask))
    log_q_pred = np.asarray(draws["log_discharge"][:, : station.n], np.float64)
    tail = (1.0 - interval) / 2.0
    lo, hi = np.quantile(log_q_pred, [tail, 1.0 - tail], axis=0)
    observed = np.log(station.discharge)
    inside = (observed >= lo) & (observed <= hi)
    share = float(inside.mean())
    verdict = {
        "station": station.station_id,
        "num_samples": num_samples,
        "interval": interval,
        "share_inside": share,
        "min_share": min_share,
        "gaugings_outside": int((~inside).sum()),
        "passed": bool(share >= min_share),
    }
    prior = {k: np.asarray(draws[k])[None] for k in PRIOR_SITES}
    prior["a"] = np.exp(prior["log_a"].astype(np.float64))
    prior["h0"] = station.stage_offset - prior["gap"].astype(np.float64)
    draw = {"chain": [0], "draw": np.arange(num_samples)}
    gauging = {"gauging": np.arange(station.n)}
    created = {"created_at": datetime.now(timezone.utc).isoformat()}
    groups = {
        "prior": xr.Dataset(
            {k: (("chain", "draw", "segment")[: v.ndim], v) for k, v in prior.items()},
            coords={**draw, "segment": np.arange(1, candidate.n_segments + 1)},
            attrs={**created, "model": candidate.name, "station": station.station_id, "share_inside": share,
                   "passed": int(verdict["passed"])},
        ),
        "prior_predictive": xr.Dataset({"log_discharge": (("chain", "draw", "gauging"), log_q_pred[None])},
                                       coords={**draw, **gauging}, attrs=created),
        "observed_data": xr.Dataset({"log_discharge": ("gauging", observed)}, coords=gauging, attrs=created),
    }
    return groups, verdict


def write_prior_check(groups: dict, verdict: dict, nc_path, json_path) -> None:
    save_groups(groups, nc_path)
    save_json(verdict, json_path)


def run(clean_csv, status_json, nc_path, json_path, plot_path, station_id: str, seed: int, settings: dict,
        priors: Priors = Priors(), models: ModelSettings = ModelSettings(), station_prior: dict | None = None) -> dict:
    """Pipeline step: prior check of one station from its clean gaugings. The prior figure (``plot_path``)
    is drawn where the check did not pass, or for every station with ``settings["figures"]`` "all"; a
    station that passes has none (a stale one is removed)."""
    import pandas as pd

    reason = status.skip_reason(load_json(status_json))
    if reason:
        save_idata(status.empty_idata(station_id, reason), nc_path)
        save_json({"station": station_id, "skipped": reason, "passed": None}, json_path)
        status.placeholder_figure(plot_path, station_id, reason)
        return {}
    station_prior = station_prior or {}
    station = StationData.from_clean(station_id, pd.read_csv(clean_csv), station_prior.get("h0_range"),
                                     station_prior.get("break_ranges"), station_prior.get("control_types"))
    groups, verdict = prior_check(
        station, seed, int(settings["num_samples"]), float(settings["interval"]), float(settings["min_share"]), priors,
        models,
    )
    write_prior_check(groups, verdict, nc_path, json_path)
    progress(f"station {station_id}: " + json.dumps(verdict))
    if verdict["passed"] and settings.get("figures", "flagged") != "all":
        # a passed check needs no picture: the figure costs more than the check itself (bench/stages.py)
        Path(plot_path).unlink(missing_ok=True)
        return verdict
    grid = stage_grid(station.stage.min(), station.stage.max(), 0.01 * max(np.ptp(station.stage), 0.01), 0.1, 0.1)
    candidate = models.candidate_list()[0]
    structure = models.structure([candidate])
    curves, _ = predict(station_keys(seed, station_id)["prior"], flat_draws(groups["prior"], limit=200),
                        grid - station.stage_offset, station.context(candidate, structure, priors),
                        station.typical_sd_log, structure, priors)
    plot_prior(station, grid, curves, verdict, plot_path)
    return verdict


def run_batch(stations, inputs: dict, outputs: dict, seed: int, settings: dict, priors: Priors = Priors(),
              models: ModelSettings = ModelSettings(), station_priors=None, previous=None) -> None:
    """Pipeline step for a batch of stations (one process, see :mod:`ratingflow.batches`). ``previous``
    (``results/prior``): a station whose clean gaugings and settings are those of its published check gets
    that check linked (:mod:`ratingflow.reuse`)."""
    from dataclasses import asdict

    from . import reuse

    for i, station_id in enumerate(stations):
        extra = None if station_priors is None else station_priors[i]
        key = reuse.digest([inputs["clean"][i], inputs["status"][i]],
                           {"settings": settings, "priors": asdict(priors), "models": asdict(models), "station": extra},
                           seed, VERSION)
        targets = [outputs["nc"][i], outputs["verdict"][i]]
        if reuse.reuse(previous, targets, key, optional=[outputs["plot"][i]]):
            progress(f"station {station_id}: clean gaugings as published, prior check reused")
            continue
        run(inputs["clean"][i], inputs["status"][i], outputs["nc"][i], outputs["verdict"][i], outputs["plot"][i],
            station_id, seed, settings, priors, models, extra)
        reuse.record(targets[0], key)
