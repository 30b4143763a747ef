"""NUTS for many stations in one compiled program.

``numpyro.infer.MCMC.run`` recompiles its sampling loop for every data set, because the data
values are baked into the program. Here the data are real arguments of one jitted function,
stations are padded to a shape bucket and masked, and the NUTS kernel runs over all chains of all
stations in one program (vectorised in groups of ``chains_per_step``): each chain keeps its own
step size and mass matrix. One compile per (bucket, number of stations, settings) serves every
station, and with JAX's persistent compilation cache it is shared across processes too.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from numpyro.infer.hmc import hmc
from numpyro.infer.util import initialize_model, log_likelihood

from .data import StationData, bucket_size
from .initial import INIT_JITTER, init_centre
from .keys import station_keys
from .model import Candidate, ModelSettings, Priors, Structure, rating_model

@dataclass(frozen=True)
class SamplerSettings:
    num_chains: int = 4
    num_warmup: int = 1000
    num_samples: int = 1000
    target_accept: float = 0.9
    max_tree_depth: int = 10
    dense_mass: bool = False
    #: chains advanced together in one vectorised NUTS step; 0 = all of a job's chains; -1 (auto) =
    #: one station's chains on a CPU, all on a GPU. Vectorised NUTS moves at the pace of the
    #: deepest tree among them: on a CPU small groups waste less, on a GPU large groups fill it.
    chains_per_step: int = -1

    @classmethod
    def from_config(cls, cfg: dict) -> "SamplerSettings":
        return cls(**{k: cfg[k] for k in asdict(cls()) if k in cfg})


@dataclass
class FitResult:
    """Raw draws of one station and candidate, shapes (chain, draw[, ...])."""

    station: StationData
    candidate: Candidate
    context: dict[str, np.ndarray]
    posterior: dict[str, np.ndarray]
    sample_stats: dict[str, np.ndarray]
    log_likelihood: np.ndarray


def _model_args(arrays: dict, context: dict):
    return (arrays["stage"], arrays["discharge_sd_log"], context, arrays["mask"]), {"discharge": arrays["discharge"]}


class BatchedNUTS:
    """A reusable, jitted NUTS driver for one model structure and one set of sampler settings."""

    def __init__(self, structure: Structure, settings: SamplerSettings = SamplerSettings(), priors: Priors = Priors()):
        self.structure = structure
        self.settings = settings
        self.priors = priors
        self.model = partial(rating_model, structure=structure, priors=priors)
        dummy = StationData("dummy", np.array([0.0, 0.5, 1.0]), np.ones(3), np.full(3, 0.05))
        args, kwargs = _model_args({k: jnp.asarray(v) for k, v in dummy.padded(16).items()},
                                   {k: jnp.asarray(v) for k, v in dummy.context(Candidate("seg1"), structure, priors).items()})
        _, self._potential_gen, self._postprocess_gen, _ = initialize_model(
            jax.random.PRNGKey(0), self.model, dynamic_args=True, model_args=args, model_kwargs=kwargs
        )
        self._run = jax.jit(self._run_batch)

    def _run_chain(self, key, z0, arrays, context):
        s = self.settings
        args, kwargs = _model_args(arrays, context)
        init_kernel, sample_kernel = hmc(potential_fn_gen=self._potential_gen, algo="NUTS")
        state = init_kernel(
            z0,
            s.num_warmup,
            target_accept_prob=s.target_accept,
            max_tree_depth=s.max_tree_depth,
            dense_mass=s.dense_mass,
            model_args=args,
            model_kwargs=kwargs,
            rng_key=key,
        )

        def step(state, _):
            state = sample_kernel(state, model_args=args, model_kwargs=kwargs)
            stats = {
                "diverging": state.diverging,
                "energy": state.energy,
                "lp": -state.potential_energy,
                "acceptance_rate": state.accept_prob,
                "n_steps": state.num_steps,
                "step_size": state.adapt_state.step_size,
            }
            return state, (state.z, stats)

        # one scan over warm-up and sampling: the kernel adapts while state.i < num_warmup
        # (a second scan would double the tracing time, which dominates a new process)
        _, (z, stats) = lax.scan(step, state, None, length=s.num_warmup + s.num_samples)
        z, stats = jax.tree.map(lambda x: x[s.num_warmup :], (z, stats))
        constrained = jax.vmap(self._postprocess_gen(*args, **kwargs))(z)
        samples = {k: v for k, v in constrained.items() if k != "log_curve"}
        loglik = log_likelihood(self.model, samples, *args, **kwargs)["log_discharge"]
        return samples, stats, loglik

    def _run_batch(self, init_keys, keys, centres, arrays, contexts):
        """One row per (station, candidate) fit. init_keys, keys (S, 2); centres: dict of (S, ...);
        arrays: dict of (S, N); contexts: dict of (S, ...).

        Fits and chains share one vmapped axis (S * C): nesting two vmaps doubles the
        cost of batching NUTS's while loops at trace time.
        """
        n_chains = self.settings.num_chains
        n_fits = keys.shape[0]

        def per_chain(x):
            return jnp.repeat(x, n_chains, axis=0)

        def start(name, centre):
            jitter = jax.vmap(lambda k: jax.random.uniform(jax.random.fold_in(k, _SITE_CODES[name]),
                                                           (n_chains,) + centre.shape[1:], minval=-1.0, maxval=1.0))(init_keys)
            return per_chain(centre) + INIT_JITTER[name] * jitter.reshape((-1,) + centre.shape[1:])

        z0 = {name: start(name, centre) for name, centre in centres.items()}
        chain_keys = jax.vmap(lambda k: jax.random.split(k, n_chains))(keys).reshape(-1, keys.shape[-1])
        total = n_fits * n_chains
        group = self.settings.chains_per_step
        if group < 0:
            group = n_chains if jax.default_backend() == "cpu" else total
        group = group or total
        inputs = (chain_keys, z0, jax.tree.map(per_chain, arrays), jax.tree.map(per_chain, contexts))
        if group >= total:
            out = jax.vmap(self._run_chain)(*inputs)
        else:
            out = lax.map(lambda a: self._run_chain(*a), inputs, batch_size=group)
        return jax.tree.map(lambda x: x.reshape((n_fits, n_chains) + x.shape[1:]), out)

    def fit(self, stations: list[StationData], candidates: list[Candidate], seed: int) -> list[dict[str, FitResult]]:
        """Sample every candidate of every station; one vectorised run per shape bucket.

        Each station is padded to its *own* bucket, never to a larger one: a different padded
        length changes the order of floating-point sums and so the draws. Grouped this way, a
        station's draws depend only on its data, the candidate and the seed, not on the batch it
        landed in. Returns, per station, the fits keyed by candidate name.
        """
        groups: dict[int, list[int]] = {}
        for i, st in enumerate(stations):
            groups.setdefault(bucket_size(st.n), []).append(i)
        results: list[dict] = [{} for _ in stations]
        for size, members in sorted(groups.items()):
            jobs = [(i, c) for i in members for c in candidates]
            for (i, c), res in zip(jobs, self._fit_bucket([(stations[i], c) for i, c in jobs], size, seed)):
                results[i][c.name] = res
        return results

    def _fit_bucket(self, jobs: list[tuple[StationData, Candidate]], size: int, seed: int) -> list[FitResult]:
        padded = [st.padded(size) for st, _ in jobs]
        contexts = [st.context(c, self.structure, self.priors) for st, c in jobs]
        centres = [init_centre(st, c, self.structure) for st, c in jobs]
        keys = [(station_keys(seed, st.station_id), c.code) for st, c in jobs]
        init_keys, fit_keys = (jnp.stack([jax.random.fold_in(k[use], code) for k, code in keys]) for use in ("init", "fit"))
        samples, stats, loglik = jax.device_get(
            self._run(init_keys, fit_keys, _stack(centres), _stack(padded), _stack(contexts)))
        results = []
        for i, (st, candidate) in enumerate(jobs):
            post = {k: np.asarray(v[i]) for k, v in samples.items()}
            sstats = {k: np.asarray(v[i]) for k, v in stats.items()}
            sstats["tree_depth"] = np.floor(np.log2(sstats["n_steps"] + 1)).astype(np.int64)
            results.append(FitResult(st, candidate, contexts[i], post, sstats, np.asarray(loglik[i][..., : st.n])))
        return results


def _stack(dicts: list[dict]) -> dict:
    """One array per key, stacked over the fits of a bucket."""
    return {k: jnp.asarray(np.stack([d[k] for d in dicts])) for k in dicts[0]}


#: a fixed number per site, for its starting-point jitter key
_SITE_CODES = {name: i for i, name in enumerate(INIT_JITTER)}

#: parameters written to the posterior group (those the candidate has), with their units and dims
POSTERIOR_VARS = {
    "a": ("m3/s at 1 m above the segment's offset: Q = a (H - offset)^b in each segment", ["segment"]),
    "b": ("1 (each segment's own exponent)", ["segment"]),
    "h0": ("m (stage of zero flow, station datum)", []),
    "offset": ("m (each segment's stage of zero flow, station datum; the first is h0; segmented models)", ["segment"]),
    "breakpoint": ("m (stage where the next segment takes over, station datum)", ["breakpoint_number"]),
    "sigma": ("1 (SD of ln Q beyond gauging uncertainty, at the reference stage)", []),
    "sigma_slope": ("1 (change of ln sigma across the gauged range)", []),
    "gap": ("m (lowest gauged stage minus h0)", []),
    "log_q_ref": ("ln(m3/s) at the reference stage", []),
    "log_a": ("ln(m3/s)", ["segment"]),
    "break_u": ("1 (breakpoint position within its prior range, logit scale)", ["breakpoint_number"]),
    "offset_shift": ("1 (ln of the upper control's depth over the lower one's, at the breakpoint)",
                     ["breakpoint_number"]),
    "exponent_w": ("1 (weights of the exponent's variation with stage)", ["term"]),
}


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("ratingflow", "numpyro", "jax", "jaxlib", "arviz", "xarray", "pandas"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def candidate_posterior(result: FitResult) -> dict[str, np.ndarray]:
    """The candidate's own parameters (chain, draw, ...): inactive segments and sites dropped."""
    st, c = result.station, result.candidate
    post, k = result.posterior, c.n_segments
    out = {name: post[name] for name in ("gap", "log_q_ref", "sigma")}
    out["b"] = post["b"][..., :k]
    out["log_a"] = post["log_a"][..., :k]
    out["a"] = np.exp(out["log_a"].astype(np.float64))
    out["h0"] = st.stage_offset - post["gap"].astype(np.float64)
    if k > 1:
        out["breakpoint"] = st.stage_offset + post["breakpoint_rel"][..., : k - 1].astype(np.float64)
        out["break_u"] = post["break_u"][..., : k - 1]
        if "offset_rel" in post:  # models.segment_offsets
            out["offset"] = st.stage_offset + post["offset_rel"][..., :k].astype(np.float64)
            out["offset_shift"] = post["offset_shift"][..., : k - 1]
    if c.gplm:
        out["exponent_w"] = post["exponent_w"]
    if "sigma_slope" in post:
        out["sigma_slope"] = post["sigma_slope"]
    return out


