"""A small plotting layer that writes SVG text directly: axes with linear, log or date scales, nice ticks, lines,
bands, points with error bars, reference lines and spans, and a legend. No pipeline I/O, no matplotlib.

Why: the rating figure is drawn for every station, and matplotlib spent about 0.11 s on each (most of it laying
out and rendering text), a third of the summary stage. Here a figure is string formatting: a few milliseconds.

An :class:`Axes` records what is drawn in data coordinates; :meth:`Axes.svg` then sets the limits (the data's
range with a 5 % margin, as matplotlib's autoscale does, unless given) and writes the panel. Values that a log
scale cannot show (zero, negative) are left out of lines and points; a band is clipped to the panel.
"""
from __future__ import annotations

import math
from html import escape

import numpy as np

BLUE, RED, GREY, BLACK = "#1f77b4", "#d62728", "#595959", "#000000"
FONT = "DejaVu Sans, Arial, Helvetica, sans-serif"
MINUS = "\u2212"


def _number(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    if text.startswith("-"):  # a typographic minus; none on a zero that rounding made negative
        text = text[1:] if float(text) == 0 else MINUS + text[1:]
    return text


def linear_ticks(lo: float, hi: float, most: int = 8) -> list[tuple[float, str]]:
    """Ticks at multiples of 1, 2, 2.5 or 5 × 10^k inside [lo, hi]: the smallest such step that leaves at most
    ``most`` intervals, with labels that show as many decimals as the step needs."""
    span = hi - lo
    if not span > 0:
        return [(lo, _number(lo, 2))]
    raw = span / most
    exponent = math.floor(math.log10(raw))
    mantissa = next(m for m in (1, 2, 2.5, 5, 10) if m * 10.0 ** exponent >= raw * 0.999)
    step = mantissa * 10.0 ** exponent
    decimals = max(0, -exponent + (mantissa == 2.5) - (mantissa == 10))
    first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
    return [(k * step, _number(k * step, decimals)) for k in range(first, last + 1)]


_SUPERSCRIPT = str.maketrans("-0123456789", "\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079")


def log_label(value: float) -> str:
    """A log axis's label: plain from 0.001 to 10 000, else as a power of ten (10⁶, 2×10⁻⁴)."""
    if 1e-3 <= value < 1e5:
        return f"{value:g}"
    exponent = math.floor(math.log10(value) + 1e-9)
    mantissa = round(value / 10.0 ** exponent)
    power = "10" + str(exponent).translate(_SUPERSCRIPT)
    return power if mantissa == 1 else f"{mantissa}×{power}"


def log_ticks(lo: float, hi: float) -> tuple[list[tuple[float, str]], list[float]]:
    """Labelled ticks and unlabelled minor ticks of a log axis on [lo, hi] (both > 0): decades, and 2 and 5
    times them, labelled too where the axis spans fewer than two decades."""
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    few = math.log10(hi / lo) < 2
    major, minor = [], []
    every = max(1, math.ceil((last - first) / 8))  # at most about 8 labels
    for d in range(first, last + 1):
        for sub in (1, 2, 5):
            value = sub * 10.0 ** d
            if not lo * (1 - 1e-9) <= value <= hi * (1 + 1e-9):
                continue
            if (sub == 1 and (d - first) % every == 0) or (sub > 1 and few):
                major.append((value, log_label(value)))
            else:
                minor.append(value)
    return major, minor


def days(values) -> np.ndarray:
    """Dates (datetime64, pandas timestamps, ISO text) as days since 1970-01-01: a date axis's data values."""
    return np.asarray(np.asarray(values, dtype="datetime64[s]").astype(np.int64), float) / 86400.0


def date_ticks(lo: float, hi: float, most: int = 8) -> list[tuple[float, str]]:
    """Ticks of a date axis (days since 1970-01-01) at the first of a month: every 1, 2, 3 or 6 months ("2019-04"),
    or every 1, 2, 5, 10, 20 or 50 years ("2019"), the smallest step that leaves at most ``most`` intervals."""
    first = np.datetime64(int(math.floor(lo)), "D").astype("datetime64[M]")
    last = np.datetime64(int(math.floor(hi)), "D").astype("datetime64[M]")
    span = (last - first).astype(int) + 1
    for months in (1, 2, 3, 6, 12, 24, 60, 120, 240, 600):
        if span / months <= most:
            break
    start = first.astype(int)
    start += (-start) % months  # months since 1970-01: a multiple of the step (a year step starts in January)
    ticks = []
    for m in range(start, last.astype(int) + 1, months):
        value = float(np.datetime64(m, "M").astype("datetime64[D]").astype(np.int64))
        if lo <= value <= hi:
            label = str(np.datetime64(m, "M"))
            ticks.append((value, label[:4] if months % 12 == 0 else label))
    return ticks


#: viridis at nine evenly spaced points, for colours of an ordered sequence (rating periods)
_VIRIDIS = ["#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30", "#fde725"]


def sequence_colours(n: int, stop: float = 0.9) -> list[str]:
    """``n`` colours along viridis from its start to ``stop`` (matplotlib's ``viridis(np.linspace(0, stop, n))``,
    interpolated between nine of its points)."""
    anchors = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in _VIRIDIS], float)
    where = np.linspace(0.0, stop, n) * (len(_VIRIDIS) - 1)
    rgb = np.column_stack([np.interp(where, np.arange(len(_VIRIDIS)), anchors[:, k]) for k in range(3)])
    return ["#" + "".join(f"{round(v):02x}" for v in row) for row in rgb]


