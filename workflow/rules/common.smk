# Config and station sheet: read, validated against the schemas, and cut into batches of stations.
# Every stage is one rule with the wildcard {batch}; its inputs and params come from the functions below.
import re
from pathlib import Path

import pandas as pd
import yaml
from snakemake.utils import validate

from ratingflow.batches import assign, first_fit, stage_priority, summary_priority as batch_summary_priority
from ratingflow.config import config_hash, load_config, merged
from ratingflow.sheet import check_schema, load_sheet

CONFIG_FILE = "config/config.yaml"
SCHEMAS = Path(workflow.basedir) / "schemas"
# config/config.yaml is read here, not by a configfile: directive, so that its errors name the file and the
# line; values from --config and --configfile (profiles) stay on top of it
if Path(CONFIG_FILE).exists():
    _merged = merged(load_config(CONFIG_FILE, yaml.safe_load((SCHEMAS / "config.schema.yaml").read_text())), config)
    config.clear()
    config.update(_merged)
validate(config, schema="../schemas/config.schema.yaml")  # the merged config; fills the schema's defaults

# the sheet's schema, checked column by column: errors name the file, the sheet line, the column and the value
check_schema(pd.read_csv(config["stations"], sep="\t", dtype=str, keep_default_na=False),
             yaml.safe_load((SCHEMAS / "stations.schema.yaml").read_text()), config["stations"])
SHEET = load_sheet(config["stations"], config["raw_dir"])
STATIONS = list(SHEET)
CONFIG_HASH = config_hash(config)
# batch id -> its stations (see ratingflow.batches); a station's files never depend on its batch
BATCHES = assign(SHEET, config["raw_dir"], int(config.get("batch_size", 100)))
# the batch whose fit goes first, alone beside the other batches' stages before theirs (ratingflow.batches.stage_priority)
FIRST_FIT = first_fit(BATCHES)


wildcard_constraints:
    batch="|".join(re.escape(b) for b in BATCHES) or "no-batches",


def batch_folder(folder):
    """Where a batch job writes its stations' files; rule publish links them to results/{folder}/."""
    return directory(f"results/batches/{{batch}}/{folder}")


def members(wildcards):
    return BATCHES[wildcards.batch]


def batch_priority(wildcards):
    """The stages before the fit: the first fit's, then every other batch's, each bucket's first batch first, then the
    largest (ratingflow.batches.stage_priority)."""
    return stage_priority(wildcards.batch, len(members(wildcards)), FIRST_FIT, fit=False)


def fit_priority(wildcards):
    """The run's first fit before every other job; the others after every stage before the fit
    (ratingflow.batches.stage_priority)."""
    return stage_priority(wildcards.batch, len(members(wildcards)), FIRST_FIT, fit=True)


def summary_priority(wildcards):
    """After the fits, the largest batches' summaries first (ratingflow.batches.summary_priority)."""
    return batch_summary_priority(wildcards.batch, len(members(wildcards)))


def existing_raw_files(specs):
    """The stations' raw files that exist (a missing one is reported by clean as the station's status)."""
    paths = {Path(config["raw_dir"]) / spec.file for spec in specs}
    return sorted(str(p) for p in paths if p.exists())


def get_raw_files(wildcards):
    return existing_raw_files(SHEET[s] for s in members(wildcards))


def get_shift_files(wildcards):
    """The batch's files of known rating-shift dates (sheet column shifts_file) that exist."""
    paths = {Path(config["raw_dir"]) / SHEET[s].shifts_file for s in members(wildcards) if SHEET[s].shifts_file}
    return sorted(str(p) for p in paths if p.exists())


def get_stage_files(wildcards):
    """The batch's stage records (sheet column stage_file) that exist (a missing one is the station's status)."""
    paths = {Path(config["raw_dir"]) / SHEET[s].stage_file for s in members(wildcards) if SHEET[s].stage_file}
    return sorted(str(p) for p in paths if p.exists())


def get_specs(wildcards):
    return [SHEET[s] for s in members(wildcards)]


def get_raw_paths(wildcards):
    return [f"{config['raw_dir']}/{SHEET[s].file}" for s in members(wildcards)]


def get_titles(wildcards):
    return [f"{s}: {SHEET[s].name}" for s in members(wildcards)]


def get_station_priors(wildcards):
    """Each station's prior hints from the sheet: surveyed zero-flow range, breakpoint ranges [m] and control types."""
    out = []
    for station in members(wildcards):
        spec = SHEET[station]
        h0 = None if spec.h0_min_m is None else [spec.h0_min_m, spec.h0_max_m]
        breaks = spec.breakpoint_ranges()
        out.append({"h0_range": h0, "break_ranges": None if breaks is None else [list(r) for r in breaks],
                    "control_types": spec.control_type_list()})
    return out


def clean_settings():
    keys = ("default_uncertainty", "suspect_z", "usgs_quality_percent", "earliest_gauging_date")
    return {k: config[k] for k in keys if k in config}


def jax_params():
    return {"device": config["jax"]["device"], "cache": config["jax"].get("compilation_cache", "")}


def long_format_files():
    """Existing raw files that hold several stations (sheet column station_column)."""
    return existing_raw_files(s for s in SHEET.values() if s.station_column)


def per_station(pattern):
    return [pattern.format(station=s) for s in STATIONS]


def all_batches(pattern):
    return [str(pattern).format(batch=b) for b in BATCHES]
