"""WaterML 2.0 Part 2 export: written, read back, and compared (issue 14)."""
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from ratingflow.export import CLOSING, DISCHARGE, NS, OPENING, STAGE, check_round_trip, members, read_waterml, run
from ratingflow.sheet import StationSpec


def _station(tmp_path, sid, periods):
    rows = []
    for p in range(1, periods + 1):
        stage = np.round(np.arange(0.5, 1.0, 0.1), 3)
        rows.append(pd.DataFrame({"period": p, "valid_from": "" if p == 1 else f"2020-0{p}-01T00:00:00",
                                  "valid_to": "" if p == periods else f"2020-0{p + 1}-01T00:00:00", "stage_m": stage,
                                  "discharge_median_m3s": p * stage**2, "extrapolated": False}))
    table = pd.concat(rows, ignore_index=True)
    table.to_csv(tmp_path / f"{sid}.csv", index=False)
    pd.DataFrame({"line": [2, 3], "datetime": ["2019-05-01T00:00:00", "2020-05-01T00:00:00"], "stage_m": [0.6, 0.7],
                  "discharge_m3s": [0.4, 0.5]}).to_csv(tmp_path / f"{sid}.clean.csv", index=False)
    return StationSpec(sid, f"station {sid}", "x.csv", "h", "m", "q", "m3/s"), tmp_path / f"{sid}.csv", tmp_path / f"{sid}.clean.csv"


def test_ratings_and_periods_survive_the_round_trip(tmp_path):
    # sheet order z before a: the check must not depend on the order of stations
    specs, tables, cleans = zip(_station(tmp_path, "zeta", 3), _station(tmp_path, "alpha", 1))
    counts = run(list(specs), list(tables), list(cleans), tmp_path / "r.xml", tmp_path / "r.csv")
    assert counts["stations"] == 2 and counts["periods"] == 4
    out = pd.read_csv(tmp_path / "r.csv", dtype={"valid_from": str, "valid_to": str}, keep_default_na=False)
    check_round_trip(tmp_path / "r.xml", out)  # the whole document, as one reader gets it
    back, periods = read_waterml(tmp_path / "r.xml")
    assert len(back) == len(out) == 20
    assert list(periods["end"]) == ["2020-02-01T00:00:00", "2020-03-01T00:00:00", "", ""]
    assert periods["start"].iloc[0] == "2019-05-01T00:00:00"  # an open first period starts at its first gauging
    assert set(pd.read_csv(tmp_path / "r.csv")["station_id"]) == {"zeta", "alpha"}
    broken = out.copy()
    broken.loc[3, "discharge_median_m3s"] *= 1.01
    with pytest.raises(AssertionError, match="differs"):
        check_round_trip(tmp_path / "r.xml", broken)


def test_an_unchanged_station_is_taken_from_the_cache_and_the_document_is_the_same(tmp_path):
    """Issue 16, incremental runs: the export is one whole-run job, so with hundreds of stations building every
    station's XML and reading it back on each run cost seconds per hundred stations. With a cache only the changed
    station is built; the documents are byte for byte those of a run without the cache."""
    specs, tables, cleans = zip(_station(tmp_path, "zeta", 3), _station(tmp_path, "alpha", 1),
                                _station(tmp_path, "mid", 2))
    args = list(specs), list(tables), list(cleans)
    plain = run(*args, tmp_path / "plain.xml", tmp_path / "plain.csv")
    first = run(*args, tmp_path / "a.xml", tmp_path / "a.csv", cache=tmp_path / "cache")
    again = run(*args, tmp_path / "b.xml", tmp_path / "b.csv", cache=tmp_path / "cache")
    assert (plain["built"], first["built"], again["built"], again["reused"]) == (3, 3, 0, 3)
    for name in ("a", "b"):
        for ext in ("xml", "csv"):
            assert (tmp_path / f"{name}.{ext}").read_bytes() == (tmp_path / f"plain.{ext}").read_bytes()
    table = pd.read_csv(tables[1])
    table["discharge_median_m3s"] *= 2.0
    table.to_csv(tables[1], index=False)
    changed = run(*args, tmp_path / "c.xml", tmp_path / "c.csv", cache=tmp_path / "cache")
    assert (changed["built"], changed["reused"]) == (1, 2)
    back, _ = read_waterml(tmp_path / "c.xml")
    alpha = back[back["station_id"] == "alpha"]
    assert np.allclose(alpha["discharge_median_m3s"], 2.0 * alpha["stage_m"] ** 2)
    out = pd.read_csv(tmp_path / "c.csv", dtype={"valid_from": str, "valid_to": str}, keep_default_na=False)
    check_round_trip(tmp_path / "c.xml", out)


def test_parts_built_by_several_processes_make_the_same_documents(tmp_path):
    """The export job runs last, with the cores free, and builds the stations' parts in ``workers`` processes: the
    documents are byte for byte those of one process, in the sheet's order, and the counts the same."""
    stations = [_station(tmp_path, f"s{i:02d}", 1 + i % 3) for i in range(7)]
    specs, tables, cleans = (list(x) for x in zip(*stations))
    one = run(specs, tables, cleans, tmp_path / "one.xml", tmp_path / "one.csv")
    three = run(specs, tables, cleans, tmp_path / "three.xml", tmp_path / "three.csv", cache=tmp_path / "cache",
                workers=3)
    assert one == {**three, "reused": 0} and three["built"] == 7
    for ext in ("xml", "csv"):
        assert (tmp_path / f"three.{ext}").read_bytes() == (tmp_path / f"one.{ext}").read_bytes()
    again = run(specs, tables, cleans, tmp_path / "again.xml", tmp_path / "again.csv", cache=tmp_path / "cache",
                workers=3)
    assert (again["built"], again["reused"]) == (0, 7)
    assert (tmp_path / "again.xml").read_bytes() == (tmp_path / "one.xml").read_bytes()


