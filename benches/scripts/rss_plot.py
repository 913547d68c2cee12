#!/usr/bin/env python3
"""Draws the RSS curves `rss_sampler.py` recorded as an SVG (no plotting library needed):
one line per system, x = seconds since that system's first sample (the systems of a
`compare.py` run start one after another), y = RSS in MiB.

    python3 benches/scripts/rss_plot.py rss.csv docs/img/rss-steady-state.svg [--title T]
"""

import argparse
import csv
from collections import defaultdict

COLORS = {"vigil": "#1f77b4", "prometheus": "#d62728", "victoria": "#2ca02c", "before": "#999999"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("svg")
    ap.add_argument("--title", default="RSS during ingest")
    ap.add_argument("--max-seconds", type=float, default=None)
    a = ap.parse_args()
    runs = defaultdict(list)  # (system, pid) -> [(t, rss)]
    with open(a.csv) as f:
        for row in csv.DictReader(f):
            runs[(row["system"], row["pid"])].append((float(row["unix_time"]), int(row["rss_bytes"])))
    curves = {}
    for (system, pid), pts in runs.items():
        if len(pts) < 2:
            continue
        t0 = pts[0][0]
        c = [(t - t0, r / 2**20) for t, r in pts]
        if a.max_seconds:
            c = [p for p in c if p[0] <= a.max_seconds]
        # A system run twice in one invocation (an A/A) is numbered by its order of start.
        name = system if system not in curves else f"{system} #{sum(n.split(' ')[0] == system for n in curves) + 1}"
        curves[name] = c
    W, H, L, R, T, B = 800, 420, 70, 190, 40, 50
    xmax = max(p[0] for c in curves.values() for p in c)
    ymax = max(p[1] for c in curves.values() for p in c) * 1.1
    sx = lambda x: L + (W - L - R) * x / xmax
    sy = lambda y: H - B - (H - T - B) * y / ymax
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="14">{a.title}</text>',
           f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>',
           f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>']
    for i in range(6):
        y = ymax * i / 5
        out.append(f'<line x1="{L - 4}" y1="{sy(y):.1f}" x2="{W - R}" y2="{sy(y):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{L - 8}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.0f}</text>')
    for i in range(7):
        x = xmax * i / 6
        out.append(f'<text x="{sx(x):.1f}" y="{H - B + 18}" text-anchor="middle">{x:.0f}</text>')
    out.append(f'<text x="{(L + W - R) / 2}" y="{H - 12}" text-anchor="middle">seconds since start</text>')
    out.append(f'<text x="18" y="{(T + H - B) / 2}" text-anchor="middle" '
               f'transform="rotate(-90 18 {(T + H - B) / 2})">RSS (MiB)</text>')
    for k, (name, c) in enumerate(sorted(curves.items())):
        color = COLORS.get(name.split(" ")[0], "#555")
        pts = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in c)
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{pts}"/>')
        ly = T + 20 + 20 * k
        out.append(f'<line x1="{W - R + 15}" y1="{ly}" x2="{W - R + 40}" y2="{ly}" stroke="{color}" stroke-width="2"/>')
        out.append(f'<text x="{W - R + 45}" y="{ly + 4}">{name} {c[-1][1]:.0f} MiB</text>')
    out.append("</svg>")
    with open(a.svg, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
