"""The BaRatin form's two-control fit by importance sampling over a grid of its breakpoint, NUTS where that fails.

Where the gaugings do not pin the change of control, the BaRatin form's posterior (seg2, each control its own offset)
is a funnel along the breakpoint: at its low end the lower control's offset and exponent fall back to their priors,
at its high end the upper control's exponent does, and NUTS's step size is set by the narrow end (docs/time_budget.md,
"The BaRatin form's breakpoint"): 4 chains x 3 000 iterations at target 0.99, about 8 job-s a fit. Given the
breakpoint, though, the other parameters are close to Gaussian. So, for each fit:

1. **A grid of the breakpoint** (its unconstrained site ``break_u``, :data:`NODES` nodes over +-:data:`SPAN` prior
   SDs). At each node, the mode of the other sites (damped Newton steps) and the Hessian there: a Laplace
   approximation of the other sites given the breakpoint, and of the breakpoint's own marginal density
   (``-U(mode) - ln det(H) / 2``). A second grid of as many nodes then covers the nodes within :data:`KEEP` log
   units of the best, each started from the first grid's nearest mode, then again from the better of its two
   neighbours' modes (moved along their slopes), the lower of its two modes kept: from one start alone, some nodes
   stopped short of their mode, their cells' posterior mass unproposed (docs/models.md, "Where it missed part of the
   posterior").
2. **Proposals**, :data:`PROPOSALS` per chain (more sets of them, up to :data:`BATCHES`, where the weights' ESS
   alone falls short): a cell of the second grid by its marginal density (:data:`DEFENSIVE` of the cells'
   probability spread evenly), the breakpoint uniform in it, the other sites from a Student-t (:data:`DOF` degrees of
   freedom) around the node's mode moved along ``d mode / d break_u``, with the node's covariance; ``sigma_z``
   either sign (the model has ``|sigma_z|``).
   The proposal's density is exact, so the importance weights (posterior / proposal) are too.
3. **Weights smoothed by PSIS** (Vehtari et al. 2024, JMLR 25:72), all chains' together (one Pareto k of
   chains x :data:`PROPOSALS` weights); each chain's draws are resampled from its own proposals by them. The chains
   are independent proposal sets, so R-hat between them means what it does for NUTS chains; the ESS is the smoothed
   weights' (``1 / sum w^2``), which bounds the resampled draws' own.
4. **A second stage** where the first's Pareto k fails: the cells drawn as often as the first stage's weights put
   the posterior in them, and the nodes' Laplace approximations moved and widened to the weighted draws in their
   whitened coordinates (:func:`_adapted`); its own weights alone decide.

A fit that fails the diagnostics gate (:func:`ratingflow.posterior.gate` at :data:`STANDS`: Pareto k above
:data:`PARETO_K_MAX`, ESS under :data:`MIN_ESS`, or chains whose draws differ; the proposal does not hold the
posterior, a second mode, a ridge the Laplace approximation misses, or too few of its proposals count) is sampled by
NUTS instead, with the form's own settings, as before. So is a BaRatin fit with more than one breakpoint, any fit
outside the BaRatin form, and every fit of a process whose JAX runs on more than one CPU thread or on a GPU (:func:`runs_here`).
:func:`grid_first` gives the form's :class:`~ratingflow.sampler.BatchedNUTS` this way of fitting when its settings
ask for it (config ``sampler.offsets.importance``); :func:`ratingflow.choice.fit_and_choose` calls it.
"""
from __future__ import annotations

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.scipy.special import gammaln

from .candidates import Candidate, Structure
from .data import bucket_size
from .exported import cached_jit, on_device
from .initial import init_centre
from .keys import station_keys
from .posterior import PARETO_K_MAX, candidate_posterior, convergence, gate
from .psis import psislw_row
from .runtime import progress
from .sampler import BatchedNUTS, FitResult, _model_args

