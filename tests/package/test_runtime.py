"""Process set-up of a pipeline step (ratingflow.runtime)."""
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
