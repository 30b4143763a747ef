"""The coverage study itself: simulated truth and held-out real gaugings.

1. Simulation: synthetic stations (:mod:`ratingflow.synthetic`: one and two controls, gauging noise
   2-8 %) fitted with model choice as in the pipeline. At five stages per station (10, 30, 50, 70 and
   90 % of the gauged stage range): is the true curve inside the 50 / 90 / 95 % curve HPDI, is a fresh
   synthetic gauging inside the 90 % predictive band, and the bias of the median curve.
2. Held-out gaugings: real stations, K-fold cross-validation (folds drawn per station from the seed).
   Coverage of the held-out gaugings by the 90 % predictive band (a gauging with its own stated
   uncertainty), by stage third of the station's gauged range, and the log predictive density of ln Q
   per held-out gauging.

Binomial intervals are Wilson score intervals. They treat points as independent; points of one station
are not quite (they share its posterior), so the intervals are somewhat too narrow.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
from numpyro.diagnostics import hpdi

from ..choice import fit_and_choose
from ..data import StationData
from ..intervals import wilson
from ..keys import station_keys, station_seed
from ..candidates import ModelSettings, Priors
from ..model import residual_sd
from ..predict import predict
from ..sampler import SamplerSettings, driver_cache

#: where on the gauged stage range the simulation checks the curve
STAGE_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)
CURVE_PROBS = (0.5, 0.9, 0.95)
#: stations fitted per driver call (bounds memory; stations are still grouped by shape bucket)
CHUNK = 40


class Fitter:
    """Fits stations with the candidates the screen keeps (``models.screen``; None: every candidate) and keeps the one
    PSIS-LOO chooses, as the pipeline does: each candidate in the program the pipeline gives it (a plain power law in
    its own; the BaRatin form, with its own sampler settings, for a station described by its controls or with
    ``segment_offsets``; and in the own-offsets round, ``models.own_offsets``, with the diagnostics ``gate``)."""

    def __init__(self, models: ModelSettings, settings: SamplerSettings, priors: Priors, gate: dict | None = None):
        self.models, self.priors, self.gate = models, priors, gate
        self.candidates = models.candidate_list()
        self.driver = driver_cache(models.structure(self.candidates), settings, priors)
        #: station -> [(fit, weight)] of its stacking mixture (``models.stacking``; :func:`ratingflow.mixture.weights`)
        self.mixtures: dict[str, list] = {}

    def fit(self, stations: list[StationData], seed: int) -> list[tuple[str, object]]:
        """(chosen name, its fit) per station, chosen as in the pipeline (:func:`ratingflow.choice.fit_and_choose`);
        with ``models.stacking``, each station's mixture is kept for :meth:`predictive`."""
        from ..mixture import weights

        choices = fit_and_choose(self.driver, stations, self.candidates, seed, self.models.se_factor, chunk=CHUNK,
                                 screen_z=self.models.screen,
                                 own_offsets_z=self.models.own_offsets if self.gate else None, gate=self.gate,
                                 own_offsets_seg1_z=self.models.own_offsets_seg1,
                                 form_transition=self.models.form_transition,
                                 own_offsets_ahead_z=self.models.own_offsets_ahead)
        for st, c in zip(stations, choices):
            shares = weights(c, self.gate) if self.models.stacking else {}
            if len(shares) > 1:
                self.mixtures[st.station_id] = [(c.fits[name], w) for name, w in shares.items()]
        return [(c.chosen, c.fit) for c in choices]

    def predictive(self, fit, stage: np.ndarray, sd_log: np.ndarray, key, mixed: bool = True):
        """Draws of ln Q of the curve and of a new gauging with uncertainty ``sd_log`` at ``stage``
        (absolute, m), each (draws, len(stage)); and each draw's SD of a gauging's ln Q. ``mixed``: of the station's
        stacking mixture where it has one, as the rating table draws them (:func:`ratingflow.mixture.from_fits`,
        :func:`ratingflow.mixture.predicted`); else of ``fit`` alone."""
        from ..mixture import from_fits, predicted

        st = fit.station
        parts = (self.mixtures.get(st.station_id) if mixed else None) or [(fit, 1.0)]
        components = from_fits(parts, int(np.prod(fit.log_likelihood.shape[:2])), self.models)
        rel = np.asarray(stage) - st.stage_offset

        def one(c, samples, k):
            curve, gauging = predict(k, samples, rel, c.context, sd_log, c.structure, self.priors)
            slope = samples["sigma_slope"][:, None] if "sigma_slope" in samples else None
            resid = residual_sd(samples["sigma"][:, None].astype(np.float64), slope, rel, fit.context, exp=np.exp)
            tiny = np.finfo(float).tiny
            return (np.log(np.maximum(curve, tiny)), np.log(np.maximum(gauging, tiny)),
                    np.sqrt(resid**2 + np.asarray(sd_log) ** 2))

        return predicted(components, key, one)


