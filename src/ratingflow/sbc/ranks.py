"""SBC's replications, fits, ranks and uniformity tests (see :mod:`ratingflow.sbc`)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import numpy as np
import pandas as pd
from numpyro.infer import Predictive
from numpyro.infer.util import log_likelihood
from scipy import stats

from ..data import StationData
from ..candidates import Candidate, ModelSettings, Priors, Structure
from ..model import model_sites, rating_model
from ..predict import SAMPLED_SITES, predict

#: posterior draws kept per replication (evenly spaced over the chains): ranks take L + 1 = 100 values
THINNED = 99
#: bins of the rank histogram and chi-square test (THINNED + 1 must be a multiple)
BINS = 20
#: replications fitted per driver call (each fit's draws are kept until its ranks are taken)
CHUNK = 50
#: where on the gauged stage range the curve is ranked
STAGE_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)


@dataclass
class Replication:
    """One simulated station: its data (drawn from the model) and the true values of the ranked quantities."""

    station: StationData
    candidate: Candidate
    truth: dict[str, float]
    sites: dict[str, np.ndarray]  # the prior draw of every sampled site (for the curve and likelihood)


def designs(n: int, seed: int, max_gaugings: int = 120) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(id, stages [m], stated relative SD) of ``n`` synthetic stations: where gaugings were made, not what they found."""
    from ..synthetic import draw_truth, gaugings

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        truth = draw_truth(rng, f"sbc{i:04d}")
        table = gaugings(rng, truth, int(rng.integers(15, max_gaugings + 1)))
        out.append((truth.station_id, table["stage"].to_numpy(float), (table["q_sigma"] / table["q"]).to_numpy(float)))
    return out


def _model_inputs(station: StationData, candidate: Candidate, structure: Structure, priors: Priors):
    ctx = {k: jax.numpy.asarray(v) for k, v in station.context(candidate, structure, priors).items()}
    return (jax.numpy.asarray(station.stage_rel, np.float32), jax.numpy.asarray(station.sd_log, np.float32), ctx)


def quantities(candidate: Candidate, segment_offsets: bool = False) -> list[str]:
    """Names of the ranked quantities of a candidate (with ``segment_offsets``, each upper control's offset too)."""
    k = candidate.n_segments
    names = ["gap", "log_q_ref", "sigma"] + [f"b[{j}]" for j in range(k)] + [f"breakpoint[{j}]" for j in range(k - 1)]
    names += [f"offset[{j}]" for j in range(1, k)] if segment_offsets else []
    return names + [f"curve@{f:.1f}" for f in STAGE_FRACTIONS] + ["log_lik"]


def _values(draws: dict[str, np.ndarray], candidate: Candidate, curve: np.ndarray, loglik: np.ndarray) -> dict:
    """The ranked quantities from draws (each (D, ...)), ln Q of the curve (D, stages) and the log-likelihood (D,)."""
    k = candidate.n_segments
    out = {name: np.asarray(draws[name], np.float64).reshape(-1) for name in ("gap", "log_q_ref", "sigma")}
    for j in range(k):
        out[f"b[{j}]"] = np.asarray(draws.get("b_control", draws["b"]))[:, j]  # each control's own exponent
    for j in range(k - 1):
        out[f"breakpoint[{j}]"] = np.asarray(draws["breakpoint_rel"])[:, j]
    if "offset_rel" in draws:
        for j in range(1, k):
            out[f"offset[{j}]"] = np.asarray(draws["offset_rel"])[:, j]
    for j, f in enumerate(STAGE_FRACTIONS):
        out[f"curve@{f:.1f}"] = curve[:, j]
    out["log_lik"] = loglik
    return out


def _check_stages(station: StationData) -> np.ndarray:
    x = station.stage_rel
    return np.min(x) + np.array(STAGE_FRACTIONS) * np.ptp(x)


def _curve_and_loglik(draws: dict, station: StationData, candidate: Candidate, structure: Structure, priors: Priors,
                      key) -> tuple[np.ndarray, np.ndarray]:
    """ln Q of the curve at the check stages and the log-likelihood of the station's gaugings, per draw,
    both from the model itself (``Predictive`` and ``log_likelihood``)."""
    sampled = model_sites({k: np.asarray(v) for k, v in draws.items() if k in SAMPLED_SITES})
    context = station.context(candidate, structure, priors)
    curve, _ = predict(key, sampled, _check_stages(station), context, station.typical_sd_log, structure, priors)
    stage, sd_log, ctx = _model_inputs(station, candidate, structure, priors)
    loglik = log_likelihood(partial(rating_model, structure=structure, priors=priors),
                            {k: jax.numpy.asarray(v) for k, v in sampled.items()}, stage, sd_log, ctx,
                            discharge=jax.numpy.asarray(station.discharge, np.float32))["log_discharge"]
    return np.log(np.maximum(curve, np.finfo(float).tiny)), np.asarray(loglik, np.float64).sum(axis=-1)


