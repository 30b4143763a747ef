"""Pipeline stage ``fit``: every candidate model of a batch of stations in one vectorised run (per
shape bucket), one chosen per station by PSIS-LOO, its InferenceData and the comparison written.

The sampler is :mod:`ratingflow.sampler`, the InferenceData layout :mod:`ratingflow.posterior` and the
choice :mod:`ratingflow.choice`; this module only reads, calls and writes.
"""
from __future__ import annotations

import time
from dataclasses import asdict, replace

import jax
import numpy as np
import pandas as pd

from . import mixture, reuse, status
from .choice import fit_and_choose
from .data import StationData, bucket_size
from .io import load_idata, save_idata
from .candidates import ModelSettings, Priors, Structure, describes_controls
from .dates import period_of, to_utc_naive
from .posterior import PRIOR_GROUPS, inference_data
from .runtime import progress
from .sampler import SamplerSettings, driver_cache


#: raised when the fit's outputs change for the same inputs (published fits are then not reused)
VERSION = "7"  # 7: the stacking mixture in the fit file; the round's second trigger
#: raised when the BaRatin form (each control its own offset) changes: only the stations fitted in it (the config's
#: ``models.segment_offsets``, two or more control types in the sheet, or ``models.own_offsets`` set) are refitted
#: 10: the form's change of control sharp (models.offsets_transition 0; the one-h0 form's rounding before);
#: 9: damped Newton steps alone at the importance sampler's grid nodes (BFGS before them, importance.NEWTON);
#: 8: the second stage's proposal 2.5 times as wide as the first stage's weighted draws (importance.WIDEN, 1.2 before);
#: 7: defensive cells and a second, adapted stage in the importance sampler; 6: the importance sampler's Pareto k
#: from all chains' weights together; 5: one-breakpoint fits by importance sampling (ratingflow.importance); 4: each
#: control keeps a tenth of the gauged stage range (data.OWN_OFFSET_MIN_SHARE)
OFFSETS_FORM = "10"

#: the rating-period programs: a station with n periods is fitted by the smallest that holds them
PERIOD_BUCKETS = (2, 4, 8, 16)


def period_round(driver_for, items: list, choices: list, seed: int, se_factor: float) -> list:
    """The second round of a station with rating periods: after the timeless candidates (round one, the
    same program and draws as an undated station), the segment count PSIS-LOO chose is fitted with
    periods sharing its shape and with independent periods, and the choice is made again over all of
    them (timeless first, then shared, then independent: the simplest within ``se_factor`` SE of the
    best). Fitting the periods only for the chosen segment count keeps the cost near that of the
    timeless fit (docs/periods.md). ``driver_for``: :func:`ratingflow.sampler.driver_cache`."""
    from .choice import choose
    from .candidates import PERIOD_MODES, Candidate

    groups: dict[tuple, list[int]] = {}
    for i, (station, choice) in enumerate(zip(items, choices)):
        if station.n_periods > 1:
            k = Candidate(choice.chosen).n_segments
            size = next(b for b in PERIOD_BUCKETS if b >= station.n_periods)
            groups.setdefault((size, k), []).append(i)
    out = list(choices)
    for (size, k), members in sorted(groups.items()):
        candidates = [Candidate(f"seg{k}-{mode}") for mode in PERIOD_MODES if mode]
        base = driver_for()
        structure = Structure(k, 0, base.structure.varying_sigma, base.structure.transition, False, size)
        progress(f"{len(members)} station(s) with rating periods x {len(candidates)} candidate models "
                 f"(program of {size} periods, {k} segment(s)): sampling")
        fits = driver_for(structure).fit([items[i] for i in members], candidates, seed)
        for i, extra in zip(members, fits):
            out[i] = choose({**choices[i].fits, **extra}, se_factor, choices[i].screened)
    return out


