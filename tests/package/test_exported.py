"""Traced programs kept across processes (ratingflow.exported; issue 16, item 4)."""
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ratingflow.exported import FOLDER, cached_jit, on_device


@pytest.fixture
def cache_dir(tmp_path):
    before = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", str(tmp_path))
    yield tmp_path
    jax.config.update("jax_compilation_cache_dir", before)


def _counting(traces: list):
    def fn(x, y):
        traces.append(1)  # runs only while JAX traces fn
        return {"s": jnp.sum(jnp.sin(x) * y["w"]), "x": x * 2.0}
    return fn


def test_a_new_process_loads_the_program_instead_of_tracing_it(cache_dir):
    x, y = jnp.arange(5.0), {"w": jnp.linspace(0.0, 1.0, 5)}
    traces = []
    first = cached_jit(_counting(traces), "f")(x, y)
    assert len(traces) == 1
    again = cached_jit(_counting(traces), "f")  # a new driver, as in the next job: nothing loaded yet
    second = again(x, y)
    again(x + 1.0, y)
    assert len(traces) == 1, "the saved program must be used, not a new trace"
    expected = jax.jit(_counting([]))(x, y)
    for out in (first, second):
        assert np.array_equal(out["s"], expected["s"]) and np.array_equal(out["x"], expected["x"])
    assert len(list((cache_dir / FOLDER).glob("*.jaxexport"))) == 1
    cached_jit(_counting(traces), "f")(jnp.arange(6.0), {"w": jnp.ones(6)})  # another shape: another program
    cached_jit(_counting(traces), "g")(x, y)  # another key (the caller's settings): another program
    assert len(traces) == 3 and len(list((cache_dir / FOLDER).glob("*.jaxexport"))) == 3


def test_without_a_compilation_cache_it_is_plain_jit(tmp_path):
    before = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", None)
    try:
        traces = []
        fn = cached_jit(_counting(traces), "f")
        fn(jnp.arange(3.0), {"w": jnp.ones(3)})
        fn(jnp.arange(3.0), {"w": jnp.ones(3)})
        assert len(traces) == 1
    finally:
        jax.config.update("jax_compilation_cache_dir", before)


def test_an_unreadable_file_is_exported_again(cache_dir):
    x, y = jnp.arange(4.0), {"w": jnp.ones(4)}
    traces = []
    expected = cached_jit(_counting(traces), "f")(x, y)
    (path,) = (cache_dir / FOLDER).glob("*.jaxexport")
    path.write_bytes(b"not a program")
    out = cached_jit(_counting(traces), "f")(x, y)
    assert len(traces) == 2 and np.array_equal(out["s"], expected["s"])
    assert path.read_bytes() != b"not a program"


def _any_size(args):
    n = jax.export.symbolic_shape("n")[0]
    x, y = args
    return jax.ShapeDtypeStruct((n,), x.dtype), {"w": jax.ShapeDtypeStruct((n,), y["w"].dtype)}


def test_a_program_traced_with_a_symbolic_dimension_serves_every_size(cache_dir):
    """As the sampler traces NUTS once for every shape bucket: one trace, one file, each size compiled; and
    without a persistent cache the same program is traced in memory, so the results do not depend on the cache."""
    traces = []
    fn = cached_jit(_counting(traces), "f", _any_size)
    outs = {size: fn(jnp.arange(float(size)), {"w": jnp.linspace(0.0, 1.0, size)}) for size in (4, 8, 16)}
    assert len(traces) == 1 and len(list((cache_dir / FOLDER).glob("*.jaxexport"))) == 1
    for size, out in outs.items():
        expected = jax.jit(_counting([]))(jnp.arange(float(size)), {"w": jnp.linspace(0.0, 1.0, size)})
        np.testing.assert_allclose(out["s"], expected["s"], rtol=1e-6)
    before = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", None)
    try:
        uncached = cached_jit(_counting(traces), "f", _any_size)(jnp.arange(8.0), {"w": jnp.linspace(0.0, 1.0, 8)})
    finally:
        jax.config.update("jax_compilation_cache_dir", before)
    assert len(traces) == 2 and np.array_equal(uncached["s"], outs[8]["s"])


