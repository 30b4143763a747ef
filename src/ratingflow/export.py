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

#: the document's opening: the root declares every namespace, whichever the members use
OPENING = ("<?xml version='1.0' encoding='UTF-8'?>\n<wmlrgs:Collection "
           + " ".join(f'xmlns:{prefix}="{uri}"' for prefix, uri in NS.items())
           + f' gml:id="ratingflow-ratings">\n  <gml:description>{escape(DESCRIPTION)}</gml:description>')
#: the document's end
CLOSING = "\n</wmlrgs:Collection>\n"


def _q(tag: str) -> str:
    prefix, name = tag.split(":")
    return f"{{{NS[prefix]}}}{name}"


#: escapes of an attribute's value, as ElementTree writes them
_ATTRIBUTE = {'"': "&quot;", "\r": "&#13;", "\n": "&#10;", "\t": "&#09;"}
#: the stage and discharge of a gauging and of a table's point alike: part of :data:`_GAUGING` and :data:`_POINT`
_VALUES = """          <wmlrgs:inputValue>
            <swe:Quantity>
              <swe:uom code="m" />
              <swe:value>{stage:.6g}</swe:value>
            </swe:Quantity>
          </wmlrgs:inputValue>
          <wmlrgs:outputValue>
            <swe:Quantity>
              <swe:uom code="m3/s" />
              <swe:value>{discharge:.6g}</swe:value>
            </swe:Quantity>
          </wmlrgs:outputValue>
"""
#: one station's members (:func:`members`), indented as ``ET.indent`` indents them; each starts with a newline
_GAUGING = """
  <wmlrgs:gaugingMember>
    <om:OM_Observation gml:id="{sid}-gauging-{i}">
      <om:phenomenonTime>
        <gml:TimeInstant gml:id="{sid}-gauging-{i}-time">
          <gml:timePosition>{when}</gml:timePosition>
        </gml:TimeInstant>
      </om:phenomenonTime>
      <om:featureOfInterest xlink:href="#{sid}" xlink:title="{name}" />
      <om:result>
        <wmlrgs:Gauging>
""" + _VALUES + """        </wmlrgs:Gauging>
      </om:result>
    </om:OM_Observation>
  </wmlrgs:gaugingMember>"""
_TABLE = """
  <wmlrgs:conversionMember>
    <wmlrgs:ConversionTable gml:id="{sid}-period-{period}">
      <wmlrgs:monitoringPoint xlink:href="#{sid}" xlink:title="{name}" />
      <wmlrgs:inputProperty xlink:href="{stage_property}" xlink:title="stage (m, station datum)" />
      <wmlrgs:outputProperty xlink:href="{discharge_property}" xlink:title="discharge (m3/s)" />{points}
    </wmlrgs:ConversionTable>
  </wmlrgs:conversionMember>"""
_POINT = """
      <wmlrgs:point>
        <wmlrgs:TableTuple>
""" + _VALUES + """        </wmlrgs:TableTuple>
      </wmlrgs:point>"""
_GROUP = """
  <wmlrgs:groupMember>
    <wmlrgs:ConversionGroup gml:id="{sid}-group">
      <wmlrgs:monitoringPoint xlink:href="#{sid}" xlink:title="{name}" />
      <wmlrgs:fullConversion>true</wmlrgs:fullConversion>{periods}
    </wmlrgs:ConversionGroup>
  </wmlrgs:groupMember>"""
_PERIOD = """
      <wmlrgs:period>
        <wmlrgs:ConversionPeriod>
          <wmlrgs:periodStart>
            <gml:TimeInstant gml:id="{sid}-p{period}-start">
              <gml:timePosition>{start}</gml:timePosition>
            </gml:TimeInstant>
          </wmlrgs:periodStart>{end}
          <wmlrgs:applicableConversion xlink:href="#{sid}-period-{period}" />
        </wmlrgs:ConversionPeriod>
      </wmlrgs:period>"""
_END = """
          <wmlrgs:periodEnd>
            <gml:TimeInstant gml:id="{sid}-p{period}-end">
              <gml:timePosition>{end}</gml:timePosition>
            </gml:TimeInstant>
          </wmlrgs:periodEnd>"""


def members(station_id: str, name: str, table: pd.DataFrame, clean: pd.DataFrame) -> list[str]:
    """One station's members of the collection (see the module docstring), as text by kind (:data:`MEMBERS`).
    ``table``: its rating table with ``period``, ``valid_from`` and ``valid_to``; ``clean``: its clean gaugings
    (``datetime`` as text). Written from templates, as ElementTree writes and indents the same elements
    (tests/package/test_export.py builds them with ElementTree and compares the text): building, indenting and
    serialising the trees took most of the export job's time."""
    sid, title = escape(station_id, _ATTRIBUTE), escape(str(name), _ATTRIBUTE)
    gaugings = "".join(_GAUGING.format(sid=sid, i=i + 1, name=title, when=escape(str(when) or "unknown"), stage=h,
                                       discharge=q)
                       for i, (when, h, q) in enumerate(zip(clean["datetime"], clean["stage_m"], clean["discharge_m3s"])))
    first = str(clean["datetime"].replace("", np.nan).dropna().min()) if len(clean) else ""
    tables, periods = [], []
    for period, part in table.groupby("period", sort=True):
        points = "".join(_POINT.format(stage=h, discharge=q)
                         for h, q in zip(part["stage_m"], part["discharge_median_m3s"]))
        tables.append(_TABLE.format(sid=sid, period=period, name=title, stage_property=STAGE,
                                    discharge_property=DISCHARGE, points=points))
        start, end = str(part["valid_from"].iloc[0] or ""), str(part["valid_to"].iloc[0] or "")
        periods.append(_PERIOD.format(sid=sid, period=period, start=escape(start or first or "unknown"),
                                      end=_END.format(sid=sid, period=period, end=escape(end)) if end else ""))
    return [gaugings, "".join(tables), _GROUP.format(sid=sid, name=title, periods="".join(periods))]


def _is_text(source) -> bool:
    """Whether ``source`` is XML text rather than a path."""
    return isinstance(source, str) and source.lstrip().startswith("<")


def read_waterml(source) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(tables, periods) read back from a document this stage wrote (a path, or the XML text)."""
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


def station_part(spec, table_csv, clean_csv) -> dict | None:
    """One station's share of both exports, checked: its members of the XML collection by kind, its CSV rows,
    and counts. The station's members are written as a document of their own, read back and compared with
    its table (:func:`check_round_trip`). None for a station without a table."""
    table = pd.read_csv(table_csv, dtype={"valid_from": str, "valid_to": str}, keep_default_na=False)
    if table.empty:
        return None
    clean = pd.read_csv(clean_csv, dtype={"datetime": str}, keep_default_na=False)
    sections = members(spec.station_id, spec.name, table, clean)
    rows = table.assign(station_id=spec.station_id).reindex(columns=CSV_COLUMNS)
    check_round_trip("".join([OPENING, *sections, CLOSING]), rows.assign(valid_to=rows["valid_to"].fillna("")))
    return {"sections": sections, "csv": rows.to_csv(index=False, header=False, float_format="%.6g",
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
    Path(xml_out).parent.mkdir(parents=True, exist_ok=True)
    _write(xml_out, [OPENING] + [part["sections"][k] for k in range(len(MEMBERS)) for part in parts] + [CLOSING])
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
