#!/usr/bin/env python3
"""Draws the CSV `soak.py` writes as one SVG (no plotting library needed): stacked panels
sharing the x axis (hours since start) for RSS (MiB), open file descriptors, tokio tasks and
threads, head series, data directory size (MiB) and the two query latencies (ms). Thin
orange vertical lines on every panel mark the samples where the `compactions` column went
up (`prometheus_tsdb_compactions_total`: blocks written from the head or merged from
blocks), and the first hour is shaded, since the issue asks for RSS and fds
flat after the first head compaction, no growth in tasks and query latency unchanged from
the first hour. Each panel's header gives, per line, the median of the first hour and of
the last hour (as `soak.py --summary` does). Works on the CSV of a running soak too.

    python3 benches/scripts/soak_plot.py soak.csv docs/img/soak.svg [--title T]

`rss_plot.py` keeps its drawing inside `main()`, so nothing there is imported; the few
helpers this needs are below. Python standard library only.
"""

import argparse
import csv
import math
from html import escape

MIB = 2**20
COMPACTION = "#ff7f0e"
# (header, [(column, legend name, scale, colour)]); a panel with two lines gets a legend.
PANELS = [
    # Anonymous and file-backed parts where the CSV has them (soak.py since 2026-12-06): the
    # file-backed part is block files read through their memory maps, which the kernel reclaims.
    ("RSS (MiB)", [("rss_bytes", "RSS", 1 / MIB, "#1f77b4"),
                   ("rss_anon_bytes", "anonymous", 1 / MIB, "#2ca02c"),
                   ("rss_file_bytes", "file-backed", 1 / MIB, "#9467bd")]),
    ("open file descriptors", [("fds", "fds", 1, "#1f77b4")]),
    ("tokio tasks and threads", [("tasks", "tasks", 1, "#1f77b4"), ("threads", "threads", 1, "#2ca02c")]),
    ("head series", [("head_series", "series", 1, "#1f77b4")]),
    ("data directory (MiB)", [("disk_bytes", "disk", 1 / MIB, "#1f77b4")]),
    ("query latency (ms)", [("instant_ms", "instant count", 1, "#1f77b4"),
                            ("range_ms", "1 h range rate", 1, "#d62728")]),
]