def candidate_context(result: FitResult) -> dict[str, np.ndarray]:
    """The context a curve of this candidate needs (breakpoint ranges cut to its breakpoints)."""
    ctx = dict(result.context)
    k = result.candidate.n_segments - 1
    ctx["break_lo"], ctx["break_hi"] = ctx["break_lo"][:k], ctx["break_hi"][:k]
    return ctx


def inference_data(result: FitResult, prior, attrs: dict, models: ModelSettings = ModelSettings()):
    """ArviZ InferenceData of one fit: posterior, sample_stats, log_likelihood, observed and
    constant data (with the model's context), plus the prior groups from the prior check."""
    import arviz as az

    st, candidate = result.station, result.candidate
    posterior = candidate_posterior(result)
    n = st.n
    coords = {"gauging": np.arange(n), "segment": np.arange(1, candidate.n_segments + 1),
              "breakpoint_number": np.arange(1, candidate.n_segments)}
    if "exponent_w" in posterior:
        coords["term"] = np.arange(1, posterior["exponent_w"].shape[-1] + 1)
    idata = az.from_dict(
        posterior=posterior,
        sample_stats=result.sample_stats,
        log_likelihood={"log_discharge": result.log_likelihood},
        observed_data={"log_discharge": np.log(st.discharge)},
        constant_data={
            "stage": st.stage,
            "discharge": st.discharge,
            "discharge_sd": st.discharge_sd,
            "discharge_sd_log": st.sd_log,
        },
        coords=coords,
        dims={"log_discharge": ["gauging"], "stage": ["gauging"], "discharge": ["gauging"],
              "discharge_sd": ["gauging"], "discharge_sd_log": ["gauging"],
              **{name: dims for name, (_, dims) in POSTERIOR_VARS.items() if dims}},
    )
    # scalars (from_dict would give them a dimension of length 1)
    idata.constant_data["stage_offset"] = ((), np.float64(st.stage_offset), {"units": "m", "meaning": "lowest gauged stage: the model's stage origin"})
    idata.constant_data["stage_ref"] = ((), np.float64(st.stage_offset + st.stage_ref), {"units": "m", "meaning": "stage where log_q_ref applies"})
    for key, value in candidate_context(result).items():
        value = np.asarray(value)
        idata.constant_data[f"context_{key}"] = (("breakpoint_number",) if value.ndim else (), value,
                                                 {"meaning": "model context, relative stage (see ratingflow.model)"})
    for group in ("prior", "prior_predictive"):
        if group in prior.groups():
            idata.add_groups({group: prior[group]})
    for name in posterior:
        idata.posterior[name].attrs["units"] = POSTERIOR_VARS[name][0]
    idata.constant_data["stage"].attrs["units"] = "m"
    idata.constant_data["discharge"].attrs["units"] = "m3/s"
    idata.constant_data["discharge_sd"].attrs["units"] = "m3/s (1 SD)"
    idata.observed_data["log_discharge"].attrs["units"] = "ln(m3/s)"
    full = {"station": st.station_id, "stage_units": "m", "discharge_units": "m3/s", "model": candidate.name,
            "model_description": candidate.describe(),
            **{f"structure_{k}": v for k, v in models.structure([candidate]).as_attrs().items()}, **attrs}
    full.update({f"version_{k}": v for k, v in package_versions().items()})
    idata.attrs.update(full)
    idata.posterior.attrs.update(full)
    return idata


