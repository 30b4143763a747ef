"""The sampler driver: NUTS for many stations in one compiled program.

``numpyro.infer.MCMC.run`` recompiles its sampling loop for every data set, because the data
values are baked into the program. Here the data are real arguments of one jitted function,
stations are padded to a shape bucket and masked, and the NUTS kernel runs over all chains of all
stations in one program (vectorised in groups of ``chains_per_step``): each chain keeps its own
step size and mass matrix. One compile per (bucket, number of stations, settings) serves every
station, and with JAX's persistent compilation cache it is shared across processes too; the traced program is
kept as well (:mod:`ratingflow.exported`), so a new process neither traces nor compiles it again. It is traced with
the gaugings' axis symbolic (:func:`_any_bucket`): one trace serves every shape bucket.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from functools import cached_property, partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .data import StationData, bucket_size
from .exported import cached_jit, on_device
from .initial import INIT_JITTER, init_centre
from .keys import station_keys
from .candidates import Candidate, Priors, Structure
from .model import rating_model

@dataclass(frozen=True)
class SamplerSettings:
    num_chains: int = 4
    num_warmup: int = 1000
    num_samples: int = 1000
    target_accept: float = 0.9
    max_tree_depth: int = 10
    dense_mass: bool = False
    #: chains advanced together in one vectorised NUTS step; 0 = all chains of a bucket and candidate;
    #: -1 (auto) = CPU_CHAINS_PER_STEP on a CPU (CPU_SEGMENTED_CHAINS_PER_STEP for a program with
    #: breakpoints, CPU_OFFSETS_CHAINS_PER_STEP for the BaRatin form and the retry), GPU_CHAINS_PER_STEP on a GPU. Vectorised NUTS moves
    #: at the pace of the deepest tree among them; fits are grouped by candidate, so the trees of one
    #: group are alike.
    chains_per_step: int = -1
    #: settings that replace the ones above in a program of the BaRatin form (each control its own offset;
    #: config ``sampler.offsets``), as (name, value) pairs. Its posterior has a thin ridge between a control's
    #: offset and exponent; smaller steps (target 0.99) and longer chains let it converge (docs/offsets.md).
    #: Not in the repr: a one-h0 program's traced and compiled forms keep their cache keys.
    offsets: tuple = field(default=(), repr=False)
    #: NUTS's tree depth in place of :attr:`max_tree_depth` in a timeless one-h0 program, as (form, depth) pairs,
    #: form ``power_law`` (one segment) or ``segmented`` (config ``sampler.max_tree_depth_by_form``). Vectorised
    #: NUTS runs every chain of a call until the deepest tree among them is done: with 32 chains, one chain's
    #: rare 31- or 63-step tree holds up the other 31, so a depth of 10 costs several times a depth of 3 for much
    #: the same effective sample size (README, "Shallow trees"). A capped tree is still an exact NUTS kernel;
    #: trajectories that it cuts short lower the ESS, which the diagnostics gate checks. The BaRatin form, rating
    #: periods, the generalized power law and the retry keep :attr:`max_tree_depth`. Not in the repr either: a
    #: program it does not cap keeps its cache keys.
    max_tree_depth_by_form: tuple = field(default=(), repr=False)
    #: with ``chains_per_step`` auto on a CPU, run each fit in a call of its own, as the BaRatin form does: set by
    #: :meth:`replaced` for the retry, whose fits are the ones that failed the gate with long or uneven trees. A
    #: retry padded to the segmented program's 2 fits (or the power law's 8) paid for the copies: the 15 retried
    #: fits of a 500-station benchmark took 97.5 s that way and 59.6 s alone, with the same 11 passing the gate
    #: (2-core VM, warm, one at a time; docs/time_budget.md, "The retry alone"). Not in the repr (the call's
    #: shape already names the program), in :meth:`key` (the first round's fits do not depend on it) or in
    #: comparisons (:func:`ratingflow.fit.same_settings`: a BaRatin fit that ran alone with the retry's settings is not
    #: fitted again).
    one_fit_per_call: bool = field(default=False, repr=False, compare=False)
    #: the BaRatin form's one-breakpoint fits by importance sampling over a breakpoint grid, NUTS where its weights
    #: fail (:mod:`ratingflow.importance`, :func:`ratingflow.importance.grid_first`); set through :attr:`offsets`
    #: (config ``sampler.offsets.importance``), so it reaches the keys of the stations it can change only. Not in the
    #: repr: the NUTS programs keep their keys.
    importance: bool = field(default=False, repr=False)

    @classmethod
    def from_config(cls, cfg: dict) -> "SamplerSettings":
        values = {k: cfg[k] for k in asdict(cls()) if k in cfg}
        values["offsets"] = tuple(sorted((values.get("offsets") or {}).items()))
        values["max_tree_depth_by_form"] = tuple(sorted((values.get("max_tree_depth_by_form") or {}).items()))
        return cls(**values)

    def for_structure(self, structure: Structure) -> "SamplerSettings":
        """The settings a program of ``structure`` runs with: :attr:`offsets` in place of the others in the
        BaRatin form, :attr:`max_tree_depth_by_form` in a timeless one-h0 program."""
        plain = replace(self, offsets=(), max_tree_depth_by_form=())
        if structure.segment_offsets:
            return replace(plain, **dict(self.offsets))
        depth = dict(self.max_tree_depth_by_form).get(tree_form(structure))
        return replace(plain, max_tree_depth=depth) if depth else plain

    def replaced(self, **values) -> "SamplerSettings":
        """These settings with ``values`` in place, in the BaRatin form too (the retry's settings win over
        :attr:`offsets`), and without :attr:`max_tree_depth_by_form`: the retry's trees go to
        :attr:`max_tree_depth`."""
        return replace(self, **values, offsets=tuple((k, v) for k, v in self.offsets if k not in values),
                       max_tree_depth_by_form=(), one_fit_per_call=True)

    def key(self) -> dict:
        """The settings that every fit depends on, for its key (:func:`ratingflow.fit.station_key`); the BaRatin
        form's add :attr:`offsets`."""
        return {k: v for k, v in asdict(self).items() if k not in ("offsets", "one_fit_per_call", "importance")}


