"""The sampler driver: NUTS for many stations in one compiled program.

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
from .model import Candidate, Priors, Structure, rating_model

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
    kwargs = {"discharge": arrays["discharge"]}
    if "period" in arrays:
        kwargs["period"] = arrays["period"]
    return (arrays["stage"], arrays["discharge_sd_log"], context, arrays["mask"]), kwargs


class BatchedNUTS:
    """A reusable, jitted NUTS driver for one model structure and one set of sampler settings."""

    def __init__(self, structure: Structure, settings: SamplerSettings = SamplerSettings(), priors: Priors = Priors()):
        self.structure = structure
        self.settings = settings
        self.priors = priors
        self.model = partial(rating_model, structure=structure, priors=priors)
        dummy = StationData("dummy", np.array([0.0, 0.5, 1.0]), np.ones(3), np.full(3, 0.05),
                            period=np.zeros(3, int) if structure.max_periods > 1 else None)
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
        padded = [st.padded(size, c) for st, c in jobs]
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


def driver_cache(default: Structure, settings: SamplerSettings, priors: Priors):
    """``driver_for(structure=None)``: one :class:`BatchedNUTS` per model structure (``None``: ``default``),
    built when first asked for, so that a job traces each program once."""
    drivers: dict = {}

    def driver_for(structure: Structure | None = None) -> BatchedNUTS:
        structure = structure or default
        if structure not in drivers:
            drivers[structure] = BatchedNUTS(structure, settings, priors)
        return drivers[structure]

    return driver_for


def _stack(dicts: list[dict]) -> dict:
    """One array per key, stacked over the fits of a bucket."""
    return {k: jnp.asarray(np.stack([d[k] for d in dicts])) for k in dicts[0]}


#: a fixed number per site, for its starting-point jitter key
_SITE_CODES = {name: i for i, name in enumerate(INIT_JITTER)}