def test_the_sampler_traces_one_program_for_every_shape_bucket():
    from ratingflow.sampler import _any_bucket

    arrays = {"stage": jnp.zeros((2, 64)), "mask": jnp.ones((2, 64), bool)}
    specs = _any_bucket((jnp.zeros((2, 2), jnp.uint32), jnp.zeros((2, 2), jnp.uint32), {"gap": jnp.zeros(2)}, arrays,
                         {"span": jnp.ones(2)}))
    assert [str(s.shape) for s in jax.tree.leaves(specs[3])] == ["(2, gaugings)"] * 2
    assert all(s.shape == (2,) for s in jax.tree.leaves((specs[2], specs[4])))


def _hold(folder, signature, held, release):
    from ratingflow.exported import _making

    with _making(folder, signature):
        held.set()
        release.wait(10)


def test_a_process_waits_for_another_making_the_same_program(tmp_path, monkeypatch):
    """The lock of one program (key and shapes): held by one maker, a second maker of the same program waits until it
    is released, and one of another program does not wait; past LOCK_WAIT it goes on without the lock. (flock locks an
    open file, so two threads that open it apart stand for two processes.)"""
    import threading

    from ratingflow import exported

    def maker(signature, entered):
        with exported._making(tmp_path, signature):
            entered.set()

    held, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold, args=(tmp_path, "nuts|(64,)", held, release))
    holder.start()
    assert held.wait(10)
    same, other = threading.Event(), threading.Event()
    threading.Thread(target=maker, args=("nuts|(64,)", same)).start()
    threading.Thread(target=maker, args=("nuts|(128,)", other)).start()
    assert other.wait(10) and not same.wait(0.5)
    release.set()
    assert same.wait(10)
    holder.join()
    # held past LOCK_WAIT: the second goes on
    monkeypatch.setattr(exported, "LOCK_WAIT", 0.2)
    held, release, late = threading.Event(), threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold, args=(tmp_path, "nuts|(64,)", held, release))
    holder.start()
    assert held.wait(10)
    threading.Thread(target=maker, args=("nuts|(64,)", late)).start()
    assert late.wait(5)
    release.set()
    holder.join()


def test_each_new_shape_is_made_under_its_lock_and_a_refused_lock_is_no_error(cache_dir, monkeypatch):
    import contextlib
    import fcntl

    from ratingflow import exported

    made = []
    making = exported._making

    @contextlib.contextmanager
    def recording(folder, signature):
        made.append(signature)
        with making(folder, signature):
            yield

    monkeypatch.setattr(exported, "_making", recording)
    fn = cached_jit(_counting([]), "f")
    x, y = jnp.arange(4.0), {"w": jnp.ones(4)}
    fn(x, y), fn(x + 1.0, y), fn(jnp.arange(5.0), {"w": jnp.ones(5)})
    assert len(made) == 2 and made[0] != made[1] and "'f'" in made[0]  # once per shape, named by key and shapes
    assert len(list((cache_dir / FOLDER).glob("*.lock"))) == 2

    def refused(*args):
        raise OSError("no locks here")

    monkeypatch.setattr(fcntl, "flock", refused)
    out = cached_jit(_counting([]), "g")(x, y)
    assert np.array_equal(out["x"], x * 2.0)


def _programs_compiled(caplog, fn):
    """The names of the programs JAX compiles while ``fn()`` runs (its log of compilations)."""
    caplog.clear()
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        fn()
    return [r.getMessage().split(" with ")[0] for r in caplog.records if r.getMessage().startswith("Compiling")]


def test_arrays_go_to_the_device_as_jnp_asarray_puts_them_but_without_a_program(caplog):
    """on_device gives every value jnp.asarray's dtype (float64 as float32, int64 as int32), weak type and values,
    and compiles nothing; jnp.asarray compiles a program for each new shape (the check can see one)."""
    rng = np.random.default_rng(0)
    values = {"f": rng.normal(size=(13, 17)), "i": np.arange(19), "b": rng.normal(size=23) > 0,
              "s": np.float64(2.5), "x": 1.5, "f32": rng.normal(size=29).astype(np.float32)}
    out = {}
    assert _programs_compiled(caplog, lambda: out.update(on_device(values), cast=on_device(values["f"], np.float32),
                                                         one=on_device(values["i"]))) == []
    for name, value in {**values, "one": values["i"]}.items():
        expected = jnp.asarray(value)
        assert (out[name].dtype, out[name].weak_type) == (expected.dtype, expected.weak_type), name
        assert isinstance(out[name], jax.Array) and np.array_equal(out[name], expected), name
    assert out["cast"].dtype == jnp.float32 and np.array_equal(out["cast"], jnp.asarray(values["f"], jnp.float32))
    assert _programs_compiled(caplog, lambda: jnp.asarray(rng.normal(size=(31, 37)))) == ["Compiling jit(stage)"]


