"""Process set-up of a pipeline step (ratingflow.runtime)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import os, sys
from ratingflow.runtime import configure_jax
configure_jax(int(sys.argv[1]), None, "cpu")
import jax, jax.numpy as jnp
jax.jit(lambda x: jnp.sin(x) @ x)(jnp.ones((64, 64))).block_until_ready()
names = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
print(sum(name.startswith("tf_XLAEigen") for name in names))
"""


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="counts threads in /proc (Linux)")
@pytest.mark.parametrize("threads", [1, 2])
def test_a_job_runs_its_programs_on_as_many_threads_as_it_was_given(threads):
    """XLA's CPU pool would have a thread per core the process may use; a job of one thread beside another on 2 cores
    then takes CPU from it. The pool has the job's threads, whatever the machine (a fresh process: the setting
    applies only before JAX is imported)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PJRT_NPROC", "NPROC", "XLA_FLAGS")}
    out = subprocess.run([sys.executable, "-c", PROBE, str(threads)], capture_output=True, text=True, env=env,
                         check=True)
    assert int(out.stdout.strip().splitlines()[-1]) == threads


IMPORTS = """
import json, sys
from pathlib import Path

import numpy as np
import pandas as pd

from ratingflow.runtime import configure_jax

folder = Path(sys.argv[1])
configure_jax(1, str(folder / "cache"), "cpu")
heavy = lambda: sorted(m for m in ("jax", "numpyro", "arviz", "matplotlib") if m in sys.modules)  # noqa: E731
seen = {"configure_jax": heavy()}

from ratingflow.discharge import run_batch as discharge  # noqa: E402
from ratingflow.sheet import StationSpec  # noqa: E402

spec = StationSpec("st", "test", "st.csv", "stage", "m", "q", "m3/s")  # no stage_file: no discharge series
discharge([spec], folder, [str(folder / "st.nc")], [str(folder / "st.csv")], folder / "discharge", {}, 1)
seen["discharge"] = heavy()

stage = np.linspace(0.3, 2.5, 25)
q = 8.0 * (stage - 0.1) ** 1.7
pd.DataFrame({"line": np.arange(2, 27), "stage_m": stage, "discharge_m3s": q,
              "discharge_sd_m3s": 0.05 * q}).to_csv(folder / "st.csv", index=False)
(folder / "st.status.json").write_text(json.dumps({"status": "ok"}))
from ratingflow.candidates import ModelSettings  # noqa: E402
from ratingflow.prior_check import run_batch as prior_check  # noqa: E402

prior_check(["st"], {"clean": [str(folder / "st.csv")], "status": [str(folder / "st.status.json")]},
            {k: [str(folder / f"st.{k}")] for k in ("nc", "verdict", "plot")},
            7, {"num_samples": 200, "interval": 0.99, "min_share": 0.9}, models=ModelSettings(candidates=("seg1",)))
seen["prior_check"] = heavy()
import jax  # noqa: E402

seen["cache"] = jax.config.jax_compilation_cache_dir
print(json.dumps(seen))
"""


def test_a_job_imports_jax_arviz_and_matplotlib_only_when_it_uses_them(tmp_path):
    """Imports are paid by every job (2-2.5 s for JAX, NumPyro, ArviZ and matplotlib): configure_jax imports none of
    them and still sets JAX's cache; a discharge job whose station has no stage record needs none; a prior check that
    passes needs neither ArviZ nor matplotlib, and its file reads back as InferenceData groups."""
    out = subprocess.run([sys.executable, "-c", IMPORTS, str(tmp_path)], capture_output=True, text=True, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["configure_jax"] == [] and seen["discharge"] == []
    assert seen["prior_check"] == ["jax", "numpyro"]
    assert seen["cache"] == str(tmp_path / "cache") and any((tmp_path / "cache").iterdir())
    assert json.loads((tmp_path / "discharge" / "st.status.json").read_text())["status"] == "no stage record"
    assert json.loads((tmp_path / "st.verdict").read_text())["passed"]
    from ratingflow.io import load_idata

    idata = load_idata(tmp_path / "st.nc")
    assert set(idata.groups()) == {"prior", "prior_predictive", "observed_data"}
    assert idata.prior["b"].dims == ("chain", "draw", "segment") and idata.prior.sizes["draw"] == 200
    assert idata.prior_predictive["log_discharge"].shape == (1, 200, 25)
    assert not (tmp_path / "st.plot").exists()


COMPILES = """
import json, sys
from ratingflow.runtime import _COUNTER, cache_summary, configure_jax

configure_jax(1, sys.argv[1], "cpu")
import jax, jax.numpy as jnp

inner = jax.jit(lambda x: jnp.cos(x) * 2.0)
jax.jit(lambda x: jnp.sin(inner(x)) @ x)(jnp.ones((32, 32))).block_until_ready()
print(json.dumps({"hits": _COUNTER.hits, "misses": _COUNTER.misses, "line": cache_summary(),
                  **{kind: _COUNTER.seconds(kind) for kind in _COUNTER.intervals}}))
"""


def test_a_job_reports_the_seconds_it_spent_making_programs(tmp_path):
    """The job's last log line (issue 16's "compile seconds"): the first process compiles its programs, a second one
    with the same persistent cache loads them and compiles none; both trace and lower."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    runs = [json.loads(subprocess.run([sys.executable, "-c", COMPILES, str(tmp_path / "cache")], capture_output=True,
                                      text=True, env=env, check=True).stdout.strip().splitlines()[-1])
            for _ in range(2)]
    cold, warm = runs
    assert cold["misses"] >= 2 and cold["hits"] == 0 and cold["compiling"] > 0 and cold["loading"] == 0
    assert warm["hits"] == cold["misses"] and warm["misses"] == 0 and warm["compiling"] == 0 and warm["loading"] > 0
    assert all(run["tracing"] > 0 and run["lowering"] > 0 for run in runs)
    assert "seconds making programs: tracing" in warm["line"]


