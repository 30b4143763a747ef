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
from .keys import station_keys
from .model import Priors, power_law

#: sampled sites, in unconstrained space all of them are real scalars
_SITES = ("gap", "b", "log_q_ref", "sigma")
#: spread of the chains' starting points around the data-driven centre (unconstrained units)
_INIT_JITTER = {"gap": 1.0, "b": 0.3, "log_q_ref": 0.5, "sigma": 0.5}


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
    """Raw draws of one station, shapes (chain, draw[, gauging])."""

    station: StationData
    posterior: dict[str, np.ndarray]
    sample_stats: dict[str, np.ndarray]
    log_likelihood: np.ndarray


def _model_args(arrays: dict):
    args = (arrays["stage"], arrays["stage_ref"], arrays["discharge_sd_log"], arrays["mask"])
    return args, {"discharge": arrays["discharge"], "gap_prior": (arrays["gap_mean"], arrays["gap_sd"])}


class BatchedNUTS:
    """A reusable, jitted NUTS driver for one model and one set of sampler settings."""

    def __init__(self, settings: SamplerSettings = SamplerSettings(), priors: Priors = Priors()):
        self.settings = settings
        self.priors = priors
        self.model = partial(power_law, priors=priors)
        dummy = StationData("dummy", np.array([0.0, 0.5, 1.0]), np.ones(3), np.full(3, 0.05)).padded(16, priors)
        args, kwargs = _model_args({k: jnp.asarray(v) for k, v in dummy.items()})
        _, self._potential_gen, self._postprocess_gen, _ = initialize_model(
            jax.random.PRNGKey(0), self.model, dynamic_args=True, model_args=args, model_kwargs=kwargs
        )
        self._run = jax.jit(self._run_batch)

    def _run_chain(self, key, z0, arrays):
        s = self.settings
        args, kwargs = _model_args(arrays)
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

    def _run_batch(self, init_keys, keys, centres, arrays):
        """init_keys, keys (S, 2): each station's init and fit keys; centres: dict of (S,);
        arrays: dict of (S, N) / (S,).

        Stations and chains share one vmapped axis (S * C): nesting two vmaps doubles the
        cost of batching NUTS's while loops at trace time.
        """
        n_chains = self.settings.num_chains
        n_stations = keys.shape[0]

        def per_chain(x):
            return jnp.repeat(x, n_chains, axis=0)

        jitter = jax.vmap(lambda k: jax.random.uniform(k, (n_chains, len(_SITES)), minval=-1.0, maxval=1.0))(
            init_keys
        ).reshape(n_stations * n_chains, len(_SITES))
        z0 = {name: per_chain(centres[name]) + _INIT_JITTER[name] * jitter[:, i] for i, name in enumerate(_SITES)}
        chain_keys = jax.vmap(lambda k: jax.random.split(k, n_chains))(keys).reshape(-1, keys.shape[-1])
        total = n_stations * n_chains
        group = self.settings.chains_per_step
        if group < 0:
            group = n_chains if jax.default_backend() == "cpu" else total
        group = group or total
        if group >= total:
            out = jax.vmap(self._run_chain)(chain_keys, z0, jax.tree.map(per_chain, arrays))
        else:
            out = lax.map(lambda a: self._run_chain(*a), (chain_keys, z0, jax.tree.map(per_chain, arrays)),
                          batch_size=group)
        return jax.tree.map(lambda x: x.reshape((n_stations, n_chains) + x.shape[1:]), out)

    def fit(self, stations: list[StationData], seed: int) -> list[FitResult]:
        """Sample every station; one vectorised run per shape bucket.

        Each station is padded to its *own* bucket, never to a larger one: a different padded
        length changes the order of floating-point sums and so the draws. Grouped this way, a
        station's draws depend only on its data and the seed, not on the batch it landed in.
        """
        groups: dict[int, list[int]] = {}
        for i, st in enumerate(stations):
            groups.setdefault(bucket_size(st.n), []).append(i)
        results: list[FitResult | None] = [None] * len(stations)
        for size, members in sorted(groups.items()):
            for i, res in zip(members, self._fit_bucket([stations[i] for i in members], size, seed)):
                results[i] = res
        return results

    def _fit_bucket(self, stations: list[StationData], size: int, seed: int) -> list[FitResult]:
        padded = [st.padded(size, self.priors) for st in stations]
        arrays = {k: jnp.asarray(np.stack([p[k] for p in padded])) for k in padded[0]}
        centres = {k: jnp.asarray(np.stack([st.init_centre()[k] for st in stations])) for k in _SITES}
        keys = [station_keys(seed, st.station_id) for st in stations]
        init_keys, fit_keys = (jnp.stack([k[use] for k in keys]) for use in ("init", "fit"))
        samples, stats, loglik = jax.device_get(self._run(init_keys, fit_keys, centres, arrays))
        results = []
        for i, st in enumerate(stations):
            post = {k: np.asarray(v[i]) for k, v in samples.items()}
            post["h0"] = st.stage_offset - post["gap"].astype(np.float64)
            sstats = {k: np.asarray(v[i]) for k, v in stats.items()}
            sstats["tree_depth"] = np.floor(np.log2(sstats["n_steps"] + 1)).astype(np.int64)
            results.append(FitResult(st, post, sstats, np.asarray(loglik[i][..., : st.n])))
        return results