def log_predictive_density(log_curve: np.ndarray, sd: np.ndarray, log_q: np.ndarray) -> np.ndarray:
    """ln of the posterior-mean Normal density of the observed ln Q, per point."""
    z = (log_q[None, :] - log_curve) / sd
    log_p = -0.5 * z**2 - np.log(sd) - 0.5 * np.log(2 * np.pi)
    top = log_p.max(axis=0)
    return top + np.log(np.mean(np.exp(log_p - top), axis=0))


def predictive_cdf(log_curve: np.ndarray, sd: np.ndarray, log_q: np.ndarray) -> np.ndarray:
    """The posterior predictive distribution's CDF at the observed ln Q, per point: the posterior mean of each draw's
    Normal CDF (``log_curve`` and ``sd``: (draws, points)). A gauging lies inside the equal-tailed 90 % predictive
    interval where this lies within 0.05-0.95: the interval of infinitely many new-gauging draws, with no Monte Carlo
    noise from drawing them (which moved 3 of 983 held-out gaugings across the edges between two runs of the same
    fits)."""
    from scipy.special import ndtr

    return np.mean(ndtr((log_q[None, :] - log_curve) / sd), axis=0)


# --------------------------------------------------------------------------------------------- simulation

def simulate(n: int, seed: int, fitter: Fitter, log=print) -> pd.DataFrame:
    """One row per (station, check stage) with the truth, the bands and the fresh gauging."""
    from .. import synthetic

    rng = np.random.default_rng(seed)
    stations, truths = synthetic.simulated(rng, n, "sim")
    start = time.perf_counter()
    fits = fitter.fit(stations, seed)
    log(f"simulation: {n} stations fitted in {time.perf_counter() - start:.0f} s")
    rows = []
    for st, truth, (chosen, fit) in zip(stations, truths, fits):
        lo, hi = st.stage.min(), st.stage.max()
        stage = lo + np.array(STAGE_FRACTIONS) * (hi - lo)
        rel_sd = rng.uniform(0.02, 0.08, len(stage))
        sd_new = np.sqrt(np.log1p(rel_sd**2))
        true_q = truth.discharge(stage)
        fresh = true_q * np.exp(rng.normal(0.0, np.sqrt(truth.sigma**2 + sd_new**2)))
        key = station_keys(seed, st.station_id)["predict"]
        log_curve, log_gauging, _ = fitter.predictive(fit, stage, sd_new, key)
        alone = fitter.predictive(fit, stage, sd_new, key, mixed=False)[0] if st.station_id in fitter.mixtures else log_curve
        mix = fitter.mixtures.get(st.station_id, [])
        for j, fraction in enumerate(STAGE_FRACTIONS):
            row = {"station": st.station_id, "controls": truth.controls, "n": st.n, "model": chosen,
                   "own_offsets_form": "offset_rel" in fit.posterior,
                   "mixture": ", ".join(f"{part.candidate.name} {w:.3f}" for part, w in mix),
                   "fraction": fraction, "stage_m": stage[j], "true_q": true_q[j],
                   "median_q": float(np.exp(np.median(log_curve[:, j]))),
                   "log_bias": float(np.median(log_curve[:, j]) - np.log(true_q[j]))}
            for prob in CURVE_PROBS:
                a, b = hpdi(log_curve[:, j], prob)
                row[f"curve{round(prob * 100)}"] = bool(a <= np.log(true_q[j]) <= b)
            for prob in (0.5, 0.9):  # the chosen model's own band, where the table mixes candidates
                a, b = hpdi(alone[:, j], prob)
                row[f"chosen_curve{round(prob * 100)}"] = bool(a <= np.log(true_q[j]) <= b)
            a, b = hpdi(log_gauging[:, j], 0.9)
            row["fresh90"] = bool(a <= np.log(fresh[j]) <= b)
            rows.append(row)
    return own_offsets_column(pd.DataFrame(rows), stations, fitter.models)


