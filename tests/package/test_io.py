"""Reading InferenceData: the same groups and attributes as ArviZ's reader, and the result can be written again."""
import arviz as az
import numpy as np

from ratingflow import status
from ratingflow.io import load_idata, save_idata


def test_load_idata_reads_what_arviz_reads_and_writes_it_back(tmp_path):
    rng = np.random.default_rng(0)
    idata = az.from_dict(posterior={"b": rng.normal(size=(2, 50, 3))},
                         constant_data={"stage": np.linspace(0, 1, 7),
                                        "gauging_time": np.arange("2020-01-01", "2020-01-08", dtype="datetime64[D]")},
                         log_likelihood={"log_discharge": rng.normal(size=(2, 50, 7))},
                         dims={"stage": ["gauging"], "gauging_time": ["gauging"], "log_discharge": ["gauging"]})
    idata.attrs.update({"station": "s1", "model": "seg2"})
    for k, source in enumerate((idata, status.empty_idata("s2", "insufficient data"))):
        path = tmp_path / f"a{k}.nc"
        save_idata(source, path)
        ours, theirs = load_idata(path), az.from_netcdf(path, engine="netcdf4")
        assert ours.groups() == theirs.groups() and ours.attrs == theirs.attrs
        for group in ours.groups():
            assert ours[group].identical(theirs[group]), group
        save_idata(ours, tmp_path / f"b{k}.nc")  # the file is closed: writing must not touch it
        again = load_idata(tmp_path / f"b{k}.nc")
        for group in ours.groups():
            assert again[group].identical(ours[group]), group
        # a file ArviZ wrote (compressed, as fits were before save_idata wrote them itself) reads and writes the same
        written = az.InferenceData(attrs=source.attrs, **{group: source[group] for group in source.groups()})
        written.to_netcdf(str(tmp_path / f"c{k}.nc"), engine="netcdf4")
        old = load_idata(tmp_path / f"c{k}.nc")
        save_idata(old, tmp_path / f"d{k}.nc")
        rewritten = load_idata(tmp_path / f"d{k}.nc")
        assert rewritten.groups() == ours.groups() and rewritten.attrs == ours.attrs
        for group in ours.groups():
            assert rewritten[group].identical(ours[group]), group


def test_csv_reader_parses_each_content_once_and_hands_out_copies(tmp_path, monkeypatch):
    import pandas as pd

    from ratingflow.io import csv_reader

    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    a.write_text("x,when\n1,2020-01-01\n")
    b.write_bytes(a.read_bytes())  # another file, the same bytes
    c.write_text("x,when\n2,\n")
    calls = []
    real = pd.read_csv
    monkeypatch.setattr(pd, "read_csv", lambda *args, **kw: calls.append(kw) or real(*args, **kw))
    read = csv_reader()
    first = read(a, dtype={"when": str})
    first.loc[0, "x"] = 99  # a copy: the next reader of the same bytes must not see it
    pd.testing.assert_frame_equal(read(b, dtype={"when": str}), real(a, dtype={"when": str}))
    assert len(calls) == 1
    read(a)  # other options: parsed again
    assert read(c, keep_default_na=False)["when"].tolist() == [""] and len(calls) == 3


def test_a_csv_reader_with_a_store_parses_only_the_files_whose_bytes_changed_since_the_last_run(tmp_path, monkeypatch):
    import pandas as pd

    from ratingflow.io import csv_reader

    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("x,y\n1,2\n")
    b.write_text("x,y\n3,4\n")
    store = tmp_path / ".cache" / "frames.pkl"
    read = csv_reader(store)
    before = [read(a), read(b)]
    read.save()
    calls = []
    real = pd.read_csv
    monkeypatch.setattr(pd, "read_csv", lambda *args, **kw: calls.append(args) or real(*args, **kw))
    b.write_text("x,y\n3,5\n")
    read = csv_reader(store)
    pd.testing.assert_frame_equal(read(a), before[0])
    assert read(b)["y"].tolist() == [5] and len(calls) == 1  # only b parsed
    read(b, dtype=str)  # other options: parsed
    assert len(calls) == 2
    store.write_bytes(b"not a pickle")  # a broken store costs time only
    assert csv_reader(store)(a).equals(before[0]) and len(calls) == 3


