"""Compare the posterior draws of two results folders: ``python -m ratingflow.compare A B``.

Exits 0 when every station's draws are bitwise identical (reproducibility check).
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np


def identical_draws(a: Path, b: Path) -> bool:
    from .io import load_idata

    x, y = load_idata(a), load_idata(b)
    names = set(x.posterior.data_vars)
    return names == set(y.posterior.data_vars) and all(
        np.array_equal(x.posterior[v].values, y.posterior[v].values) for v in names
    )


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", category=FutureWarning)
    first, second = (Path(p) for p in (argv or sys.argv[1:]))
    fits = sorted((first / "fit").glob("*.nc"))
    if not fits:
        print(f"no fits under {first / 'fit'}")
        return 2
    ok = True
    for path in fits:
        other = second / "fit" / path.name
        same = other.exists() and identical_draws(path, other)
        ok &= same
        print(f"{path.stem}: {'identical posterior draws' if same else 'DIFFERENT or missing'}")
    print(f"{len(fits)} stations, all identical: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
