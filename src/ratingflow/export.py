"""Pipeline stage ``export``: every station's ratings with their periods of applicability, and its
gaugings, as WaterML 2.0 Part 2 (OGC 15-018r2) XML and as one plain CSV table with validity columns.

XML layout (a ``wmlrgs:Collection``): one ``gaugingMember`` (an ``om:OM_Observation`` with a
``wmlrgs:Gauging`` result) per clean gauging, one ``conversionMember`` (``wmlrgs:ConversionTable``
of the median rating, gml:id ``{station}-period-{n}``) per rating period, and one ``groupMember``
(``wmlrgs:ConversionGroup``) per station whose ``ConversionPeriod`` entries give each table's
``periodStart`` and, except for the current period, ``periodEnd``. A first period with no start date
starts at its first gauging. No Python package ships the Part 2 schema, so the stage parses its own
output back (:func:`read_waterml`) and compares it with the tables before it finishes.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
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
    _sub(root, "gml:description", "Rating tables (posterior median) of ratingflow, with their periods of "
                                  "applicability (UTC), and the gaugings they were fitted to.")
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


def read_waterml(path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(tables, periods) read back from a document written by :func:`collection`."""
    root = ET.parse(path).getroot()
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


def check_round_trip(path, tables: pd.DataFrame) -> None:
    """Raise when the XML read back differs from the tables (6 significant digits)."""
    back, periods = read_waterml(path)
    if len(back) != len(tables):
        raise AssertionError(f"{path}: {len(back)} table points read back, {len(tables)} written")
    keys = ["station_id", "period", "stage_m"]
    back, tables = (t.sort_values(keys, kind="stable").reset_index(drop=True) for t in (back, tables))
    if not (back["station_id"].equals(tables["station_id"].astype(back["station_id"].dtype))
            and np.array_equal(back["period"], tables["period"])):
        raise AssertionError(f"{path}: stations or periods differ after reading the XML back")
    for column in ("stage_m", "discharge_median_m3s"):
        if not np.allclose(back[column].to_numpy(), tables[column].to_numpy(), rtol=1e-5, atol=1e-9):
            raise AssertionError(f"{path}: column {column} differs after reading the XML back")
    ends = tables.groupby(["station_id", "period"])["valid_to"].first().fillna("").to_numpy(str)
    periods = periods.sort_values(["station_id", "period"], kind="stable")
    if list(periods["end"]) != list(ends):
        raise AssertionError(f"{path}: the periods' end dates differ after reading the XML back")


def run(specs, table_csvs, clean_csvs, xml_out, csv_out) -> pd.DataFrame:
    """Pipeline step: both exports of every fitted station (a station without a table is left out)."""
    stations, frames = [], []
    for spec, table_csv, clean_csv in zip(specs, table_csvs, clean_csvs):
        table = pd.read_csv(table_csv, dtype={"valid_from": str, "valid_to": str}, keep_default_na=False)
        if table.empty:
            continue
        clean = pd.read_csv(clean_csv, dtype={"datetime": str}, keep_default_na=False)
        stations.append({"station_id": spec.station_id, "name": spec.name, "table": table, "clean": clean})
        frames.append(table.assign(station_id=spec.station_id))
    Path(xml_out).parent.mkdir(parents=True, exist_ok=True)
    collection(stations).write(xml_out, encoding="UTF-8", xml_declaration=True)
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=CSV_COLUMNS)
    out = out[[c for c in CSV_COLUMNS if c in out.columns]]
    out.to_csv(csv_out, index=False, float_format="%.6g")
    check_round_trip(xml_out, out)
    print(f"{len(stations)} stations, {out.groupby(['station_id', 'period']).ngroups if len(out) else 0} rating "
          f"period(s), {sum(len(s['clean']) for s in stations)} gaugings exported to {xml_out} and {csv_out}; "
          "read back and compared: identical")
    return out
