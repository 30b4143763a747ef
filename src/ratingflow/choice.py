"""Model choice per station: PSIS-LOO over the candidate fits (ArviZ's ``compare``, :func:`elpd_differences`).

Rule: among the candidates, take the *simplest* (first in the configured order) whose elpd lies
within ``se_factor`` standard errors of the difference (``dse``) of the best one. Every
candidate's elpd, SE, weight, Pareto-k warnings and convergence are kept in the station's
``results/fit/{station}.models.csv`` and in the report.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import psis

#: Pareto k above this makes a gauging's PSIS-LOO estimate unreliable (Vehtari et al. 2024)
PARETO_K_WARN = 0.7


def compare(log_likelihoods: dict[str, np.ndarray], se_factor: float = 2.0, loos: dict | None = None
            ) -> tuple[str, pd.DataFrame]:
    """Choose among candidates; ``log_likelihoods`` maps name -> (chain, draw, gauging) in
    simplest-first order. Returns the chosen name and one row per candidate (in that order). ``loos``: their
    pointwise PSIS-LOO (``az.loo``'s, :func:`ratingflow.psis.loo`) where already computed."""
    order = list(log_likelihoods)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # high Pareto k is counted per candidate below
        loos = loos or {name: psis.loo(ll) for name, ll in log_likelihoods.items()}
        table = elpd_differences(loos) if len(order) > 1 else None
    rows = []
    for name in order:
        loo = loos[name]
        pareto_k = np.asarray(loo.pareto_k)
        row = {
            "model": name,
            "elpd_loo": float(loo.elpd_loo),
            "se": float(loo.se),
            "p_loo": float(loo.p_loo),
            "elpd_diff": 0.0 if table is None else float(table.loc[name, "elpd_diff"]),
            "dse": 0.0 if table is None else float(table.loc[name, "dse"]),
            "weight": 1.0 if table is None else float(table.loc[name, "weight"]),
            "pareto_k_max": float(np.max(pareto_k)),
            "n_pareto_k_high": int(np.sum(pareto_k > PARETO_K_WARN)),
        }
        rows.append(row)
    out = pd.DataFrame(rows)
    eligible = out[out["elpd_diff"] <= se_factor * out["dse"] + 1e-12]
    chosen = str(eligible["model"].iloc[0])
    best = str(out.loc[out["elpd_loo"].idxmax(), "model"])
    out["chosen"] = out["model"] == chosen
    out["reason"] = ""
    if chosen == best:
        reason = "best elpd"
    else:
        row = out.set_index("model").loc[chosen]
        reason = (f"simplest within {se_factor:g} SE of the best ({best}): elpd difference "
                  f"{row['elpd_diff']:.2f} <= {se_factor:g} x {row['dse']:.2f}")
    out.loc[out["chosen"], "reason"] = reason
    return chosen, out


def elpd_differences(loos: dict) -> pd.DataFrame:
    """``az.compare(loos)``'s ``elpd_diff``, ``dse`` and ``weight`` (stacking, log scale) of the candidates' pointwise
    PSIS-LOO, one row per candidate (indexed by name), as ArviZ 0.23.4 computes them (``arviz/stats/stats.py``,
    Apache License 2.0): the same sort, the same stacking optimisation (SLSQP from equal weights) and the same sums,
    so the same figures, without importing ArviZ (about 1.1 s of a fit job's start-up)."""
    from scipy.optimize import Bounds, LinearConstraint, minimize

    ics = pd.DataFrame.from_dict({name: {"elpd_loo": loo["elpd_loo"], "loo_i": np.asarray(loo["loo_i"]).flatten()}
                                  for name, loo in loos.items()}, orient="index")
    ics.sort_values(by="elpd_loo", inplace=True, ascending=False)
    cols, rows = len(ics), len(ics["loo_i"].iloc[0])
    ic_i_val = np.zeros((rows, cols))
    for idx, val in enumerate(ics.index):
        if len(ics.loc[val]["loo_i"]) != rows:
            raise ValueError("The number of observations should be the same across all models")
        ic_i_val[:, idx] = ics.loc[val]["loo_i"]
    exp_ic_i = np.exp(ic_i_val)  # ArviZ divides by the scale's value, 1 on the log scale

    def log_score(weights):
        return -np.sum(np.log(exp_ic_i @ weights))

    def gradient(weights):
        denominator = exp_ic_i @ weights
        return -np.sum(exp_ic_i / denominator[:, np.newaxis], axis=0)

    weights = minimize(fun=log_score, x0=np.full(cols, 1.0 / cols), jac=gradient,
                       bounds=Bounds(lb=np.zeros(cols), ub=np.ones(cols)),
                       constraints=LinearConstraint(np.ones(cols), lb=1.0, ub=1.0))["x"]
    out = pd.DataFrame(np.nan, index=list(ics.index), columns=["elpd_diff", "weight", "dse"])
    if np.any(weights):
        best = ics["loo_i"].iloc[0]
        for idx, val in enumerate(ics.index):
            diff = best - ics.loc[val]["loo_i"]
            out.loc[val] = (np.sum(diff), weights[idx], np.sqrt(len(diff) * np.var(diff)))
    return out


@dataclass
class Choice:
    """One station's candidates: every fit, the comparison table and the one chosen."""

    chosen: str
    table: pd.DataFrame
    fits: dict
    #: the screen's table (:func:`ratingflow.screen.screen`); None: every candidate was fitted
    screened: pd.DataFrame | None = None

    @property
    def fit(self):
        return self.fits[self.chosen]


def candidate_table(fits: dict, table: pd.DataFrame) -> pd.DataFrame:
    """The comparison table with each candidate's convergence and breakpoints (median, 90 % HPDI)."""
    from .candidates import Candidate
    from .intervals import hpdi_of_sorted
    from .posterior import candidate_posterior, fit_convergence

    table = table.copy()
    for name, fit in fits.items():
        posterior = candidate_posterior(fit)
        conv = fit_convergence(fit)
        row = table["model"] == name
        table.loc[row, ["rhat_max", "ess_bulk_min", "divergences"]] = (
            conv["rhat_max"], conv["ess_bulk_min"], conv["divergences"])
        for k in range(fit.candidate.n_segments - 1):
            draws = posterior["breakpoint"][..., k].reshape(-1)
            lo, hi = hpdi_of_sorted(np.sort(draws), 0.9)
            table.loc[row, [f"breakpoint_{k + 1}_median_m", f"breakpoint_{k + 1}_hpdi90_lower_m",
                            f"breakpoint_{k + 1}_hpdi90_upper_m"]] = (float(np.median(draws)), float(lo), float(hi))
    table.insert(1, "description", [Candidate(name).describe("offset_rel" in fits[name].posterior)
                                    for name in table["model"]])
    return table


def fit_and_choose(driver_for, stations: list, candidates: list, seed: int, se_factor: float = 2.0,
                   chunk: int | None = None, screen_z: float | None = None, own_offsets_z: float | None = None,
                   gate: dict | None = None, own_offsets_seg1_z: float | None = None,
                   form_transition: float | None = None, own_offsets_ahead_z: float | None = None) -> list[Choice]:
    """Fit the candidates of every station and choose one per station by PSIS-LOO. The one
    fit-and-choose of the pipeline, the studies and the tests.

    ``driver_for``: :func:`ratingflow.sampler.driver_cache` (or one :class:`ratingflow.sampler.BatchedNUTS`,
    whose structure then serves every candidate). A plain power law runs in a program of its own (about
    2.5x faster per fit than in the largest candidate's), the other candidates in the largest candidate's
    program. A station whose sheet names its controls' types (``StationData.control_types``, two or more)
    has its multi-segment candidates fitted in the BaRatin form, each control with its own offset
    (``segment_offsets``), in a program of their own. ``screen_z``: screen the candidates first
    (:mod:`ratingflow.screen`); NUTS runs only for those the screen keeps, and the table lists the others
    with the screen's figures. None: every
    candidate is fitted. ``chunk`` bounds the stations per driver call (memory); stations are sent
    grouped by shape bucket. A station's draws do not depend on the chunking. ``own_offsets_z`` (config
    ``models.own_offsets``) and ``gate`` (config ``diagnostics``): a chosen two-segment fit with one h0 whose
    gaugings suit each control's own zero-flow stage better is fitted in the BaRatin form too
    (:func:`offsets_round`); None: never. ``own_offsets_seg1_z`` (config ``models.own_offsets_seg1``): so is a kept
    seg1 whose seg2 the screen ruled out, where the form's profile gain over seg1 exceeds it. ``form_transition``
    (config ``models.offsets_transition``): the BaRatin form's rounding of a change of control; None: the one-h0
    structure's. ``own_offsets_ahead_z`` (config ``models.own_offsets_ahead``): a seg2 that the round would fit in the
    BaRatin form whatever its one-h0 fit gives is fitted in that form straight away (:func:`ahead_of_round`); None:
    the one-h0 fit first, always.
    """
    from dataclasses import replace

    from .data import bucket_size
    from .candidates import describes_controls
    from .importance import grid_first
    from .screen import candidates_to_fit

    baratin = None  # the BaRatin form's program; None: one program for every candidate, or own offsets already
    ahead: dict[str, str] = {}  # station id -> the seg2 row's note: in the BaRatin form without a one-h0 fit first
    if not callable(driver_for):
        driver, driver_for = driver_for, (lambda structure=None: driver)
        own = lambda st, c: None  # noqa: E731 - one program for every candidate
    else:
        base = driver_for().structure
        plain = replace(base, max_segments=1, gplm_terms=0)
        form = base.transition if form_transition is None else form_transition
        baratin = None if base.segment_offsets else replace(base, segment_offsets=True, transition=form)

        def own(st, c):
            if c.n_segments == 1 and not c.gplm:
                return plain
            if describes_controls(st.control_types) or (c.name == "seg2" and st.station_id in ahead):
                return baratin
            return None
    fitter = lambda structure=None: grid_first(driver_for(structure))  # noqa: E731 - the BaRatin form: importance first
    to_fit, screens = candidates_to_fit(stations, candidates, driver_for().structure, screen_z)
    if baratin is not None and gate is not None:
        ahead.update(ahead_of_round(stations, screens, baratin, own_offsets_z, own_offsets_ahead_z))
    groups: dict[int, list[int]] = {}
    for i, st in enumerate(stations):
        groups.setdefault(bucket_size(st.n), []).append(i)
    out: list = [None] * len(stations)
    for members in groups.values():
        step = chunk or len(members)
        for start in range(0, len(members), step):
            part = members[start:start + step]
            fits: dict[int, dict] = {i: {} for i in part}
            for candidate in candidates:
                programs: dict = {}
                for i in part:
                    if candidate in to_fit[i]:
                        programs.setdefault(own(stations[i], candidate), []).append(i)
                for structure, todo in programs.items():
                    for i, res in zip(todo, fitter(structure).fit([stations[i] for i in todo], [candidate], seed)):
                        fits[i].update(res)
            for i in part:
                out[i] = choose(fits[i], se_factor, screens[i])
    if own_offsets_z is not None and baratin is not None:
        if gate is None:
            raise ValueError("own_offsets_z needs the diagnostics gate")
        out = _behind_ahead(fitter(None), stations, out, ahead, seed, se_factor, gate)
        out = offsets_round(fitter(baratin), stations, out, seed, se_factor, own_offsets_z, gate, own_offsets_seg1_z,
                            done=set(ahead))
    return out


def ahead_of_round(stations: list, screens: list, structure, z: float | None, ahead_z: float | None) -> dict[str, str]:
    """The stations whose seg2 :func:`offsets_round` would fit in the BaRatin form whatever its one-h0 fit gives,
    by station id, with the seg2 row's note: the screen kept seg2 with a profile leave-one-out gain over seg1 above
    ``ahead_z`` SE (so large a gain all but ensures that the one-h0 seg2, or a one-h0 seg3, is chosen, and either
    sends seg2 to the round), and the own-offsets check flags it at ``z`` (-inf: wherever the check has a profile).
    Such a station's one-h0 seg2 fit would only be replaced: on the 500-station benchmark, each of the 102 kept by more
    than 3 SE was, by a BaRatin fit that passed the gate (docs/time_budget.md, twenty-ninth session). Its seg2 is
    fitted in the form at once, and the choice made over the fits the round would have left. A station with rating periods, or whose sheet describes its
    controls (fitted in the form already), is not; nor is any without a screen, or with ``ahead_z`` or ``z`` None."""
    from .candidates import Candidate, describes_controls
    from .screen import own_offsets_check

    out: dict[str, str] = {}
    if ahead_z is None or z is None:
        return out
    for st, table in zip(stations, screens):
        if table is None or st.n_periods > 1 or describes_controls(st.control_types):
            continue
        rows = table[table["model"] == "seg2"]
        if len(rows) != 1 or not bool(rows["fitted"].iloc[0]) or table["model"].iloc[0] != "seg1":
            continue
        gain, se = float(rows["screen_gain"].iloc[0]), float(rows["screen_se"].iloc[0])
        if not gain > ahead_z * se:
            continue
        check = own_offsets_check(st, Candidate("seg2"), structure)
        if check is None or not (z == -np.inf or check["gain"] > z * check["se"]):
            continue
        out[st.station_id] = (f"the screen's gain of seg2 over seg1 {gain:.1f} > {ahead_z:g} x SE {se:.1f}, so the "
                              f"round would fit it in the BaRatin form (own-offsets check: profile leave-one-out gain "
                              f"{check['gain']:.1f}, SE {check['se']:.1f}); fitted in the BaRatin form without a "
                              f"one-h0 fit first, ")
    return out


def _behind_ahead(driver, stations: list, choices: list, ahead: dict, seed: int, se_factor: float,
                  gate: dict) -> list:
    """The seg2 rows' notes of the stations :func:`ahead_of_round` sent to the BaRatin form; where that fit failed the
    diagnostics ``gate``, the one-h0 seg2 is fitted (``driver``: its program) and takes its place, as the round keeps
    the one-h0 fit where the form's fails."""
    from .candidates import Candidate
    from .posterior import fit_convergence
    from .posterior import gate as gate_checks
    from .runtime import progress

    out, failed = list(choices), {}
    for i, (st, choice) in enumerate(zip(stations, choices)):
        if st.station_id not in ahead:
            continue
        _, failures = gate_checks(fit_convergence(choice.fits["seg2"]), gate)
        if failures:
            failed[i] = "; ".join(failures)
            continue
        choice.table["own_offsets"] = np.where(choice.table["model"] == "seg2",
                                               ahead[st.station_id] + "which passed the diagnostics gate", "")
    todo = sorted(failed)
    if todo:
        progress(f"{len(todo)} station(s) whose seg2 in the BaRatin form failed the diagnostics gate: seg2 fitted with "
                 "one h0")
    for i, again in zip(todo, driver.fit([stations[i] for i in todo], [Candidate("seg2")], seed) if todo else []):
        first = choices[i]
        choice = choose({**first.fits, "seg2": again["seg2"]}, se_factor, first.screened)
        note = (ahead[stations[i].station_id] + f"which failed the diagnostics gate ({failed[i]}): seg2 fitted with "
                "one h0 and kept")
        choice.table["own_offsets"] = np.where(choice.table["model"] == "seg2", note, "")
        out[i] = choice
    return out


#: a kept seg1 whose one-h0 seg2 fit failed the gate with at least this stacking weight gets the BaRatin round too
UNCONVERGED_WEIGHT = 0.5


def offsets_round(driver, stations: list, choices: list[Choice], seed: int, se_factor: float, z: float,
                  gate: dict, seg1_z: float | None = None, done=()) -> list[Choice]:
    """seg2 fitted in the BaRatin form (``driver``: its program, with its own sampler settings) where one h0 for both
    controls does not serve a timeless station:

    * the chosen fit is seg2 with one h0 and the own-offsets check (:func:`ratingflow.screen.own_offsets_check`)
      finds the BaRatin form's profile leave-one-out gain above ``z`` SE (``z`` -inf: every such fit). Such a one-h0
      fit's curve band is too narrow: on the coverage study's 22 flagged stations it held the true curve 55.5 % of
      the time at 90 %; the BaRatin fits that passed the gate (18) held it 86.7 %; and where the check's gain was
      at most 0, the one-h0 bands held it 86.9 % (docs/validation_findings.md);
    * seg1 was kept, and the one-h0 seg2 fit failed the diagnostics ``gate`` while PSIS-LOO stacking gave it at least
      :data:`UNCONVERGED_WEIGHT`: the gaugings may well hold a second control that the one-h0 form cannot fit
      (its posterior splits), and an unconverged fit can neither be chosen nor mixed (:mod:`ratingflow.mixture`);
    * the chosen fit is seg3 with one h0 and seg2 is a candidate. Where two controls each have their own zero-flow
      stage, one h0 needs a third segment to follow them: on the 500-station benchmark (one- and two-control stations)
      all 10 chosen seg3 were at two-control stations, and most of the retries' 103 job-s were theirs (their first
      fits failed the gate). The BaRatin seg2, simpler, is chosen where its elpd lies within ``se_factor`` SE of
      seg3's: 8 of the 10 (docs/time_budget.md, sixteenth session);
    * ``seg1_z`` set: seg1 was kept, the screen ruled seg2 out (no fit), and the BaRatin form's profile leave-one-out
      gain over seg1 exceeds ``seg1_z`` SE. The screen's profile of seg2 has one h0; where the second control has
      its own, its gain over seg1 can fall short of the screen's threshold while the form's does not: on the
      coverage study's two-control stations where seg1 was kept with no seg2 to mix, the band held the true curve at
      about half the points (docs/validation_findings.md).

    The new fit takes the one-h0 fit's place (or joins the choice as seg2), and the choice is made again, where it
    passes the gate; otherwise the one-h0 fit stays (and the summary flags a chosen one), or seg2 stays unfitted. The
    seg2 row of the table says what was done in ``own_offsets``. A station with rating periods is not checked, nor one
    in ``done`` (station ids: :func:`ahead_of_round` fitted its seg2 in the form already)."""
    from .candidates import Candidate
    from .posterior import fit_convergence
    from .posterior import gate as gate_checks
    from .runtime import progress
    from .screen import own_offsets_check

    flagged = {}
    for i, (st, choice) in enumerate(zip(stations, choices)):
        candidate = Candidate(choice.chosen)
        if candidate.mode or st.n_periods > 1 or "offset_rel" in choice.fit.posterior or st.station_id in done:
            continue
        check = own_offsets_check(st, candidate, driver.structure)
        if check is not None and z == -np.inf:
            flagged[i] = (f"every chosen one-h0 seg2 (own-offsets check: profile leave-one-out gain "
                          f"{check['gain']:.1f}, SE {check['se']:.1f}); ")
        elif check is not None and check["gain"] > z * check["se"]:
            flagged[i] = (f"own-offsets check: profile leave-one-out gain {check['gain']:.1f} > {z:g} x SE "
                          f"{check['se']:.1f}; ")
        elif candidate.n_segments == 3 and not candidate.gplm and "seg2" in set(choice.table["model"]):
            flagged[i] = ("a chosen one-h0 seg3: two controls, each with its own zero-flow stage, may serve as well "
                          "(one h0 needs a third segment to follow them); ")
        elif choice.chosen == "seg1" and seg1_z is not None and _screened_out(choice, "seg2"):
            check = own_offsets_check(st, Candidate("seg2"), driver.structure, against=candidate)
            if check is not None and check["gain"] > seg1_z * check["se"]:
                flagged[i] = (f"the screen ruled seg2 out, but the BaRatin form's profile leave-one-out gain over "
                              f"seg1 is {check['gain']:.1f} > {seg1_z:g} x SE {check['se']:.1f}; ")
        elif choice.chosen == "seg1" and "seg2" in choice.fits and "offset_rel" not in choice.fits["seg2"].posterior:
            weight = float(choice.table.set_index("model").loc["seg2", "weight"])
            _, failures = gate_checks(fit_convergence(choice.fits["seg2"]), gate)
            if failures and weight >= UNCONVERGED_WEIGHT:
                flagged[i] = (f"the one-h0 fit failed the diagnostics gate ({'; '.join(failures)}) with stacking "
                              f"weight {weight:.2f} against the kept seg1; ")
    if not flagged:
        return choices
    s = driver.settings
    how = (f"NUTS, {s.num_warmup} warm-up + {s.num_samples} draws per chain, target acceptance {s.target_accept}")
    if s.importance:
        how = f"importance sampling over a breakpoint grid; {how}, where its weights fail"
    which = "every chosen one-h0 seg2 fit" if z == -np.inf else "whose one-h0 seg2 fit the own-offsets check flags"
    progress(f"{len(flagged)} station(s): {which}, or a chosen one-h0 seg3, or a one-h0 seg2 that failed the gate with "
             f"most of the stacking weight, or a kept seg1 that the form's profile beats: seg2 fitted in the BaRatin "
             f"form ({how})")
    out = list(choices)
    todo = sorted(flagged)
    for i, again in zip(todo, driver.fit([stations[i] for i in todo], [Candidate("seg2")], seed)):
        first, new = choices[i], again["seg2"]
        _, failures = gate_checks(fit_convergence(new), gate)
        note = flagged[i] + "fitted in the BaRatin form, "
        if failures:
            kept = "one h0 kept" if "seg2" in first.fits else "seg2 not fitted"
            note += "which failed the diagnostics gate (" + "; ".join(failures) + f"): {kept}"
            choice = Choice(first.chosen, first.table.copy(), first.fits, first.screened)
        elif "seg2" not in first.fits:
            note += "which passed the diagnostics gate and joined the choice"
            screened = first.screened.copy()
            screened.loc[screened["model"] == "seg2", "fitted"] = True
            choice = choose({**first.fits, "seg2": new}, se_factor, screened)
        else:
            elpd = float(first.table.loc[first.table["model"] == "seg2", "elpd_loo"].iloc[0])
            note += f"which passed the diagnostics gate and replaced the one-h0 fit (whose elpd_loo was {elpd:.2f})"
            choice = choose({**first.fits, "seg2": new}, se_factor, first.screened)
        choice.table["own_offsets"] = np.where(choice.table["model"] == "seg2", note, "")
        out[i] = choice
    return out


def _screened_out(choice: Choice, name: str) -> bool:
    """Whether the screen ruled the candidate out (listed, not fitted)."""
    return (choice.screened is not None and name not in choice.fits
            and bool((choice.screened["model"] == name).any()))


def choose(fits: dict, se_factor: float, screened: pd.DataFrame | None = None) -> Choice:
    """The choice among a station's fits. ``screened`` (:func:`ratingflow.screen.screen`): the candidates
    it ruled out are listed too (not fitted, with the screen's reason), and every row gets its figures."""
    from .candidates import Candidate
    from .posterior import fit_loo

    chosen, table = compare({name: fit.log_likelihood for name, fit in fits.items()}, se_factor,
                            {name: fit_loo(fit) for name, fit in fits.items()})
    table = candidate_table(fits, table)
    if screened is not None:
        out = screened[~screened["fitted"]].drop(columns="fitted").rename(columns={"screen": "reason"})
        out.insert(1, "description", [Candidate(name).describe() for name in out["model"]])
        out["chosen"] = False
        table = pd.concat([table, out], ignore_index=True)
        figures = screened.set_index("model")
        for column in ("screen_elpd", "screen_gain", "screen_se"):
            table[column] = table["model"].map(figures[column])
        table.insert(2, "fitted", table["model"].isin(list(fits)))
        order = {name: i for i, name in enumerate(screened["model"])}
        table = table.sort_values("model", key=lambda m: m.map(order).fillna(len(order)), kind="stable")
        table = table.reset_index(drop=True)
    return Choice(chosen, table, fits, screened)
