"""Pipeline stage ``export``: every station's ratings with their periods of applicability, and its
gaugings, as WaterML 2.0 Part 2 (OGC 15-018r2) XML and as one plain CSV table with validity columns.

XML layout (a ``wmlrgs:Collection``): one ``gaugingMember`` (an ``om:OM_Observation`` with a
``wmlrgs:Gauging`` result) per clean gauging, one ``conversionMember`` (``wmlrgs:ConversionTable``
of the median rating, gml:id ``{station}-period-{n}``) per rating period, and one ``groupMember``
(``wmlrgs:ConversionGroup``) per station whose ``ConversionPeriod`` entries give each table's
``periodStart`` and, except for the current period, ``periodEnd``. A first period with no start date
starts at its first gauging. No Python package ships the Part 2 schema, so the stage parses each station's
part of its output back (:func:`read_waterml`) and compares it with the station's table (:func:`station_part`);
a station's checked part is cached and rebuilt only when its inputs change (:func:`run`).
"""
from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape
from pathlib import Path

import numpy as np
import pandas as pd

NS = {
    "wmlrgs": "http://www.opengis.net/waterml/part2/1.0",
    "wml2": "http://www.opengis.net/waterml/2.0",
    "gml": "http://www.opengis.net/gml/3.2",
    "swe": "http://www.opengis.net/swe/2.0",
    "om": "http://www.opengis.net/om/2.0",
    "xlink": "http://www.w3.org/1999/xlink",
}
STAGE = "http://www.opengis.net/def/property/OGC/0/WaterLevel"  # illustrative property references
DISCHARGE = "http://www.opengis.net/def/property/OGC/0/Discharge"
#: the CSV export's columns
CSV_COLUMNS = ["station_id", "period", "valid_from", "valid_to", "stage_m", "discharge_median_m3s",
               "curve_hpdi90_lower_m3s", "curve_hpdi90_upper_m3s", "gauging_hpdi90_lower_m3s",
               "gauging_hpdi90_upper_m3s", "extrapolated"]

#: the collection's description
DESCRIPTION = ("Rating tables (posterior median) of ratingflow, with their periods of applicability (UTC), and the "
               "gaugings they were fitted to.")

for prefix, uri in NS.items():
    ET.register_namespace(prefix, uri)


def _q(tag: str) -> str:
    prefix, name = tag.split(":")
    return f"{{{NS[prefix]}}}{name}"


def _sub(parent, tag, text=None, **attrs):
    element = ET.SubElement(parent, _q(tag), {(_q(k.replace("__", ":")) if "__" in k else k): v
                                              for k, v in attrs.items()})
    if text is not None:
        element.text = text
    return element


def _quantity(parent, tag, unit, value):
    q = _sub(_sub(parent, tag), "swe:Quantity")
    _sub(q, "swe:uom", code=unit)
    _sub(q, "swe:value", f"{value:.6g}")


def _instant(parent, tag, when, gml_id):
    instant = _sub(_sub(parent, tag), "gml:TimeInstant", gml__id=gml_id)
    _sub(instant, "gml:timePosition", when)


def collection(stations: list[dict]) -> ET.ElementTree:
    """The WaterML 2.0 Part 2 document. Each station: ``station_id``, ``name``, ``table`` (its rating
    table with ``period``, ``valid_from``, ``valid_to``) and ``clean`` (its clean gaugings)."""
    root = ET.Element(_q("wmlrgs:Collection"), {_q("gml:id"): "ratingflow-ratings"})
    _sub(root, "gml:description", DESCRIPTION)
    for st in stations:
        for i, g in enumerate(st["clean"].itertuples()):
            obs = _sub(_sub(root, "wmlrgs:gaugingMember"), "om:OM_Observation", gml__id=f"{st['station_id']}-gauging-{i + 1}")
            _instant(obs, "om:phenomenonTime", str(g.datetime) or "unknown", f"{st['station_id']}-gauging-{i + 1}-time")
            _sub(obs, "om:featureOfInterest", xlink__href=f"#{st['station_id']}", xlink__title=st["name"])
            result = _sub(_sub(obs, "om:result"), "wmlrgs:Gauging")
            _quantity(result, "wmlrgs:inputValue", "m", g.stage_m)
            _quantity(result, "wmlrgs:outputValue", "m3/s", g.discharge_m3s)
    for st in stations:
        for period, part in st["table"].groupby("period", sort=True):
            table = _sub(_sub(root, "wmlrgs:conversionMember"), "wmlrgs:ConversionTable",
                         gml__id=f"{st['station_id']}-period-{period}")
            _sub(table, "wmlrgs:monitoringPoint", xlink__href=f"#{st['station_id']}", xlink__title=st["name"])
            _sub(table, "wmlrgs:inputProperty", xlink__href=STAGE, xlink__title="stage (m, station datum)")
            _sub(table, "wmlrgs:outputProperty", xlink__href=DISCHARGE, xlink__title="discharge (m3/s)")
            for row in part.itertuples():
                tup = _sub(_sub(table, "wmlrgs:point"), "wmlrgs:TableTuple")
                _quantity(tup, "wmlrgs:inputValue", "m", row.stage_m)
                _quantity(tup, "wmlrgs:outputValue", "m3/s", row.discharge_median_m3s)
    for st in stations:
        group = _sub(_sub(root, "wmlrgs:groupMember"), "wmlrgs:ConversionGroup", gml__id=f"{st['station_id']}-group")
        _sub(group, "wmlrgs:monitoringPoint", xlink__href=f"#{st['station_id']}", xlink__title=st["name"])
        _sub(group, "wmlrgs:fullConversion", "true")
        first = str(st["clean"]["datetime"].replace("", np.nan).dropna().min()) if len(st["clean"]) else ""
        for period, part in st["table"].groupby("period", sort=True):
            entry = _sub(_sub(group, "wmlrgs:period"), "wmlrgs:ConversionPeriod")
            start, end = str(part["valid_from"].iloc[0] or ""), str(part["valid_to"].iloc[0] or "")
            _instant(entry, "wmlrgs:periodStart", start or first or "unknown", f"{st['station_id']}-p{period}-start")
            if end:
                _instant(entry, "wmlrgs:periodEnd", end, f"{st['station_id']}-p{period}-end")
            _sub(entry, "wmlrgs:applicableConversion", xlink__href=f"#{st['station_id']}-period-{period}")
    ET.indent(root)
    return ET.ElementTree(root)