def model_of(idata) -> tuple[Candidate, Structure, dict]:
    """The candidate, its structure and the context of a fit read back from netCDF."""
    attrs = idata.attrs
    structure = Structure.from_attrs({k[len("structure_"):]: v for k, v in attrs.items() if k.startswith("structure_")})
    const = idata.constant_data
    context = {name[len("context_"):]: const[name].values for name in const.data_vars if name.startswith("context_")}
    return Candidate(attrs["model"]), structure, context


def run_batch(stations, clean_paths, prior_paths, out_paths, models_paths, seed: int, settings: SamplerSettings,
              priors: Priors, models: ModelSettings, attrs: dict, station_priors=None) -> None:
    """Pipeline step: fit every candidate model of a batch of stations in one vectorised run (per
    shape bucket), choose one per station by PSIS-LOO, and write its fit and the comparison."""
    import time

    import pandas as pd

    from . import status
    from .choice import compare
    from .io import load_idata, save_idata
    from numpyro.diagnostics import hpdi

    from .summarise import convergence

    todo = []
    for i, station_id in enumerate(stations):
        prior = load_idata(prior_paths[i])
        if status.skipped(prior):
            save_idata(status.empty_idata(station_id, status.skipped(prior)), out_paths[i])
            pd.DataFrame(columns=["model"]).to_csv(models_paths[i], index=False)
            print(f"station {station_id}: skipped ({status.skipped(prior)})")
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
    results = driver.fit([station for station, *_ in todo], candidates, seed)
    elapsed = time.perf_counter() - start
    buckets = sorted({bucket_size(st.n) for st, *_ in todo})
    print(f"{len(todo)} stations x {len(candidates)} candidate models (buckets {buckets}) sampled in "
          f"{elapsed:.1f} s, including trace and compile or cache load")
    for (station, prior, out, models_csv), fits in zip(todo, results):
        chosen, table = compare({name: fit.log_likelihood for name, fit in fits.items()}, models.se_factor)
        for name, fit in fits.items():
            posterior = candidate_posterior(fit)
            conv = convergence(posterior, fit.sample_stats)
            row = table["model"] == name
            table.loc[row, ["rhat_max", "ess_bulk_min", "divergences"]] = (
                conv["rhat_max"], conv["ess_bulk_min"], conv["divergences"])
            for k in range(fit.candidate.n_segments - 1):
                draws = posterior["breakpoint"][..., k].reshape(-1)
                lo, hi = hpdi(draws, 0.9)
                table.loc[row, [f"breakpoint_{k + 1}_median_m", f"breakpoint_{k + 1}_hpdi90_lower_m",
                                f"breakpoint_{k + 1}_hpdi90_upper_m"]] = (float(np.median(draws)), float(lo), float(hi))
        table.insert(1, "description", [Candidate(name).describe() for name in table["model"]])
        table.to_csv(models_csv, index=False, float_format="%.6g")
        print(f"station {station.station_id}: chosen {chosen}\n{table.drop(columns=['description', 'reason']).to_string(index=False)}")
        idata = inference_data(fits[chosen], prior, {"seed": int(seed), **attrs}, models)
        idata.attrs["model_choice"] = table.loc[table["chosen"], "reason"].iloc[0]
        save_idata(idata, out)