def tree_form(structure: Structure) -> str | None:
    """The form of :attr:`SamplerSettings.max_tree_depth_by_form` a program of ``structure`` has: ``power_law``,
    ``segmented``, or None (the BaRatin form, rating periods, the generalized power law: no cap)."""
    if structure.segment_offsets or structure.max_periods > 1 or structure.gplm_terms:
        return None
    return "segmented" if structure.n_breaks else "power_law"


@dataclass
class FitResult:
    """Raw draws of one station and candidate, shapes (chain, draw[, ...])."""

    station: StationData
    candidate: Candidate
    context: dict[str, np.ndarray]
    posterior: dict[str, np.ndarray]
    sample_stats: dict[str, np.ndarray]
    log_likelihood: np.ndarray
    #: :func:`ratingflow.posterior.fit_convergence`'s result, once computed (the choice and the retry both ask)
    convergence: dict | None = field(default=None, repr=False, compare=False)
    #: :func:`ratingflow.posterior.fit_loo`'s result, once computed (the choice, its rounds and the fit file ask)
    loo: object = field(default=None, repr=False, compare=False)
    #: the rounding of a change of control the fit ran with (its structure's ``transition``; the BaRatin form may have
    #: its own, ``models.offsets_transition``); None: the config's (:func:`ratingflow.posterior.fit_structure`)
    transition: float | None = field(default=None, compare=False)


def _model_args(arrays: dict, context: dict):
    kwargs = {"discharge": arrays["discharge"]}
    if "period" in arrays:
        kwargs["period"] = arrays["period"]
    return (arrays["stage"], arrays["discharge_sd_log"], context, arrays["mask"]), kwargs