def num(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None  # empty field: a failed query or a metric not scraped yet


def nice_ticks(vmax, n=5):
    """Round ticks 0, step, 2 step, ... covering [0, vmax], step 1, 2 or 5 times a power of 10."""
    if not vmax or vmax <= 0:
        vmax = 1.0
    raw = vmax / n
    p = 10 ** math.floor(math.log10(raw))
    step = next(m * p for m in (1, 2, 5, 10) if m * p >= raw)
    k = math.ceil(vmax / step - 1e-9)
    return [i * step for i in range(k + 1)], step


def fmt(v, step, top):
    """A tick label: as many decimals as the step needs; k or M on an axis reaching 10,000."""
    for div, suf in ((1e6, "M"), (1e3, "k")):
        if top >= 10 * div and v and step >= div / 10:
            return fmt(v / div, step / div, 0) + suf
    d = max(0, -math.floor(math.log10(step) + 1e-9)) if step < 1 else 0
    return f"{v:.{d}f}"


def short(v):
    if v is None:
        return "–"
    if v >= 10000:
        return f"{v / 1000:.0f}k"
    return f"{v:.0f}" if v >= 100 else f"{v:.3g}"


def median(vs):
    vs = sorted(v for v in vs if v is not None)
    return vs[len(vs) // 2] if vs else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv")
    ap.add_argument("svg")
    ap.add_argument("--title", default="vigil soak")
    a = ap.parse_args()
    with open(a.csv) as f:
        rows = [r for r in csv.DictReader(f) if num(r.get("elapsed_s")) is not None]
    if len(rows) < 2:
        raise SystemExit("need at least two rows")
    hours = [num(r["elapsed_s"]) / 3600 for r in rows]
    end = hours[-1]

    # Compactions (head and block): a sample whose counter is above the previous known value (a drop, as
    # after a restart, only resets the baseline).
    marks, prev = [], None
    for h, r in zip(hours, rows):
        c = num(r.get("compactions"))
        if c is None:
            continue
        if prev is not None and c > prev:
            marks.append(h)
        prev = c

    W, L, R, T, PH, GAP, B = 900, 70, 20, 70, 150, 42, 50
    H = T + len(PANELS) * (PH + GAP) - GAP + B
    xmax = end or 1.0  # the lines fill the width; ticks up to the end
    xt, xstep = nice_ticks(xmax, 8)
    xt = [x for x in xt if x <= xmax * 1.0001]
    sx = lambda x: L + (W - L - R) * x / xmax
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="15">{escape(a.title)}</text>',
           f'<text x="{W / 2}" y="42" text-anchor="middle" fill="#444">{len(rows)} samples over '
           f'{end:.2f} h; shaded: first hour; <tspan fill="{COMPACTION}">orange lines: '
           f'compactions, head and block ({len(marks)})</tspan>; a → b: median of the first hour → of the last hour</text>']
    for i, (header, lines) in enumerate(PANELS):
        top = T + i * (PH + GAP)
        bot = top + PH
        series = []
        for col, name, scale, color in lines:
            pts = [(h, None if num(r.get(col)) is None else num(r[col]) * scale) for h, r in zip(hours, rows)]
            first = median(v for h, v in pts if h <= 1)
            last = median(v for h, v in pts if h > end - 1)
            series.append((name, color, pts, first, last))
        ymax_data = max((v for s in series for _, v in s[2] if v is not None), default=1)
        yt, ystep = nice_ticks(ymax_data * 1.05, 4)
        ymax = yt[-1]
        sy = lambda y, top=top, ymax=ymax: top + PH - PH * y / ymax
        out.append(f'<rect x="{L}" y="{top}" width="{sx(min(1, end)) - L:.1f}" height="{PH}" fill="#f0f0f0"/>')
        for y in yt:
            out.append(f'<line x1="{L - 4}" y1="{sy(y):.1f}" x2="{W - R}" y2="{sy(y):.1f}" stroke="#ddd"/>')
            out.append(f'<text x="{L - 8}" y="{sy(y) + 4:.1f}" text-anchor="end">{fmt(y, ystep, ymax)}</text>')
        for x in xt:
            out.append(f'<line x1="{sx(x):.1f}" y1="{top}" x2="{sx(x):.1f}" y2="{bot + 4}" stroke="#eee"/>')
        for x in marks:
            out.append(f'<line x1="{sx(x):.1f}" y1="{top}" x2="{sx(x):.1f}" y2="{bot}" '
                       f'stroke="{COMPACTION}" stroke-width="1"/>')
        out.append(f'<line x1="{L}" y1="{bot}" x2="{W - R}" y2="{bot}" stroke="black"/>')
        out.append(f'<line x1="{L}" y1="{top}" x2="{L}" y2="{bot}" stroke="black"/>')
        out.append(f'<text x="{L}" y="{top - 8}" font-weight="bold">{escape(header)}</text>')
        # Legend, right-aligned on the header row (one <text>, so no text widths to guess): a
        # colour swatch and name where two lines share a panel, then first → last hour medians.
        parts = []
        for name, color, _, first, last in series:
            if len(series) > 1:
                parts.append(f'<tspan fill="{color}" font-weight="bold">━━</tspan> {escape(name)} ')
            parts.append(f"{short(first)} → {short(last)} ")
        out.append(f'<text x="{W - R}" y="{top - 8}" text-anchor="end" xml:space="preserve">'
                   f'{"".join(parts).rstrip(chr(0x2003))}</text>')
        for name, color, pts, _, _ in series:
            seg = []  # a gap (empty field) splits the line
            for x, y in pts + [(None, None)]:
                if y is None:
                    if len(seg) > 1:
                        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" '
                                   f'points="{" ".join(seg)}"/>')
                    elif seg:
                        px, py = seg[0].split(",")
                        out.append(f'<circle cx="{px}" cy="{py}" r="1.5" fill="{color}"/>')
                    seg = []
                else:
                    seg.append(f"{sx(x):.1f},{sy(y):.1f}")
    bot = T + len(PANELS) * (PH + GAP) - GAP
    for x in xt:
        out.append(f'<text x="{sx(x):.1f}" y="{bot + 18}" text-anchor="middle">{fmt(x, xstep, xmax)}</text>')
    out.append(f'<text x="{(L + W - R) / 2}" y="{H - 12}" text-anchor="middle">hours since start</text>')
    out.append("</svg>")
    with open(a.svg, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
