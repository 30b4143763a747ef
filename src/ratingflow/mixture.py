"""Curve draws that average the fitted candidates by their PSIS-LOO stacking weights (config ``models.stacking``).

Model choice keeps one candidate: its equations, parameters and diagnostics are the station's. Its draws alone,
though, ignore that another candidate may predict the gaugings as well or better: on the coverage study's two-control
stations where the simpler model was kept (PSIS-LOO's gain of the second segment within ``se_factor`` SE), the
stacking weight of seg2 averaged 0.91 and the kept one-segment band held the true curve about half the time
(docs/validation_findings.md). The rating table and the discharge series therefore take their draws from the mixture
of the candidates, each with its stacking weight (Yao, Vehtari, Simpson and Gelman 2018, Bayesian Analysis 13(3),
doi:10.1214/17-BA1091; ``az.compare``'s ``weight``), where

* the station is timeless (no rating periods);
* a candidate was fitted (not ruled out by the screen), passed the diagnostics gate, and has a weight of at least
  :data:`MIN_WEIGHT`; the chosen candidate is always in.

The weights are renormalised over the candidates kept. A mixture of ``n`` draws takes each candidate's share
(largest remainders) spread evenly over its chains; a station whose chosen candidate has all the weight keeps its draws
and outputs as before.

The fit file holds the chosen fit as its InferenceData; each other candidate of the mixture is a netCDF group
``mixture_<name>`` (its sampled sites flattened to ``mixture_draw``, its model context, its structure), and the root
attribute ``mixture`` lists every candidate with its weight (JSON).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from .candidates import Candidate, Structure
from .io import MIXTURE_PREFIX as PREFIX

#: a candidate with a lower stacking weight is left out of the mixture
MIN_WEIGHT = 0.01
#: the root attribute of a fit file that lists the mixture (JSON); its groups' names start with ``PREFIX``
ATTR = "mixture"


@dataclass
class Component:
    """One candidate of a station's mixture: its draws of the sampled sites (draws, ...), context and structure."""

    name: str
    weight: float
    structure: Structure
    context: dict
    samples: dict


def weights(choice, gate: dict | None) -> dict[str, float]:
    """The mixture's weights of a :class:`ratingflow.choice.Choice`: the fitted candidates' stacking weights, for
    those that pass ``gate`` (config ``diagnostics``; None: no gate) and weigh at least :data:`MIN_WEIGHT`, the
    chosen one always, renormalised. A station with rating periods, or with one candidate left, gets its chosen one
    alone."""
    from .posterior import fit_convergence
    from .posterior import gate as gate_checks

    if Candidate(choice.chosen).mode or getattr(choice.fit.station, "n_periods", 1) > 1:
        return {choice.chosen: 1.0}
    table = choice.table.set_index("model")
    out = {}
    for name, fit in choice.fits.items():
        if Candidate(name).mode:
            continue
        w = float(table.loc[name, "weight"]) if name in table.index else 0.0
        passed = gate is None or not gate_checks(fit_convergence(fit), gate)[1]
        if name == choice.chosen or (w >= MIN_WEIGHT and passed):
            out[name] = max(w, 0.0)
    total = sum(out.values())
    if len(out) == 1 or total <= 0:
        return {choice.chosen: 1.0}
    return {name: w / total for name, w in out.items()}


def allocate(shares: dict[str, float], total: int) -> dict[str, int]:
    """Draws per candidate: ``total`` split by ``shares`` (largest remainders; ties to the earlier)."""
    names = list(shares)
    raw = np.array([shares[n] for n in names], float) * total
    counts = np.floor(raw).astype(int)
    order = sorted(range(len(names)), key=lambda i: (-(raw[i] - counts[i]), i))
    for i in order[: total - counts.sum()]:
        counts[i] += 1
    return {n: int(c) for n, c in zip(names, counts)}


def spread(n_available: int, k: int) -> np.ndarray:
    """``k`` row indices spread evenly over ``n_available`` draws (chains laid one after the other)."""
    return np.linspace(0, n_available - 1, k).round().astype(int) if k else np.zeros(0, int)


def sampled_draws(fit) -> dict[str, np.ndarray]:
    """A fit's draws of its sampled sites (:data:`ratingflow.predict.SAMPLED_SITES`), chains laid one after the
    other: (draws, ...)."""
    from .posterior import candidate_posterior
    from .predict import SAMPLED_SITES

    post = {k: np.asarray(v) for k, v in candidate_posterior(fit).items() if k in SAMPLED_SITES}
    return {k: v.reshape((-1,) + v.shape[2:]) for k, v in post.items()}