class BatchedNUTS:
    """A reusable, jitted NUTS driver for one model structure and one set of sampler settings."""

    def __init__(self, structure: Structure, settings: SamplerSettings = SamplerSettings(), priors: Priors = Priors()):
        self.structure = structure
        self.settings = settings.for_structure(structure)
        self.priors = priors
        self.model = partial(rating_model, structure=structure, priors=priors)
        # traced once per signature across jobs (ratingflow.exported): tracing NUTS took seconds per program
        self._run = cached_jit(self._run_batch, f"nuts|{structure!r}|{self.settings!r}|{priors!r}", _any_bucket)

    @cached_property
    def _generators(self):
        """The model's potential and postprocess functions of (args, kwargs), needed only to trace a program:
        made on first use (about 1.5 s of eager JAX per structure, which a job that loads its programs skips)."""
        from numpyro.infer.util import initialize_model  # NumPyro only where a program is traced (model._numpyro)

        dummy = StationData("dummy", np.array([0.0, 0.5, 1.0]), np.ones(3), np.full(3, 0.05),
                            period=np.zeros(3, int) if self.structure.max_periods > 1 else None)
        context = dummy.context(Candidate("seg1"), self.structure, self.priors)
        args, kwargs = _model_args(on_device(dummy.padded(16)), on_device(context))
        _, potential_gen, postprocess_gen, _ = initialize_model(
            jax.random.PRNGKey(0), self.model, dynamic_args=True, model_args=args, model_kwargs=kwargs
        )
        return potential_gen, postprocess_gen

    def _run_chain(self, key, z0, arrays, context):
        from numpyro.infer.hmc import hmc  # traced, never run in a job that loads its program (model._numpyro)
        from numpyro.infer.util import log_likelihood

        s = self.settings
        args, kwargs = _model_args(arrays, context)
        init_kernel, sample_kernel = hmc(potential_fn_gen=self._generators[0], algo="NUTS")
        metric = laplace_metric(self._generators[0](*args, **kwargs), z0)
        state = init_kernel(
            z0,
            s.num_warmup,
            inverse_mass_matrix=metric if s.dense_mass else jnp.diag(metric),
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
        constrained = jax.vmap(self._generators[1](*args, **kwargs))(z)
        samples = {k: v for k, v in constrained.items() if k != "log_curve"}
        loglik = log_likelihood(self.model, samples, *args, **kwargs)["log_discharge"]
        return samples, stats, loglik

    def _run_batch(self, init_keys, keys, centres, arrays, contexts):
        """One row per (station, candidate) fit. init_keys, keys (F, 2); centres: dict of (F, ...);
        arrays: dict of (F, N); contexts: dict of (F, ...).

        Fits and chains share one vmapped axis (F * C): nesting two vmaps doubles the
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
        out = jax.vmap(self._run_chain)(chain_keys, z0, jax.tree.map(per_chain, arrays), jax.tree.map(per_chain, contexts))
        return jax.tree.map(lambda x: x.reshape((n_fits, n_chains) + x.shape[1:]), out)

    def fits_per_call(self, total: int) -> int:
        """Fits in one call of the compiled program (``chains_per_step`` / chains per fit). A fixed
        number, padded with copies, so that one program serves every batch and a fit's draws do not
        depend on its companions; 0: every fit of the call's bucket at once (padded to a power of two)."""
        group = self.settings.chains_per_step
        if group < 0:
            if jax.default_backend() != "cpu":
                group = GPU_CHAINS_PER_STEP
            else:
                group = (CPU_OFFSETS_CHAINS_PER_STEP if self.structure.segment_offsets or self.settings.one_fit_per_call
                         else CPU_SEGMENTED_CHAINS_PER_STEP if self.structure.n_breaks else CPU_CHAINS_PER_STEP)
        if group == 0:
            return bucket_size(total, 1)
        return max(1, group // self.settings.num_chains)

    def fit(self, stations: list[StationData], candidates, seed: int) -> list[dict[str, FitResult]]:
        """Sample the candidates of every station: ``candidates`` is one list for all stations or one
        list per station. Fits of one shape bucket and candidate run together, in calls of
        :meth:`fits_per_call` fits (a one-control fit never waits for a segmented one's deep trees).

        Each station is padded to its *own* bucket, never to a larger one: a different padded
        length changes the order of floating-point sums and so the draws. Grouped this way, a
        station's draws depend only on its data, the candidate and the seed, not on the batch it
        landed in. Returns, per station, the fits keyed by candidate name.
        """
        per_station = candidates if candidates and isinstance(candidates[0], (list, tuple)) else [candidates] * len(stations)
        groups: dict[tuple, list[int]] = {}
        for i, (st, cands) in enumerate(zip(stations, per_station)):
            for c in cands:
                groups.setdefault((bucket_size(st.n), c.code, c.name), []).append(i)
        results: list[dict] = [{} for _ in stations]
        pending = []
        for (size, _, name), members in sorted(groups.items()):
            candidate = Candidate(name)
            jobs = [(stations[i], candidate) for i in members]
            pending.append((members, name, self._fit_bucket(jobs, size, seed)))
        for members, name, fits in pending:
            for i, res in zip(members, fits()):
                results[i][name] = res
        return results

    def _fit_bucket(self, jobs: list[tuple[StationData, Candidate]], size: int, seed: int):
        """Dispatch the fits of one bucket (asynchronously, :data:`CALLS_AHEAD` calls ahead of the one collected);
        returns a function that collects them."""
        padded = [st.padded(size, c) for st, c in jobs]
        contexts = [st.context(c, self.structure, self.priors) for st, c in jobs]
        centres = [init_centre(st, c, self.structure) for st, c in jobs]
        keys = [(station_keys(seed, st.station_id), c.code) for st, c in jobs]
        init_keys, fit_keys = (np.stack([np.asarray(jax.random.fold_in(k[use], code)) for k, code in keys])
                               for use in ("init", "fit"))
        per_call = self.fits_per_call(len(jobs))
        starts = range(0, len(jobs), per_call)

        def dispatch(start):
            part = list(range(start, min(start + per_call, len(jobs))))
            part += [part[-1]] * (per_call - len(part))  # padded with copies of the last fit
            return self._run(on_device(init_keys[part]), on_device(fit_keys[part]), _stack(centres, part),
                             _stack(padded, part), _stack(contexts, part))

        # a few calls ahead, not all of them: the outputs of every call of a 100-station batch, waiting to be
        # collected, took about 400 MB of a fit job's peak memory (issue 16)
        calls = [dispatch(start) for start in starts[:CALLS_AHEAD]]

        def collect() -> list[FitResult]:
            results = []
            for n, start in enumerate(starts):
                if n + CALLS_AHEAD < len(starts):
                    calls.append(dispatch(starts[n + CALLS_AHEAD]))
                samples, stats, loglik = jax.device_get(calls.pop(0))  # the call's outputs freed once read
                for j in range(min(per_call, len(jobs) - start)):
                    st, candidate = jobs[start + j]
                    post = {k: np.asarray(v[j]) for k, v in samples.items()}
                    sstats = {k: np.asarray(v[j]) for k, v in stats.items()}
                    sstats["tree_depth"] = np.floor(np.log2(sstats["n_steps"] + 1)).astype(np.int64)
                    results.append(FitResult(st, candidate, contexts[start + j], post, sstats,
                                             # a copy: a view would keep the call's padded array alive
                                             np.array(loglik[j][..., : st.n]), transition=self.structure.transition))
            return results

        return collect


#: calls of a bucket's fits dispatched ahead of the one being collected (:meth:`BatchedNUTS._fit_bucket`)
CALLS_AHEAD = 2
#: chains advanced together by default: on a CPU the per-iteration cost of NUTS's while loops is paid
#: once for all of them (32 chains: about 3x faster per fit than 4); on a GPU many more fill the device
CPU_CHAINS_PER_STEP = 32
#: in a program with breakpoints trees vary much more between chains (a segmented candidate on a
#: one-control station) and a call moves at the pace of its deepest tree: 8 chains (2 fits) per call
#: took 46 s for 8 such seg2 fits, 4 chains 53 s, 32 chains 84 s (2-core VM, 4 x (500 + 1000))
CPU_SEGMENTED_CHAINS_PER_STEP = 8
#: the BaRatin form (each control its own offset) varies most: a fit whose chains follow its offset-exponent ridge
#: takes trees of hundreds of steps where others take 20, so each fit runs alone. Its seg2 fits of 12 simulated
#: two-control stations, warm, 4 x (1000 + 2000) at target 0.99: 64.7 s with 4 chains per call, 78.9 s with 8,
#: 113.0 s with 16; 12 others: 78.0 s with 4, 91.8 s with 8 (2-core VM, /tmp probe, one run at a time)
#: The retry's fits run alone too (:attr:`SamplerSettings.one_fit_per_call`).
CPU_OFFSETS_CHAINS_PER_STEP = 4
GPU_CHAINS_PER_STEP = 4096


#: bounds of the curvature (precision) eigenvalues of the starting metric, unconstrained units
_CURVATURE = (1e-2, 1e10)


def laplace_metric(potential, z0: dict):
    """The chains' starting inverse mass matrix: the inverse Hessian of the potential at the start (a
    Laplace approximation at the profile optimum), with its eigenvalues' magnitudes bounded, and the
    identity where it is not finite.

    Started from the identity, the first warm-up window (about 100 iterations) runs trees of hundreds
    of leapfrog steps on a posterior whose scales span four orders of magnitude (ln b to +-0.01, a
    prior-only breakpoint to +-1.5): that window cost more than the other 1900 iterations. Started from
    the curvature, trees are short from the first iteration; windowed adaptation then takes over.
    """
    from jax.flatten_util import ravel_pytree

    flat, unravel = ravel_pytree(z0)
    hessian = jax.hessian(lambda f: potential(unravel(f)))(flat)
    values, vectors = jnp.linalg.eigh(0.5 * (hessian + hessian.T))
    values = jnp.clip(jnp.abs(values), *_CURVATURE)
    inverse = (vectors / values) @ vectors.T
    return jnp.where(jnp.all(jnp.isfinite(inverse)), inverse, jnp.eye(flat.shape[0]))


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


def _any_bucket(args):
    """The shapes :meth:`BatchedNUTS._run_batch` is traced with: the gaugings' axis of the station arrays (the shape
    bucket) symbolic, so that one traced program serves every bucket (tracing NUTS took about 6 s of the 11 s
    a new program cost; XLA still compiles one per bucket)."""
    n = jax.export.symbolic_shape("gaugings")[0]
    init_keys, keys, centres, arrays, contexts = args
    fixed = lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype)  # noqa: E731
    return (fixed(init_keys), fixed(keys), jax.tree.map(fixed, centres),
            jax.tree.map(lambda x: jax.ShapeDtypeStruct((x.shape[0], n, *x.shape[2:]), x.dtype), arrays),
            jax.tree.map(fixed, contexts))


def _stack(dicts: list[dict], rows: list[int]) -> dict:
    """One array per key, stacked over the given fits of a bucket."""
    return on_device({k: np.stack([dicts[i][k] for i in rows]) for k in dicts[0]})


#: a fixed number per site, for its starting-point jitter key
_SITE_CODES = {name: i for i, name in enumerate(INIT_JITTER)}