def own_offsets_column(rows: pd.DataFrame, stations: list[StationData], models: ModelSettings) -> pd.DataFrame:
    """``rows`` with ``own_offsets_z``: the summary's own-offsets check of each station whose chosen model is a
    two-segment power law fitted with one h0 (``own_offsets_form`` False), as :func:`ratingflow.summarise.own_offsets` checks it
    (:func:`ratingflow.screen.own_offsets_check`: the BaRatin form's profile leave-one-out gain in SE; flagged above
    :data:`ratingflow.plausibility.OWN_OFFSETS_Z`); NaN for the others."""
    from ..candidates import Candidate
    from ..screen import own_offsets_check

    chosen = rows.groupby("station")["model"].first()
    own = rows.groupby("station")["own_offsets_form"].first() if "own_offsets_form" in rows else {}
    structure = models.structure(models.candidate_list())
    z = {}
    for st in stations:
        if st.station_id not in chosen.index or models.segment_offsets or own.get(st.station_id, False):
            continue
        check = own_offsets_check(st, Candidate(chosen[st.station_id]), structure)
        if check is not None:
            z[st.station_id] = check["gain"] / max(check["se"], 1e-12)
    return rows.assign(own_offsets_z=rows["station"].map(z).astype(float))


def simulated_stations(n: int, seed: int) -> list[StationData]:
    """The simulation's stations, as :func:`simulate` draws them."""
    from .. import synthetic

    return synthetic.simulated(np.random.default_rng(seed), n, "sim")[0]


def own_offsets_summary(rows: pd.DataFrame, z: float) -> pd.DataFrame:
    """Coverage of the true curve at the stations whose chosen fit shares one h0 across segments, flagged by the
    own-offsets check or not, and at those whose one-h0 fit the fit's own-offsets round replaced by the BaRatin
    form (``own_offsets_form``, where the study ran with ``models.own_offsets``)."""
    own = rows["own_offsets_form"].astype(bool) if "own_offsets_form" in rows else pd.Series(False, rows.index)
    checked = rows[rows["own_offsets_z"].notna() | own]
    fit = np.where(own[checked.index], "BaRatin form (the round's, passed the gate)",
                   np.where(checked["own_offsets_z"] > z, "one h0, flagged", "one h0, not flagged"))
    out = []
    for (controls, model, form), part in checked.groupby(["controls", "model", fit]):
        row = {"true controls": controls, "model": model, "fit": form,
               "stations": part["station"].nunique(), "points": len(part)}
        for prob in (0.9, 0.5):
            column = f"curve{round(prob * 100)}"
            k = int(part[column].sum())
            lo, hi = wilson(k, len(part))
            row.update({f"true curve in {column[5:]} % HPDI": k / len(part), f"ci_low_{column[5:]}": lo,
                        f"ci_high_{column[5:]}": hi})
        out.append(row)
    return pd.DataFrame(out)


