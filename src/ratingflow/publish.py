"""Publish the batches' outputs at the per-station paths README.md lists.

Each stage runs one job per batch (a Snakemake wildcard) and writes its stations' files into a folder of
the batch, ``results/batches/{batch}/{folder}/``. This step links every file of those folders to
``results/{folder}/`` (a hard link where the file system allows it, else a copy), replacing the file
there atomically, leaves a file that is already that link as it is, and writes a manifest.

A stage may write a file for some stations only (the prior figure: only where the check did not pass).
So a published file of a batch's station that its batch folder no longer holds is stale and is
removed: ``results/{folder}/`` always shows what the latest run wrote for each station.
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


def _station(name: str) -> str:
    """The station of a per-station file name (station ids hold no dot)."""
    return name.split(".", 1)[0]


def publish(folders, results, manifest) -> pd.DataFrame:
    """Link every file of each batch folder (``.../{folder}/{file}``) to ``results/{folder}/{file}``, and
    remove the published files of those stations that the batch folder does not hold."""
    rows = []
    published: dict[str, dict[str, list[Path]]] = {}  # folder name -> station -> its published files
    for folder in map(Path, folders):
        if folder.name not in published:
            files = published[folder.name] = {}
            target_dir = Path(results) / folder.name
            for path in (target_dir.iterdir() if target_dir.is_dir() else ()):
                if not path.name.startswith("."):
                    files.setdefault(_station(path.name), []).append(path)
        sources = sorted(folder.iterdir())
        for source in sources:
            target = Path(results) / folder.name / source.name
            rows.append({"file": str(target), "from": str(source), "how": _place(source, target)})
        names = {s.name for s in sources}
        for station in sorted({_station(s.name) for s in sources}):
            for stale in published[folder.name].get(station, []):
                if stale.name not in names:
                    stale.unlink(missing_ok=True)
                    rows.append({"file": str(stale), "from": "", "how": "removed: not written by the latest run"})
    table = pd.DataFrame(rows, columns=["file", "from", "how"])
    table.to_csv(manifest, sep="\t", index=False)
    return table
