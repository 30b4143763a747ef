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

    with netCDF4.Dataset(path, mode="r") as nc:
        loaded = {name: read_group(group) for name, group in nc.groups.items()
                  if (groups is None and not name.startswith(MIXTURE_PREFIX)) or (groups is not None and name in groups)}
        attrs = read_group(nc).attrs
    from .idata import FitData

    return FitData(attrs=attrs, **loaded)


def load_groups(path, prefix: str) -> dict:
    """The groups of a netCDF file whose names start with ``prefix``, as xarray Datasets (loaded)."""
    import netCDF4

    with netCDF4.Dataset(path, mode="r") as nc:
        return {name: read_group(group) for name, group in nc.groups.items() if name.startswith(prefix)}


def read_group(group):
    """A netCDF4 group as ``xr.open_dataset`` reads it, loaded. A group of numbers and booleans that xarray's CF
    decoding leaves as they are (a float's ``_FillValue`` NaN, a boolean an int8 with ``dtype: bool``, no mask,
    scale, time or coordinate attribute: what :func:`save_groups` writes) is read through netCDF4 directly, into the
    same Dataset (``identical``; no ``encoding``). Any other group goes through xarray."""
    import numpy as np
    import xarray as xr

    variables = {name: (var, {k: var.getncattr(k) for k in var.ncattrs()}) for name, var in group.variables.items()}
    group_attrs = {k: group.getncattr(k) for k in group.ncattrs()}
    if "coordinates" in group_attrs or not all(_plain_variable(var, attrs) for var, attrs in variables.values()):
        data = xr.open_dataset(xr.backends.NetCDF4DataStore(group)).load()
        data.set_close(None)  # in memory: nothing to close once the file is
        return data
    data, coords = {}, {}
    for name, (var, attrs) in variables.items():
        var.set_auto_maskandscale(False)
        values = np.asarray(var[...])
        attrs.pop("_FillValue", None)
        if attrs.pop("dtype", None) == "bool":
            values = values.astype(bool)
        (coords if var.dimensions == (name,) else data)[name] = xr.Variable(var.dimensions, values, attrs)
    return xr.Dataset(data, coords, attrs=group_attrs)


#: variable attributes that xarray's CF decoding and encoding act on (besides ``_FillValue``, ``dtype`` and ``units``)
_CF_ATTRS = {"missing_value", "scale_factor", "add_offset", "calendar", "coordinates", "bounds", "_Unsigned",
             "_Encoding"}
#: units that make xarray decode numbers as times or time spans
_TIME_UNITS = {"days", "hours", "minutes", "seconds", "milliseconds", "microseconds", "nanoseconds"}


def _cf_free(attrs: dict) -> bool:
    """Whether xarray's CF coding leaves a variable with these attributes (besides ``_FillValue`` and ``dtype``) as
    it is: no mask, scale, time, string or coordinate attribute."""
    units = attrs.get("units")
    timed = isinstance(units, str) and (" since " in units or units.strip().lower() in _TIME_UNITS)
    return not (_CF_ATTRS & set(attrs)) and not timed


def _plain_variable(var, attrs: dict) -> bool:
    """Whether xarray would read the netCDF4 variable ``var`` (attributes ``attrs``) as :func:`read_group` does."""
    import numpy as np

    kind = var.dtype.kind if isinstance(var.dtype, np.dtype) else "O"
    if kind not in "fiu" or not _cf_free(attrs):
        return False
    if "_FillValue" in attrs and (kind != "f" or not np.isnan(attrs["_FillValue"])):
        return False
    return "dtype" not in attrs or (var.dtype == np.int8 and attrs["dtype"] == "bool")


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
        nc.setncatts(attrs or {})  # as xarray sets them (a list of strings as NC_STRING: tested)
        for name, group in groups.items():
            target = nc.createGroup(name)
            if _plain(group):
                _write_plain(target, group)
            else:
                group.dump_to_store(xr.backends.NetCDF4DataStore(target))


#: a variable's encoding that reading one of our files leaves (uncompressed, contiguous): written as if it had none
_READ_ENCODING = {"source", "original_shape", "dtype", "_FillValue", "contiguous", "chunksizes", "zlib", "szip",
                  "zstd", "bzip2", "blosc", "shuffle", "complevel", "fletcher32", "endian"}


def _plain(dataset) -> bool:
    """Whether ``dump_to_store`` would write ``dataset`` as :func:`_write_plain` does: numbers and booleans, every
    coordinate a dimension's own, no attribute xarray's encoding reads, no encoding but what reading an
    uncompressed, contiguous file leaves."""
    import numpy as np

    for name, var in dataset.variables.items():
        enc, kind = var.encoding, var.dtype.kind
        if kind not in "fiub" or (name in dataset.coords and var.dims != (name,)):
            return False
        if set(enc) - _READ_ENCODING or any(enc.get(k) for k in ("zlib", "szip", "zstd", "bzip2", "blosc")):
            return False
        if enc.get("contiguous") is False or enc.get("chunksizes") is not None:
            return False
        stored = np.dtype("int8") if kind == "b" else var.dtype
        if np.dtype(enc.get("dtype", stored)) != stored or enc.get("endian", "native") != "native":
            return False
        fill = enc.get("_FillValue", np.nan if kind == "f" else None)
        if (fill is not None) if kind != "f" else (fill is None or not np.isnan(fill)):
            return False
        if {"_FillValue", "dtype"} & set(var.attrs) or not _cf_free(var.attrs):
            return False
    return True


def _write_plain(target, dataset) -> None:
    """Write a :func:`_plain` Dataset into a netCDF4 group as ``dump_to_store`` writes it (byte for byte: the group's
    attributes, its dimensions in order of first use, a float with a NaN ``_FillValue``, a boolean as int8 with
    ``dtype: bool``), without xarray's encoding."""
    import numpy as np

    target.setncatts(dataset.attrs)
    inherited, parent = {}, target.parent
    while parent is not None:  # xarray does not define again a dimension of the same size in an enclosing group
        inherited = {**{k: len(d) for k, d in parent.dimensions.items()}, **inherited}
        parent = parent.parent
    for name, size in {k: v for var in dataset.variables.values() for k, v in var.sizes.items()}.items():
        if inherited.get(name) != size:
            target.createDimension(name, size)
    for name, var in dataset.variables.items():
        values, attrs = np.asarray(var.values), dict(var.attrs)
        if values.dtype.kind == "b":
            values, attrs["dtype"] = values.astype("int8"), "bool"
        fill = np.nan if values.dtype.kind == "f" else None
        out = target.createVariable(name, values.dtype, var.dims, fill_value=fill)
        out.setncatts(attrs)
        out.set_auto_maskandscale(False)
        out[...] = values


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
