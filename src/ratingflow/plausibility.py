"""Checks a hydrographer would make by eye: units that do not fit the numbers, gaugings that drive the
fit, and residual scatter far beyond what the gaugings state. Each check returns readable flags with the
evidence; nothing is dropped (the decision is the hydrographer's)."""
from __future__ import annotations

import numpy as np

from .units import FOOT

#: a river's stage rarely spans more than this many metres between its lowest and highest gauging
MAX_STAGE_RANGE_M = 30.0
#: ... and a rated station's gaugings span more than this
MIN_STAGE_RANGE_M = 0.05
#: Pareto k above this: leaving the gauging out changes the fit a lot (PSIS-LOO is unreliable there)
INFLUENCE_K = 0.7
#: ... and a leave-one-out log density this far below the station's typical one: the others contradict it
LOO_DROP = 5.0
#: flag a residual SD of ln Q this many times the gaugings' typical stated uncertainty ...
SIGMA_RATIO = 4.0
#: ... when it is also above this (a few per cent of scatter is never a problem)
SIGMA_FLOOR = 0.1


def unit_flags(stage_unit: str, discharge_unit: str, stage_m: np.ndarray, discharge_m3s: np.ndarray) -> list[str]:
    """Units declared in the sheet that the gaugings contradict ("discharge looks like cfs")."""
    flags = []
    if len(stage_m) == 0:
        return flags
    q_max = float(np.max(discharge_m3s))
    if stage_unit == "ft" and discharge_unit in ("m3/s", "l/s"):
        flags.append(f"discharge looks like cfs: stage is declared in ft but discharge in {discharge_unit}; a file "
                     f"in feet gives cubic feet per second (read as cfs the largest gauging is "
                     f"{q_max * FOOT**3 * (1000 if discharge_unit == 'l/s' else 1):.4g} m³/s, not {q_max:.4g})")
    if stage_unit in ("m", "cm") and discharge_unit == "cfs":
        flags.append(f"discharge looks like m³/s: stage is declared in {stage_unit} but discharge in cfs (read as "
                     f"m³/s the largest gauging is {q_max / FOOT**3:.4g} m³/s, not {q_max:.4g})")
    span = float(np.ptp(stage_m))
    if span > MAX_STAGE_RANGE_M and stage_unit != "cm":
        flags.append(f"stage looks like cm: the gauged stages span {span:.1f} m, more than a river's stage spans "
                     f"(about {MAX_STAGE_RANGE_M:g} m at most); read as cm they span {span / 100:.2f} m")
    if 0 < span < MIN_STAGE_RANGE_M and stage_unit == "cm":
        flags.append(f"stage looks like m: declared in cm, the gauged stages span only {100 * span:.1f} cm; "
                     f"read as m they span {span * 100:.2f} m")
    return flags


def influential_gaugings(pareto_k: np.ndarray, loo_i: np.ndarray, lines, threshold: float = INFLUENCE_K,
                         drop: float = LOO_DROP) -> list[dict]:
    """Gaugings with high leverage: PSIS-LOO Pareto k above ``threshold`` (the fit changes a lot without them).
    ``drives_fit`` marks those the rest of the gaugings also contradict: their leave-one-out log density is
    more than ``drop`` below the station's median one. The extreme gaugings of a small set often have k
    above 0.7 and are fine (the highest gauging that alone supports the upper control); a wrong gauging
    that pulls the curve has both."""
    loo_i = np.asarray(loo_i, float)
    typical = float(np.median(loo_i))
    return [{"line": int(lines[i]), "pareto_k": float(pareto_k[i]), "loo_drop": float(typical - loo_i[i]),
             "drives_fit": bool(typical - loo_i[i] > drop)}
            for i in np.flatnonzero(np.asarray(pareto_k) > threshold)]


def sigma_flag(sigma_median: float, typical_sd_log: float) -> str:
    """A flag when the residual SD far exceeds the gaugings' stated uncertainty, else ''."""
    if sigma_median > SIGMA_FLOOR and sigma_median > SIGMA_RATIO * typical_sd_log:
        return (f"residual SD of ln Q {sigma_median:.3f} is {sigma_median / typical_sd_log:.0f}x the gaugings' "
                f"stated uncertainty ({typical_sd_log:.3f}): the curve does not describe the gaugings (a wrong "
                f"gauging, a shift or a wrong model)")
    return ""


#: flag a fit with one h0 for every segment when the BaRatin form's profile leave-one-out gain over it exceeds
#: this many standard errors (the screen's default rule, ``models.screen``)
OWN_OFFSETS_Z = 1.5


def own_offsets_flag(check: dict | None, z: float = OWN_OFFSETS_Z) -> str:
    """A flag for a segmented fit with one h0 whose gaugings suit each control's own zero-flow stage better
    (:func:`ratingflow.screen.own_offsets_check`), else ''. Such a fit's curve band is too narrow: on the coverage
    study's two-control stations whose one-h0 fit this flags, the 90 % band held the true curve about half the time
    (docs/validation_findings.md, "Which one-h0 bands are too narrow"). The sheet's ``control_types`` give the
    station the BaRatin form."""
    if not check or not check["gain"] > z * check["se"]:
        return ""
    offsets = ", ".join(f"{e:.3f} m" for e in check["offsets_m"])
    breaks = ", ".join(f"{b:.3f} m" for b in check["breakpoints_m"])
    return (f"one h0 for every control does not suit these gaugings: with each control's own zero-flow stage the "
            f"profile leave-one-out gain is {check['gain']:.1f} > {z:g} x SE {check['se']:.1f} (h0 about "
            f"{check['h0_m']:.3f} m; the upper control's about {offsets}, taking over near {breaks}); this fit's "
            f"curve band is likely too narrow: name the controls in the sheet (control_types) to fit each its own")
