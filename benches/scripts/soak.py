#!/usr/bin/env python3
"""Soak (issue 20): vigil scrapes `churn_target.py` for hours at a steady rate with series
churn, as pods that restart make it, and every `--every` seconds records what should stay
flat once the first head compaction has run: RSS, open file descriptors, threads, the tokio
tasks alive (`goroutineCount` of /api/v1/status/runtimeinfo), the head's series, the data
directory's size, and the latency of two queries (an instant `count` over every series and a
1 h range `sum(rate(...[5m]))` at a 60 s step).

The default is the issue's run: 100,000 series scraped every second (100,000 samples per
second), a tenth of them replaced every 10 minutes, the default 2 h block range, 6 hours:

    cargo build --release -p vigil --bin vigil
    python3 benches/scripts/soak.py --vigil target/release/vigil --csv soak.csv
    python3 benches/scripts/soak.py --vigil target/release/vigil --csv soak.csv --summary
    python3 benches/scripts/soak_plot.py soak.csv docs/img/soak.svg   # the panels as an SVG

`--summary` reads a CSV (of a finished or running soak) and prints the first hour against
the last, per column. The CSV has one row per sample with the columns named in `COLUMNS`.
Ports: `--port` (default 39090) for vigil and `--base-port` (39100) and up for the targets,
away from compare.py's defaults so a soak can run beside other benchmarks. Python standard
library only.
"""

import argparse
import csv
import json
import os
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import churn_run  # same folder: starts the targets and vigil

COLUMNS = ["unix_time", "elapsed_s", "rss_bytes", "fds", "threads", "tasks", "head_series",
           "compactions", "disk_bytes", "instant_ms", "range_ms", "samples_appended",
           "rss_anon_bytes", "rss_file_bytes", "head_chunks"]


def get(url, timeout=30):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def proc_status(pid):
    rss = threads = anon = file = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("RssAnon"):
                anon = int(line.split()[1]) * 1024
            elif line.startswith("RssFile"):
                file = int(line.split()[1]) * 1024
            elif line.startswith("Threads"):
                threads = int(line.split()[1])
    return rss, threads, len(os.listdir(f"/proc/{pid}/fd")), anon, file


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def timed_query(port, path, params):
    url = f"http://127.0.0.1:{port}{path}?" + urllib.parse.urlencode(params)
    start = time.perf_counter()
    try:
        body = json.loads(get(url, timeout=60))
    except Exception:  # noqa: BLE001 - recorded as a failed (empty) figure
        return ""
    if body.get("status") != "success":
        return ""
    return round((time.perf_counter() - start) * 1000, 2)


def summary(path):
    rows = list(csv.DictReader(open(path)))
    if not rows:
        sys.exit("no rows")
    end = float(rows[-1]["elapsed_s"])
    first = [r for r in rows if float(r["elapsed_s"]) <= 3600]
    last = [r for r in rows if float(r["elapsed_s"]) > end - 3600]
    print(f"{len(rows)} rows over {end / 3600:.2f} h; first hour against last hour (median):")
    for c in COLUMNS[2:]:
        def med(rs):
            v = sorted(float(r[c]) for r in rs if r[c] != "")
            return v[len(v) // 2] if v else float("nan")
        a, b = med(first), med(last)
        print(f"  {c:18} {a:14.1f} {b:14.1f}  {b / a if a else float('nan'):.3f}x")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vigil")
    ap.add_argument("--csv", required=True)
    ap.add_argument("--summary", action="store_true", help="summarise an existing CSV and exit")
    ap.add_argument("--targets", type=int, default=50)
    ap.add_argument("--series", type=int, default=2000)
    ap.add_argument("--interval", default="1s", help="scrape interval")
    ap.add_argument("--churn-every", type=float, default=600.0,
                    help="seconds between replacements of a tenth of the series")
    ap.add_argument("--block", default="2h", help="--storage.tsdb.min-block-duration")
    ap.add_argument("--duration", type=float, default=6 * 3600.0)
    ap.add_argument("--every", type=float, default=60.0)
    ap.add_argument("--port", type=int, default=39090)
    ap.add_argument("--base-port", type=int, default=39100)
    args = ap.parse_args()
    if args.summary:
        summary(args.csv)
        return
    if not args.vigil:
        sys.exit("--vigil is required")
    d = tempfile.mkdtemp(prefix="vigil-soak-")
    tgt, v = churn_run.start(args.vigil, d, targets=args.targets, series=args.series,
                             interval=args.interval, churn_every=args.churn_every,
                             block=args.block, max_runtime=args.duration + 300,
                             port=args.port, base_port=args.base_port)
    print(f"data and log in {d}", flush=True)
    t0 = time.time()
    try:
        with open(args.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(COLUMNS)
            while time.time() - t0 < args.duration and v.poll() is None:
                now = time.time()
                m = churn_run.metrics(args.port)
                try:
                    rt = json.loads(get(f"http://127.0.0.1:{args.port}/api/v1/status/runtimeinfo"))
                    tasks = rt["data"]["goroutineCount"]
                except Exception:  # noqa: BLE001
                    tasks = ""
                rss, threads, fds, anon, file = proc_status(v.pid)
                instant = timed_query(args.port, "/api/v1/query",
                                      {"query": "count(churn_requests_total)", "time": now})
                rng = timed_query(args.port, "/api/v1/query_range",
                                  {"query": "sum by (shard) (rate(churn_requests_total[5m]))",
                                   "start": now - 3600, "end": now, "step": 60})
                row = [int(now), round(now - t0), rss, fds, threads, tasks,
                       m.get("prometheus_tsdb_head_series", ""),
                       m.get("prometheus_tsdb_compactions_total", ""), du(os.path.join(d, "data")),
                       instant, rng, m.get("prometheus_tsdb_head_samples_appended_total", ""),
                       anon, file, m.get("prometheus_tsdb_head_chunks", "")]
                w.writerow(row)
                f.flush()
                print(f"[{time.strftime('%T')}] t={row[1]}s rss={rss / 2**20:.1f}MiB fds={fds} "
                      f"anon={anon / 2**20:.1f}MiB threads={threads} tasks={tasks} series={row[6]} compactions={row[7]} "
                      f"disk={row[8] / 2**20:.1f}MiB q={instant}/{rng}ms", flush=True)
                time.sleep(max(0.0, args.every - (time.time() - now)))
    finally:
        v.terminate()
        v.wait(timeout=600)
        tgt.terminate()
    print(f"data and log in {d}")


if __name__ == "__main__":
    main()
