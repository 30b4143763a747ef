import numpy as np
import pandas as pd

from ratingflow.clean import clean
from ratingflow.sheet import load_sheet
from ratingflow.synthetic import generate


def test_generator_is_reproducible_and_realistic(tmp_path):
    sheet, truth = generate(30, tmp_path / "a", seed=5)
    again, truth2 = generate(30, tmp_path / "b", seed=5)
    pd.testing.assert_frame_equal(truth, truth2)
    for f in sheet["file"]:
        assert (tmp_path / "a/data/raw" / f).read_bytes() == (tmp_path / "b/data/raw" / f).read_bytes()
    assert truth["n"].between(15, 200).all()
    assert set(truth["controls"]) == {1, 2}
    specs = load_sheet(tmp_path / "a/config/stations.tsv", tmp_path / "a/data/raw")
    for sid, spec in specs.items():
        res = clean(spec, tmp_path / "a/data/raw" / spec.file, {"kind": "percent_2sd", "value": 7})
        g = res.clean
        t = truth.set_index("station_id").loc[sid]
        assert len(g) == t["n"] and res.status["status"] == "ok"
        assert 1.5 <= np.log10(g["discharge_m3s"].max() / g["discharge_m3s"].min()) <= 3.6
        rel = g["discharge_sd_m3s"] / g["discharge_m3s"]
        assert rel.between(0.019, 0.081).all()
        assert (g["stage_m"] > t["h0"]).all()
        if t["controls"] == 2:
            assert t["h0"] <= t["h02"] < t["breakpoint"]
            # continuous at the breakpoint
            bp = t["breakpoint"]
            low = t["a"] * (bp - t["h0"]) ** t["b"]
            high = t["a2"] * (bp - t["h02"]) ** t["b2"]
            assert np.isclose(low, high, rtol=1e-9)
