"""What the rating-curve model is made of, without JAX: priors, candidate models, the structure of a compiled
program and the ``models`` settings. Stages that only name models (rating periods, the sheet's control types)
import this and not :mod:`ratingflow.model`, whose JAX and NumPyro take seconds to import."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Priors:
    """Weakly informative priors in physical units.

    Reasons:

    * ``gap`` LogNormal(ln 0.3 m, 2.0): zero flow usually lies centimetres to a couple of metres
      below the lowest gauging; the 95 % prior range is about 6 mm to 15 m.
    * ``b`` LogNormal(ln 1.8, 0.35) for the lowest segment: channel controls give 1.3-2.5, section
      controls (weirs) up to about 3; 95 % range 0.9 to 3.6. Upper segments LogNormal(ln 1.8, 0.5)
      (0.7 to 4.8): with one h0 for all segments, a floodplain's exponent can be large.
    * ``log_q_ref`` Normal(ln 10 m3/s, 4): a trickle (~0.004 m3/s) to a large river (~25 000 m3/s)
      at the median gauged stage.
    * ``sigma`` HalfNormal(0.2): residual scatter of a stable rating is a few per cent to about
      20 % in discharge (sampled as ``sigma_z``, see :func:`ratingflow.model._sigma`).
    * breakpoints: ``break_u_sd`` 1.5 on the logit scale of each breakpoint's position within its
      range, close to uniform but with less mass at the range's ends.
    * ``offset_log_depth`` Normal(ln(B_k - h0), 0.5): ln of an upper control's depth at its breakpoint
      ``B_k``, around the lowest control's depth there; 95 % range x0.38 to x2.7 (the new control's zero-flow
      stage lies above or below h0). With two segments ``offset_shift`` = ln(d_2 / d'_2) is then Normal(0, 0.5).
    * ``sigma_slope`` Normal(0, 1): change of ln sigma across the gauged range (option).
    * generalized power law: the exponent's deviation has a GP prior with SD ``exponent_sd`` 0.3 and
      length scale ``exponent_length`` 0.3 of the gauged range.
    """

    gap_median_m: float = 0.3
    gap_log_sd: float = 2.0
    b_median: float = 1.8
    b_log_sd: float = 0.35
    b_upper_log_sd: float = 0.5
    log_q_ref_mean: float = 2.302585  # ln(10 m3/s)
    log_q_ref_sd: float = 4.0
    sigma_scale: float = 0.2
    break_u_sd: float = 1.5
    offset_log_sd: float = 0.5
    sigma_slope_sd: float = 1.0
    exponent_sd: float = 0.3
    exponent_length: float = 0.3

    @classmethod
    def from_config(cls, cfg: dict | None) -> "Priors":
        return cls(**(cfg or {}))


@dataclass(frozen=True)
class Structure:
    """What one compiled program can express (static): the largest candidate of a run."""

    max_segments: int = 1
    gplm_terms: int = 0  # basis functions of the exponent's variation; 0 = no generalized power law
    varying_sigma: bool = False
    #: rounding of each change of control, in ln depth (0: a sharp kink)
    transition: float = 0.0
    #: each upper segment has its own offset (False: one h0 for all segments)
    segment_offsets: bool = False
    #: rating periods one program can hold (1: a timeless rating; see :func:`ratingflow.model.periods_model`)
    max_periods: int = 1

    @property
    def n_breaks(self) -> int:
        return self.max_segments - 1

    def as_attrs(self) -> dict:
        return {"max_segments": self.max_segments, "gplm_terms": self.gplm_terms,
                "varying_sigma": int(self.varying_sigma), "transition": self.transition,
                "segment_offsets": int(self.segment_offsets), "max_periods": self.max_periods}

    @classmethod
    def from_attrs(cls, attrs: dict) -> "Structure":
        return cls(int(attrs["max_segments"]), int(attrs["gplm_terms"]), bool(int(attrs["varying_sigma"])),
                   float(attrs["transition"]), bool(int(attrs.get("segment_offsets", 0))),
                   int(attrs.get("max_periods", 1)))


@dataclass(frozen=True)
class Candidate:
    """One candidate model: ``seg1``, ``seg2``, ``seg3`` (segmented power law) or ``gplm``; at a
    station with rating periods also ``seg2-shared`` (periods with their own offset and coefficient,
    one shape) and ``seg2-periods`` (independent periods)."""

    name: str

    def __post_init__(self):
        base, _, mode = self.name.partition("-")
        if base not in CANDIDATES or mode not in PERIOD_MODES or (mode and CANDIDATES[base][1]):
            raise ValueError(f"unknown candidate model {self.name!r}; known: {', '.join(CANDIDATES)}, and with rating "
                             f"periods seg1..seg3 with -{', -'.join(m for m in PERIOD_MODES if m)}")

    @property
    def base(self) -> str:
        return self.name.partition("-")[0]

    @property
    def mode(self) -> str:
        """'' (one timeless rating), 'shared' (periods share the shape) or 'periods' (independent)."""
        return self.name.partition("-")[2]

    @property
    def n_segments(self) -> int:
        return CANDIDATES[self.base][0]

    @property
    def gplm(self) -> bool:
        return CANDIDATES[self.base][1]

    @property
    def code(self) -> int:
        """A fixed number per candidate: its random keys do not depend on the configured list."""
        return list(CANDIDATES).index(self.base) + 1 + 10 * list(PERIOD_MODES).index(self.mode)

    def with_mode(self, mode: str) -> "Candidate":
        return Candidate(self.base + (f"-{mode}" if mode else ""))

    def describe(self, own_offsets: bool = False) -> str:
        """In words; ``own_offsets``: fitted with each control's own zero-flow stage (``segment_offsets``)."""
        if self.gplm:
            return "generalized power law (exponent varies with stage)"
        text = "power law" if self.n_segments == 1 else f"segmented power law, {self.n_segments} segments"
        if own_offsets and self.n_segments > 1:
            text += "; each control with its own zero-flow stage (BaRatin form)"
        return text + PERIOD_MODES[self.mode]


#: candidate name -> (segments, generalized power law)
CANDIDATES = {"seg1": (1, False), "seg2": (2, False), "seg3": (3, False), "gplm": (1, True)}
#: rating-period modes of a candidate -> the words added to its description
PERIOD_MODES = {"": "", "shared": "; rating periods with their own offset and coefficient, one shape",
                "periods": "; independent rating periods"}
#: number of basis functions of the generalized power law's exponent
GPLM_TERMS = 8


def structure_for(candidates: list[Candidate], varying_sigma: bool = False, transition: float = 0.0,
                  segment_offsets: bool = False) -> Structure:
    """The smallest structure that serves every candidate."""
    return Structure(
        max_segments=max(c.n_segments for c in candidates),
        gplm_terms=GPLM_TERMS if any(c.gplm for c in candidates) else 0,
        varying_sigma=varying_sigma,
        transition=transition,
        segment_offsets=segment_offsets,
    )


@dataclass(frozen=True)
class ModelSettings:
    """The ``models`` section of the config."""

    candidates: tuple[str, ...] = ("seg1", "seg2", "seg3")
    se_factor: float = 2.0
    varying_sigma: bool = False
    transition: float = 0.05
    segment_offsets: bool = False
    #: the rounding of each change of control in the BaRatin form (each control its own offset; ``transition`` in the
    #: one-h0 form). 0: a sharp change of control, as BaRatin has it; the rounding is for NUTS's sake (divergences at
    #: a kink), and the form is fitted by importance sampling over its breakpoint. None: ``transition``
    offsets_transition: float | None = None
    #: a candidate after the first gets NUTS only when its profile leave-one-out gain exceeds this many
    #: standard errors (ratingflow.screen); None: every candidate is fitted
    screen: float | None = None
    #: a chosen two-segment fit with one h0 is fitted in the BaRatin form too when the own-offsets check's gain
    #: exceeds this many standard errors (ratingflow.choice.offsets_round); -inf: every one; None: never
    own_offsets: float | None = None
    #: a kept seg1 whose seg2 the screen ruled out is fitted in the BaRatin form too (a candidate of the choice and
    #: the mixture where it passes the gate) when that form's profile leave-one-out gain over seg1 exceeds this many
    #: standard errors (ratingflow.choice.offsets_round; needs ``own_offsets`` set); None: never
    own_offsets_seg1: float | None = None
    #: a seg2 that the screen keeps by more than this many standard errors of gain over seg1, and that the own-offsets
    #: check flags, is fitted in the BaRatin form straight away, not with one h0 first: the round would replace that
    #: fit (ratingflow.choice.ahead_of_round; needs ``own_offsets`` set); None: always the one-h0 fit first
    own_offsets_ahead: float | None = None
    #: the rating table and the discharge series draw from the stacking mixture of the fitted candidates
    #: (ratingflow.mixture); False: from the chosen one alone
    stacking: bool = False

    @classmethod
    def from_config(cls, cfg: dict | None) -> "ModelSettings":
        cfg = dict(cfg or {})
        if "candidates" in cfg:
            cfg["candidates"] = tuple(cfg["candidates"])
        return cls(**cfg)

    def candidate_list(self) -> list[Candidate]:
        return [Candidate(n) for n in self.candidates]

    def structure(self, candidates: list[Candidate]) -> Structure:
        return structure_for(candidates, self.varying_sigma,
                             self.form_transition if self.segment_offsets else self.transition, self.segment_offsets)

    @property
    def form_transition(self) -> float:
        """The BaRatin form's rounding of a change of control (:attr:`offsets_transition`, else :attr:`transition`)."""
        return self.transition if self.offsets_transition is None else self.offsets_transition


#: exponent prior of each control type, (median, SD of ln b): the hydraulic values BaRatin uses (Le Coz et al.
#: 2014): 3/2 for a rectangular section (weir or sill), 5/2 for a triangular (V-notch) one, 2 for a parabolic
#: one, 5/3 for a wide channel (Manning); a natural riffle is a rougher, wider-spread section control
CONTROL_TYPES = {
    "rectangular_weir": (1.5, 0.035),
    "triangular_weir": (2.5, 0.035),
    "parabolic_weir": (2.0, 0.035),
    "riffle": (1.6, 0.2),
    "channel": (1.67, 0.1),
}


def describes_controls(types) -> bool:
    """Whether the sheet's control types describe a change of control (two or more): such a station's segmented
    candidates are fitted with each control its own offset (the BaRatin form)."""
    return len(types or ()) > 1


def types_serve(types, n_segments: int) -> bool:
    """Whether the sheet's control types (one per control) serve a candidate with ``n_segments``."""
    return bool(types) and len(types) == n_segments


def exponent_prior_of(types, n_segments: int, structure: Structure, priors: Priors):
    """(mean, SD) of ln b per segment of a program (``structure.max_segments``) for a candidate with
    ``n_segments``, given the sheet's control types (lowest first; empty: none).

    The types serve the candidate with exactly that many segments. A type fixes the exponent of the
    lowest segment, which is exactly its control's (Q = a (H - h0)^b). An upper segment's exponent is its
    control's only when that control has its own offset (``segment_offsets``); with one h0 for every
    segment it is not, and the config's wide prior stays."""
    mean = np.full(structure.max_segments, np.log(priors.b_median), np.float32)
    sd = np.array([priors.b_log_sd] + [priors.b_upper_log_sd] * structure.n_breaks, np.float32)
    if types_serve(types, n_segments):
        for k, name in enumerate(types):
            if k == 0 or structure.segment_offsets:
                median, log_sd = CONTROL_TYPES[name]
                mean[k], sd[k] = np.log(median), log_sd
    return mean, sd