def retry_round(retry_for, items: list, choices: list, seed: int, se_factor: float, gate: dict,
                repeats=lambda fit: False, form_transition: float | None = None, min_ess: float | None = None) -> list:
    """A station whose chosen timeless fit fails the diagnostics ``gate`` (R-hat, ESS, divergences; config
    ``diagnostics``) is fitted once more with ``retry_for``'s settings (``sampler.retry``: longer chains,
    smaller steps), the same program form and keys, and the choice made again over its fits with the new one
    in place of the first. The candidate table's ``retry`` column says why, with the first fit's figures.
    ``retry_for``: :func:`ratingflow.sampler.driver_cache` of the retry settings. ``repeats(fit)``: whether the
    retry would run that fit's program with the settings it already had (the BaRatin form's own settings can be
    the retry's): same keys, same draws, so it is not fitted again and the table says so. ``form_transition``: as
    :func:`ratingflow.choice.fit_and_choose`'s (a station described by its controls is retried in the BaRatin form).
    ``min_ess`` (config ``sampler.retry_min_ess``): a fit whose bulk ESS lies below it is not fitted again either, and
    the table says so: its chains did not mix, and the retry's twice as many draws would not bring its ESS to the
    gate's (on three 500-station benchmarks, the retried fits whose first ESS was short gained 5.0-9.0 times it; the
    one whose first ESS was 7 failed again, at 17.5, and cost its fit job about 40 s: docs/time_budget.md, thirtieth
    session). None: every one."""
    from .candidates import Candidate
    from .choice import choose, fit_and_choose
    from .posterior import fit_convergence
    from .posterior import gate as gate_checks

    groups: dict[str, list[int]] = {}
    notes: dict[int, str] = {}
    for i, choice in enumerate(choices):
        if Candidate(choice.chosen).mode:
            continue  # a rating-period program: not retried
        fit = choice.fit
        conv = fit_convergence(fit)
        _, failures = gate_checks(conv, gate)
        kept = None  # why a fit that fails the gate is not fitted again
        if failures and repeats(fit):
            kept = "it ran with the retry's settings already"
        elif failures and min_ess is not None and conv["ess_bulk_min"] < min_ess:
            kept = (f"its chains did not mix (bulk ESS {conv['ess_bulk_min']:.1f} < {min_ess:g}), and the retry's longer "
                    "chains would not bring it to the gate")
        if kept:
            choice.table["retry"] = np.where(choice.table["model"] == choice.chosen,
                                             f"not fitted again: {kept}; it failed the gate: " + "; ".join(failures), "")
        elif failures:
            groups.setdefault(choice.chosen, []).append(i)
            notes[i] = "; ".join(failures)
    out = list(choices)
    s = retry_for().settings if groups else None
    for name, members in sorted(groups.items()):
        progress(f"{len(members)} station(s) whose chosen {name} fit failed the diagnostics gate: fitted again with "
                 f"{s.num_warmup} warm-up + {s.num_samples} draws per chain, target acceptance {s.target_accept}")
        again = fit_and_choose(retry_for, [items[i] for i in members], [Candidate(name)], seed, se_factor,
                               form_transition=form_transition)
        for i, second in zip(members, again):
            choice = choose({**choices[i].fits, name: second.fit}, se_factor, choices[i].screened)
            if "own_offsets" in choices[i].table:  # the own-offsets round's note (one h0 kept) stays
                choice.table["own_offsets"] = choice.table["model"].map(
                    choices[i].table.set_index("model")["own_offsets"]).fillna("")
            choice.table["retry"] = np.where(
                choice.table["model"] == name,
                f"fitted again ({s.num_warmup} + {s.num_samples} per chain, target {s.target_accept}); the first "
                f"fit failed the gate: {notes[i]}", "")
            out[i] = choice
    return out


def same_settings(first: SamplerSettings, again: SamplerSettings):
    """``repeats(fit)`` of :func:`retry_round`: whether a fit of the first round, sampled with ``first``, would be
    sampled with the same settings by the retry's ``again`` (in the fit's program: its segments, the generalized
    power law, one h0 or the BaRatin form)."""
    def same(fit) -> bool:
        form = Structure(max_segments=fit.candidate.n_segments, gplm_terms=int(fit.candidate.gplm),
                         segment_offsets="offset_rel" in fit.posterior)
        return again.for_structure(form) == first.for_structure(form)

    return same


def _read_station(station_id, clean_csv, periods_csv, extra) -> tuple[StationData, dict]:
    """The station's data, with each gauging's period when it has several, and what its InferenceData
    records of them (see :func:`ratingflow.posterior.inference_data`)."""
    clean = pd.read_csv(clean_csv, dtype={"datetime": str}, keep_default_na=False)
    station = StationData.from_clean(station_id, clean, extra.get("h0_range"), extra.get("break_ranges"),
                                     extra.get("control_types"))
    table = pd.read_csv(periods_csv, dtype=str, keep_default_na=False) if periods_csv is not None else []
    if len(table) < 2:
        return station, {}
    station = replace(station, period=period_of(clean, table))
    shifts = pd.read_csv(periods_csv.replace(".periods.csv", ".shifts.csv"), dtype=str, keep_default_na=False)
    applied = shifts[shifts["status"] == "applied"][["date", "source", "interval_start", "interval_end"]]
    return station, {"validity": table, "times": to_utc_naive(clean["datetime"]).to_numpy(),
                     "shifts": applied.to_dict("records")}