def test_nested_timings_are_counted_once():
    """A function traced inside another's tracing: the union of the intervals, not their sum."""
    import logging

    from ratingflow.runtime import _CacheCounter

    counter = _CacheCounter()

    def record(text, end):
        rec = logging.LogRecord("jax._src.dispatch", logging.DEBUG, __file__, 0, text, None, None)
        rec.created = end
        counter.emit(rec)

    record("Finished tracing inner for jit in 1.0 sec", 101.0)  # 100-101, inside the outer's 98-102
    record("Finished tracing outer for jit in 4.0 sec", 102.0)
    record("Finished tracing later for jit in 0.5 sec", 110.0)
    record("Persistent compilation cache hit for 'outer'", 110.2)
    record("Finished XLA compilation of outer in 0.25 sec", 110.3)
    record("Finished XLA compilation of uncached in 2.0 sec", 113.0)  # no lookup before it: compiled
    assert counter.seconds("tracing") == pytest.approx(4.5)
    assert counter.seconds("loading") == pytest.approx(0.25) and counter.seconds("compiling") == pytest.approx(2.0)
    assert counter.hits == 1 and counter.misses == 0


TRIM_PROBE = """
import ctypes
from ratingflow.runtime import release_memory
def resident():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
blocks = [libc.malloc(64 * 1024) for _ in range(4000)]  # 250 MB from the heap (each under mmap's threshold)
for b in blocks:
    ctypes.memset(b, 1, 64 * 1024)
keep = libc.malloc(64)  # above them: the heap's top cannot shrink by itself
for b in blocks:
    libc.free(b)
before = resident()
release_memory()
print(before, resident())
"""


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads resident memory from /proc (Linux)")
def test_release_memory_hands_the_heaps_free_pages_back():
    """XLA's compilations free their working memory into the C heap, which glibc keeps: each new program then added
    to a job's resident memory. release_memory hands it back (here 250 MB freed inside the heap)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        pytest.skip("not glibc")
    out = subprocess.run([sys.executable, "-c", TRIM_PROBE], capture_output=True, text=True, check=True)
    before, after = map(float, out.stdout.split())
    assert before - after > 200, (before, after)


ZEN4 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC
flags\t\t: fpu sse2 avx2 avx512f avx512dq avx512bw avx512vl

processor\t: 1
vendor_id\t: AuthenticAMD
"""


def test_only_a_zen4_processor_is_told_apart():
    """Zen 4: AuthenticAMD, family 25, AVX-512. Not Zen 3 (family 25 without AVX-512), Zen 5 (family 26), Intel."""
    from ratingflow.runtime import zen4

    assert zen4(ZEN4)
    assert not zen4(ZEN4.replace(" avx512f", ""))
    assert not zen4(ZEN4.replace("cpu family\t: 25", "cpu family\t: 26"))
    assert not zen4(ZEN4.replace("AuthenticAMD", "GenuineIntel"))
    assert not zen4("")


_SORT_JOB = """
import json, os, sys
from ratingflow import runtime
print(json.dumps({"returned": runtime.prefer_avx2_sort(sys.argv[1])}))
import numpy as np
from numpy._core._multiarray_umath import __cpu_features__ as features
print(json.dumps({"set": os.environ.get("NPY_DISABLE_CPU_FEATURES"), "avx512": features["AVX512_SKX"]}))
"""


def _sort_job(cpuinfo, preset=None) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k != "NPY_DISABLE_CPU_FEATURES"}
    if preset is not None:
        env["NPY_DISABLE_CPU_FEATURES"] = preset
    out = subprocess.run([sys.executable, "-c", _SORT_JOB, str(cpuinfo)], env=env, capture_output=True, text=True,
                         check=True).stdout
    return [json.loads(line) for line in out.splitlines()]


def test_numpy_runs_its_avx2_code_on_zen4_unless_told_otherwise(tmp_path, monkeypatch):
    """A job on a Zen 4 (its /proc/cpuinfo faked) sets NPY_DISABLE_CPU_FEATURES before NumPy's import, and NumPy then
    runs no AVX-512 code; a setting already there (even empty) is left as it is; another processor gets nothing, and
    neither does a process that has imported NumPy. configure_jax does it first where asked (summarise,
    discharge)."""
    from ratingflow import runtime

    fake = tmp_path / "cpuinfo"
    fake.write_text(ZEN4)
    assert _sort_job(fake) == [{"returned": True}, {"set": runtime.NUMPY_ZEN4_OFF, "avx512": False}]
    kept = _sort_job(fake, preset="")
    assert kept[0] == {"returned": False} and kept[1]["set"] == ""
    intel = tmp_path / "intel"
    intel.write_text(ZEN4.replace("AuthenticAMD", "GenuineIntel"))
    other = _sort_job(intel)
    assert other[0] == {"returned": False} and other[1]["set"] is None
    monkeypatch.delenv("NPY_DISABLE_CPU_FEATURES", raising=False)
    assert not runtime.prefer_avx2_sort(fake)  # NumPy is imported in this process
    assert "NPY_DISABLE_CPU_FEATURES" not in os.environ
    calls = []
    monkeypatch.setattr(runtime, "prefer_avx2_sort", lambda: calls.append(1))
    runtime.configure_jax(1, None)
    assert calls == []  # a fit job keeps NumPy's own code
    runtime.configure_jax(1, None, avx2_sorts=True)
    assert calls == [1]