def _is_text(source) -> bool:
    """Whether ``source`` is XML text rather than a path."""
    return isinstance(source, str) and source.lstrip().startswith("<")


def read_waterml(source) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(tables, periods) read back from a document written by :func:`collection` (a path, or the XML text)."""
    root = ET.fromstring(source) if _is_text(source) else ET.parse(source).getroot()
    rows = []
    for table in root.iter(_q("wmlrgs:ConversionTable")):
        station, _, period = table.get(_q("gml:id")).rpartition("-period-")
        for tup in table.iter(_q("wmlrgs:TableTuple")):
            values = [float(q.find(_q("swe:value")).text) for q in tup.iter(_q("swe:Quantity"))]
            rows.append({"station_id": station, "period": int(period), "stage_m": values[0],
                         "discharge_median_m3s": values[1]})
    periods = []
    for group in root.iter(_q("wmlrgs:ConversionGroup")):
        for entry in group.iter(_q("wmlrgs:ConversionPeriod")):
            ref = entry.find(_q("wmlrgs:applicableConversion")).get(_q("xlink:href"))[1:]
            station, _, period = ref.rpartition("-period-")
            end = entry.find(_q("wmlrgs:periodEnd"))
            periods.append({"station_id": station, "period": int(period),
                            "start": entry.find(f"{_q('wmlrgs:periodStart')}//{_q('gml:timePosition')}").text,
                            "end": "" if end is None else end.find(f".//{_q('gml:timePosition')}").text})
    return pd.DataFrame(rows), pd.DataFrame(periods)


def check_round_trip(source, tables: pd.DataFrame) -> None:
    """Raise when the XML read back (a path, or the XML text) differs from the tables (6 significant digits)."""
    name = "the export" if _is_text(source) else str(source)
    back, periods = read_waterml(source)
    if len(back) != len(tables):
        raise AssertionError(f"{name}: {len(back)} table points read back, {len(tables)} written")
    keys = ["station_id", "period", "stage_m"]
    back, tables = (t.sort_values(keys, kind="stable").reset_index(drop=True) for t in (back, tables))
    if not (back["station_id"].equals(tables["station_id"].astype(back["station_id"].dtype))
            and np.array_equal(back["period"], tables["period"])):
        raise AssertionError(f"{name}: stations or periods differ after reading the XML back")
    for column in ("stage_m", "discharge_median_m3s"):
        if not np.allclose(back[column].to_numpy(), tables[column].to_numpy(), rtol=1e-5, atol=1e-9):
            raise AssertionError(f"{name}: column {column} differs after reading the XML back")
    ends = tables.groupby(["station_id", "period"])["valid_to"].first().fillna("").to_numpy(str)
    periods = periods.sort_values(["station_id", "period"], kind="stable")
    if list(periods["end"]) != list(ends):
        raise AssertionError(f"{name}: the periods' end dates differ after reading the XML back")


#: raised when a station's exported text changes for the same inputs (cached parts are then rebuilt)
VERSION = "1"
#: the collection's members, in the order the document lists them (all gaugings, all tables, all groups)
MEMBERS = ("wmlrgs:gaugingMember", "wmlrgs:conversionMember", "wmlrgs:groupMember")


def _sections(text: str) -> list[str]:
    """A one-station document's members of each kind, as text (each member starts with a newline)."""
    end = text.rindex("\n</wmlrgs:Collection>")
    starts = [text.find(f"\n  <{member}>") for member in MEMBERS]
    return [text[s:min([t for t in starts[k + 1:] if t >= 0] + [end])] if s >= 0 else ""
            for k, s in enumerate(starts)]