def station_key(inputs: list, settings_key: dict, extra: dict, models: ModelSettings, seed: int,
                offsets_sampler: tuple = ()) -> str:
    """The key of one station's fit (:mod:`ratingflow.reuse`): its input files, the settings, the sheet's hints
    (``extra``), the seed and :data:`VERSION`; for a station that may be fitted in the BaRatin form
    (``models.segment_offsets``, two or more control types, or ``models.own_offsets``: where the check flags it) also
    :data:`OFFSETS_FORM` and the form's own sampler settings (``offsets_sampler``:
    :attr:`ratingflow.sampler.SamplerSettings.offsets`)."""
    own_offsets = (models.segment_offsets or models.own_offsets is not None
                   or describes_controls(extra.get("control_types")))
    form = {"offsets_form": OFFSETS_FORM, **({"offsets_sampler": dict(offsets_sampler)} if offsets_sampler else {})}
    return reuse.digest(inputs, {**settings_key, "station": extra, **(form if own_offsets else {})}, seed, VERSION)


def run_batch(stations, clean_paths, prior_paths, out_paths, models_paths, seed: int, settings: SamplerSettings,
              priors: Priors, models: ModelSettings, attrs: dict, station_priors=None, periods_paths=None,
              periods_status_paths=None, prior_json_paths=None, previous=None, retry: dict | None = None,
              gate: dict | None = None, retry_min_ess: float | None = None) -> None:
    """Fit, choose and write every station of a batch; a skipped station gets placeholders.

    ``previous`` (``results/fit``): a station whose inputs (clean gaugings, prior verdict, periods, settings,
    seed) are those of its published fit gets that fit linked, not refitted (:mod:`ratingflow.reuse`).

    A station with rating periods (``periods_paths``, from the periods stage) gets a second round in a
    rating-period program (:func:`period_round`); the others are fitted as before.

    ``retry`` (config ``sampler.retry``: sampler settings that replace the batch's) and ``gate`` (config
    ``diagnostics``): a station whose chosen fit fails the gate is fitted once more (:func:`retry_round`), unless its
    bulk ESS lies below ``retry_min_ess`` (config ``sampler.retry_min_ess``)."""
    from .io import load_json

    todo = []
    retry = retry if retry and gate else None
    settings_key = {"sampler": settings.key(), "priors": asdict(priors), "models": asdict(models), "attrs": attrs,
                    "retry": retry and {"settings": retry, "gate": gate,
                                        **({"min_ess": retry_min_ess} if retry_min_ess is not None else {})}}
    for i, station_id in enumerate(stations):
        extra = (station_priors or [{}] * len(stations))[i] or {}
        inputs = [clean_paths[i], prior_json_paths[i] if prior_json_paths else prior_paths[i]]
        if periods_paths:
            inputs += [periods_paths[i], periods_paths[i].replace(".periods.csv", ".shifts.csv"), periods_status_paths[i]]
        key = station_key(inputs, settings_key, extra, models, seed, settings.offsets)
        if reuse.reuse(previous, [out_paths[i], models_paths[i]], key):
            progress(f"station {station_id}: inputs as published, fit reused")
            continue
        # the prior check's draws are read when the fit is written: a batch's priors held all along took about 1.6 MB
        # a station of the job's peak memory (issue 16)
        reason = status.skipped_file(prior_paths[i])
        if not reason and periods_status_paths is not None:
            reason = status.skip_reason(load_json(periods_status_paths[i]))
        if reason:
            save_idata(status.empty_idata(station_id, reason), out_paths[i])
            pd.DataFrame(columns=["model"]).to_csv(models_paths[i], index=False)
            reuse.record(out_paths[i], key)
            progress(f"station {station_id}: skipped ({reason})")
            continue
        station, extras = _read_station(station_id, clean_paths[i], periods_paths[i] if periods_paths else None, extra)
        todo.append((station, prior_paths[i], out_paths[i], models_paths[i], extras, key))
    if not todo:
        return
    candidates = models.candidate_list()
    driver_for = driver_cache(models.structure(candidates), settings, priors)
    again = settings.replaced(**retry) if retry else None
    retrying = again and (driver_cache(models.structure(candidates), again, priors), same_settings(settings, again),
                          retry_min_ess)
    # on a GPU one part: its calls hold a thousand fits (docs/gpu.md), and its memory is not the CPU job's
    for part in parts(todo, PART_SIZE if jax.default_backend() == "cpu" else len(todo)):
        _fit_part(part, driver_for, retrying, seed, models, attrs, gate)


