# Config and station sheet: read, validated against the schemas, and turned into wildcards.
import re

import pandas as pd
from snakemake.utils import validate

from ratingflow.config import config_hash
from ratingflow.sheet import load_sheet


validate(config, schema="../schemas/config.schema.yaml")

_sheet = pd.read_csv(config["stations"], sep="\t", dtype=str, keep_default_na=False)
validate(_sheet, schema="../schemas/stations.schema.yaml")
SHEET = load_sheet(config["stations"], config["raw_dir"])
STATIONS = list(SHEET)
CONFIG_HASH = config_hash(config)


wildcard_constraints:
    station="|".join(re.escape(s) for s in STATIONS),


def raw_file(wildcards):
    return f"{config['raw_dir']}/{SHEET[wildcards.station].file}"


def jax_params():
    return {"device": config["jax"]["device"], "cache": config["jax"].get("compilation_cache", "")}