def _limits(values: list[np.ndarray], log: bool, margin: float = 0.05) -> tuple[float, float]:
    data = np.concatenate([np.ravel(v) for v in values]) if values else np.array([])
    data = data[np.isfinite(data) & (data > 0)] if log else data[np.isfinite(data)]
    if not data.size:
        return (1.0, 10.0) if log else (0.0, 1.0)
    lo, hi = float(data.min()), float(data.max())
    if log:
        lo, hi = math.log10(lo), math.log10(hi)
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    pad = margin * (hi - lo)
    lo, hi = lo - pad, hi + pad
    return (10.0 ** lo, 10.0 ** hi) if log else (lo, hi)


class Scale:
    """Data values to pixels along one axis: ``lo`` at pixel ``a``, ``hi`` at pixel ``b``."""

    def __init__(self, lo: float, hi: float, log: bool, a: float, b: float, dates: bool = False):
        self.log, self.lo, self.hi, self.a, self.b, self.dates = log, lo, hi, a, b, dates
        f = math.log10 if log else float
        self._f0, self._k = f(lo), (b - a) / (f(hi) - f(lo))

    def __call__(self, values) -> np.ndarray:
        v = np.asarray(values, float)
        if self.log:
            with np.errstate(divide="ignore", invalid="ignore"):
                v = np.where(v > 0, np.log10(np.where(v > 0, v, 1.0)), np.nan)
        return self.a + (v - self._f0) * self._k

    def ticks(self):
        if self.dates:
            return date_ticks(self.lo, self.hi), []
        return log_ticks(self.lo, self.hi) if self.log else (linear_ticks(self.lo, self.hi), [])


def _stroke(colour: str, width: float, dash: str = "", opacity: float = 1.0) -> str:
    """The attributes of a stroked line."""
    return (f'stroke="{colour}" stroke-width="{width}"' + (f' stroke-dasharray="{dash}"' if dash else "")
            + (f' stroke-opacity="{opacity}"' if opacity < 1 else ""))


def _path(px: np.ndarray, py: np.ndarray) -> str:
    """An SVG path through the points, broken where a point is missing (NaN)."""
    ok = np.isfinite(px) & np.isfinite(py)
    parts, pen = [], "M"
    for x, y, good in zip(px.tolist(), py.tolist(), ok.tolist()):
        if good:
            parts.append(f"{pen}{x:.1f},{y:.1f}")
            pen = "L"
        else:
            pen = "M"
    return "".join(parts)


