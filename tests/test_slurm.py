"""The pipeline on a real single-node SLURM cluster (tests/slurm/run_test.sh).

It installs Debian's SLURM packages and starts daemons as root, so it runs only where asked:
RATINGFLOW_SLURM_TEST=1 (.ci/run sets it).
"""
import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "slurm" / "run_test.sh"


@pytest.mark.skipif(os.environ.get("RATINGFLOW_SLURM_TEST") != "1",
                    reason="starts a SLURM cluster as root; set RATINGFLOW_SLURM_TEST=1")
def test_every_job_runs_as_a_slurm_job():
    run = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=1500)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    assert " 0 without a SLURM_JOB_ID" in out, out[-2000:]