def replicate(design, candidate: Candidate, structure: Structure, priors: Priors, key) -> Replication:
    """Parameters from the prior and gaugings from the likelihood, at one design's stages."""
    sid, stage, rel_sd = design
    placeholder = StationData(f"{sid}-{candidate.name}", stage, np.ones_like(stage), rel_sd)
    args = _model_inputs(placeholder, candidate, structure, priors)
    prior_key, curve_key = jax.random.split(key)
    draw = Predictive(partial(rating_model, structure=structure, priors=priors),
                      num_samples=1)(prior_key, *args)
    sites = {k: np.asarray(v) for k, v in draw.items()}
    q = np.exp(np.asarray(sites["log_discharge"][0], np.float64))
    station = StationData(placeholder.station_id, stage, q, rel_sd * q)
    curve, loglik = _curve_and_loglik(sites, station, candidate, structure, priors, curve_key)
    truth = {name: float(v[0]) for name, v in _values(sites, candidate, curve, loglik).items()}
    return Replication(station, candidate, truth, sites)


def from_generator(design_seed: int, reps: int, structure: Structure, priors: Priors, key,
                   gaugings: tuple[int, int] = (15, 40)) -> list[Replication]:
    """One-control stations of :mod:`ratingflow.synthetic` (the coverage study's world) as replications of
    seg1: the truth is the generator's, not a prior draw. Their ranks are uniform only if the prior is
    right for that world too, so comparing them with SBC's tells a prior/generator mismatch from a
    sampler error."""
    from ..synthetic import draw_station

    rng = np.random.default_rng(design_seed)
    candidate = Candidate("seg1")
    out = []
    for i, k in enumerate(jax.random.split(key, reps)):
        st, truth = draw_station(rng, f"gen{i:04d}", int(rng.integers(gaugings[0], gaugings[1] + 1)),
                                 two_control_share=0.0)
        # the sites seg1 does not use (break_u, ...) from a prior draw; the curve's from the generator's truth
        draw = Predictive(partial(rating_model, structure=structure, priors=priors), num_samples=1,
                          return_sites=list(SAMPLED_SITES))(k, *_model_inputs(st, candidate, structure, priors))
        sites = {name: np.asarray(v) for name, v in draw.items()}
        sites.update({"gap": np.array([st.stage_offset - truth.h0]), "sigma": np.array([truth.sigma]),
                      "b": np.full((1, structure.max_segments), truth.b),
                      "log_q_ref": np.log(truth.discharge(np.array([st.stage_offset + st.stage_ref])))})
        curve, loglik = _curve_and_loglik(sites, st, candidate, structure, priors, k)
        truth_values = {name: float(v[0]) for name, v in _values(sites, candidate, curve, loglik).items()}
        out.append(Replication(st, candidate, truth_values, sites))
    return out


def thin(posterior: dict[str, np.ndarray], keep: int = THINNED) -> dict[str, np.ndarray]:
    """``keep`` draws of every site (chain, draw, ...), the same ones, evenly spaced through the draws chain
    after chain: far enough apart to be nearly independent, as the rank statistic needs."""
    flat = {k: np.asarray(v).reshape((-1,) + np.shape(v)[2:]) for k, v in posterior.items()}
    index = np.linspace(0, len(next(iter(flat.values()))) - 1, keep).round().astype(int)
    return {k: v[index] for k, v in flat.items()}


def rank(truth: float, draws: np.ndarray, rng: np.random.Generator) -> int:
    """Number of draws below the truth; ties split at random (0..len(draws))."""
    below = int(np.sum(draws < truth))
    ties = int(np.sum(draws == truth))
    return below + (int(rng.integers(0, ties + 1)) if ties else 0)


def fit_ranks(replications: list[Replication], fits: list, structure: Structure, priors: Priors, seed: int) -> pd.DataFrame:
    """One row per replication and quantity: the truth's rank among the thinned posterior draws, with the
    fit's divergences and worst R-hat, and which sampler made it (``importance``: with its weights' Pareto k)."""
    from ..posterior import candidate_posterior, convergence

    rng = np.random.default_rng(seed)
    rows = []
    for i, (rep, fit) in enumerate(zip(replications, fits)):
        draws = thin(fit.posterior)
        curve, loglik = _curve_and_loglik(draws, rep.station, rep.candidate, structure, priors,
                                          jax.random.PRNGKey(seed + i))
        values = _values(draws, rep.candidate, curve, loglik)
        conv = convergence(candidate_posterior(fit), fit.sample_stats)
        pareto_k = (fit.convergence or {}).get("pareto_k", np.nan)
        for name in quantities(rep.candidate, structure.segment_offsets):
            rows.append({"model": rep.candidate.name, "station": rep.station.station_id, "n": rep.station.n,
                         "quantity": name, "truth": rep.truth[name], "rank": rank(rep.truth[name], values[name], rng),
                         "divergences": conv["divergences"], "rhat_max": conv["rhat_max"],
                         "sampler": "NUTS" if np.isnan(pareto_k) else "importance", "pareto_k": pareto_k})
    return pd.DataFrame(rows)


