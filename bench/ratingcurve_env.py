"""A virtual environment with USGS ratingcurve==1.1.0 (PyPI) for the benchmark and the coverage study's peer.

    python bench/ratingcurve_env.py [PATH]      # default bench/.venv-ratingcurve; prints its python

Creates the environment when it is missing (``python -m venv`` + ``pip install ratingcurve==1.1.0``) and
prints the path of its python, for ``python -m ratingflow.coverage_study --ratingcurve-python``.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

DEFAULT = Path(__file__).resolve().parent / ".venv-ratingcurve"


def ratingcurve_env(path: Path = DEFAULT) -> Path:
    """The python of a virtual environment with ratingcurve==1.1.0 (PyPI), created when missing."""
    python = Path(path) / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "ratingcurve==1.1.0"], check=True)
    return python


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default=str(DEFAULT), help="the environment (default: %(default)s)")
    print(ratingcurve_env(Path(parser.parse_args().path)))