#: nodes of each of the two breakpoint grids
NODES = 41
#: the first grid spans +- this many prior SDs of ``break_u``
SPAN = 3.5
#: the second grid covers the first's nodes within this many log units of the largest marginal density
KEEP = 15.0
#: damped Newton steps at each node, from the centre (first grid), or the first grid's nearest mode and then its
#: neighbours' (second grid); each
#: step tries 1, 1/2, 1/4 and 1/10 of the step, or none, and keeps the best. BFGS (up to 200 iterations) before them
#: took 80 % of a fit's time (vectorised over the nodes, it runs as long as the slowest node's) and bought no fit that
#: stands: without it, 200 of the coverage study's first 200 stations' fits stand as with it, the median fit 0.23 s
#: against 0.51 s (docs/time_budget.md, "Newton steps alone at the grid's nodes")
NEWTON = 12
#: degrees of freedom of the proposal's Student-t
DOF = 5
#: proposals per chain
PROPOSALS = 4000
#: the share of the cells' probability spread evenly over the second grid's nodes whose Laplace approximation exists,
#: the rest by their marginal density: where the approximation at a node misses much of the posterior there (a mode
#: the Newton steps did not find), its cell still gets proposals. Without it, 3 of the coverage study's first 80
#: stations' fits had a Pareto k of 16-245 (docs/time_budget.md, "Defensive cells and a second stage")
DEFENSIVE = 0.2
#: where the first stage's weights fail (Pareto k above :data:`~ratingflow.posterior.PARETO_K_MAX`), a second
#: stage draws the cells with this share of their probability from the first stage's weighted proposals in each
#: cell (the posterior's mass there), the rest as in the first
ADAPTED = 0.7
#: and draws the other sites from the nodes' Laplace approximations moved and scaled to the first stage's weighted
#: proposals, this many times as wide (:func:`_adapted`). Wide, because the first stage failed where its weights are
#: heavy-tailed, and the weighted draws of that stage understate the tail they missed: at 1.2 the second stage left
#: 2 of the coverage study's first 200 stations' fits and 3 of the 500-station benchmark's round to NUTS (Pareto k
#: 0.71-0.82), at 2.0 one of those 3, at 2.5 none of them (k -0.37 to 0.20; docs/time_budget.md, "A wider second stage")
WIDEN = 2.5
#: stages in all: each after the first adapted to the one before it, while the weights' Pareto k fails
STAGES = 2
#: every station is padded to at least this many gaugings: one program (one compilation, about 25 s) serves the
#: buckets up to it, where NUTS's compile one each; the likelihood is a small part of a fit's time
MIN_SIZE = 256
#: the smallest ESS of the smoothed weights, summed over the chains (the gate's ``ess_bulk_min`` by default)
MIN_ESS = 400.0
#: where the weights' tail is fine (Pareto k at most :data:`~ratingflow.posterior.PARETO_K_MAX`) but their ESS short
#: of :data:`BATCH_ESS`, more sets of proposals are drawn (the same proposal, other keys), up to this many in all
BATCHES = 8
#: the ESS more sets aim at: about :data:`MIN_ESS` per chain. With 500 over four chains, the chains' resampled draws
#: differed (R-hat 1.017 on two of the coverage study's stations), which the diagnostics gate rejects
BATCH_ESS = 4 * MIN_ESS
#: the diagnostics gate's thresholds (:func:`ratingflow.posterior.gate`, at the config's defaults) a fit must pass to
#: stand, with the weights' Pareto k; else NUTS takes it. A fit that stood and then failed the pipeline's gate would
#: have no NUTS fit to take over (two of the coverage study's, R-hat 1.017, before the R-hat was checked here)
STANDS = {"rhat_max": 1.01, "ess_bulk_min": MIN_ESS, "ess_tail_min": MIN_ESS, "max_divergences": 0}


def _t_logpdf(x, mean, chol, dof):
    """Multivariate Student-t log density with scale ``chol chol^T``."""
    d = x.shape[-1]
    y = jax.scipy.linalg.solve_triangular(chol, x - mean, lower=True)
    return (gammaln((dof + d) / 2) - gammaln(dof / 2) - d / 2 * jnp.log(dof * jnp.pi) - jnp.sum(jnp.log(jnp.diag(chol)))
            - (dof + d) / 2 * jnp.log1p(jnp.sum(y * y) / dof))


