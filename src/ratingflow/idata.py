"""A fit's InferenceData without ArviZ: the groups as ``az.from_dict`` lays them out, in a small container.

Importing ArviZ takes 1-1.5 s of a job (its plots import ``scipy.stats`` and matplotlib), and ``az.from_dict`` took
21 ms per fit against 3 ms for the same Datasets made here (issue 16). The fit builds its groups with :func:`group`
(its job still imports ArviZ to compare the candidates); the summary, the discharge series and the comparison read a
fit through :class:`FitData` and import no ArviZ. The netCDF files keep ArviZ's layout, so ``az.from_netcdf`` reads
them as before.
"""
from __future__ import annotations

from datetime import datetime, timezone
from functools import cache

import numpy as np
import xarray as xr

#: the leading dimensions of a group of draws
SAMPLED = ("chain", "draw")
#: ArviZ's order of groups (``arviz.data.inference_data.SUPPORTED_GROUPS``), in which it keeps and writes them
ORDER = ("posterior", "posterior_predictive", "predictions", "log_likelihood", "log_prior", "sample_stats", "prior",
         "prior_predictive", "sample_stats_prior", "observed_data", "constant_data", "predictions_constant_data")


@cache
def _arviz_version() -> str:
    from importlib.metadata import version

    return version("arviz")


def group_attrs() -> dict:
    """The attributes ``az.from_dict`` gives a group: ``created_at`` and ``arviz_version``."""
    return {"created_at": datetime.now(timezone.utc).isoformat(), "arviz_version": _arviz_version()}


def group(values: dict, dims: dict | None = None, coords: dict | None = None, sampled: bool = True) -> xr.Dataset:
    """One group as ``az.from_dict`` makes it: ``sampled`` (posterior, sample_stats, log_likelihood), each array
    (chain, draw, ...) with the dimensions ``chain`` and ``draw`` in front; otherwise (observed and constant data)
    as given, a scalar made one-dimensional. ``dims``: a variable's dimensions after those; a dimension not named is
    ``{name}_dim_{i}``. Coordinates: ``coords`` where given, else 0, 1, ...; only those of dimensions in use."""
    dims, coords = dims or {}, coords or {}
    variables = {}  # each variable after the coordinates it is the first to use, as ArviZ orders them
    for name, value in values.items():
        value = np.asarray(value)
        if sampled:
            value = value[None, None] if value.ndim == 0 else value[None] if value.ndim == 1 else value
        elif value.ndim == 0:
            value = value[None]
        lead = SAMPLED if sampled else ()
        rest = list(dims.get(name, []))
        rest += [f"{name}_dim_{i}" for i in range(len(rest), value.ndim - len(lead))]
        names = (*lead, *rest)
        for dim, size in zip(names, value.shape):
            if dim not in variables:  # a variable named as its dimension: that dimension's coordinate
                variables[dim] = (dim, np.asarray(coords[dim]) if dim in coords else np.arange(size))
        variables[name] = (names, value)
    return xr.Dataset(variables, attrs=group_attrs())


def fit_data(posterior: dict, sample_stats: dict, log_likelihood: np.ndarray, observed: np.ndarray, constant: dict,
             dims: dict, coords: dict) -> FitData:
    """A fit's groups, as ``az.from_dict(posterior=posterior, sample_stats=sample_stats,
    log_likelihood={"log_discharge": log_likelihood}, observed_data={"log_discharge": observed},
    constant_data=constant, dims=dims, coords=coords)`` makes them; ``log_discharge`` lies along ``gauging``.
    ``log_likelihood`` or ``observed`` None: that group is left out (a fit read without it)."""
    dims = {"log_discharge": ["gauging"], **dims}
    groups = {"posterior": group(posterior, dims, coords)}
    if log_likelihood is not None:
        groups["log_likelihood"] = group({"log_discharge": log_likelihood}, dims, coords)
    groups["sample_stats"] = group(sample_stats, dims, coords)
    if observed is not None:
        groups["observed_data"] = group({"log_discharge": observed}, dims, coords, sampled=False)
    return FitData(**groups, constant_data=group(constant, dims, coords, sampled=False))


class FitData:
    """A fit's groups (xarray Datasets) and root attributes, read as ``idata.posterior``, ``idata["posterior"]``,
    ``"posterior" in idata``, ``idata.groups()`` and ``idata.attrs``: what the pipeline uses of ArviZ's
    ``InferenceData``."""

    def __init__(self, attrs: dict | None = None, **groups: xr.Dataset):
        self.attrs = dict(attrs or {})
        self._groups = {}
        self.add_groups(groups)

    def __getattr__(self, name: str) -> xr.Dataset:
        groups = self.__dict__.get("_groups", {})
        if name in groups:
            return groups[name]
        raise AttributeError(f"FitData has no group {name!r}")

    def __getitem__(self, name: str) -> xr.Dataset:
        return self._groups[name]

    def __contains__(self, name: str) -> bool:
        return name in self._groups

    def groups(self) -> list[str]:
        return list(self._groups)

    def add_groups(self, groups: dict) -> None:
        """Add groups, kept in ArviZ's order (others after them, as they came)."""
        merged = {**self._groups, **groups}
        rank = {name: i for i, name in enumerate(ORDER)}
        self._groups = dict(sorted(merged.items(), key=lambda item: rank.get(item[0], len(ORDER))))

    def __repr__(self) -> str:
        return f"FitData(groups={self.groups()}, station={self.attrs.get('station')!r})"