def _tree(station_id, name, table, clean) -> str:
    """The reference: one station's collection built with ElementTree and indented by ``ET.indent``, its members
    as text (everything after the description)."""
    for prefix, uri in NS.items():
        ET.register_namespace(prefix, uri)

    def sub(parent, tag, text=None, **attrs):
        q = lambda t: "{%s}%s" % (NS[t.split(":")[0]], t.split(":")[1])  # noqa: E731
        element = ET.SubElement(parent, q(tag), {(q(k.replace("__", ":")) if "__" in k else k): v for k, v in attrs.items()})
        element.text = text
        return element

    def quantity(parent, tag, unit, value):
        q = sub(sub(parent, tag), "swe:Quantity")
        sub(q, "swe:uom", code=unit)
        sub(q, "swe:value", f"{value:.6g}")

    def instant(parent, tag, when, gml_id):
        sub(sub(sub(parent, tag), "gml:TimeInstant", gml__id=gml_id), "gml:timePosition", when)

    root = ET.Element("{%s}Collection" % NS["wmlrgs"])
    sub(root, "gml:description", "d")
    for i, g in enumerate(clean.itertuples()):
        obs = sub(sub(root, "wmlrgs:gaugingMember"), "om:OM_Observation", gml__id=f"{station_id}-gauging-{i + 1}")
        instant(obs, "om:phenomenonTime", str(g.datetime) or "unknown", f"{station_id}-gauging-{i + 1}-time")
        sub(obs, "om:featureOfInterest", xlink__href=f"#{station_id}", xlink__title=name)
        result = sub(sub(obs, "om:result"), "wmlrgs:Gauging")
        quantity(result, "wmlrgs:inputValue", "m", g.stage_m)
        quantity(result, "wmlrgs:outputValue", "m3/s", g.discharge_m3s)
    for period, part in table.groupby("period", sort=True):
        conversion = sub(sub(root, "wmlrgs:conversionMember"), "wmlrgs:ConversionTable", gml__id=f"{station_id}-period-{period}")
        sub(conversion, "wmlrgs:monitoringPoint", xlink__href=f"#{station_id}", xlink__title=name)
        sub(conversion, "wmlrgs:inputProperty", xlink__href=STAGE, xlink__title="stage (m, station datum)")
        sub(conversion, "wmlrgs:outputProperty", xlink__href=DISCHARGE, xlink__title="discharge (m3/s)")
        for row in part.itertuples():
            point = sub(sub(conversion, "wmlrgs:point"), "wmlrgs:TableTuple")
            quantity(point, "wmlrgs:inputValue", "m", row.stage_m)
            quantity(point, "wmlrgs:outputValue", "m3/s", row.discharge_median_m3s)
    group = sub(sub(root, "wmlrgs:groupMember"), "wmlrgs:ConversionGroup", gml__id=f"{station_id}-group")
    sub(group, "wmlrgs:monitoringPoint", xlink__href=f"#{station_id}", xlink__title=name)
    sub(group, "wmlrgs:fullConversion", "true")
    first = str(clean["datetime"].replace("", np.nan).dropna().min()) if len(clean) else ""
    for period, part in table.groupby("period", sort=True):
        entry = sub(sub(group, "wmlrgs:period"), "wmlrgs:ConversionPeriod")
        start, end = str(part["valid_from"].iloc[0] or ""), str(part["valid_to"].iloc[0] or "")
        instant(entry, "wmlrgs:periodStart", start or first or "unknown", f"{station_id}-p{period}-start")
        if end:
            instant(entry, "wmlrgs:periodEnd", end, f"{station_id}-p{period}-end")
        sub(entry, "wmlrgs:applicableConversion", xlink__href=f"#{station_id}-period-{period}")
    ET.indent(root)
    text = ET.tostring(root, encoding="unicode")
    return text[text.index("</gml:description>") + len("</gml:description>"): text.rindex("\n</")]


def test_the_members_are_the_text_elementtree_writes(tmp_path):
    """The stage writes each station's members from templates: the text is ElementTree's for the same elements,
    indented, character for character, with names and dates that need escaping, several periods, a gauging without
    a date, and a station without gaugings; and the document parses with every member in place."""
    spec, table_csv, clean_csv = _station(tmp_path, "z&<1>", 3)
    table = pd.read_csv(table_csv, dtype={"valid_from": str, "valid_to": str}, keep_default_na=False)
    table["discharge_median_m3s"] *= np.pi * 1e3
    clean = pd.read_csv(clean_csv, dtype={"datetime": str}, keep_default_na=False)
    clean.loc[1, "datetime"] = ""
    cases = [("z&<1>", 'a "quoted" & <odd>\tname', table, clean), ("plain", "plain", table[table["period"] == 1], clean),
             ("none", "no gaugings", table, clean.iloc[:0])]
    for station_id, name, tab, cl in cases:
        text = "".join(members(station_id, name, tab, cl))
        assert text == _tree(station_id, name, tab, cl), station_id
        root = ET.fromstring(OPENING.split("\n", 1)[1] + text + CLOSING)
        assert len(root.findall("wmlrgs:gaugingMember", NS)) == len(cl)
        assert len(root.findall("wmlrgs:conversionMember", NS)) == tab["period"].nunique()
        point = root.find("wmlrgs:groupMember/wmlrgs:ConversionGroup/wmlrgs:monitoringPoint", NS)
        assert point.get("{%s}title" % NS["xlink"]) == name
