"""The parts of the workflow config that determine a station's draws, and their hash.

Kept free of JAX imports so that Snakemake can use it at load time.
"""
from __future__ import annotations

import hashlib
import json

#: config sections that change the draws of a fit
FIT_SECTIONS = ("seed", "priors", "sampler", "models", "default_uncertainty")


def fit_settings(config: dict) -> dict:
    return {k: config.get(k) for k in FIT_SECTIONS}


def config_hash(config: dict) -> str:
    """Short SHA-256 of :func:`fit_settings`, written into every fit."""
    return hashlib.sha256(json.dumps(fit_settings(config), sort_keys=True).encode()).hexdigest()[:16]