def _newton_step(f, th):
    """One damped Newton step of ``f`` from ``th``: the Hessian's eigenvalues taken by size (at least 1e-3), then
    1, 1/2, 1/4 or 1/10 of the step, or none, whichever gives the smallest finite ``f``. Where the step is not
    finite (a gradient or Hessian with NaN), none: the node keeps the point it had, not NaN from then on."""
    g, h = jax.grad(f)(th), jax.hessian(f)(th)
    values, vectors = jnp.linalg.eigh(0.5 * (h + h.T))
    move = -(vectors / jnp.clip(jnp.abs(values), 1e-3, 1e10)) @ (vectors.T @ g)
    move = jnp.where(jnp.all(jnp.isfinite(move)), move, 0.0)
    tries = th[None] + jnp.array([1.0, 0.5, 0.25, 0.1, 0.0])[:, None] * move[None]
    fv = jax.vmap(f)(tries)
    return tries[jnp.argmin(jnp.where(jnp.isfinite(fv), fv, jnp.inf))]


def _index(z0: dict, site: str) -> int:
    """Position of ``site``'s first element in ``ravel_pytree(z0)`` (a dict's leaves in sorted key order)."""
    return sum(int(np.prod(np.shape(z0[k]))) for k in sorted(z0) if k < site)


