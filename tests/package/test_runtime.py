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
