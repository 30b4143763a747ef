"""Reading and writing results: InferenceData (netCDF4, about 3x faster than h5netcdf here; each file opened
once for all its groups), small JSON records, and small CSV tables read once per content."""
from __future__ import annotations

import json
from io import BytesIO
from pathlib import Path


#: the prefix of a fit file's groups that are not ArviZ groups (the stacking mixture, :mod:`ratingflow.mixture`)
MIXTURE_PREFIX = "mixture_"


def load_idata(path, groups=None):
    """The InferenceData of a netCDF file, as ``az.from_netcdf`` reads it (every group loaded, the root's
    attributes), with the file opened once for all groups: ``from_netcdf`` opens it again for each group,
    which took twice as long (0.066 against 0.030 s for a fit of 4 x 1000 draws). ``groups``: only those
    (the others are not read). A fit file's mixture groups (:data:`MIXTURE_PREFIX`, not ArviZ groups) are left to
    :func:`load_groups`. Returns a :class:`ratingflow.idata.FitData`, without importing ArviZ."""
    import netCDF4
    import xarray as xr

    def read(group):
        data = xr.open_dataset(xr.backends.NetCDF4DataStore(group)).load()
        data.set_close(None)  # in memory: nothing to close once the file is
        return data

    with netCDF4.Dataset(path, mode="r") as nc:
        loaded = {name: read(group) for name, group in nc.groups.items()
                  if (groups is None and not name.startswith(MIXTURE_PREFIX)) or (groups is not None and name in groups)}
        attrs = read(nc).attrs
    from .idata import FitData

    return FitData(attrs=attrs, **loaded)


def load_groups(path, prefix: str) -> dict:
    """The groups of a netCDF file whose names start with ``prefix``, as xarray Datasets (loaded)."""
    import netCDF4
    import xarray as xr

    out = {}
    with netCDF4.Dataset(path, mode="r") as nc:
        for name, group in nc.groups.items():
            if name.startswith(prefix):
                out[name] = xr.open_dataset(xr.backends.NetCDF4DataStore(group)).load()
                out[name].set_close(None)
    return out


def root_attrs(path) -> dict:
    """The attributes of a netCDF file's root group (an InferenceData's ``attrs``), without reading its data."""
    import netCDF4

    with netCDF4.Dataset(path, mode="r") as nc:
        return {name: nc.getncattr(name) for name in nc.ncattrs()}


def save_idata(idata, path, extra: dict | None = None) -> None:
    """Write InferenceData as ``idata.to_netcdf`` lays it out (the root's attributes, one netCDF group per
    ArviZ group; ``az.from_netcdf`` and :func:`load_idata` read it), with the file opened once and without
    zlib: ``to_netcdf`` reopens the file for every group and compresses every variable, which took 0.22-0.30 s
    for a fit of 4 x 1000 draws against 0.06-0.07 s here; the file is about 1.5 times larger (a fit of 192
    gaugings: 3.3 -> 4.9 MB), and reads faster. A variable read from a compressed file keeps its encoding.
    ``extra``: more groups (xarray Datasets) by name, e.g. a fit's mixture (:mod:`ratingflow.mixture`)."""
    save_groups({**{group: idata[group] for group in idata.groups()}, **(extra or {})}, path, idata.attrs)


def save_groups(groups: dict, path, attrs: dict | None = None) -> None:
    """Write xarray Datasets as the groups of an InferenceData file (:func:`save_idata`'s layout), with ``attrs`` on
    the root: for a stage that has its groups without ArviZ (1.3 s to import)."""
    import netCDF4
    import xarray as xr

    with netCDF4.Dataset(str(path), mode="w", format="NETCDF4") as nc:
        if attrs:
            xr.Dataset(attrs=attrs).dump_to_store(xr.backends.NetCDF4DataStore(nc))
        for name, group in groups.items():
            group.dump_to_store(xr.backends.NetCDF4DataStore(nc.createGroup(name)))


def save_variables(path, variables: dict, attrs: dict) -> None:
    """Write ``{name: (dims, values, attrs)}`` and the file's ``attrs`` to a netCDF-4 file as xarray's ``to_netcdf``
    encodes them (a float with a NaN ``_FillValue``, text as variable-length strings; ``xr.open_dataset`` reads the
    same Dataset back), through netCDF4 directly: xarray's encoding took 8-10 ms of a rating table's 10 (issue 16)."""
    import netCDF4
    import numpy as np

    with netCDF4.Dataset(str(path), mode="w", format="NETCDF4") as nc:
        for name, (dims, values, var_attrs) in variables.items():
            values = np.asarray(values)
            for dim, size in zip(dims, values.shape):
                if dim not in nc.dimensions:
                    nc.createDimension(dim, size)
            if values.dtype.kind in "US":
                var = nc.createVariable(name, str, dims)
                values = values.astype(object)
            else:
                fill = np.nan if values.dtype.kind == "f" else None
                var = nc.createVariable(name, values.dtype, dims, fill_value=fill)
            var[...] = values
            var.setncatts(var_attrs)
        nc.setncatts(attrs)


def load_json(path) -> dict:
    with open(path) as fh:
        return json.load(fh)


def save_json(data: dict, path) -> None:
    with open(path, "w") as fh:
        json.dump(data, fh, indent=2)


def station_files(directory, stations, suffix: str) -> list[str]:
    """``directory/{station}{suffix}`` for each station: the files a batch job writes into its folder."""
    import os

    os.makedirs(directory, exist_ok=True)
    return [os.path.join(str(directory), f"{station}{suffix}") for station in stations]


def csv_reader(store=None):
    """``pd.read_csv`` that parses each content once per reader and hands out copies. The whole-run stages read
    thousands of small files, and many are the same bytes: an unchanged station's table and its snapshot's,
    the header-only shift tables of stations without shifts, a table read by two steps.

    With ``store`` (a path), the frames parsed in a previous run, keyed by the sha256 of their bytes and the
    options, are read from it, and ``read.save()`` keeps there the frames of this run: a scheduled run parses only
    the files that changed. A missing or unreadable store costs time, never a result."""
    import hashlib

    import pandas as pd

    kept = load_cache(store) if store else {}
    parsed: dict = {}
    fresh: list = []  # keys parsed in this run

    def read(path, **options) -> pd.DataFrame:
        data = Path(path).read_bytes()
        key = (hashlib.sha256(data).hexdigest(), repr(options))
        if key not in parsed:
            frame = kept.get(key)
            if not isinstance(frame, pd.DataFrame):
                frame = pd.read_csv(BytesIO(data), **options)
                fresh.append(key)
            parsed[key] = frame
        return parsed[key].copy()

    def save() -> None:
        if not store or (not fresh and Path(store).exists()):  # none, or it already holds every frame used
            return
        save_cache(store, parsed)

    read.save = save
    return read


def load_cache(path) -> dict:
    """A cache that :func:`save_cache` wrote; {} when there is none yet, or it was written by another version of
    Python or pandas, or is broken: a cache costs time when it is missing, never a result."""
    import pickle

    try:
        return pickle.loads(Path(path).read_bytes())
    except Exception:
        return {}


def save_cache(path, data: dict) -> None:
    """Write a cache atomically (a killed run leaves the old one or none)."""
    import os
    import pickle

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    partial = Path(f"{path}.partial")
    partial.write_bytes(pickle.dumps(data))
    os.replace(partial, path)