class GridImportance:
    """Importance sampling of the one-breakpoint BaRatin form (see the module's docstring) for one structure."""

    def __init__(self, nuts):
        """``nuts``: the form's :class:`~ratingflow.sampler.BatchedNUTS` (its model and settings: chains, draws)."""
        self.nuts = nuts
        self.structure = nuts.structure
        self.settings = nuts.settings
        self.priors = nuts.priors
        key = (f"importance|{self.structure!r}|{self.priors!r}|{NODES},{SPAN},{KEEP},newton{NEWTON},{DOF},{PROPOSALS},"
               f"{DEFENSIVE}")
        self._propose = cached_jit(self._proposals, key + f"|{self.settings.num_chains}", _any_bucket)
        self._density = cached_jit(self._log_densities, key + "|density", _any_bucket_draws)
        self._constrain = cached_jit(self._constrained, key + "|constrain", _any_bucket_draws)

    def _sites(self, arrays, context):
        args, kwargs = _model_args(arrays, context)
        potential_gen, postprocess_gen = self.nuts._generators
        return potential_gen(*args, **kwargs), postprocess_gen(*args, **kwargs), args, kwargs

    def _proposals(self, key, z0, arrays, context, shift, white_mean, white_chol):
        """Proposals (chains, PROPOSALS, dim) in unconstrained space, flat, their log density, their cells (chains,
        PROPOSALS), their coordinates whitened by their node's Laplace approximation (chains, PROPOSALS, dim - 1) and
        the cells' log probabilities (:data:`NODES`): those of the second grid's marginal density, :data:`DEFENSIVE`
        of them spread evenly, then ``shift`` (:data:`NODES`) added to their logits. ``white_mean`` and
        ``white_chol`` move and scale each node's approximation in its whitened coordinates. Zeros, zeros and the
        identity: the proposal as it is; see :func:`_adapted`."""
        potential, _, _, _ = self._sites(arrays, context)
        flat0, unravel = ravel_pytree(z0)
        dim = flat0.shape[0]
        iu, isg = _index(z0, "break_u"), _index(z0, "sigma_z")
        others = np.array([i for i in range(dim) if i != iu])
        isg_o = int(np.flatnonzero(others == isg)[0])

        def full(theta, u):
            return jnp.zeros(dim, flat0.dtype).at[others].set(theta).at[iu].set(u)

        def energy(flat):
            return potential(unravel(flat))

        def node(u, start):
            f = lambda th: energy(full(th, u))  # noqa: E731

            th, _ = jax.lax.scan(lambda t, _: (_newton_step(f, t), None), start, None, length=NEWTON)
            h = jax.hessian(f)(th)
            values, vectors = jnp.linalg.eigh(0.5 * (h + h.T))
            values = jnp.clip(values, 1e-3, 1e10)
            cross = jax.jacfwd(lambda v: jax.grad(lambda t: energy(full(t, v)))(th))(u)
            slope = -(vectors / values) @ (vectors.T @ cross)
            chol = jnp.linalg.cholesky((vectors / values) @ vectors.T)
            return th, -f(th) - 0.5 * jnp.sum(jnp.log(values)), slope, chol

        def at(u, th):  # the energy at a node's breakpoint, +inf for NaN
            return jnp.nan_to_num(energy(full(th, u)), nan=jnp.inf)

        def from_neighbours(us, found):
            """Each node's Newton steps again, from the better of its neighbours' modes moved along their slopes;
            the lower of the two modes kept"""
            th, _, slope, _ = found
            step = us[1] - us[0]
            left = jnp.concatenate([th[:1], th[:-1] + slope[:-1] * step])
            right = jnp.concatenate([th[1:] - slope[1:] * step, th[-1:]])
            at_all = jax.vmap(at)
            start = jnp.where((at_all(us, left) <= at_all(us, right))[:, None], left, right)
            again = jax.vmap(node)(us, start)
            better = at_all(us, again[0]) < at_all(us, th)
            return tuple(jnp.where(better.reshape((-1,) + (1,) * (a.ndim - 1)), b, a) for a, b in zip(found, again))

        def grid(lo, hi, starts, neighbours=False):
            us = jnp.linspace(lo, hi, NODES)
            found = jax.vmap(node)(us, starts(us))
            th, logm, slope, chol = from_neighbours(us, found) if neighbours else found
            return us, th, jnp.where(jnp.isfinite(logm), logm, -jnp.inf), slope, chol

        width = SPAN * self.priors.break_u_sd
        us, th, logm, _, _ = grid(-width, width, lambda us: jnp.broadcast_to(flat0[others], (NODES, dim - 1)))
        kept = logm > jnp.max(logm) - KEEP
        first, last = jnp.argmax(kept), NODES - 1 - jnp.argmax(kept[::-1])
        step = us[1] - us[0]
        nearest = lambda v: th[jnp.clip(jnp.round((v - us[0]) / step).astype(jnp.int32), 0, NODES - 1)]  # noqa: E731
        us, th, logm, slope, chol = grid(us[first] - step, us[last] + step, nearest, neighbours=True)
        step = us[1] - us[0]
        # the defensive share over the nodes whose Laplace approximation exists (a Hessian without NaN)
        usable = jnp.isfinite(logm) & jnp.all(jnp.isfinite(chol), axis=(1, 2)) & jnp.all(jnp.isfinite(slope), axis=1)
        logm = jnp.where(usable, logm, -jnp.inf)
        even = jnp.where(usable, -jnp.log(jnp.sum(usable)), -jnp.inf)
        log_p = jnp.logaddexp(jnp.log1p(-DEFENSIVE) + jax.nn.log_softmax(logm), jnp.log(DEFENSIVE) + even)
        log_p = jax.nn.log_softmax(log_p + shift)
        log_cell = log_p - jnp.log(step)

        def chain(key):
            k_cell, k_u, k_t, k_sign = jax.random.split(key, 4)
            cell = jax.random.categorical(k_cell, log_p, shape=(PROPOSALS,))
            u = us[cell] + step * (jax.random.uniform(k_u, (PROPOSALS,)) - 0.5)
            mean = th[cell] + slope[cell] * (u - us[cell])[:, None]
            # a multivariate t: one chi-square (DOF squared normals, no gamma sampler) per proposal for every site
            k_z, k_w = jax.random.split(k_t)
            chi2 = jnp.sum(jax.random.normal(k_w, (PROPOSALS, DOF)) ** 2, axis=-1)
            normal = jax.random.normal(k_z, (PROPOSALS, dim - 1)) * jnp.sqrt(DOF / chi2)[:, None]
            # the node's Laplace approximation, moved and scaled in its whitened coordinates by ``white``
            mean = mean + jnp.einsum("nij,j->ni", chol[cell], white_mean)
            scale = jnp.einsum("nij,jk->nik", chol[cell], white_chol)
            theta = mean + jnp.einsum("nij,nj->ni", scale, normal)
            sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, (PROPOSALS,)), -1.0, 1.0)
            theta = theta.at[:, isg_o].multiply(sign)
            mirrored = theta.at[:, isg_o].multiply(-1.0)
            density = jax.vmap(lambda x, m, c: _t_logpdf(x, m, c, DOF))
            log_q = log_cell[cell] + jnp.logaddexp(density(theta, mean, scale),
                                                   density(mirrored, mean, scale)) - jnp.log(2.0)
            return jax.vmap(full)(theta, u), log_q, cell, white_mean + normal @ white_chol.T

        flats, log_q, cells, white = jax.vmap(chain)(jax.random.split(key, self.settings.num_chains))
        return flats, log_q, cells, white, log_p

    def _log_densities(self, z0, flats, arrays, context):
        """The posterior's log density (unnormalised) of flat unconstrained draws (chains, draws, dim): a program of
        its own, as the draws' sites (splitting them from the proposals did not keep XLA's CPU runtime from wedging
        with two threads, see :func:`runs_here`, but keeps each program smaller)."""
        potential, _, _, _ = self._sites(arrays, context)
        _, unravel = ravel_pytree(z0)
        return -jax.vmap(jax.vmap(lambda f: potential(unravel(f))))(flats)

    def _constrained(self, z0, flats, arrays, context):
        """The model's sites and log-likelihood of flat unconstrained draws (chains, draws, dim)."""
        from numpyro.infer.util import log_likelihood  # NumPyro only where the program is traced (model._numpyro)

        _, postprocess, args, kwargs = self._sites(arrays, context)
        _, unravel = ravel_pytree(z0)

        def one_chain(chain):
            constrained = jax.vmap(lambda f: postprocess(unravel(f)))(chain)
            samples = {k: v for k, v in constrained.items() if k != "log_curve"}
            return samples, log_likelihood(self.nuts.model, samples, *args, **kwargs)["log_discharge"]

        return jax.vmap(one_chain)(flats)

    def inputs(self, station, candidate: Candidate) -> tuple:
        """The programs' inputs for one station and candidate: its gaugings padded (``arrays``), its ``context``
        (JAX's and NumPy's) and the centre of its unconstrained sites (``z0``)."""
        size = max(MIN_SIZE, bucket_size(station.n))
        arrays = on_device(station.padded(size, candidate))
        context_np = station.context(candidate, self.structure, self.priors)
        context = on_device(context_np)
        z0 = on_device(init_centre(station, candidate, self.structure))
        return arrays, context, context_np, z0

    def weighed(self, key, adapt, z0, arrays, context):
        """One set of proposals (:meth:`_proposals`, ``adapt`` its ``shift``, ``white_mean`` and ``white_chol``) and
        their log weights, in NumPy: proposals, log weights and (cells, whitened coordinates, cells' log
        probabilities)."""
        proposed, log_q, cells, white, log_p = self._propose(key, z0, arrays, context, *on_device(tuple(adapt)))
        log_w = self._density(z0, proposed, arrays, context) - log_q
        proposed, log_w, cells, white, log_p = jax.device_get((proposed, log_w, cells, white, log_p))
        return proposed, np.asarray(log_w, np.float64), (np.asarray(cells), np.asarray(white, np.float64),
                                                         np.asarray(log_p, np.float64))

    def fit_one(self, station, candidate: Candidate, seed: int):
        """One fit: a :class:`~ratingflow.sampler.FitResult` whose ``convergence`` carries the weights' Pareto k
        and ESS (see :func:`weights_convergence`)."""
        arrays, context, context_np, z0 = self.inputs(station, candidate)
        key = jax.random.fold_in(station_keys(seed, station.station_id)["fit"], candidate.code)
        propose_and_weigh = lambda batch_key, adapt: self.weighed(batch_key, adapt, z0, arrays, context)  # noqa: E731

        flats, picks, pareto_k, ess, stage = _draw_weighted(propose_and_weigh, key, self.settings.num_samples,
                                                            ravel_pytree(z0)[0].shape[0] - 1)
        chosen = np.stack([flats[c][p] for c, p in enumerate(picks)])
        samples, loglik = jax.device_get(self._constrain(z0, on_device(chosen), arrays, context))
        posterior = {k: np.asarray(v) for k, v in samples.items()}
        stats = {"diverging": np.zeros(chosen.shape[:2], bool)}
        result = FitResult(station, candidate, context_np, posterior, stats, np.array(loglik[..., : station.n]),
                           transition=self.structure.transition)
        result.convergence = weights_convergence(convergence(candidate_posterior(result), stats), pareto_k, ess,
                                                 stage)
        return result