class Axes:
    """One panel at pixel box (``x0``, ``y0``, ``width``, ``height``), y growing upwards in data. ``xdates``: x values
    are days since 1970-01-01 (:func:`days`), ticked at months or years."""

    def __init__(self, box, xlog: bool = False, ylog: bool = False, name: str = "ax", xdates: bool = False):
        self.box, self.xlog, self.ylog, self.name, self.xdates = box, xlog, ylog, name, xdates
        self.items: list[tuple] = []
        self.xlim: list = [None, None]
        self.ylim: list = [None, None]
        self._xdata: list[np.ndarray] = []
        self._ydata: list[np.ndarray] = []
        self.legend_entries: list[tuple[str, str]] = []

    def _data(self, x=None, y=None):
        if x is not None:
            self._xdata.append(np.asarray(x, float))
        if y is not None:
            self._ydata.append(np.asarray(y, float))

    def band_x(self, y, lo, hi, colour: str, opacity: float, label: str = ""):
        """The region between x = ``lo`` and x = ``hi`` along ``y`` (matplotlib's ``fill_betweenx``)."""
        self._data(np.r_[lo, hi], y)
        self.items.append(("band", np.asarray(y, float), np.asarray(lo, float), np.asarray(hi, float), colour, opacity))
        if label:
            self.legend_entries.append(("band", f'fill="{colour}" fill-opacity="{opacity}"', label))

    def line(self, x, y, colour: str, width: float = 1.5, dash: str = "", label: str = "", opacity: float = 1.0):
        self._data(x, y)
        style = _stroke(colour, width, dash, opacity)
        self.items.append(("line", np.asarray(x, float), np.asarray(y, float), style))
        if label:
            self.legend_entries.append(("line", style, label))

    def points(self, x, y, xerr=None, label: str = "", colour: str = BLACK, radius: float = 2.4, edge: str = ""):
        """Dots (``edge``: their outline's colour) with horizontal grey error bars of half-width ``xerr``."""
        x, y = np.asarray(x, float), np.asarray(y, float)
        xerr = np.zeros_like(x) if xerr is None else np.broadcast_to(np.asarray(xerr, float), x.shape)
        self._data(np.r_[x - xerr, x + xerr], y)
        style = f'fill="{colour}"' + (f' stroke="{edge}" stroke-width="0.5"' if edge else "")
        self.items.append(("points", x, y, xerr, style, radius))
        if label:
            self.legend_entries.append(("points", style, label))

    def legend_entry(self, kind: str, label: str, colour: str, width: float = 1.0, dash: str = ""):
        """A legend entry for something drawn without one (``kind`` "line")."""
        self.legend_entries.append((kind, _stroke(colour, width, dash), label))

    def hline(self, y: float, colour: str, width: float = 0.8, dash: str = "", label: str = ""):
        """A horizontal line across the panel (not counted in the limits, as matplotlib's ``axhline``)."""
        style = _stroke(colour, width, dash)
        self.items.append(("hline", float(y), style))
        if label:
            self.legend_entries.append(("line", style, label))

    def vline(self, x: float, colour: str, width: float = 0.8, dash: str = ""):
        """A vertical line across the panel (not counted in the limits)."""
        self.items.append(("vline", float(x), _stroke(colour, width, dash)))

    def vspan(self, x_from: float, x_to: float, colour: str, opacity: float):
        """A band across the panel's height between two x values (not counted in the limits)."""
        self.items.append(("vspan", float(x_from), float(x_to), colour, opacity))

    def scales(self) -> tuple[Scale, Scale]:
        x0, y0, w, h = self.box
        xlo, xhi = _limits(self._xdata, self.xlog)
        ylo, yhi = _limits(self._ydata, self.ylog)
        xlo = xlo if self.xlim[0] is None else self.xlim[0]
        xhi = xhi if self.xlim[1] is None else self.xlim[1]
        ylo = ylo if self.ylim[0] is None else self.ylim[0]
        yhi = yhi if self.ylim[1] is None else self.ylim[1]
        return Scale(xlo, xhi, self.xlog, x0, x0 + w, self.xdates), Scale(ylo, yhi, self.ylog, y0 + h, y0)

    def svg(self, title: str = "", xlabel: str = "", ylabel: str = "", legend: str = "") -> str:
        """The panel: frame, ticks and labels, then what was drawn, clipped to the frame; ``legend``: where the legend
        goes, ``"lower right"``, ``"upper left"`` or ``"upper right"``, or ``""`` (none)."""
        x0, y0, w, h = self.box
        sx, sy = self.scales()
        out = [f'<clipPath id="{self.name}-clip"><rect x="{x0}" y="{y0}" width="{w}" height="{h}"/></clipPath>',
               f'<g clip-path="url(#{self.name}-clip)">']
        for item in self.items:
            out.append(self._item(item, sx, sy))
        out.append("</g>")
        out.append(self._frame(sx, sy, title, xlabel, ylabel))
        if legend and self.legend_entries:
            out.append(self._legend(legend))
        return "\n".join(out)

    def _item(self, item, sx: Scale, sy: Scale) -> str:
        kind = item[0]
        x0, y0, w, h = self.box
        if kind == "band":
            _, y, lo, hi, colour, opacity = item
            py = sy(y)
            keep = np.isfinite(py) & np.isfinite(lo) & np.isfinite(hi)
            # a value a log scale cannot place goes to the panel's edge (a band is clipped, not dropped)
            plo, phi = (np.nan_to_num(sx(v[keep]), nan=x0 - 5.0) for v in (lo, hi))
            xs, ys = np.r_[plo, phi[::-1]], np.r_[py[keep], py[keep][::-1]]
            if not xs.size:
                return ""
            return f'<path d="{_path(xs, ys)}Z" fill="{colour}" fill-opacity="{opacity}" stroke="none"/>'
        if kind == "line":
            _, x, y, style = item
            return f'<path d="{_path(sx(x), sy(y))}" fill="none" {style}/>'
        if kind == "points":
            _, x, y, xerr, style, radius = item
            px, py = sx(x), sy(y)
            lo, hi = sx(x - xerr), sx(x + xerr)
            lo = np.where(np.isfinite(lo), lo, x0 - 5.0)
            ok = np.isfinite(px) & np.isfinite(py)
            bars = "".join(f"M{a:.1f},{c:.1f}H{b:.1f}" for a, b, c in zip(lo[ok].tolist(), hi[ok].tolist(), py[ok].tolist())
                           if b - a > 0.05)
            dots = "".join(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="{radius}"/>' for a, b in zip(px[ok].tolist(), py[ok].tolist()))
            return ((f'<path d="{bars}" stroke="{GREY}" stroke-width="0.8" fill="none"/>' if bars else "")
                    + f'<g {style}>{dots}</g>')
        if kind == "hline":
            _, y, style = item
            py = float(sy(y))
            return "" if not np.isfinite(py) else f'<path d="M{x0},{py:.1f}H{x0 + w}" {style}/>'
        if kind == "vline":
            _, x, style = item
            px = float(sx(x))
            return "" if not np.isfinite(px) else f'<path d="M{px:.1f},{y0}V{y0 + h}" {style}/>'
        if kind == "vspan":
            _, a, b, colour, opacity = item
            pa, pb = float(sx(a)), float(sx(b))
            return (f'<rect x="{min(pa, pb):.1f}" y="{y0}" width="{abs(pb - pa):.1f}" height="{h}" fill="{colour}" '
                    f'fill-opacity="{opacity}"/>')
        raise ValueError(kind)

    def _frame(self, sx: Scale, sy: Scale, title: str, xlabel: str, ylabel: str) -> str:
        x0, y0, w, h = self.box
        bottom = y0 + h
        (xmajor, xminor), (ymajor, yminor) = sx.ticks(), sy.ticks()
        ticks, labels = [], []
        for value, text in xmajor:
            p = float(sx(value))
            ticks.append(f"M{p:.1f},{bottom}v5")
            labels.append(f'<text x="{p:.1f}" y="{bottom + 19}" text-anchor="middle">{escape(text)}</text>')
        for value, text in ymajor:
            p = float(sy(value))
            ticks.append(f"M{x0},{p:.1f}h-5")
            labels.append(f'<text x="{x0 - 8}" y="{p + 4.5:.1f}" text-anchor="end">{escape(text)}</text>')
        ticks += [f"M{float(sx(v)):.1f},{bottom}v3" for v in xminor]
        ticks += [f"M{x0},{float(sy(v)):.1f}h-3" for v in yminor]
        out = [f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="{BLACK}" stroke-width="0.8"/>',
               f'<path d="{"".join(ticks)}" stroke="{BLACK}" stroke-width="0.8"/>',
               f'<g font-size="12">{"".join(labels)}</g>']
        if xlabel:
            out.append(f'<text x="{x0 + w / 2:.1f}" y="{bottom + 40}" text-anchor="middle" font-size="13">{escape(xlabel)}</text>')
        if ylabel:
            out.append(f'<text transform="translate({x0 - 62},{y0 + h / 2:.1f}) rotate(-90)" text-anchor="middle" '
                       f'font-size="13">{escape(ylabel)}</text>')
        if title:
            out.append(f'<text x="{x0 + w / 2:.1f}" y="{y0 - 7}" text-anchor="middle" font-size="13">{escape(title)}</text>')
        return "\n".join(out)

    def _legend(self, where: str) -> str:
        """Inside the panel at ``where`` (lower right, upper left, upper right), on a white box."""
        x0, y0, w, h = self.box
        size, row, sample = 11, 16, 26
        width = sample + 14 + 0.6 * size * max(len(label) for _, _, label in self.legend_entries)
        height = row * len(self.legend_entries) + 8
        left = x0 + 6 if where.endswith("left") else x0 + w - width - 6
        top = y0 + 6 if where.startswith("upper") else y0 + h - height - 6
        out = [f'<rect x="{left:.1f}" y="{top:.1f}" width="{width:.1f}" height="{height}" rx="3" fill="white" '
               f'fill-opacity="0.85" stroke="#cccccc" stroke-width="0.8"/>']
        for k, (kind, style, label) in enumerate(self.legend_entries):
            y = top + 4 + row * k + row / 2
            a = left + 6
            if kind == "band":
                out.append(f'<rect x="{a}" y="{y - 5:.1f}" width="{sample}" height="10" {style}/>')
            elif kind == "line":
                out.append(f'<path d="M{a:.1f},{y:.1f}h{sample}" fill="none" {style}/>')
            else:
                out.append(f'<path d="M{a:.1f},{y:.1f}h{sample}" stroke="{GREY}" stroke-width="0.8"/>'
                           f'<circle cx="{a + sample / 2:.1f}" cy="{y:.1f}" r="2.4" {style}/>')
            out.append(f'<text x="{a + sample + 6:.1f}" y="{y + 4:.1f}" font-size="{size}">{escape(label)}</text>')
        return "\n".join(out)


def document(width: int, height: int, body: list[str], title: str = "") -> str:
    """A whole SVG file: white background, the title (its lines) centred at the top, then ``body``."""
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="{FONT}">\n'
            f'<rect width="{width}" height="{height}" fill="white"/>\n')
    for k, line in enumerate(title.splitlines()):
        head += f'<text x="{width / 2}" y="{22 + 19 * k}" text-anchor="middle" font-size="15">{escape(line)}</text>\n'
    return head + "\n".join(body) + "\n</svg>\n"


def write(path, text: str) -> None:
    """Write an SVG document; ``path`` must end in ``.svg`` (a figure's name says what it holds)."""
    if not str(path).endswith(".svg"):
        raise ValueError(f"{path}: an SVG figure's file name must end in .svg")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