#: on a CPU a batch is fitted, chosen and written in parts of at most this many stations (:func:`parts`): every
#: candidate's fits of a 100-station batch, held until its last station was chosen, took about 460 MB of a fit job's
#: peak memory (issue 16). The programs are loaded once per job all the same, and a station's draws do not depend on
#: its part.
PART_SIZE = 56


def parts(items: list, size: int) -> list[list]:
    """``items`` cut into as few parts of at most ``size`` as can be, of one length but the last, that length about
    ``len(items)`` / parts rounded up to a multiple of 8 (a one-control fit's calls hold 8 fits, and a part's last
    call is padded with copies)."""
    count = -(-len(items) // size)
    step = -(-len(items) // count)
    step = min(size, -(-step // 8) * 8) if step > 8 else step
    return [items[k:k + step] for k in range(0, len(items), step)]


def _fit_part(todo, driver_for, retry, seed, models, attrs, gate) -> None:
    """Sample, choose and write the stations of one part of a batch (see :func:`run_batch`); ``retry``: the retry's
    drivers, :func:`same_settings` and the bulk ESS below which a fit is not fitted again, or None."""
    start = time.perf_counter()
    candidates = models.candidate_list()
    progress(f"{len(todo)} stations x {len(candidates)} candidate models: sampling")
    station_data = [item[0] for item in todo]
    choices = fit_and_choose(driver_for, station_data, candidates, seed, models.se_factor, screen_z=models.screen,
                             own_offsets_z=models.own_offsets if gate else None, gate=gate,
                             own_offsets_seg1_z=models.own_offsets_seg1, form_transition=models.form_transition,
                             own_offsets_ahead_z=models.own_offsets_ahead)
    choices = period_round(driver_for, station_data, choices, seed, models.se_factor)
    if retry:
        choices = retry_round(retry[0], station_data, choices, seed, models.se_factor, gate, retry[1],
                              models.form_transition, retry[2])
    results = list(zip(todo, choices))
    buckets = sorted({bucket_size(item[0].n) for item in todo})
    progress(f"{len(todo)} stations (buckets {buckets}) sampled in {time.perf_counter() - start:.1f} s, including "
             "trace and compile or cache load")
    for (station, prior_path, out, models_csv, extras, key), choice in results:
        choice.table.to_csv(models_csv, index=False, float_format="%.6g")
        progress(f"station {station.station_id}: chosen {choice.chosen}\n"
                 + choice.table.drop(columns=["description", "reason", "retry", "own_offsets"], errors="ignore")
                 .to_string(index=False))
        prior = load_idata(prior_path, PRIOR_GROUPS)
        idata = inference_data(choice.fit, prior, {"seed": int(seed), **attrs}, models, **extras)
        notes = choice.table["own_offsets"] if "own_offsets" in choice.table else pd.Series(dtype=str)
        idata.attrs["model_choice"] = "; ".join([choice.table.loc[choice.table["chosen"], "reason"].iloc[0],
                                                 *notes[notes.astype(bool)]])
        if "retry" in choice.table and choice.table.loc[choice.table["chosen"], "retry"].iloc[0]:
            idata.attrs["retry"] = choice.table.loc[choice.table["chosen"], "retry"].iloc[0]
        shares = mixture.weights(choice, gate) if models.stacking else {choice.chosen: 1.0}
        extra = None
        if len(shares) > 1:
            idata.attrs[mixture.ATTR], extra = mixture.groups(choice, shares, models)
            progress(f"station {station.station_id}: rating table and discharge from the mixture "
                     + mixture.describe(mixture.listed(idata.attrs)))
        save_idata(idata, out, extra)
        reuse.record(out, key)
