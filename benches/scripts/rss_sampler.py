#!/usr/bin/env python3
"""Samples the RSS of the systems a `compare.py` run starts, every `--every` seconds, into a
CSV (`unix_time,system,pid,rss_bytes`): compare.py reports the RSS at the end of its window
only, and the steady-state question is how RSS grows over the window.

    python3 benches/scripts/rss_sampler.py --out rss.csv &   # then run compare.py
    python3 benches/scripts/rss_plot.py rss.csv docs/img/rss-steady-state.svg

A system is recognised by its command line: `prometheus --config.file` (not promtool),
`victoria-metrics`, and a `vigil` binary started with `--storage.tsdb.path`.
"""

import argparse
import os
import time


def systems():
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if not argv or not argv[0]:
            continue
        exe = os.path.basename(argv[0].decode(errors="replace"))
        args = b" ".join(argv).decode(errors="replace")
        if exe == "prometheus" and "--config.file" in args:
            yield "prometheus", int(pid)
        elif exe.startswith("victoria-metrics"):
            yield "victoria", int(pid)
        elif exe.startswith("vigil") and "--storage.tsdb.path" in args:
            yield "vigil", int(pid)


def rss(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--every", type=float, default=30.0)
    ap.add_argument("--max-runtime", type=float, default=4 * 3600)
    a = ap.parse_args()
    end = time.time() + a.max_runtime
    with open(a.out, "a") as out:
        if out.tell() == 0:
            out.write("unix_time,system,pid,rss_bytes\n")
        while time.time() < end:
            now = time.time()
            for name, pid in systems():
                r = rss(pid)
                if r is not None:
                    out.write(f"{now:.0f},{name},{pid},{r}\n")
            out.flush()
            time.sleep(a.every - (time.time() - now) % a.every)


if __name__ == "__main__":
    main()
