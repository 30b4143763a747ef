"""Our discharge series against the published one of a Tuolumne (Yosemite) site (issue 15).

``python -m ratingflow.tuolumne_study --site Tuolumne120 --data ../shared/data/stage/tuolumne --out
docs/discharge_tuolumne.md``: the site's gaugings (logger stage in cm, discharge in cfs; the gaugings the authors
left out of their rating, flags 2 and 3, are left out here too) are fitted with model choice as in the pipeline, and
its logger stage record (half-hourly, UTC) is run through the chosen rating (:func:`ratingflow.discharge.compute`).
The authors' own estimate (a three-piece power law) and its 95 % bounds, in the same file, are compared step by step:
ratio of the medians by stage class, the widths of the 95 % bands, and how often each lies inside the other's band.
"""
from __future__ import annotations

import argparse
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd


def run(site: str, data: Path, work: Path, config: dict):
    from .choice import fit_and_choose
    from .clean import clean
    from .data import StationData
    from .discharge import compute
    from .idata import FitData
    from .candidates import ModelSettings, Priors
    from .posterior import inference_data
    from .sampler import BatchedNUTS, SamplerSettings
    from .sheet import StationSpec

    work.mkdir(parents=True, exist_ok=True)
    (archive,) = data.glob(f"{site}_timeseries_stage_Q_T_*.csv.zip")
    with zipfile.ZipFile(archive) as z:
        (name,) = [n for n in z.namelist() if n.endswith(".csv") and not n.startswith("__MACOSX")]
        record_path = work / Path(name).name
        record_path.write_bytes(z.read(name))
    gaugings = data / f"{site}_manual_measurements.csv"
    header = [h.strip() for h in gaugings.read_text().splitlines()[0].split(",")]
    flag_column = next(h for h in header if h.startswith("flags"))
    raw = pd.read_csv(gaugings, skipinitialspace=True)
    raw.columns = header
    left_out = [i + 2 for i, f in enumerate(raw[flag_column]) if f in (2, 3)]
    record_header = [h.strip() for h in record_path.read_text().splitlines()[0].split(",")]
    spec = StationSpec(site, site, gaugings.name, "solinst_stage(cm)", "cm", "discharge(cfs)", "cfs",
                       datetime_column=header[0], timezone="UTC", exclude=";".join(map(str, left_out)),
                       stage_file=record_path.name, stage_time_column=record_header[0], stage_level_column="stage(cm)")
    cleaned = clean(spec, gaugings, config["default_uncertainty"]).clean
    models = ModelSettings.from_config(config["models"])
    priors = Priors.from_config(config.get("priors"))
    candidates = models.candidate_list()
    driver = BatchedNUTS(models.structure(candidates), SamplerSettings.from_config(config["sampler"]), priors)
    st = StationData.from_clean(site, cleaned)
    start = time.perf_counter()
    (choice,) = fit_and_choose(driver, [st], candidates, config["seed"], models.se_factor)
    fit_s = time.perf_counter() - start
    idata = inference_data(choice.fit, FitData(), {"station": site})
    start = time.perf_counter()
    result = compute(replace(spec, stage_file=str(record_path)), record_path, idata, config.get("discharge", {}),
                     config["seed"], priors)
    series_s = time.perf_counter() - start
    theirs = pd.read_csv(record_path, skipinitialspace=True)
    theirs.columns = record_header
    theirs["line"] = np.arange(len(theirs)) + 2
    table = result["table"].merge(theirs[["line", "estimated_discharge(cms)", "lower_confidence_discharge_cms_bestestimate",
                                          "upper_confidence_discharge_cms_bestestimate"]], on="line")
    table.columns = [*table.columns[:-3], "their_q", "their_lo", "their_hi"]
    info = {"gaugings": st.n, "left_out": len(left_out), "model": choice.chosen, "fit_s": fit_s, "series_s": series_s,
            "status": result["status"], "equation_range": (float(st.stage.min()), float(st.stage.max()))}
    return table, info


def report(table: pd.DataFrame, info: dict, site: str, argv: str) -> str:
    ok = table["discharge_median_m3s"].notna() & table["their_q"].notna() & (table["their_q"] > 0)
    t = table[ok]
    lo, hi = info["equation_range"]
    classes = pd.cut(t["stage_m"], [-np.inf, lo, lo + (hi - lo) / 3, lo + 2 * (hi - lo) / 3, hi, np.inf],
                     labels=["below the gauged range", "lower third", "middle third", "upper third",
                             "above the gauged range"])
    lines = [f"# {site}: our discharge series against the authors'", "",
             f"`python -m ratingflow.tuolumne_study {argv}` on the 2-core development VM: fit {info['fit_s']:.0f} s "
             f"({info['gaugings']} gaugings, {info['left_out']} left out as the authors flagged them; chosen: "
             f"{info['model']}), series {info['series_s']:.0f} s for {len(table)} steps. Gauged stage "
             f"{lo:.3f}-{hi:.3f} m. Status: {info['status']['status']}; "
             + "; ".join(info["status"]["warnings"]) + ".", "",
             "| stage | steps | median ours / theirs | our 95 % width / median | their 95 % width / median | "
             "theirs inside our 95 % | ours inside their 95 % |", "|---|---|---|---|---|---|---|"]
    for name, part in t.groupby(classes, observed=True):
        ratio = part["discharge_median_m3s"] / part["their_q"]
        ours = (part["discharge_hpdi95_upper_m3s"] - part["discharge_hpdi95_lower_m3s"]) / part["discharge_median_m3s"]
        theirs = (part["their_hi"] - part["their_lo"]) / part["their_q"]
        inside_ours = (part["discharge_hpdi95_lower_m3s"] <= part["their_q"]) & (part["their_q"] <= part["discharge_hpdi95_upper_m3s"])
        inside_theirs = (part["their_lo"] <= part["discharge_median_m3s"]) & (part["discharge_median_m3s"] <= part["their_hi"])
        lines.append(f"| {name} | {len(part)} | {ratio.median():.3f} ({ratio.quantile(0.05):.3f}-{ratio.quantile(0.95):.3f}) | "
                     f"{ours.median():.2f} | {theirs.median():.2f} | {100 * inside_ours.mean():.0f} % | "
                     f"{100 * inside_theirs.mean():.0f} % |")
    missing = int((table["discharge_median_m3s"].isna() & table["their_q"].notna()).sum())
    lines += ["", f"Steps where we give no discharge but the authors do: {missing} (beyond our limit, or a missing "
              "stage); the ratio's 5-95 % range is in brackets.", ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    import sys
    import tempfile

    import yaml

    from .runtime import configure_jax

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", default="Tuolumne120")
    parser.add_argument("--data", default="../shared/data/stage/tuolumne")
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    configure_jax(threads=0, cache_dir=".cache/jax")
    config = yaml.safe_load(Path(args.config).read_text())
    with tempfile.TemporaryDirectory() as work:
        table, info = run(args.site, Path(args.data), Path(work), config)
    text = report(table, info, args.site, " ".join(sys.argv[1:] if argv is None else argv))
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
