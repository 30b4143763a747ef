"""Predictions from parameter draws (:mod:`ratingflow.predict`): the curve's dry stages and the new gauging's noise."""

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import Predictive
from scipy import stats

from ratingflow.candidates import Candidate, ModelSettings
from ratingflow.data import StationData
from ratingflow.model import rating_model
from ratingflow.predict import predict, predict_log
from lowering import lowered_loops, numpyro_default_loop


def _draws(n: int = 4000, seed: int = 0):
    """Prior draws of seg2 for a small station: parameters, structure and context as a fit keeps them."""
    models = ModelSettings(candidates=("seg1", "seg2"))
    structure = models.structure(models.candidate_list())
    st = StationData("s", np.linspace(1.0, 3.0, 12), np.exp(np.linspace(0, 3, 12)), np.full(12, 0.1))
    context = st.context(Candidate("seg2"), structure)
    draws = Predictive(lambda *a: rating_model(*a, structure=structure), num_samples=n)(
        jax.random.PRNGKey(seed), jnp.asarray(st.stage_rel, jnp.float32), jnp.asarray(st.sd_log, jnp.float32),
        {k: jnp.asarray(v) for k, v in context.items()})
    samples = {k: np.asarray(v) for k, v in draws.items() if k not in ("log_discharge", "log_curve")}
    return samples, structure, context


def test_dry_stages_are_those_at_or_below_each_draws_h0_in_any_order():
    """-inf exactly where stage + gap <= 0 (in float64), for stages in any order, repeated ones and one at a
    draw's own h0 included; elsewhere finite. The mask is made inside the program from ranks (predict_log)."""
    samples, structure, context = _draws(400)
    gap = samples["gap"].astype(np.float64)
    rng = np.random.default_rng(1)
    stages = np.concatenate([rng.uniform(-2 * gap.max(), 2.0, 300), [-gap[0], -gap[0], -gap[7], 0.5, 0.5]])
    stages = rng.permutation(stages)
    log_curve, log_q = predict_log(jax.random.PRNGKey(2), samples, stages, context, 0.05, structure)
    dry = stages[None, :] + gap[:, None] <= 0
    assert dry.any() and (~dry).any()
    np.testing.assert_array_equal(np.isneginf(log_curve), dry)
    np.testing.assert_array_equal(np.isneginf(log_q), dry)
    assert np.isfinite(log_curve[~dry]).all()


def test_new_gauging_is_the_curve_plus_one_standard_normal_per_draw_times_its_sd():
    """ln Q of a new gauging = curve + z_d x sqrt(sigma_d^2 + sd^2) with one z_d per draw, shared by every stage
    (a band is read stage by stage; one normal per draw is what made the program cheap). The z_d are standard
    normal: Kolmogorov-Smirnov at p > 1e-3 (false-failure probability 1e-3)."""
    samples, structure, context = _draws(4000)
    stages = np.linspace(0.2, 2.5, 40)
    sd = np.linspace(0.02, 0.2, 40)
    log_curve, log_q = predict_log(jax.random.PRNGKey(3), samples, stages, context, sd, structure)
    wet = np.isfinite(log_curve).all(axis=1)
    assert wet.mean() > 0.5
    total = np.sqrt(samples["sigma"].astype(np.float64)[:, None] ** 2 + sd[None, :] ** 2)
    z = (log_q - log_curve)[wet] / total[wet]
    np.testing.assert_allclose(z, np.repeat(z[:, :1], z.shape[1], axis=1), rtol=2e-3, atol=2e-4)
    assert stats.kstest(z[:, 0], "norm").pvalue > 1e-3
    # another key, other normals
    other = predict_log(jax.random.PRNGKey(4), samples, stages, context, sd, structure)[1]
    assert not np.allclose(other[wet], log_q[wet])
    # predict is exp of predict_log
    curve, gauging = predict(jax.random.PRNGKey(3), samples, stages, context, sd, structure)
    np.testing.assert_array_equal(curve, np.exp(log_curve.astype(np.float64)))
    np.testing.assert_array_equal(gauging, np.exp(log_q.astype(np.float64)))


def test_a_job_loads_the_prediction_program_instead_of_tracing_it(tmp_path, monkeypatch):
    """With a compilation cache (every pipeline job has one), the prediction program is traced once and later jobs
    load it (ratingflow.exported): the same figures as plain jit, and no new trace in a fresh driver."""
    from ratingflow import predict as module

    samples, structure, context = _draws(300)
    stages = np.linspace(0.2, 2.5, 30)
    args = (jax.random.PRNGKey(5), samples, stages, context, 0.05, structure)
    module._program.cache_clear()
    expected = predict_log(*args)  # the test session's own setting: no cache, plain jit
    before = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", str(tmp_path))
    traced = []
    original = module._predict

    def counting(*a, **k):
        traced.append(1)  # runs only while JAX traces the program
        return original(*a, **k)

    monkeypatch.setattr(module, "_predict", counting)
    try:
        for _ in range(2):  # the second time as a new job: its drivers start empty
            module._program.cache_clear()
            got = predict_log(*args)
            for a, b in zip(got, expected):
                np.testing.assert_array_equal(a, b)
        assert len(traced) == 1
        assert len(list((tmp_path / "ratingflow-exports").glob("*.jaxexport"))) == 1
    finally:
        jax.config.update("jax_compilation_cache_dir", before)
        module._program.cache_clear()


def test_the_prediction_draws_every_draw_at_once_not_in_a_loop():
    """The prediction's program vectorises the draws (Predictive(parallel=True)): it has none of the loop of one
    step per draw of NumPyro's default, which took most of its time (only the random generator's own loop is
    left). Its values are those of the loop to float32's rounding."""
    from functools import partial

    from ratingflow import predict as module

    samples, structure, context = _draws(300)
    stages = np.linspace(0.2, 2.5, 256).astype(np.float32)
    args = (jax.random.PRNGKey(5), {k: jnp.asarray(v) for k, v in samples.items()}, stages,
            np.full(256, 0.05, np.float32), {k: jnp.asarray(v) for k, v in context.items()}, np.zeros(256, np.int32),
            np.full(300, -1, np.int32))
    fn = partial(module._predict, structure=structure, priors=module.Priors())
    with numpyro_default_loop():
        looped_loops, looped = lowered_loops(fn, args), jax.jit(lambda *a: fn(*a))(*args)
    assert lowered_loops(fn, args) < looped_loops
    for a, b in zip(jax.jit(fn)(*args), looped):
        np.testing.assert_array_equal(np.isfinite(a), np.isfinite(b))
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