def _layout(path) -> list:
    """Everything a netCDF-4 file holds, group by group: attributes, dimensions, and each variable's type,
    dimensions, attributes, storage, filters and bytes."""
    import netCDF4

    out = []

    def walk(group, where):
        out.append((where, sorted((k, repr(group.getncattr(k))) for k in group.ncattrs()),
                    [(k, len(d)) for k, d in group.dimensions.items()]))
        for name, var in group.variables.items():
            var.set_auto_maskandscale(False)
            out.append((where, name, str(var.dtype), var.dimensions, [(a, repr(var.getncattr(a))) for a in var.ncattrs()],
                        var.chunking(), var.filters(), np.asarray(var[...]).tobytes()))
        for name, sub in group.groups.items():
            walk(sub, f"{where}/{name}")

    with netCDF4.Dataset(path) as nc:
        walk(nc, "")
    return out


def test_groups_are_written_and_read_without_xarray_as_xarray_writes_and_reads_them(tmp_path):
    """save_groups writes plain groups (numbers, booleans) itself and load_idata reads them itself (issue 16): the
    file must be the one xarray's dump_to_store writes, and the Datasets the ones xr.open_dataset reads, for every
    kind of variable a fit or prior file holds; a group with anything else goes through xarray both ways."""
    import netCDF4
    import xarray as xr

    from ratingflow.io import load_groups, save_groups

    rng = np.random.default_rng(1)
    plain = xr.Dataset(
        {"b": (("chain", "draw", "segment"), rng.normal(size=(2, 5, 3)).astype(np.float32)),
         "h0": (("chain", "draw"), rng.normal(size=(2, 5))),
         "diverging": (("chain", "draw"), rng.random((2, 5)) < 0.3),
         "n_steps": (("chain", "draw"), rng.integers(1, 9, (2, 5)).astype(np.int32)),
         "stage_offset": ((), 1.25),
         "with_nan": ("gauging", np.array([1.0, np.nan, 3.0])),
         "mixture_draw_only": ("mixture_draw", np.arange(4.0)),  # a dimension without a coordinate
         "labelled": ("gauging", np.zeros(3), {"units": "m3/s", "meaning": "a variable with attributes"}),
         "no_breakpoint": ("breakpoint_number", np.zeros(0, np.float32))},
        coords={"chain": [0, 1], "draw": np.arange(5), "segment": [1, 2, 3], "gauging": [0.5, 1.5, 2.5]},
        attrs={"created_at": "2026-12-07T00:00:00", "share_inside": 0.95, "passed": 1, "names": ["a", "b"]})
    other = xr.Dataset({"station": ("gauging", np.array(["x", "y", "z"]))}, coords={"gauging": [0, 1, 2]})
    spans = xr.Dataset({"age": ("gauging", np.arange(3.0), {"units": "days since 2020-01-01"})})  # times to xarray
    groups = {"posterior": plain, "constant_data": other, "mixture_seg2": plain.drop_vars("labelled"),
              "mixture_seg3": spans}
    attrs = {"station": "s1", "seed": np.int64(3), "convergence": "{}"}
    save_groups(groups, tmp_path / "ours.nc", attrs)
    with netCDF4.Dataset(tmp_path / "xarray.nc", mode="w", format="NETCDF4") as nc:
        xr.Dataset(attrs=attrs).dump_to_store(xr.backends.NetCDF4DataStore(nc))
        for name, group in groups.items():
            group.dump_to_store(xr.backends.NetCDF4DataStore(nc.createGroup(name)))
    assert _layout(tmp_path / "ours.nc") == _layout(tmp_path / "xarray.nc")

    ours = {**{g: load_idata(tmp_path / "ours.nc")[g] for g in ("posterior", "constant_data")},
            **load_groups(tmp_path / "ours.nc", "mixture_")}
    with netCDF4.Dataset(tmp_path / "ours.nc") as nc:
        for name in groups:
            theirs = xr.open_dataset(xr.backends.NetCDF4DataStore(nc.groups[name])).load()
            assert ours[name].identical(theirs), name
            assert name == "mixture_seg3" or ours[name].identical(groups[name]), name
    assert ours["posterior"]["diverging"].dtype == bool and ours["constant_data"]["station"].dtype.kind in "OU"
    assert ours["posterior"]["labelled"].attrs == {"units": "m3/s", "meaning": "a variable with attributes"}
    assert ours["mixture_seg3"]["age"].dtype.kind == "M"  # decoded by xarray, not read as numbers
    # read back and written again (the fit copies the prior check's groups): the same file (the times left out:
    # xarray writes them back with a calendar)
    again = {name: ours[name] for name in groups if name != "mixture_seg3"}
    save_groups(again, tmp_path / "again.nc", attrs)
    first = [row for row in _layout(tmp_path / "ours.nc") if not row[0].startswith("/mixture_seg3")]
    assert _layout(tmp_path / "again.nc") == first
