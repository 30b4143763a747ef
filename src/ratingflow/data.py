"""Station data as the model sees it: SI units, relative stage, padded to a shape bucket."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: smallest padded length; buckets are powers of two from here. Each bucket costs a cold run its own programs (a fit
#: job of 4 stations in bucket 16 compiled for 24 s and sampled for 5) and each of its batches a job per stage; padding
#: costs little: a batch of 51 stations of 17-32 gaugings fitted in 18.2 s padded to 32 and 19.0 s padded to 64, and 88
#: stations of 33-64 in 43.1 s and 47.0 s padded to 64 and 128 (warm, one job at a time; docs/time_budget.md).
#: The importance sampler pads further, to 256 (:data:`ratingflow.importance.MIN_SIZE`).
MIN_BUCKET = 64


def bucket_size(n: int, minimum: int = MIN_BUCKET) -> int:
    """Padded length for ``n`` points: the next power of two, at least ``minimum``.

    A handful of buckets lets one compiled program serve stations of any size.
    """
    if n < 1:
        raise ValueError("a station needs at least one gauging")
    size = minimum
    while size < n:
        size *= 2
    return size


def sd_log_from_relative(rel_sd: np.ndarray) -> np.ndarray:
    """SD of ln Q for a gauging with relative 1-SD uncertainty ``rel_sd`` (moment-matched lognormal)."""
    return np.sqrt(np.log1p(np.square(rel_sd)))


def own_offset_margin(n: int) -> int:
    """Gaugings left below the lowest and above the highest breakpoint of a fit where each control has its
    own offset (BaRatin form): 3, or a tenth of the gaugings. With fewer, a breakpoint near the end of the
    gauged range leaves a segment with three parameters (exponent, offset, breakpoint) and a couple of
    gaugings: a wide mode that the chains visit in turn (on 24 simulated two-control stations, R-hat up to
    1.33 where the range ended at the second-highest gauging)."""
    return max(3, n // 10)


#: the share of the gauged stage range that each control keeps on its side of a breakpoint in the BaRatin form,
#: besides :func:`own_offset_margin` gaugings. Where gaugings crowd the low stages, a tenth of them can span a few
#: centimetres: a breakpoint there leaves the lower control's offset and exponent to their priors (the chains' ln gap
#: and exponent spread 5-10x wider than with the breakpoint higher up: a funnel along the breakpoint, whose narrow end
#: sets NUTS's step size; docs/time_budget.md, "The BaRatin form's breakpoint").
OWN_OFFSET_MIN_SHARE = 0.1


@dataclass(frozen=True)
class StationData:
    """One station's cleaned gaugings in SI, ready for the model."""

    station_id: str
    stage: np.ndarray  # m, float64, absolute (station datum)
    discharge: np.ndarray  # m3/s
    discharge_sd: np.ndarray  # m3/s, 1 SD
    h0_range: tuple[float, float] | None = None  # surveyed zero-flow stage range [m], if any
    break_ranges: tuple[tuple[float, float], ...] | None = None  # sheet's breakpoint ranges [m], if any
    period: np.ndarray | None = None  # rating period (0-based) of each gauging; None: one timeless rating
    control_types: tuple[str, ...] = ()  # sheet's control types, lowest first (ratingflow.candidates.CONTROL_TYPES)

    def __post_init__(self):
        n = len(self.stage)
        if not (len(self.discharge) == len(self.discharge_sd) == n):
            raise ValueError(f"station {self.station_id}: stage, discharge and uncertainty differ in length")
        if n < 3:
            raise ValueError(f"station {self.station_id}: {n} valid gaugings, at least 3 are needed")

    @classmethod
    def from_clean(cls, station_id: str, clean: pd.DataFrame, h0_range=None, break_ranges=None,
                   control_types=()) -> "StationData":
        if h0_range is not None and None in h0_range:
            h0_range = None
        return cls(
            station_id=station_id,
            stage=clean["stage_m"].to_numpy(np.float64),
            discharge=clean["discharge_m3s"].to_numpy(np.float64),
            discharge_sd=clean["discharge_sd_m3s"].to_numpy(np.float64),
            h0_range=None if h0_range is None else (float(h0_range[0]), float(h0_range[1])),
            break_ranges=tuple((float(a), float(b)) for a, b in break_ranges) if break_ranges else None,
            control_types=tuple(control_types or ()),
        )

    def gap_prior(self, priors=None) -> tuple[float, float]:
        """(mean, sd) of ln gap: the surveyed h0 range as a 95 % interval, else the config prior."""
        if self.h0_range is None:
            from .candidates import Priors

            priors = priors or Priors()
            return float(np.log(priors.gap_median_m)), float(priors.gap_log_sd)
        lo = max(self.stage_offset - self.h0_range[1], 1e-3)
        hi = max(self.stage_offset - self.h0_range[0], 2e-3)
        return float((np.log(lo) + np.log(hi)) / 2), float((np.log(hi) - np.log(lo)) / (2 * 1.96))

    @property
    def n(self) -> int:
        return len(self.stage)

    @property
    def n_periods(self) -> int:
        return 1 if self.period is None else int(np.max(self.period)) + 1

    def period_station(self, p: int) -> "StationData":
        """The gaugings of period ``p`` as a station of their own (timeless)."""
        members = self.period == p
        return StationData(self.station_id, self.stage[members], self.discharge[members], self.discharge_sd[members],
                           self.h0_range, self.break_ranges, control_types=self.control_types)

    def period_frame(self, max_periods: int) -> tuple[np.ndarray, np.ndarray]:
        """(floor, ref): each period's lowest and median gauged stage relative to the station offset [m],
        padded to ``max_periods`` (an inactive period gets the station's values)."""
        floor = np.zeros(max_periods, np.float32)
        ref = np.full(max_periods, self.stage_ref, np.float32)
        for p in range(self.n_periods if self.period is not None else 0):
            x = self.stage_rel[self.period == p]
            floor[p], ref[p] = np.min(x), np.median(x)
        return floor, ref

    @property
    def stage_offset(self) -> float:
        """Lowest gauged stage [m]: the model's stage origin."""
        return float(np.min(self.stage))

    @property
    def stage_rel(self) -> np.ndarray:
        return self.stage - self.stage_offset

    @property
    def stage_ref(self) -> float:
        """Reference stage (median gauged stage) relative to the offset [m]."""
        return float(np.median(self.stage_rel))

    @property
    def sd_log(self) -> np.ndarray:
        return sd_log_from_relative(self.discharge_sd / self.discharge)

    @property
    def typical_sd_log(self) -> float:
        """The station's typical gauging uncertainty in ln Q, used for a *new* gauging."""
        return float(np.median(self.sd_log))

    def break_ranges_rel(self, n_breaks: int, n_segments: int,
                         own_offsets: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Prior ranges of the breakpoints (relative stage [m]), padded to ``n_breaks``.

        The sheet's ranges serve the candidate with exactly that many breakpoints; otherwise each
        breakpoint may lie anywhere between the second-lowest and the second-highest gauged stage
        (a segment needs gaugings on both sides of its breakpoint to be estimated). With ``own_offsets``
        (each control its own zero-flow stage: an upper segment has three parameters, not two) the range
        leaves :func:`own_offset_margin` gaugings and :data:`OWN_OFFSET_MIN_SHARE` of the gauged stage range on
        each side."""
        x = np.sort(self.stage_rel)
        m = min(own_offset_margin(self.n) if own_offsets else 1, (self.n - 1) // 2)
        lo, hi = (x[m], x[-m - 1]) if self.n > 3 else (x[0], x[-1])
        if own_offsets:
            share = OWN_OFFSET_MIN_SHARE * (x[-1] - x[0])
            narrowed = max(lo, x[0] + share), min(hi, x[-1] - share)
            if narrowed[0] < narrowed[1]:
                lo, hi = narrowed
        lows, highs = np.full(n_breaks, lo), np.full(n_breaks, hi)
        ranges = self.break_ranges or ()
        if ranges and len(ranges) == n_segments - 1:
            for k, (a, b) in enumerate(ranges):
                lows[k], highs[k] = a - self.stage_offset, b - self.stage_offset
        return lows.astype(np.float32), highs.astype(np.float32)

    def context(self, candidate, structure, priors=None) -> dict[str, np.ndarray]:
        """The model's ``context`` for one candidate (see :func:`ratingflow.model.rating_model`)."""
        from .candidates import Priors, exponent_prior_of, types_serve

        gap_mean, gap_sd = self.gap_prior(priors)
        b_mean, b_sd = exponent_prior_of(self.control_types, candidate.n_segments, structure, priors or Priors())
        lo, hi = self.break_ranges_rel(structure.n_breaks, candidate.n_segments, structure.segment_offsets)
        extra = {}
        if structure.max_periods > 1:  # a rating-period program (ratingflow.model.periods_model)
            floor, ref = self.period_frame(structure.max_periods)
            extra = {"period_floor": floor, "period_ref": ref, "shared": np.float32(candidate.mode != "periods")}
        return {
            "stage_ref": np.float32(self.stage_ref),
            "span": np.float32(max(float(np.ptp(self.stage)), 1e-3)),
            "gap_mean": np.float32(gap_mean),
            "gap_sd": np.float32(gap_sd),
            "break_lo": lo,
            "break_hi": hi,
            "b_log_mean": b_mean,
            "b_log_sd": b_sd,
            # 1: the exponents' priors are the sheet's control types' (sampled as they are, see
            # ratingflow.model.control_exponents)
            "b_typed": np.full(structure.max_segments, types_serve(self.control_types, candidate.n_segments), np.float32),
            "n_segments": np.int32(candidate.n_segments),
            "gplm": np.float32(candidate.gplm),
            **extra,
        }

    def padded(self, size: int, candidate=None) -> dict[str, np.ndarray]:
        """Model arrays padded to ``size`` (float32), with a validity mask; for a rating-period
        ``candidate`` (or none) of a station with periods also each gauging's period."""
        if size < self.n:
            raise ValueError(f"station {self.station_id}: {self.n} gaugings do not fit a bucket of {size}")
        pad = size - self.n

        def _pad(x, value):
            return np.concatenate([np.asarray(x, np.float32), np.full(pad, value, np.float32)])

        out = {
            "stage": _pad(self.stage_rel, 0.0),
            # an uncertainty of 1, not 0: a padded gauging's SD stays above 0 where sigma reaches 0 (the importance
            # sampler's Newton steps go there), so its masked density keeps finite derivatives, not 0 x NaN
            "discharge_sd_log": _pad(self.sd_log, 1.0),
            "mask": np.concatenate([np.ones(self.n, bool), np.zeros(pad, bool)]),
            "discharge": _pad(self.discharge, 1.0),
        }
        if self.period is not None and (candidate is None or candidate.mode):
            out["period"] = np.concatenate([np.asarray(self.period, np.int32), np.zeros(pad, np.int32)])
        return out
