"""Property test on random messy tables: nothing is lost, nothing bad gets through, units round-trip."""
import csv
import io

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ratingflow.clean import clean
from ratingflow.sheet import StationSpec
from ratingflow.units import DISCHARGE_UNITS, STAGE_UNITS

good_number = st.floats(min_value=-1e4, max_value=1e5, allow_nan=False, allow_infinity=False).map(
    lambda x: f"{x:.6g}"
)
messy = st.one_of(
    good_number, good_number, good_number,
    st.sampled_from(["", " ", "NA", "nan", "inf", "-inf", "0", "-0.0", "abc", "1,5", "1.2.3", "--", "1e400"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"), max_size=6),
)
row = st.tuples(messy, messy, st.sampled_from(["", "ok", "a;b", 'say "hi"', "é"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(row, max_size=40), stage_unit=st.sampled_from(sorted(STAGE_UNITS)),
       discharge_unit=st.sampled_from(sorted(DISCHARGE_UNITS)))
def test_messy_tables(tmp_path_factory, rows, stage_unit, discharge_unit):
    path = tmp_path_factory.mktemp("messy") / "m.csv"
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["h", "q", "note"])
    writer.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")
    spec = StationSpec("m", "m", "m.csv", "h", stage_unit, "q", discharge_unit)
    res = clean(spec, path, {"kind": "percent_2sd", "value": 7}, suspect_z=4.0)
    good, bad = res.clean, res.rejected
    # nothing lost: every raw row is in exactly one table
    assert len(good) + len(bad) == len(rows) == res.status["raw_rows"]
    assert sorted(list(good["line"]) + list(bad["line"])) == list(range(2, len(rows) + 2))
    # nothing bad gets through
    assert (good["discharge_m3s"] > 0).all()
    assert np.isfinite(good[["stage_m", "discharge_m3s", "discharge_sd_m3s"]].to_numpy(float)).all()
    # units round-trip: converting back gives the number written in the file
    for _, g in good.iterrows():
        stage_text, q_text, _ = rows[int(g["line"]) - 2]
        assert np.isclose(g["stage_m"] / STAGE_UNITS[stage_unit], float(stage_text.strip()), rtol=1e-12)
        assert np.isclose(g["discharge_m3s"] / DISCHARGE_UNITS[discharge_unit], float(q_text.strip()), rtol=1e-12)