def _draw_weighted(propose_and_weigh, key, num_samples: int, dim: int):
    """Proposals and their log weights from ``propose_and_weigh(key, adapt)`` ((chains, proposals, dim), (chains,
    proposals) and the proposals' cells, whitened coordinates and the cells' log probabilities,
    :meth:`GridImportance._proposals`; ``adapt``: :func:`_adapted`'s, or none), then each chain's draws
    (:func:`_resample`):

    - more sets of the same proposal (other keys, up to :data:`BATCHES`) where the weights' Pareto k is fine but
      their ESS short of :data:`BATCH_ESS`;
    - where a stage's Pareto k fails, the next (up to :data:`STAGES` in all): the proposal adapted to that stage's
      weights (:func:`_adapted`), its own sets as above (its weights alone decide).

    ``dim``: the sites other than the breakpoint. Returns the last stage's proposals of every set (chains, sets x
    proposals, dim), each chain's picks among them, the Pareto k, the ESS and the stage (from 0). The first set's key
    is ``key``; the others are folded from it."""
    adapt = (np.zeros(NODES), np.zeros(dim), np.eye(dim))
    for stage in range(STAGES):
        flats, log_w, where = [], [], []
        for batch in range(BATCHES):
            first = stage == 0 and batch == 0
            proposed, weights, at = propose_and_weigh(
                key if first else jax.random.fold_in(key, stage * BATCHES + batch), adapt)
            flats.append(proposed)
            log_w.append(weights)
            where.append(at)
            rng = np.random.default_rng(np.asarray(key).astype(np.uint64))
            picks, pareto_k, ess, w = _resample(np.concatenate(log_w, axis=1), num_samples, rng)
            # a heavy tail is not cured by more of the same proposal
            if pareto_k > PARETO_K_MAX or ess >= BATCH_ESS:
                break
        if stage == 0:
            base = where[0][2]  # the cells' log probabilities unshifted
        if pareto_k <= PARETO_K_MAX or not w.sum() > 0:
            break
        cells, white = (np.concatenate([at[i] for at in where], axis=1) for i in (0, 1))
        adapt = _adapted(cells, white, w, base)
    return np.concatenate(flats, axis=1), picks, pareto_k, ess, stage


