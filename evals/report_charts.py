"""Chart geometry for the HTML report: each function returns a small SVG scene that a Jinja macro draws.

A scene is {"title", "w", "h", "items": [...], "legend": [...], "empty": None | "why"}. Items are
plain shapes (line, path, rect, circle, text) with coordinates worked out here; every string in
them is escaped by the template (autoescape), so labels taken from results.json stay text.
A chart with no input keeps its place and says why ("no data: ..."), so a reader sees the gap.
"""

from __future__ import annotations

import math

W, H = 560, 240
PAD_L, PAD_R, PAD_T, PAD_B = 56, 16, 16, 36


def _scene(title: str, h: int = H, empty: str | None = None) -> dict:
    return {"title": title, "w": W, "h": h, "items": [], "legend": [], "empty": empty}


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]."""
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    return [round(start + i * step, 10) for i in range(int((hi - start) / step) + 2)
            if start + i * step <= hi + step * 0.999]


def fmt(x: float) -> str:
    a = abs(x)
    if a >= 100 or x == round(x):
        return f"{x:.0f}"
    return f"{x:.1f}" if a >= 10 else (f"{x:.2f}" if a >= 0.1 else f"{x:.3g}")


def short(text: str, limit: int = 26) -> str:
    """Row labels beside a chart have ~170 px; the full text stays in the tooltip and tables."""
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _scale(lo: float, hi: float, a: float, b: float):
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def _y_axis(scene: dict, ticks: list[float], y, x0: float, x1: float) -> None:
    for t in ticks:
        scene["items"].append({"t": "line", "x1": x0, "y1": y(t), "x2": x1, "y2": y(t), "cls": "grid"})
        scene["items"].append({"t": "text", "x": x0 - 6, "y": y(t) + 4, "s": fmt(t), "anchor": "end", "cls": "tick"})


def line_chart(title: str, series: list[tuple[str, str, list[tuple[float, float]]]], x_label: str,
               empty: str) -> dict:
    """Numeric x/y lines: series = [(name, css class, [(x, y), ...])]."""
    points = [p for _, _, pts in series for p in pts]
    if not points:
        return _scene(title, empty=empty)
    s = _scene(title)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    yt = _ticks(min(0.0, min(ys)) if min(ys) >= 0 and min(ys) < max(ys) * 0.3 else min(ys), max(ys))
    x = _scale(min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1, PAD_L, W - PAD_R)
    y = _scale(yt[0], yt[-1], H - PAD_B, PAD_T)
    _y_axis(s, yt, y, PAD_L, W - PAD_R)
    for t in _ticks(min(xs), max(xs), 6):
        if min(xs) <= t <= max(xs):
            s["items"].append({"t": "text", "x": x(t), "y": H - PAD_B + 16, "s": fmt(t), "anchor": "middle",
                               "cls": "tick"})
    s["items"].append({"t": "text", "x": W - PAD_R, "y": H - 4, "s": x_label, "anchor": "end", "cls": "axis-label"})
    for name, cls, pts in series:
        if not pts:
            continue
        d = "M" + " L".join(f"{x(a):.1f},{y(b):.1f}" for a, b in pts)
        s["items"].append({"t": "path", "d": d, "cls": f"series {cls}"})
        if len(pts) <= 40:
            s["items"] += [{"t": "circle", "cx": x(a), "cy": y(b), "r": 3, "cls": f"dot {cls}",
                            "tip": f"{name} at {fmt(a)}: {fmt(b)}"} for a, b in pts]
        s["legend"].append((name, cls))
    return s


def interval_chart(title: str, rows: list[dict], x_label: str, empty: str, zero: bool = True) -> dict:
    """Horizontal point + whisker rows: [{"label", "v", "lo", "hi", "cls", "tip"}], each optionally with
    "points": every observation, drawn as small dots on its row (a distribution, not only its summary).

    zero=True (deltas): the axis is symmetric around a marked zero line; else it starts at 0."""
    if not rows:
        return _scene(title, empty=empty)
    row_h, top = 26, PAD_T
    h = top + row_h * len(rows) + PAD_B
    s = _scene(title, h=h)
    vals = [v for r in rows for v in (r["v"], r["lo"], r["hi"], *r.get("points", ()))] + [0.0]
    lo, hi = min(vals), max(vals)
    if zero:  # symmetric around zero so the side a delta falls on reads at a glance
        m = max(abs(lo), abs(hi)) or 1.0
        lo, hi = -m, m
    ticks = _ticks(lo, hi, 6)
    left = 170
    x = _scale(ticks[0], ticks[-1], left, W - PAD_R)
    for t in ticks:
        s["items"].append({"t": "line", "x1": x(t), "y1": top, "x2": x(t), "y2": h - PAD_B,
                           "cls": "zero" if zero and t == 0 else "grid"})
        s["items"].append({"t": "text", "x": x(t), "y": h - PAD_B + 16, "s": fmt(t), "anchor": "middle", "cls": "tick"})
    s["items"].append({"t": "text", "x": W - PAD_R, "y": h - 4, "s": x_label, "anchor": "end", "cls": "axis-label"})
    for i, r in enumerate(rows):
        cy = top + row_h * i + row_h / 2
        s["items"].append({"t": "text", "x": left - 8, "y": cy + 4, "s": short(r["label"]), "anchor": "end",
                           "cls": "row-label"})
        s["items"] += [{"t": "circle", "cx": x(p), "cy": cy - 9, "r": 2.5, "cls": "pt",
                        "tip": f"{short(r['label'])}: {fmt(p)}"}
                       for p in r.get("points", ())]
        s["items"].append({"t": "line", "x1": x(r["lo"]), "y1": cy, "x2": x(r["hi"]), "y2": cy,
                           "cls": f"whisker {r['cls']}"})
        for edge in (r["lo"], r["hi"]):
            s["items"].append({"t": "line", "x1": x(edge), "y1": cy - 5, "x2": x(edge), "y2": cy + 5,
                               "cls": f"whisker {r['cls']}"})
        s["items"].append({"t": "circle", "cx": x(r["v"]), "cy": cy, "r": 4.5, "cls": f"dot {r['cls']}",
                           "tip": r["tip"]})
    return s


def bar_chart(title: str, rows: list[tuple[str, float, str]], x_label: str, empty: str) -> dict:
    """Horizontal bars: rows = [(label, value, tooltip)]."""
    if not rows:
        return _scene(title, empty=empty)
    row_h, top, left = 26, PAD_T, 170
    h = top + row_h * len(rows) + PAD_B
    s = _scene(title, h=h)
    ticks = _ticks(0.0, max(v for _, v, _ in rows), 5)
    x = _scale(0.0, ticks[-1], left, W - PAD_R - 40)
    for t in ticks:
        s["items"].append({"t": "line", "x1": x(t), "y1": top, "x2": x(t), "y2": h - PAD_B, "cls": "grid"})
        s["items"].append({"t": "text", "x": x(t), "y": h - PAD_B + 16, "s": fmt(t), "anchor": "middle", "cls": "tick"})
    s["items"].append({"t": "text", "x": W - PAD_R, "y": h - 4, "s": x_label, "anchor": "end", "cls": "axis-label"})
    for i, (label, v, tip) in enumerate(rows):
        y0 = top + row_h * i + 4
        s["items"].append({"t": "text", "x": left - 8, "y": y0 + 13, "s": short(label), "anchor": "end",
                           "cls": "row-label"})
        s["items"].append({"t": "rect", "x": left, "y": y0, "w": max(x(v) - left, 1), "h": row_h - 8, "cls": "bar",
                           "tip": tip})
        s["items"].append({"t": "text", "x": x(v) + 4, "y": y0 + 13, "s": fmt(v), "anchor": "start", "cls": "tick"})
    return s


def trend_chart(title: str, points: list[dict], scale: float, empty: str) -> dict:
    """The headline metric per registered version, in order; the current version stands out."""
    if not points:
        return _scene(title, empty=empty)
    s = _scene(title)
    vals = [p["value"] * scale for p in points if p.get("value") is not None]
    if not vals:
        return _scene(title, empty=empty)
    yt = _ticks(min(vals) * 0.9 if min(vals) > 0 else min(vals), max(vals))
    y = _scale(yt[0], yt[-1], H - PAD_B, PAD_T)
    n = len(points)
    x = (lambda i: (PAD_L + W - PAD_R) / 2) if n == 1 else _scale(0, n - 1, PAD_L + 20, W - PAD_R - 20)
    _y_axis(s, yt, y, PAD_L, W - PAD_R)
    known = [(i, p) for i, p in enumerate(points) if p.get("value") is not None]
    if len(known) > 1:
        s["items"].append({"t": "path",
                           "d": "M" + " L".join(f"{x(i):.1f},{y(p['value'] * scale):.1f}" for i, p in known),
                           "cls": "series s1"})
    for i, p in enumerate(points):
        s["items"].append({"t": "text", "x": x(i), "y": H - PAD_B + 16, "s": short(p["version"], 12),
                           "anchor": "middle", "cls": "tick current" if p.get("current") else "tick"})
        if p.get("value") is None:
            continue
        cls = "dot current" if p.get("current") else "dot s1"
        s["items"].append({"t": "circle", "cx": x(i), "cy": y(p["value"] * scale), "r": 6 if p.get("current") else 4,
                           "cls": cls, "tip": f"{p['version']}: {fmt(p['value'] * scale)}"})
    return s