def station_part(spec, table_csv, clean_csv) -> dict | None:
    """One station's share of both exports, checked: its members of the XML collection by kind, its CSV rows,
    and counts. The station's members are written as a document of their own, read back and compared with
    its table (:func:`check_round_trip`). None for a station without a table."""
    table = pd.read_csv(table_csv, dtype={"valid_from": str, "valid_to": str}, keep_default_na=False)
    if table.empty:
        return None
    clean = pd.read_csv(clean_csv, dtype={"datetime": str}, keep_default_na=False)
    root = collection([{"station_id": spec.station_id, "name": spec.name, "table": table, "clean": clean}]).getroot()
    text = ET.tostring(root, encoding="unicode")
    rows = table.assign(station_id=spec.station_id).reindex(columns=CSV_COLUMNS)
    check_round_trip(text, rows.assign(valid_to=rows["valid_to"].fillna("")))
    return {"sections": _sections(text), "csv": rows.to_csv(index=False, header=False, float_format="%.6g",
                                                            lineterminator="\n"),
            "periods": int(table["period"].nunique()), "gaugings": len(clean)}


def _key(spec, table_csv, clean_csv) -> str:
    from . import reuse

    return reuse.digest([table_csv, clean_csv], {"station": spec.station_id, "name": spec.name}, 0, VERSION)


def _look_up(spec, table_csv, clean_csv, cache: Path | None) -> tuple[bool, dict | None]:
    """(found, part) of the station in ``cache`` (None: no cache, never found)."""
    if cache is None:
        return False, None
    try:
        entry = json.loads((cache / f"{spec.station_id}.json").read_text())
        if entry["key"] == _key(spec, table_csv, clean_csv):
            return True, entry["part"]
    except (OSError, ValueError, KeyError):
        pass
    return False, None


def _build(spec, table_csv, clean_csv, cache: Path | None) -> dict | None:
    """The station's part built and checked (:func:`station_part`), and kept in ``cache`` (written atomically)."""
    part = station_part(spec, table_csv, clean_csv)
    if cache is not None:
        path = cache / f"{spec.station_id}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": _key(spec, table_csv, clean_csv), "part": part}))
        os.replace(tmp, path)
    return part


def run(specs, table_csvs, clean_csvs, xml_out, csv_out, cache=None, workers: int = 1) -> dict:
    """Pipeline step: both exports of every fitted station (a station without a table is left out).

    Each station's part is built and checked on its own (:func:`station_part`); with ``cache`` (a folder) a
    station whose table, gaugings and name did not change takes its part from there, so an incremental run
    rebuilds the changed stations only and the whole-run job concatenates the rest. ``workers`` > 1: the parts are
    built by that many processes (the job waits for every station, so it runs last and alone; the document is the
    same). Returns counts."""
    if cache is not None:
        cache = Path(cache)
        cache.mkdir(parents=True, exist_ok=True)
    stations = list(zip(specs, table_csvs, clean_csvs))
    found = [_look_up(*station, cache) for station in stations]
    todo = [(*station, cache) for station, (hit, _) in zip(stations, found) if not hit]
    import multiprocessing

    # not for the few stations of an incremental run (forking costs more), nor where processes cannot be forked
    if workers > 1 and len(todo) > workers and "fork" in multiprocessing.get_all_start_methods():
        with multiprocessing.get_context("fork").Pool(workers) as pool:  # forked: the imports are inherited
            new = iter(pool.starmap(_build, todo, chunksize=max(1, len(todo) // (8 * workers))))
    else:
        new = iter([_build(*args) for args in todo])
    parts = [part if hit else next(new) for hit, part in found]
    parts = [part for part in parts if part is not None]
    built = len(todo)
    # the root declares every namespace, whichever the members use
    opening = ("<wmlrgs:Collection " + " ".join(f'xmlns:{prefix}="{uri}"' for prefix, uri in NS.items())
               + f' gml:id="ratingflow-ratings">\n  <gml:description>{escape(DESCRIPTION)}</gml:description>')
    Path(xml_out).parent.mkdir(parents=True, exist_ok=True)
    _write(xml_out, [f"<?xml version='1.0' encoding='UTF-8'?>\n{opening}"]
           + [part["sections"][k] for k in range(len(MEMBERS)) for part in parts] + ["\n</wmlrgs:Collection>\n"])
    _write(csv_out, [",".join(CSV_COLUMNS) + "\n"] + [part["csv"] for part in parts])
    counts = {"stations": len(parts), "periods": sum(p["periods"] for p in parts),
              "gaugings": sum(p["gaugings"] for p in parts), "built": built, "reused": len(specs) - built}
    print(f"{counts['stations']} stations, {counts['periods']} rating period(s), {counts['gaugings']} gaugings exported "
          f"to {xml_out} and {csv_out}; {counts['built']} station(s) built, each read back and compared with its "
          f"table: identical" + (f"; {counts['reused']} unchanged, taken from {cache}" if cache else ""))
    return counts


def _write(path, chunks) -> None:
    """``path`` replaced atomically by the concatenated ``chunks``."""
    tmp = Path(f"{path}.tmp")
    with open(tmp, "w", encoding="utf-8") as sink:
        sink.writelines(chunks)
    os.replace(tmp, path)