def _adapted(cells: np.ndarray, white: np.ndarray, w: np.ndarray, base: np.ndarray):
    """The next stage's proposal (:meth:`GridImportance._proposals`'s ``shift``, ``white_mean``, ``white_chol``),
    from a stage's proposals' ``cells`` and whitened coordinates ``white`` (chains, proposals[, dim]), their
    smoothed weights ``w``, and the first stage's cells' log probabilities ``base`` (-inf: a node without a Laplace
    approximation, which keeps none):

    - each cell's probability :data:`ADAPTED` times the posterior's mass in it (the weights of the proposals in it),
      the rest as before (which keeps :data:`DEFENSIVE` of it spread over every cell): where the Laplace
      approximation's marginal density of the breakpoint is off in some cells, the second stage draws them as often
      as the posterior has them;
    - the nodes' Laplace approximations moved and scaled, in their whitened coordinates, to the weighted draws'
      mean and covariance there, :data:`WIDEN` times as wide: where they are off the same way at every node
      (a skewed site, a scale too small), the second stage's proposal is not."""
    mass = np.bincount(cells.reshape(-1), weights=w.reshape(-1), minlength=base.shape[0])
    usable = np.isfinite(base)  # a node without a Laplace approximation keeps no probability
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(usable, np.log(ADAPTED * mass / mass.sum() + (1.0 - ADAPTED) * np.exp(base)) - base, 0.0)
    flat_w, z = w.reshape(-1) / w.sum(), white.reshape(-1, white.shape[-1])
    mean = flat_w @ z
    cov = (z - mean).T @ ((z - mean) * flat_w[:, None])
    # the t's covariance is DOF / (DOF - 2) times its scale's: its scale is the posterior's covariance that much less
    scale = cov * (DOF - 2) / DOF * WIDEN**2 + 1e-6 * np.eye(len(mean))
    return shift, mean, np.linalg.cholesky(scale)