def uniformity(ranks: np.ndarray, bins: int = BINS, levels: int = THINNED + 1) -> float:
    """p-value of a chi-square test that ranks (0..levels-1) are uniform, on ``bins`` equal bins."""
    counts = np.bincount(np.asarray(ranks) * bins // levels, minlength=bins)
    return float(stats.chisquare(counts).pvalue)


def ks_uniformity(ranks: np.ndarray, rng: np.random.Generator, levels: int = THINNED + 1) -> float:
    """p-value of a Kolmogorov-Smirnov test of uniformity on ranks spread over their level at random,
    ``(rank + U(0, 1)) / levels``: exactly uniform under calibration, so the p-value is exact at any
    number of replications (the chi-square's is not with few)."""
    u = (np.asarray(ranks) + rng.uniform(0, 1, len(ranks))) / levels
    return float(stats.kstest(u, "uniform").pvalue)


def tail_test(ranks: np.ndarray, levels: int = THINNED + 1, central: float = 0.9) -> tuple[float, float]:
    """(share, p): how often the truth lies outside the central ``central`` interval of the draws, and the
    two-sided binomial p-value of that share against 1 - ``central``. The chi-square on equal bins hardly
    sees a posterior whose tails alone are too light; this does."""
    u = (np.asarray(ranks) + 0.5) / levels
    outside = int(np.sum(np.abs(u - 0.5) > central / 2))
    return outside / len(u), float(stats.binomtest(outside, len(u), 1 - central).pvalue)


def tests(rows: pd.DataFrame) -> pd.DataFrame:
    """Per model and quantity: replications, the chi-square p-value, the share outside the central 90 % and
    its binomial p-value, and the smaller of the two Bonferroni-corrected over every test of ``rows`` (two per
    quantity)."""
    out = []
    for (model, name), part in rows.groupby(["model", "quantity"], sort=False):
        share, p_tail = tail_test(part["rank"].to_numpy())
        out.append({"model": model, "quantity": name, "replications": len(part),
                    "p_chi2": uniformity(part["rank"].to_numpy()), "outside_90": share, "p_tail": p_tail})
    table = pd.DataFrame(out)
    table["p_corrected"] = np.minimum(table[["p_chi2", "p_tail"]].min(axis=1) * 2 * len(table), 1.0)
    return table


def run(candidates: list[Candidate], reps: int, seed: int, models: ModelSettings, sampler, priors: Priors,
        log=print, world: str = "prior") -> pd.DataFrame:
    """Ranks of ``reps`` replications of each candidate (one design per replication, the same designs for
    every candidate), fitted with the pipeline's structure (that of the config's candidates and these). ``world``
    "generator": seg1 only, truths from the synthetic generator (:func:`from_generator`) instead of the prior."""
    import time

    from ..importance import grid_first
    from ..sampler import BatchedNUTS

    listed = models.candidate_list()
    # the pipeline's structure had the config listed these candidates too (a gplm candidate needs its exponent terms)
    structure = models.structure([*listed, *(c for c in candidates if c not in listed)])
    # as the pipeline fits: the BaRatin form's one-breakpoint fits by importance sampling where its settings ask
    # and JAX has one CPU thread (--threads 1), NUTS where its weights fail (ratingflow.importance)
    driver = grid_first(BatchedNUTS(structure, sampler, priors))
    plan = designs(reps, seed)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(candidates))
    frames = []
    for candidate, key in zip(candidates, keys):
        start = time.perf_counter()
        if world == "generator":
            if candidate.name != "seg1":
                raise ValueError("the generator's world is checked with seg1 only")
            reps_c = from_generator(seed, reps, structure, priors, key)
        else:
            reps_c = [replicate(d, candidate, structure, priors, k) for d, k in zip(plan, jax.random.split(key, reps))]
        frames_c = []
        for first in range(0, len(reps_c), CHUNK):  # a chunk's fits are ranked and dropped: memory stays bounded
            part = reps_c[first:first + CHUNK]
            fits = [f[candidate.name] for f in driver.fit([r.station for r in part], [candidate], seed)]
            frames_c.append(fit_ranks(part, fits, structure, priors, seed + first))
        frame = pd.concat(frames_c, ignore_index=True)
        frame["fit_seconds"] = time.perf_counter() - start
        log(f"{candidate.name}: {reps} replications in {time.perf_counter() - start:.0f} s")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
