import os
from pathlib import Path

import pytest

from ratingflow.runtime import configure_jax

ROOT = Path(__file__).resolve().parents[1]
#: one persistent XLA cache for the whole test session (and the Snakemake jobs it starts)
JAX_CACHE = Path(os.environ.get("RATINGFLOW_TEST_JAX_CACHE", ROOT / ".cache" / "jax-tests"))
# one thread, as the pipeline's fit jobs: the BaRatin form's importance sampler runs only so
# (ratingflow.importance.runs_here)
configure_jax(threads=1, cache_dir=str(JAX_CACHE))


#: test groups, by folder: package (no NUTS, fast), slow (NUTS fits), workflow (Snakemake runs)
GROUPS = ("package", "slow", "workflow")


def pytest_collection_modifyitems(config, items):
    """Mark each test with its group (its folder under tests/), so that ``-m slow`` etc. select a group."""
    for item in items:
        group = Path(str(item.fspath)).relative_to(Path(__file__).parent).parts[0]
        if group in GROUPS:
            item.add_marker(getattr(pytest.mark, group))


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def sheet(root):
    from ratingflow.sheet import load_sheet

    return load_sheet(root / "config" / "stations.tsv", root / "data" / "raw")


@pytest.fixture(scope="session")
def chromium() -> str:
    """Headless Chromium (Debian's package `chromium`), installed here when missing: the test set-up may
    install it as root (as in CI); elsewhere a test that needs it is skipped with the reason."""
    import shutil
    import subprocess

    found = shutil.which("chromium")
    if not found and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], env=env, capture_output=True, timeout=1200)
        found = shutil.which("chromium")
    if not found:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium could not be installed (apt-get install chromium)")
        pytest.skip("needs Debian's chromium package (apt-get install chromium, as root)")
    return found
