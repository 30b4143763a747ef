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


class ConfigError(ValueError):
    """The config file cannot be used; the message names the file, the line and what is wrong."""


def _line_of(text: str, keys) -> int | None:
    """1-based line of the value at ``keys`` (a path of mapping keys and list indices) in YAML ``text``."""
    import yaml

    node = yaml.compose(text)
    line = None
    for key in keys:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == str(key)]
            if not match:
                break
            key_node, node = match[0]
            line = key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


def load_config(path, schema: dict | None = None) -> dict:
    """Read the workflow config (YAML, plain values only) and check it against ``schema``. Errors name the
    file, the line and what is wrong."""
    import yaml

    text = open(path).read()
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        problem = f"{err.context or ''} {err.problem or ''}".strip()
        if isinstance(err, yaml.constructor.ConstructorError) and "tag" in str(err.problem):
            problem = (f"{err.problem}: a config file holds plain values (numbers, text, lists, mappings); "
                       "YAML tags such as !!python/... are refused")
        raise ConfigError(f"{where}: {problem}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config must be a mapping of settings, found {type(data).__name__}")
    if schema is not None:
        import jsonschema

        errors = sorted(jsonschema.validators.validator_for(schema)(schema).iter_errors(data),
                        key=lambda e: list(map(str, e.absolute_path)))
        if errors:
            err = errors[0]
            keys = list(err.absolute_path)
            line = _line_of(text, keys)
            where = f"{path}, line {line}" if line else str(path)
            setting = ".".join(map(str, keys)) or "(top level)"
            raise ConfigError(f"{where}, setting {setting}: {err.message}")
    return data


def merged(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` on top, mapping by mapping (as Snakemake merges --config and --configfile)."""
    out = dict(base)
    for key, value in overrides.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out
