"""Report: the coverage study's Markdown report (``OUT/validation.md``), its tables (``OUT/validation/*.csv``)
and figure, written with whatever parts ran. A part that did not run is ``None`` (or empty) and the
report says so in its place."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .study import (bias_summary, heldout_summary, mixture_summary, own_offsets_summary, paired_lpd, side_by_side,
                    simulation_summary)

PEER = "ratingcurve 1.1.0"
OURS_ON_PEER = "ratingflow (gaugings ratingcurve fitted)"


def _table(df: pd.DataFrame, digits: int = 3) -> str:
    def fmt(v):
        if isinstance(v, (float, np.floating)):
            return f"{v:.{digits}f}" if np.isfinite(v) else "–"
        return str(v)

    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def _error(part: pd.DataFrame, column: str) -> list:
    """Asymmetric error bars from a Wilson interval (never negative where the rate is 0 or 1)."""
    return [np.maximum(part[column] - part["ci_low"], 0), np.maximum(part["ci_high"] - part[column], 0)]


def _plot_coverage(summary: pd.DataFrame | None, heldout: pd.DataFrame | None, path: Path) -> None:
    """One panel per part that ran: simulation coverage, held-out coverage by stage third."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [p for p in (summary, heldout) if p is not None]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    axes = list(axes[0])
    if summary is not None:
        ax = axes.pop(0)
        sim = summary[summary["stations"] == "all stations"]
        x = np.arange(len(sim))
        ax.errorbar(x, sim["coverage"], yerr=_error(sim, "coverage"), fmt="o", color="tab:blue",
                    label="observed (95 % CI)")
        ax.plot(x, sim["nominal"], "k_", ms=20, label="nominal")
        ax.set_xticks(x, [c.replace(", ", "\n") for c in sim["check"]], fontsize=8)
        ax.set_ylabel("coverage")
        ax.set_title("simulation", fontsize=10)
        ax.legend(fontsize=8)
    if heldout is not None:
        ax = axes.pop(0)
        for i, (method, part) in enumerate(heldout.groupby("method", sort=False)):
            xs = np.arange(len(part)) + 0.15 * (i - 0.5)
            ax.errorbar(xs, part["coverage90"], yerr=_error(part, "coverage90"), fmt="o", label=method)
            ax.set_xticks(np.arange(len(part)), part["stage third"])
        ax.axhspan(0.85, 0.95, color="0.9", label="target 85-95 %")
        ax.axhline(0.9, color="k", lw=0.8)
        ax.set_title("held-out real gaugings, 90 % predictive band", fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _verdict(label: str, value: float, target: tuple[int, int], interval=None) -> str:
    """One verdict line; ``interval``: the figure's 95 % interval (lower, upper), printed after it."""
    lo, hi = target
    met = "**met**" if lo / 100 <= value <= hi / 100 else "**missed**"
    within = f" (95 % interval over stations {interval[0]:.1%}-{interval[1]:.1%})" if interval is not None else ""
    return f"- {label}: {value:.1%}{within} (target {lo}-{hi} %): {met}"


#: the simulation's targets (issue 17): the 90 % band overall and in each class, the 50 % band overall
SIMULATION_TARGETS = (("all stations", 90, (88, 92)), ("one control", 90, (88, 92)), ("two controls", 90, (88, 92)),
                      ("all stations", 50, (47, 53)))


def _heldout_table(ours: pd.DataFrame, peer: pd.DataFrame | None) -> pd.DataFrame:
    held = [heldout_summary(ours, "ratingflow")]
    if peer is not None and len(peer):
        # compare on the gaugings both methods predicted
        both = ours.merge(peer[["station", "fold", "gauging"]], on=["station", "fold", "gauging"])
        held += [heldout_summary(both, OURS_ON_PEER), heldout_summary(peer, PEER)]
    return pd.concat(held, ignore_index=True)


def _verdicts(sim: pd.DataFrame | None, held: pd.DataFrame | None, ours, peer) -> list[str]:
    lines = []
    if sim is not None:
        for stations, prob, target in SIMULATION_TARGETS:
            row = sim[(sim["stations"] == stations) & (sim["check"] == f"true curve, {prob} % HPDI")]
            if len(row) and row.iloc[0]["points"]:
                row = row.iloc[0]
                lines.append(_verdict(f"Simulation, {stations}, true curve in the {prob} % HPDI", row["coverage"],
                                      target, (row["stations_ci_low"], row["stations_ci_high"])))
    if held is not None:
        by_third = held[held["method"] == "ratingflow"].set_index("stage third")
        lines += [_verdict(f"Held-out, {t} third, 90 % predictive band", by_third.loc[t, "coverage90"], (85, 95))
                  for t in ("low", "middle", "high")]
    if held is not None and peer is not None and len(peer):
        theirs = held[held["method"] == PEER].set_index("stage third").loc["all", "mean lpd"]
        same = held[held["method"] == OURS_ON_PEER].set_index("stage third").loc["all", "mean lpd"]
        paired = paired_lpd(ours, peer)
        lines.append(f"- Log predictive density per held-out gauging: ratingflow {same:.3f}, ratingcurve {theirs:.3f} "
                     "(target: at least ratingcurve's): " + ("**met**" if same >= theirs else "**missed**")
                     + f"; paired difference {paired['mean']:+.3f} ± {paired['se']:.3f} (SE) per gauging, "
                     f"{paired['sum']:+.1f} ± {paired['sum_se']:.1f} summed over {paired['gaugings']} gaugings")
    return lines or ["- none: no part of the study ran"]


def _simulation_section(rows: pd.DataFrame, sim: pd.DataFrame, settings: dict) -> list[str]:
    models = rows.groupby(["controls", "model"])["station"].nunique().unstack(fill_value=0)
    return [
        f"## 1. Simulation ({rows['station'].nunique()} synthetic stations)",
        "",
        "Stations from `ratingflow.synthetic` (one or two controls; in two-control stations the channel "
        "control has its own offset, "
        + ("as in the fitted model with segment offsets" if settings.get("segment offsets") else
           "so the fitted shared-h0 segmented model is not the true one")
        + "; gauging uncertainty 2-8 % stated per gauging plus a residual of 1-5 %). Five stages per station at 10, 30, "
        "50, 70 and 90 % of the gauged range. 95 % intervals: Wilson's over the points (`ci_low`, `ci_high`), and over "
        "the stations (`stations_ci_low`, `stations_ci_high`; the points of one station share its posterior, so this "
        "is the wider and the one to read a target against).",
        "",
        _table(sim),
        "",
        "Models chosen (stations):",
        "",
        _table(models.reset_index().rename(columns={"controls": "true controls"})),
        "",
        "Bias of the median curve, ln(median / truth) averaged over stations:",
        "",
        _table(bias_summary(rows), 2),
        "",
        *_own_offsets_section(rows),
        *_mixture_section(rows),
    ]


def _mixture_section(rows: pd.DataFrame) -> list[str]:
    """The chosen model's own band against the stacking mixture's (``models.stacking``)."""
    if "chosen_curve90" not in rows:
        return []
    return [
        "The stacking mixture (`models.stacking`, `ratingflow.mixture`): where more than one candidate passed the "
        "diagnostics gate with a stacking weight of at least 0.01, the rating table's band is that of the candidates "
        "mixed by their PSIS-LOO stacking weights; the table above counts those bands. True curve inside the chosen "
        "model's own band and inside the mixture's:",
        "",
        _table(mixture_summary(rows)),
        "",
    ]


def _own_offsets_section(rows: pd.DataFrame) -> list[str]:
    """Which one-h0 segmented fits the summary flags, and how their bands cover the truth."""
    from ..plausibility import OWN_OFFSETS_Z

    checked = "own_offsets_z" in rows and rows["own_offsets_z"].notna().any()
    if not checked and not ("own_offsets_form" in rows and rows["own_offsets_form"].astype(bool).any()):
        return []
    return [
        "Stations whose chosen two-segment model shares one h0 across its segments, by the own-offsets check "
        f"(`ratingflow.screen.own_offsets_check`; flagged: the BaRatin form's profile leave-one-out gain over one h0 "
        f"exceeds {OWN_OFFSETS_Z:g} SE), and those whose one-h0 fit the fit's own-offsets round replaced by the BaRatin "
        "form (`models.own_offsets`: where that fit passed the diagnostics gate). Points of one station share its "
        "posterior, so the intervals are too narrow:",
        "",
        _table(own_offsets_summary(rows, OWN_OFFSETS_Z)),
        "",
    ]


def _heldout_section(ours: pd.DataFrame, peer, held: pd.DataFrame, left_out) -> list[str]:
    return [
        f"## 2. Held-out real gaugings ({ours['station'].nunique()} stations, "
        f"{ours['fold'].nunique()}-fold cross-validation)",
        "",
        "Each held-out gauging is predicted with its own stated uncertainty (equal-tailed 90 % interval of the "
        "posterior predictive distribution: inside where its CDF at the gauging, the posterior mean of each draw's "
        "Normal CDF, lies within 0.05-0.95); `mean lpd` is the mean log predictive density of ln Q per gauging. "
        "Stage thirds split each station's gauged stage range in three equal parts.",
        "",
        _table(held),
        "",
        "Left out: " + ("; ".join(f"{sid} ({why})" for sid, why in left_out) or "none") + ".",
        "",
        "Per station" + (" (ratingflow, and ratingcurve with the same folds and segment counts; `segments`: "
                         "the counts our model choice picked over the folds):" if peer is not None
                         else " (ratingflow):"),
        "",
        _table(side_by_side(ours, peer)),
        "",
    ]


def _peer_section(peer: pd.DataFrame) -> list[str]:
    failures = peer.attrs.get("failures", [])
    return [
        "## 3. ratingcurve 1.1.0 on the same folds",
        "",
        "`PowerLawRating(segments=n)` with the segment count our model choice picked on that fold, "
        "`method='nuts'`, its defaults, in its own virtual environment (`bench/ratingcurve_cv.py`). "
        "Its predictive band for a held-out gauging uses its own likelihood: ratingcurve standardizes "
        "ln Q (z = (ln Q - mean) / sd) and adds the gauging's ln(1 + q_sigma / q) to its residual spread "
        "*on the standardized scale*, so in ln Q the gauging part is multiplied by the sd of ln Q over the "
        "station (often 1-2): its bands widen with the gaugings' uncertainty more than ours do. Stations "
        "whose files state no uncertainty get the config's default, as q_sigma, as for ratingflow.",
        "",
        f"Folds ratingcurve could not fit: {len(failures)}"
        + ("" if not failures else " (" + "; ".join(f"{f['station']} fold {f['fold']}: {f['error']}"
                                                    for f in failures[:10]) + ")")
        + ". The comparison rows above use only the gaugings both methods predicted.",
        "",
    ]


def write_report(out: Path, sim_rows, heldout_ours, heldout_peer, left_out, settings: dict, timings: dict, *,
                 findings: Path | None = None, reasons: dict | None = None) -> str:
    """Write ``out/validation.md`` and ``out/validation/`` from the parts that ran and return the report.

    ``sim_rows`` (:func:`.study.simulate`), ``heldout_ours`` (:func:`.study.crossval`) and ``heldout_peer``
    (:func:`.peer.run_peer`) may each be ``None`` or empty: that part is reported as not run, with
    ``reasons[part]`` ("simulation", "held-out", "peer") as the reason where given. ``findings``: a
    hand-written findings file to link to (no link when ``None``)."""
    reasons = reasons or {}
    out = Path(out)
    data = out / "validation"
    data.mkdir(parents=True, exist_ok=True)
    has_sim = sim_rows is not None and len(sim_rows) > 0
    has_held = heldout_ours is not None and len(heldout_ours) > 0
    peer = heldout_peer if has_held else None
    sim = simulation_summary(sim_rows) if has_sim else None
    held = _heldout_table(heldout_ours, peer) if has_held else None
    for table, name in ((sim, "simulation_coverage.csv"), (held, "heldout_coverage.csv")):
        if table is None:
            (data / name).unlink(missing_ok=True)  # not from an earlier run with other parts
        else:
            table.to_csv(data / name, index=False)
    if has_sim or has_held:
        _plot_coverage(sim, held, data / "coverage.png")
    else:
        (data / "coverage.png").unlink(missing_ok=True)

    not_run = {part: reasons.get(part, "not run") for part, ran in
               (("simulation", has_sim), ("held-out", has_held), ("peer", peer is not None)) if not ran}
    text = [
        "# Validation: are the bands right?",
        "",
        "Written by `python -m ratingflow.coverage_study` (see README, \"Validation\"); the numbers below come from "
        "one run and are re-made by running it again with the same settings.",
        "",
        "Settings: " + ", ".join(f"{k} {v}" for k, v in settings.items()) + ".",
        ("Wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + "." if timings
         else "Wall time: parts reused from an earlier run (`--reuse`); see README."),
        "Parts not run: " + ("; ".join(f"{part} ({why})" for part, why in not_run.items()) or "none") + ".",
        "",
        "## Verdicts",
        "",
        *_verdicts(sim, held, heldout_ours, peer),
        "",
    ]
    if findings is not None:
        link = os.path.relpath(Path(findings).resolve(), out.resolve())
        text += [f"Why targets are missed, and what is known about it: [{Path(findings).name}]({link}) "
                 "(written by hand, not by this command).", ""]
    if has_sim or has_held:
        text += ["![coverage](validation/coverage.png)", ""]
    text += (_simulation_section(sim_rows, sim, settings) if has_sim
             else ["## 1. Simulation", "", f"Not run: {not_run['simulation']}.", ""])
    text += (_heldout_section(heldout_ours, peer, held, left_out) if has_held
             else ["## 2. Held-out real gaugings", "", f"Not run: {not_run['held-out']}.", ""])
    text += (_peer_section(peer) if peer is not None
             else ["## 3. ratingcurve 1.1.0 on the same folds", "", f"Not run: {not_run['peer']}.", ""])
    report = "\n".join(text)
    (out / "validation.md").write_text(report)
    return report