def _resample(log_w: np.ndarray, num_samples: int, rng) -> tuple[list, float, float, np.ndarray]:
    """Each chain's draws, resampled from its own proposals by weights smoothed by PSIS over all chains' proposals
    together: one Pareto k of all (chains x proposals) weights, and their ESS (``1 / sum w^2``, the weights
    normalised over all chains). Returns each chain's picked proposals, k, the ESS and the smoothed weights (chains,
    proposals; normalised over all, zeros where k is infinite); k is infinite where fewer
    than 10 weights are finite, or where a chain has no weight (it would have no draws of its own: NUTS then).

    The chains share one proposal, so their weights are one sample of its tail: the k of 16 000 weights, where the
    largest of four chains' k (4 000 each) was a noisy estimate biased up (docs/time_budget.md)."""
    chains, per_chain = log_w.shape
    flat = np.where(np.isfinite(log_w), log_w, -np.inf).reshape(-1)
    finite = np.isfinite(flat)
    if finite.sum() < 10:
        return [np.zeros(num_samples, int)] * chains, float("inf"), 0.0, np.zeros(log_w.shape)
    with np.errstate(over="ignore"):  # ArviZ's tail fit (psislw_row) overflows where k is far above 1 (then NUTS)
        smoothed, k = psislw_row(flat[finite] - flat[finite].max())
    w = np.zeros(flat.shape)
    w[finite] = np.exp(smoothed - smoothed.max())
    w /= w.sum()
    ess = 1.0 / float(np.sum(w**2))
    per = w.reshape(chains, per_chain)
    sums = per.sum(axis=1)
    if not np.all(sums > 0):  # a chain with no weight of its own would have no draws of its own: NUTS then
        return [np.zeros(num_samples, int)] * chains, float("inf"), 0.0, np.zeros(log_w.shape)
    return [rng.choice(per_chain, num_samples, p=c / s) for c, s in zip(per, sums)], float(k), ess, per


def weights_convergence(conv: dict, pareto_k: float, ess: float, stage: int = 0) -> dict:
    """:func:`ratingflow.posterior.convergence` of resampled importance draws: each ESS no more than the weights'
    (resampled draws look independent to ArviZ's ESS, which then counts repeats as new draws), and the Pareto k
    of the weights (``pareto_k``, checked by the gate); ``stage`` 1: the second stage's (:func:`_draw_weighted`)."""
    out = dict(conv)
    for name in ("ess_bulk_min", "ess_tail_min"):
        out[name] = min(float(conv[name]), ess)
    out["per_parameter"] = {v: {**p, "ess_bulk": min(p["ess_bulk"], ess), "ess_tail": min(p["ess_tail"], ess)}
                            for v, p in conv["per_parameter"].items()}
    out["pareto_k"] = float(pareto_k)
    out["sampler"] = "importance sampling over a breakpoint grid (ratingflow.importance)" + (
        ", its proposal adapted to a first stage's weights" if stage else "")
    return out


def runs_here() -> bool:
    """Whether this process may run the importance sampler: JAX on a CPU with a pool of one thread (``PJRT_NPROC=1``,
    which :func:`ratingflow.runtime.configure_jax` sets for a job of one thread, the pipeline's fit jobs by default).
    With more threads XLA's CPU runtime wedged on its programs: every thread waiting, no CPU used, at a random fit
    (the programs split in two, and without multi-threaded Eigen, too); on a GPU it has not been run. There,
    NUTS fits every candidate, as before."""
    import os

    return jax.default_backend() == "cpu" and os.environ.get("PJRT_NPROC") == "1"


def serves(structure: Structure, candidate: Candidate) -> bool:
    """Whether :class:`GridImportance` fits this candidate: the BaRatin form with one breakpoint, timeless."""
    return (structure.segment_offsets and candidate.n_segments == 2 and not candidate.gplm and not candidate.mode
            and structure.max_periods == 1 and not structure.gplm_terms and not structure.varying_sigma)