def groups(choice, shares: dict[str, float], models) -> tuple[str, dict]:
    """The root attribute (JSON) and the netCDF groups (xarray Datasets) of a fit file's mixture: one group per
    candidate other than the chosen one. ``models``: the config's :class:`ratingflow.candidates.ModelSettings`."""
    import xarray as xr

    from .posterior import candidate_context, fit_structure

    listed, out = [], {}
    for name, w in shares.items():
        entry = {"model": name, "weight": float(w), "group": ""}
        if name != choice.chosen:
            fit = choice.fits[name]
            data = {site: (("mixture_draw", *[f"{site}_dim_{j}" for j in range(v.ndim - 1)]), v)
                    for site, v in sampled_draws(fit).items()}
            for key, value in candidate_context(fit).items():
                value = np.asarray(value)
                data[f"context_{key}"] = (tuple(f"context_{key}_dim_{j}" for j in range(value.ndim)), value)
            structure = fit_structure(fit, models)
            attrs = {"model": name, "weight": float(w),
                     **{f"structure_{k}": v for k, v in structure.as_attrs().items()}}
            entry["group"] = PREFIX + name
            out[entry["group"]] = xr.Dataset(data, attrs=attrs)
        listed.append(entry)
    return json.dumps(listed), out


def listed(attrs) -> list[dict]:
    """The mixture a fit file lists (root attribute :data:`ATTR`); empty: none (the chosen candidate alone)."""
    text = attrs.get(ATTR)
    return json.loads(text) if text else []


def components(idata, stored: dict, total: int | None = None) -> list[Component]:
    """The mixture of a timeless fit read back: its chosen fit (``idata``) and the groups ``stored`` (from
    :func:`ratingflow.io.load_groups`), each with its share of ``total`` draws (default: the chosen fit's count).
    Without a mixture: the chosen fit's draws alone (``total`` of them spread evenly)."""
    from .posterior import model_of
    from .predict import flat_draws

    candidate, structure, context = model_of(idata)
    own = flat_draws(idata.posterior)
    n_own = len(own["gap"])
    total = n_own if total is None else min(total, n_own)
    entries = listed(idata.attrs) or [{"model": candidate.name, "weight": 1.0, "group": ""}]
    counts = allocate({e["model"]: e["weight"] for e in entries}, total)
    out = []
    for e in entries:
        k = counts[e["model"]]
        if not k:
            continue
        if not e["group"]:
            out.append(Component(e["model"], e["weight"], structure, context,
                                 {s: v[spread(n_own, k)] for s, v in own.items()}))
            continue
        ds = stored[e["group"]]
        samples = {s: ds[s].values for s in ds.data_vars if not s.startswith("context_")}
        n = len(samples["gap"])
        ctx = {s[len("context_"):]: ds[s].values for s in ds.data_vars if s.startswith("context_")}
        st = Structure.from_attrs({a[len("structure_"):]: v for a, v in ds.attrs.items() if a.startswith("structure_")})
        out.append(Component(e["model"], e["weight"], st, ctx, {s: v[spread(n, k)] for s, v in samples.items()}))
    return out


def describe(entries: list[dict]) -> str:
    """'seg1 0.09, seg2 0.91': the mixture in words (empty for none)."""
    return ", ".join(f"{e['model']} {e['weight']:.2f}" for e in entries) if len(entries) > 1 else ""


def from_fits(parts: list, total: int, models) -> list[Component]:
    """The mixture of fits in memory (the coverage study's): ``parts`` [(FitResult, weight)], each with its share of
    ``total`` draws spread evenly over its chains, as :func:`components` reads them back from a fit file."""
    from .posterior import candidate_context, fit_structure

    counts = allocate({i: w for i, (_, w) in enumerate(parts)}, total)
    out = []
    for i, (fit, w) in enumerate(parts):
        if counts[i]:
            flat = sampled_draws(fit)
            out.append(Component(fit.candidate.name, w, fit_structure(fit, models), candidate_context(fit),
                                 {k: v[spread(len(v), counts[i])] for k, v in flat.items()}))
    return out


def predicted(components: list[Component], key, predict_one) -> tuple:
    """``predict_one(component, samples, key)`` (a tuple of arrays with one row per draw) for every component, its rows
    laid after the previous one's. With more than one, each runs the program of a full set of draws
    (:func:`padded`; its own rows are kept) with the key folded by the component's place; the first, or a lone
    one, gets ``key`` itself (so a station without a mixture keeps its draws)."""
    import jax

    if len(components) == 1:
        c = components[0]
        return tuple(predict_one(c, c.samples, key))
    total = sum(len(c.samples["gap"]) for c in components)
    out = []
    for k, c in enumerate(components):
        n = len(c.samples["gap"])
        out.append([r[:n] for r in predict_one(c, padded(c.samples, total), key if k == 0 else jax.random.fold_in(key, k))])
    return tuple(np.concatenate(x) for x in zip(*out))


def padded(samples: dict, total: int) -> dict:
    """Each site's draws repeated up to ``total`` rows: every component then runs the compiled program of a full set of
    draws (one shape per structure, not one per station's share); the caller keeps the first rows."""
    return {k: np.resize(v, (total, *v.shape[1:])) for k, v in samples.items()}