#: parameters written to the posterior group, with their units
POSTERIOR_UNITS = {
    "a": "m3/s at 1 m above h0",
    "b": "1",
    "h0": "m (stage of zero flow, station datum)",
    "sigma": "1 (SD of ln Q beyond gauging uncertainty)",
    "gap": "m (lowest gauged stage minus h0)",
    "log_q_ref": "ln(m3/s) at the reference stage",
    "log_a": "ln(m3/s)",
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


def inference_data(result: FitResult, prior, attrs: dict):
    """ArviZ InferenceData of one fit: posterior, sample_stats, log_likelihood, observed and
    constant data, plus the prior groups from the prior check."""
    import arviz as az

    st = result.station
    n = st.n
    idata = az.from_dict(
        posterior={k: result.posterior[k] for k in POSTERIOR_UNITS},
        sample_stats=result.sample_stats,
        log_likelihood={"log_discharge": result.log_likelihood},
        observed_data={"log_discharge": np.log(st.discharge)},
        constant_data={
            "stage": st.stage,
            "discharge": st.discharge,
            "discharge_sd": st.discharge_sd,
            "discharge_sd_log": st.sd_log,
        },
        coords={"gauging": np.arange(n)},
        dims={"log_discharge": ["gauging"], "stage": ["gauging"], "discharge": ["gauging"],
              "discharge_sd": ["gauging"], "discharge_sd_log": ["gauging"]},
    )
    # scalars (from_dict would give them a dimension of length 1)
    idata.constant_data["stage_offset"] = ((), np.float64(st.stage_offset), {"units": "m", "meaning": "lowest gauged stage: the model's stage origin"})
    idata.constant_data["stage_ref"] = ((), np.float64(st.stage_offset + st.stage_ref), {"units": "m", "meaning": "stage where log_q_ref applies"})
    for group in ("prior", "prior_predictive"):
        if group in prior.groups():
            idata.add_groups({group: prior[group]})
    for name, unit in POSTERIOR_UNITS.items():
        idata.posterior[name].attrs["units"] = unit
    idata.constant_data["stage"].attrs["units"] = "m"
    idata.constant_data["discharge"].attrs["units"] = "m3/s"
    idata.constant_data["discharge_sd"].attrs["units"] = "m3/s (1 SD)"
    idata.observed_data["log_discharge"].attrs["units"] = "ln(m3/s)"
    full = {"station": st.station_id, "stage_units": "m", "discharge_units": "m3/s", **attrs}
    full.update({f"version_{k}": v for k, v in package_versions().items()})
    idata.attrs.update(full)
    idata.posterior.attrs.update(full)
    return idata


def run_batch(stations, clean_paths, prior_paths, out_paths, seed: int, settings: SamplerSettings,
              priors: Priors, attrs: dict, h0_ranges=None) -> None:
    """Pipeline step: fit a batch of stations in one vectorised run (per shape bucket), one file each."""
    import time

    import pandas as pd

    from . import status
    from .io import load_idata, save_idata

    todo = []
    for i, station_id in enumerate(stations):
        prior = load_idata(prior_paths[i])
        if status.skipped(prior):
            save_idata(status.empty_idata(station_id, status.skipped(prior)), out_paths[i])
            print(f"station {station_id}: skipped ({status.skipped(prior)})")
            continue
        h0 = None if h0_ranges is None else h0_ranges[i]
        todo.append((StationData.from_clean(station_id, pd.read_csv(clean_paths[i]), h0), prior, out_paths[i]))
    if not todo:
        return
    start = time.perf_counter()
    driver = BatchedNUTS(settings, priors)
    results = driver.fit([station for station, _, _ in todo], seed)
    elapsed = time.perf_counter() - start
    buckets = sorted({bucket_size(st.n) for st, _, _ in todo})
    print(f"{len(todo)} stations (buckets {buckets}) sampled in {elapsed:.1f} s, including trace and "
          f"compile or cache load")
    for (station, prior, out), result in zip(todo, results):
        save_idata(inference_data(result, prior, {"seed": int(seed), **attrs}), out)
