# Config and station sheet: read, validated against the schemas, and cut into batches of stations.
from pathlib import Path

import pandas as pd
from snakemake.utils import validate

from ratingflow.batches import assign
from ratingflow.config import config_hash
from ratingflow.sheet import load_sheet


validate(config, schema="../schemas/config.schema.yaml")

_sheet = pd.read_csv(config["stations"], sep="\t", dtype=str, keep_default_na=False)
validate(_sheet, schema="../schemas/stations.schema.yaml")
SHEET = load_sheet(config["stations"], config["raw_dir"])
STATIONS = list(SHEET)
CONFIG_HASH = config_hash(config)
# one job per batch and stage (see ratingflow.batches)
BATCHES = assign(SHEET, config["raw_dir"], int(config.get("batch_size", 25)))

# No job has a station wildcard: every batch rule names its stations' files explicitly from the
# sheet, so no job can exist for an id that is not in the sheet.


def per_station(pattern, members):
    return [pattern.format(station=s) for s in members]


def existing_raw_files(specs):
    """The stations' raw files that exist (a missing one is reported by clean as the station's status)."""
    paths = {Path(config["raw_dir"]) / spec.file for spec in specs}
    return sorted(str(p) for p in paths if p.exists())


def raw_files(members):
    return existing_raw_files(SHEET[s] for s in members)


def clean_settings():
    keys = ("default_uncertainty", "suspect_z", "usgs_quality_percent")
    return {k: config[k] for k in keys if k in config}


def jax_params():
    return {"device": config["jax"]["device"], "cache": config["jax"].get("compilation_cache", "")}


def station_priors(members):
    """Each station's prior hints from the sheet: surveyed zero-flow range and breakpoint ranges [m]."""
    out = []
    for station in members:
        spec = SHEET[station]
        h0 = None if spec.h0_min_m is None else [spec.h0_min_m, spec.h0_max_m]
        breaks = spec.breakpoint_ranges()
        out.append({"h0_range": h0, "break_ranges": None if breaks is None else [list(r) for r in breaks]})
    return out


def long_format_files():
    """Existing raw files that hold several stations (sheet column station_column)."""
    return existing_raw_files(s for s in SHEET.values() if s.station_column)


def stage_threads(stage):
    """Threads per job of a stage: from the profile's resources file (see profiles/), default 1."""
    return int(config.get("resources", {}).get(stage, {}).get("threads", 1))


def stage_resources(stage):
    """Resources per job of a stage, from the profile's resources file (``resources: {stage: {...}}``);
    memory and run time grow with the attempt, so that a retried job asks for more."""
    spec = dict(config.get("resources", {}).get(stage, {}))
    spec.pop("threads", None)
    mem_mb, runtime = int(spec.pop("mem_mb", 2000)), int(spec.pop("runtime", 30))
    return {"mem_mb": lambda wc, attempt: mem_mb * attempt, "runtime": lambda wc, attempt: runtime * attempt, **spec}
