"""Publish the batches' outputs at the per-station paths README.md lists.

Each stage runs one job per batch (a Snakemake wildcard) and writes its stations' files into a folder of
the batch, ``results/batches/{batch}/{folder}/``. This step links every file of those folders to
``results/{folder}/`` (a hard link where the file system allows it, else a copy), replacing the file
there atomically, leaves a file that is already that link as it is, and writes a manifest.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd


def _place(source: Path, target: Path) -> str:
    try:
        if os.path.samefile(source, target):
            return "already linked"
    except OSError:
        pass
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.publishing")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
        how = "link"
    except OSError:
        shutil.copy2(source, tmp)
        how = "copy"
    os.replace(tmp, target)
    return how


def publish(folders, results, manifest) -> pd.DataFrame:
    """Link every file of each batch folder (``.../{folder}/{file}``) to ``results/{folder}/{file}``."""
    rows = []
    for folder in map(Path, folders):
        for source in sorted(folder.iterdir()):
            target = Path(results) / folder.name / source.name
            rows.append({"file": str(target), "from": str(source), "how": _place(source, target)})
    table = pd.DataFrame(rows, columns=["file", "from", "how"])
    table.to_csv(manifest, sep="\t", index=False)
    return table
