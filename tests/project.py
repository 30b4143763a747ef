"""A small project folder (sheet, raw files, config) around the repository's workflow, for tests."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]


def make_project(path: Path, stations: list[str], jax_cache: str, extra_rows: list[dict] = (),
                 batch_size: int = 1) -> Path:
    """Copy the named demo stations into ``path`` with short chains and loose thresholds."""
    (path / "config").mkdir(parents=True, exist_ok=True)
    sheet = pd.read_csv(ROOT / "config" / "stations.tsv", sep="\t", dtype=str, keep_default_na=False)
    sheet = sheet[sheet["station_id"].isin(stations)].reset_index(drop=True)
    extra_files = [f for column in ("shifts_file", "stage_file") for f in sheet.get(column, pd.Series(dtype=str)) if f]
    for f in [*sheet["file"], *extra_files]:
        (path / "data" / "raw" / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "data" / "raw" / f, path / "data" / "raw" / f)
    for row in extra_rows:
        sheet.loc[len(sheet)] = {**sheet.iloc[-1].to_dict(), **row}
    sheet.to_csv(path / "config" / "stations.tsv", sep="\t", index=False)
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["sampler"].update(num_chains=2, num_warmup=200, num_samples=200)
    config["prior_check"]["num_samples"] = 200
    # short chains: loose thresholds (the thresholds themselves are tested in test_summarise)
    config["diagnostics"].update(rhat_max=1.2, ess_bulk_min=20, ess_tail_min=20)
    config["jax"]["compilation_cache"] = str(jax_cache)
    config["batch_size"] = batch_size
    (path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    return path


if __name__ == "__main__":
    import sys

    make_project(Path(sys.argv[1]), sys.argv[2].split(","), sys.argv[3])
