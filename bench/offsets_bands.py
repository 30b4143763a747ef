"""Two benchmark runs on the same stations, one with one h0 and one with own offsets: how often does each run's 90 %
curve band hold the true curve of the two-control stations? Prints figures, asserts nothing.

``.venv/bin/python bench/offsets_bands.py --default bench/work --offsets /tmp/bench_off``, where the folders are
``bench/run.py --work`` folders of the same ``--stations`` and ``--seed``, the second run with ``--segment-offsets
true``. Per two-control station: the share of its rating table's stages inside the gauged range whose band holds the
truth (``truth.csv``), the model each run chose and whether it passed the diagnostics gate; then the mean of each
run's shares, and of a guarded choice that takes the own-offset fit only where both runs chose two segments and
the own-offset fit passed the gate.
"""
import argparse

import numpy as np
import pandas as pd

from ratingflow.synthetic import Truth


def coverage(root: str, sid: str, truth: Truth, lo: float, hi: float) -> float:
    table = pd.read_csv(f"{root}/results/tables/{sid}.csv")
    table = table[(table["stage_m"] >= lo) & (table["stage_m"] <= hi)]
    q = truth.discharge(table["stage_m"].to_numpy())
    return float(((q >= table["curve_hpdi90_lower_m3s"]) & (q <= table["curve_hpdi90_upper_m3s"])).mean())


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--default", required=True)
    p.add_argument("--offsets", required=True)
    args = p.parse_args(argv)
    truth = pd.read_csv(f"{args.default}/truth.csv")
    runs = {name: pd.read_csv(f"{root}/results/stations.csv").set_index("station_id")
            for name, root in (("default", args.default), ("offsets", args.offsets))}
    rows = []
    for _, t in truth[truth["controls"] == 2].iterrows():
        sid = t["station_id"]
        tr = Truth(sid, 2, t["a"], t["b"], t["h0"], t["sigma"], t["breakpoint"], t["a2"], t["b2"], t["h02"])
        stage = pd.read_csv(f"{args.default}/results/clean/{sid}.csv")["stage_m"]
        row = {"station": sid}
        for name, root in (("default", args.default), ("offsets", args.offsets)):
            row[f"{name}_model"] = runs[name].loc[sid, "model"]
            row[f"{name}_gate"] = str(runs[name].loc[sid, "diagnostics_passed"]) == "True"
            row[f"{name}_coverage90"] = coverage(root, sid, tr, stage.min(), stage.max())
        rows.append(row)
    d = pd.DataFrame(rows)
    switch = (d["default_model"] == "seg2") & (d["offsets_model"] == "seg2") & d["offsets_gate"]
    d["guarded_coverage90"] = np.where(switch, d["offsets_coverage90"], d["default_coverage90"])
    print(d.round(2).to_string(index=False))
    print(f"\n{len(d)} two-control stations; mean share of the gauged range inside the 90 % curve band: one h0 "
          f"{d['default_coverage90'].mean():.3f}, own offsets {d['offsets_coverage90'].mean():.3f} (their fits pass the "
          f"gate on {d['offsets_gate'].sum()}), guarded choice {d['guarded_coverage90'].mean():.3f} ({switch.sum()} "
          f"stations take the own-offset fit)")
    failed = ~d["offsets_gate"]
    print(f"on the {failed.sum()} stations whose own-offset fit fails the gate: one h0 "
          f"{d.loc[failed, 'default_coverage90'].mean():.3f}, own offsets {d.loc[failed, 'offsets_coverage90'].mean():.3f}")


if __name__ == "__main__":
    main()