def test_a_prediction_of_a_new_shape_compiles_its_own_program_only(caplog):
    """The summary's predictions (ratingflow.predict) put their inputs on the device without jnp.asarray's programs:
    a new grid length and number of draws compiles the prediction's program (traced first where no process has),
    nothing else."""
    from ratingflow.candidates import Candidate, ModelSettings
    from ratingflow.data import StationData
    from ratingflow.predict import predict_log

    models = ModelSettings(candidates=("seg1",))
    structure = models.structure(models.candidate_list())
    st = StationData("s", np.linspace(1.0, 3.0, 12), np.exp(np.linspace(0, 3, 12)), np.full(12, 0.1))
    context = st.context(Candidate("seg1"), structure)
    draws = {"gap": np.full(41, 0.5), "log_q_ref": np.zeros(41), "sigma": np.full(41, 0.1), "b": np.full((41, 1), 1.7)}
    key = jax.random.PRNGKey(0)
    names = _programs_compiled(caplog, lambda: predict_log(key, draws, np.linspace(0.1, 2.0, 300), context, 0.05,
                                                           structure))
    # jit(_predict) where the program is traced and exported, jit(call) where it is compiled from the export
    assert "Compiling jit(call)" in names and set(names) <= {"Compiling jit(call)", "Compiling jit(_predict)"}, names


_JOB = """
import json, sys
if sys.argv[2] == "blocked":
    sys.modules["numpyro"] = None  # an import of NumPyro now fails
from ratingflow.runtime import configure_jax
configure_jax(1, sys.argv[1])
import jax
import numpy as np
from ratingflow.candidates import Candidate, ModelSettings
from ratingflow.data import StationData
from ratingflow.predict import predict_log
from ratingflow.prior_check import prior_check
st = StationData("s", np.linspace(1.0, 3.0, 12), np.exp(np.linspace(0, 3, 12)), np.full(12, 0.1))
groups, verdict = prior_check(st, 1, 300, 0.99, 0.9)
structure = ModelSettings(candidates=("seg1",)).structure([Candidate("seg1")])
draws = {k: groups["prior"][k].values[0] for k in ("gap", "log_q_ref", "sigma", "b")}
curve, gauging = predict_log(jax.random.PRNGKey(2), draws, np.linspace(0.1, 2.5, 50), st.context(Candidate("seg1"),
                             structure), 0.05, structure)
print(json.dumps({"numpyro": sys.modules.get("numpyro") is not None, "share": verdict["share_inside"],
                  "draws": groups["prior"]["b"].values.ravel().tolist(), "curve": np.nan_to_num(curve).ravel().tolist(),
                  "gauging": np.nan_to_num(gauging).ravel().tolist()}))
"""


def test_a_job_that_finds_its_programs_runs_them_without_numpyro(tmp_path):
    """NumPyro is imported where a model is traced (model._numpyro), not by the jobs' modules: the prior check and the
    predictions traced in one process run in the next with NumPyro unimportable, with the same draws; the fit job's
    modules import no NumPyro (its import took about 0.5 s of each job's start)."""
    import json
    import subprocess
    import sys

    runs = [json.loads(subprocess.run([sys.executable, "-c", _JOB, str(tmp_path), mode], capture_output=True,
                                      text=True, check=True).stdout) for mode in ("traces", "blocked")]
    assert runs[0]["numpyro"] and not runs[1]["numpyro"]
    assert len(runs[0]["draws"]) == 300 and np.isfinite(runs[0]["curve"]).all()
    for name in ("share", "draws", "curve", "gauging"):
        assert runs[0][name] == runs[1][name], name
    code = ("import sys; import ratingflow.fit, ratingflow.prior_check, ratingflow.summarise, ratingflow.importance, "
            "ratingflow.sampler, ratingflow.predict, ratingflow.posterior; print('numpyro' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