def mixture_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Coverage of the true curve by the chosen model's own band and by the stacking mixture's (the one the rating
    table gives, ``models.stacking``), by true controls and model chosen, split by whether the station has a
    mixture (shares of the points)."""
    rows = rows.assign(mixed=rows["mixture"].fillna("").astype(str) != "")
    out = []
    for (controls, model, mixed), part in rows.groupby(["controls", "model", "mixed"]):
        row = {"true controls": controls, "model": model, "mixture": "yes" if mixed else "no",
               "stations": part["station"].nunique(), "points": len(part)}
        for prob in (90, 50):
            for label, column in (("chosen", f"chosen_curve{prob}"), ("mixture", f"curve{prob}")):
                row[f"{label} {prob} %"] = part[column].mean()
        out.append(row)
    return pd.DataFrame(out)


def station_interval(part: pd.DataFrame, column: str, z: float = 1.96) -> tuple[float, float]:
    """95 % interval of the share of points where ``column`` is true, with the stations as the units sampled: the
    points of one station share its posterior, so they are not independent and a binomial interval over points is too
    narrow. The share is a ratio (points covered over points, summed over stations); its standard error is the
    ratio estimator's linearised one, sqrt(c / (c - 1) * sum((k_i - p m_i)^2)) / sum(m_i) over c stations with k_i
    of m_i points covered (within 0.15 points of the percentiles of 4 000 bootstrap draws of the stations, on the
    coverage study's 500 and 1 000 stations)."""
    g = part.groupby("station")[column].agg(["sum", "count"])
    k, m = g["sum"].to_numpy(float), g["count"].to_numpy(float)
    c = len(g)
    if c < 2:
        return float("nan"), float("nan")
    p = k.sum() / m.sum()
    se = float(np.sqrt(c / (c - 1) * np.sum((k - p * m) ** 2)) / m.sum())
    return max(0.0, p - z * se), min(1.0, p + z * se)


def simulation_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Coverage of the true curve (and of a new gauging) by class of station, each with a binomial interval over the
    points (``ci_low``, ``ci_high``: Wilson) and one over the stations (``stations_ci_low``, ``stations_ci_high``:
    :func:`station_interval`), the one to read a target against."""
    out = []
    groups = [("all stations", rows), ("one control", rows[rows["controls"] == 1]),
              ("two controls", rows[rows["controls"] == 2])]
    for label, part in groups:
        for column, nominal in [(f"curve{round(p * 100)}", p) for p in CURVE_PROBS] + [("fresh90", 0.9)]:
            k, n = int(part[column].sum()), len(part)
            lo, hi = wilson(k, n)
            s_lo, s_hi = station_interval(part, column)
            what = "new gauging, 90 % predictive" if column == "fresh90" else f"true curve, {column[5:]} % HPDI"
            out.append({"stations": label, "check": what, "nominal": nominal, "covered": k, "points": n,
                        "coverage": k / n if n else np.nan, "ci_low": lo, "ci_high": hi,
                        "stations_ci_low": s_lo, "stations_ci_high": s_hi})
    return pd.DataFrame(out)


def bias_summary(rows: pd.DataFrame) -> pd.DataFrame:
    out = []
    for fraction, part in rows.groupby("fraction"):
        x = part["log_bias"].to_numpy()
        se = x.std(ddof=1) / np.sqrt(len(x))
        out.append({"stage (share of gauged range)": fraction, "points": len(x),
                    "median bias, %": 100 * np.expm1(x.mean()), "95 % CI low, %": 100 * np.expm1(x.mean() - 1.96 * se),
                    "95 % CI high, %": 100 * np.expm1(x.mean() + 1.96 * se)})
    return pd.DataFrame(out)


# ----------------------------------------------------------------------------------------- held-out

def real_stations(sheet_path, raw_dir, default_uncertainty: dict, exclude=("simulated_rating",)):
    """Cleaned real stations from a sheet; a station whose gaugings repeat an earlier one's is left out."""
    from ..clean import clean
    from ..sheet import load_sheet

    sheet = load_sheet(sheet_path, raw_dir)
    stations, seen, skipped = [], {}, []
    for sid, spec in sheet.items():
        if sid in exclude:
            skipped.append((sid, "synthetic"))
            continue
        result = clean(spec, Path(raw_dir) / spec.file, default_uncertainty)
        st = StationData.from_clean(sid, result.clean)
        key = tuple(np.round(np.sort(st.stage * 1e6 + st.discharge), 3))
        if key in seen:
            skipped.append((sid, f"same gaugings as {seen[key]}"))
            continue
        seen[key] = sid
        stations.append(st)
    return stations, skipped


def folds(station: StationData, k: int, seed: int) -> np.ndarray:
    """Fold number of each gauging: a random, balanced assignment from the seed and station id."""
    rng = np.random.default_rng(station_seed(seed, station.station_id))
    return rng.permutation(np.arange(station.n) % k)


def stage_third(station: StationData) -> np.ndarray:
    lo, hi = station.stage.min(), station.stage.max()
    return np.minimum((3 * (station.stage - lo) / max(hi - lo, 1e-12)).astype(int), 2)


def subset(station: StationData, keep: np.ndarray, suffix: str) -> StationData:
    return StationData(f"{station.station_id}{suffix}", station.stage[keep], station.discharge[keep],
                       station.discharge_sd[keep], station.h0_range)


def crossval(stations: list[StationData], k: int, seed: int, fitter: Fitter, log=print):
    """Rows per held-out gauging (ours) and the fold design (for the peer)."""
    train, tests, design = [], [], []
    for st in stations:
        fold = folds(st, k, seed)
        third = stage_third(st)
        for f in range(k):
            held = fold == f
            train.append(subset(st, ~held, f"-fold{f}"))
            tests.append((st, f, np.flatnonzero(held), third[held], np.flatnonzero(~held)))
    start = time.perf_counter()
    fits = fitter.fit(train, seed)
    log(f"held-out: {len(train)} folds of {len(stations)} stations fitted in {time.perf_counter() - start:.0f} s")
    rows = []
    for (st, f, idx, thirds, kept), tr, (chosen, fit) in zip(tests, train, fits):
        stage, q, sd = st.stage[idx], st.discharge[idx], st.sd_log[idx]
        log_curve, _, sd_draws = fitter.predictive(fit, stage, sd, station_keys(seed, tr.station_id)["predict"])
        cdf = predictive_cdf(log_curve, sd_draws, np.log(q))
        lpd = log_predictive_density(log_curve, sd_draws, np.log(q))
        for j in range(len(idx)):
            rows.append({"station": st.station_id, "fold": f, "gauging": int(idx[j]), "third": int(thirds[j]),
                         "model": chosen, "segments": fit.candidate.n_segments, "inside90": bool(0.05 <= cdf[j] <= 0.95),
                         "lpd": float(lpd[j])})
        design.append({"station": st.station_id, "fold": f, "segments": fit.candidate.n_segments,
                       "train": [int(i) for i in kept], "test": [int(i) for i in idx]})
    return pd.DataFrame(rows), design


THIRDS = {0: "low", 1: "middle", 2: "high"}


def heldout_summary(rows: pd.DataFrame, label: str) -> pd.DataFrame:
    out = []
    for third, part in [(THIRDS[t], rows[rows["third"] == t]) for t in range(3)] + [("all", rows)]:
        k, n = int(part["inside90"].sum()), len(part)
        lo, hi = wilson(k, n)
        out.append({"method": label, "stage third": third, "held-out gaugings": n, "coverage90": k / n if n else np.nan,
                    "ci_low": lo, "ci_high": hi, "mean lpd": part["lpd"].mean()})
    return pd.DataFrame(out)


def paired_lpd(ours: pd.DataFrame, peer: pd.DataFrame) -> dict:
    """Mean difference of log predictive density (ours - peer) over the gaugings both predicted, with
    its standard error (as for PSIS-LOO differences: sqrt(n) x SD of the pointwise differences)."""
    both = ours.merge(peer, on=["station", "fold", "gauging"], suffixes=("", "_peer"))
    diff = both["lpd"] - both["lpd_peer"]
    return {"gaugings": len(diff), "mean": float(diff.mean()), "se": float(diff.std(ddof=1) / np.sqrt(len(diff))),
            "sum": float(diff.sum()), "sum_se": float(diff.std(ddof=1) * np.sqrt(len(diff)))}


def side_by_side(ours: pd.DataFrame, peer: pd.DataFrame | None) -> pd.DataFrame:
    """Per station: held-out gaugings, 90 % coverage and mean lpd of both methods."""
    agg = {"gaugings": ("inside90", "size"), "coverage90": ("inside90", "mean"), "mean_lpd": ("lpd", "mean")}
    table = ours.groupby("station").agg(**agg)
    if peer is not None and len(peer):
        other = peer.groupby("station").agg(**agg).drop(columns="gaugings")
        table = table.join(other.add_suffix("_ratingcurve"))
        segments = ours.groupby("station")["segments"].agg(lambda s: "/".join(str(v) for v in sorted(set(s))))
        table.insert(1, "segments", segments)
    return table.reset_index()
