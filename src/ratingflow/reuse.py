"""Reuse of a station's published outputs when its inputs did not change (incremental runs).

Every stage runs one job per batch of stations; when one station's inputs change, Snakemake reruns the
batch's job. Inside it, a station whose inputs digest (input files, settings, seed, ratingflow version)
equals the one recorded with its published outputs under ``results/{stage}/`` gets those files linked
instead of recomputed, so new gaugings at one station refit that station only.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from .io import load_cache, save_cache

#: the digest of a station's inputs, written next to its first output
SUFFIX = ".inputs"


def digest(paths, settings: dict, seed: int, version: str) -> str:
    """sha256 of the files (a missing one counts as absent), the settings, the seed and the stage's output
    ``version`` (raised when a stage's outputs change for the same inputs)."""
    h = hashlib.sha256(json.dumps({"settings": settings, "seed": seed, "version": version}, sort_keys=True,
                                  default=str).encode())
    for path in paths:
        h.update(Path(path).read_bytes() if path and Path(path).exists() else b"-")
    return h.hexdigest()


def link(source, target) -> None:
    """``target`` becomes a hard link of ``source`` (a copy where the file system has no links)."""
    Path(target).unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def reuse(previous, targets: list, key: str, optional: list = ()) -> bool:
    """Link a station's published files to ``targets`` when the digest recorded with them is ``key``.

    ``previous``: the folder of the published files (one for all targets, or one per target), None for
    none. False, and nothing linked, when a file is missing or the digest differs. ``optional``: files a
    station may not have (in the first folder); each is linked where it was published."""
    if not previous:
        return False
    folders = [previous] * len(targets) if isinstance(previous, (str, Path)) else previous
    sources = [Path(folder) / Path(t).name for folder, t in zip(folders, targets)]
    try:
        if Path(str(sources[0]) + SUFFIX).read_text().strip() != key or not all(s.exists() for s in sources):
            return False
    except OSError:
        return False
    for target in optional:
        source = Path(folders[0]) / Path(target).name
        if source.exists():
            sources.append(source)
            targets = [*targets, target]
    for source, target in zip(sources, targets):
        link(source, target)
    record(targets[0], key)
    return True


def record(first_target, key: str) -> None:
    """Write the digest next to a station's first output."""
    Path(str(first_target) + SUFFIX).write_text(key + "\n")


def package_digest() -> str:
    """sha256 of the package's source files: a row computed by other code is never reused."""
    h = hashlib.sha256()
    root = Path(__file__).parent
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


class RowCache:
    """The rows of a whole-run table (changes, report), each with the digest of what it was computed from: a
    scheduled run recomputes only the rows of stations whose files changed, and reads the others' files as bytes
    only. Kept in ``{table folder}/.cache/{table}.rows.pkl``, which is no Snakemake output: a missing or
    unreadable cache costs time, never a result."""

    def __init__(self, table_path):
        self.path = Path(table_path).parent / ".cache" / f"{Path(table_path).stem}.rows.pkl"
        self.code = package_digest()
        self.old = load_cache(self.path)
        self.new: dict = {}

    def row(self, station: str, files, extra, compute) -> dict:
        """The cached row of ``station`` if ``files`` (their bytes; None or missing: absent), ``extra`` (its repr)
        and the package's code are those it was computed from, else ``compute()``."""
        key = digest(files, {"extra": repr(extra), "code": self.code}, 0, "")
        cached = self.old.get(station)
        row = cached[1] if cached is not None and cached[0] == key else compute()
        self.new[station] = (key, row)
        return dict(row)

    def save(self) -> None:
        if self.new.keys() == self.old.keys() and all(self.new[s][0] == self.old[s][0] for s in self.new):
            return  # every row as kept
        save_cache(self.path, self.new)