class GridFirst:
    """A driver (the interface of :class:`~ratingflow.sampler.BatchedNUTS`) for the BaRatin form: each one-breakpoint
    fit by :class:`GridImportance` first, NUTS (``nuts``) where its weights fail (:data:`PARETO_K_MAX`,
    :data:`MIN_ESS`) or its draws fail the rest of the diagnostics gate (:data:`STANDS`), and for every other
    candidate."""

    def __init__(self, nuts):
        self.nuts = nuts
        self.structure = nuts.structure
        self.settings = nuts.settings
        self.priors = nuts.priors
        self._grids: dict = {}

    def _grid(self, n_segments: int) -> GridImportance:
        """The importance sampler of the candidate's own structure (its segments only: the unused sites of a larger
        program have no likelihood, and a Laplace approximation of them would only add dimensions)."""
        if n_segments not in self._grids:
            own = replace(self.structure, max_segments=n_segments)
            self._grids[n_segments] = GridImportance(BatchedNUTS(own, self.nuts.settings, self.priors))
        return self._grids[n_segments]

    def fit(self, stations: list, candidates, seed: int) -> list[dict]:
        per_station = candidates if candidates and isinstance(candidates[0], (list, tuple)) else [candidates] * len(stations)
        results: list[dict] = [{} for _ in stations]
        fallback: dict[str, list[int]] = {}
        here = runs_here()
        if not here:
            progress("the BaRatin form by NUTS: importance sampling runs only on a CPU with one thread per process "
                     "(ratingflow.importance.runs_here)")
        for i, (st, cands) in enumerate(zip(stations, per_station)):
            for c in cands:
                if here and serves(self.structure, c):
                    fit = self._grid(c.n_segments).fit_one(st, c, seed)
                    conv = fit.convergence
                    _, failures = gate(conv, STANDS)
                    if not failures:
                        results[i][c.name] = fit
                        continue
                    progress(f"station {st.station_id}: {c.name} in the BaRatin form by importance sampling: "
                             f"{'; '.join(failures)}: sampled by NUTS instead")
                fallback.setdefault(c.name, []).append(i)
        for name, members in sorted(fallback.items()):
            for i, res in zip(members, self.nuts.fit([stations[i] for i in members], [Candidate(name)], seed)):
                results[i].update(res)
        return results


def grid_first(driver):
    """``driver`` (a :class:`~ratingflow.sampler.BatchedNUTS`) as a :class:`GridFirst` where it is the BaRatin form's and
    its settings ask for importance sampling (config ``sampler.offsets.importance``); otherwise ``driver`` itself. The
    wrapper is kept on the driver, so that a job builds its programs once."""
    if not (isinstance(driver, BatchedNUTS) and driver.structure.segment_offsets and driver.settings.importance):
        return driver
    if "_grid_first" not in driver.__dict__:
        driver.__dict__["_grid_first"] = GridFirst(driver)
    return driver.__dict__["_grid_first"]


def _any_bucket(args):
    """Shapes of :meth:`GridImportance._proposals`'s arguments, the gaugings' axis symbolic."""
    n = jax.export.symbolic_shape("gaugings")[0]
    key, z0, arrays, context, *adapt = args
    fixed = lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype)  # noqa: E731
    return (fixed(key), jax.tree.map(fixed, z0), jax.tree.map(lambda x: jax.ShapeDtypeStruct((n,), x.dtype), arrays),
            jax.tree.map(fixed, context), *(fixed(a) for a in adapt))


def _any_bucket_draws(args):
    """Shapes of :meth:`GridImportance._constrained`'s arguments, the gaugings' axis symbolic."""
    n = jax.export.symbolic_shape("gaugings")[0]
    z0, flats, arrays, context = args
    fixed = lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype)  # noqa: E731
    return (jax.tree.map(fixed, z0), fixed(flats), jax.tree.map(lambda x: jax.ShapeDtypeStruct((n,), x.dtype), arrays),
            jax.tree.map(fixed, context))
