#!/usr/bin/env python3
"""Series churn at steady state: vigil scrapes `churn_target.py` (by default 50 targets x 2,000
series, a tenth replaced every 2 minutes) for `--duration`, with a short head block range so
that head compaction runs several times; every `--every` seconds it records RSS, the head's
series count and the compactions so far. The question: does RSS come back to its level after
each head compaction drops the series that churned out?

    python3 benches/scripts/churn_run.py --vigil target/release/vigil --duration 1800 \\
        --csv churn.csv
    python3 benches/scripts/rss_plot.py churn.csv docs/img/rss-churn.svg --title "..."

The CSV has rss_sampler.py's columns (unix_time,system,pid,rss_bytes) plus head_series and
compactions. Needs ports 19090 and 19100-19149 free.
"""

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def metrics(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            text = r.read().decode()
    except Exception:  # noqa: BLE001 - not up yet
        return {}
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = value
    return out


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) * 1024
    return 0


def start(vigil, d, *, targets, series, interval, churn_every, block, max_runtime,
          port=19090, base_port=19100):
    """Starts `churn_target.py` and a vigil scraping it, its data and log in `d`; returns both
    processes (also used by soak.py)."""
    addrs = ",".join(f"'127.0.0.1:{base_port + i}'" for i in range(targets))
    cfg = os.path.join(d, "scrape.yml")
    with open(cfg, "w") as f:
        f.write(f"global:\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\n"
                f"scrape_configs:\n  - job_name: churn\n    static_configs:\n      - targets: [{addrs}]\n")
    tgt = subprocess.Popen([sys.executable, os.path.join(HERE, "churn_target.py"), "--base-port",
                            str(base_port), "--targets", str(targets), "--series", str(series),
                            "--every", str(churn_every), "--max-runtime", str(max_runtime)])
    time.sleep(2)
    log = open(os.path.join(d, "vigil.log"), "wb")
    v = subprocess.Popen([os.path.abspath(vigil), f"--config.file={cfg}",
                          f"--storage.tsdb.path={d}/data", f"--web.listen-address=127.0.0.1:{port}",
                          f"--storage.tsdb.min-block-duration={block}"], stdout=log, stderr=log)
    return tgt, v


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vigil", required=True)
    ap.add_argument("--targets", type=int, default=50)
    ap.add_argument("--series", type=int, default=2000)
    ap.add_argument("--interval", default="5s", help="scrape interval")
    ap.add_argument("--churn-every", type=float, default=120.0)
    ap.add_argument("--block", default="5m", help="--storage.tsdb.min-block-duration")
    ap.add_argument("--duration", type=float, default=1800.0)
    ap.add_argument("--every", type=float, default=10.0)
    ap.add_argument("--csv", required=True)
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="vigil-churn-")
    tgt, v = start(args.vigil, d, targets=args.targets, series=args.series,
                   interval=args.interval, churn_every=args.churn_every, block=args.block,
                   max_runtime=args.duration + 120)
    t0 = time.time()
    try:
        with open(args.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["unix_time", "system", "pid", "rss_bytes", "head_series", "compactions"])
            while time.time() - t0 < args.duration:
                m = metrics(19090)
                row = [int(time.time()), "vigil", v.pid, rss(v.pid),
                       m.get("prometheus_tsdb_head_series", ""),
                       m.get("prometheus_tsdb_compactions_total", "")]
                w.writerow(row)
                f.flush()
                print(f"[{time.strftime('%T')}] t={time.time() - t0:.0f}s rss={row[3] / 2**20:.1f}MiB "
                      f"series={row[4]} compactions={row[5]}", flush=True)
                time.sleep(args.every)
    finally:
        v.terminate()
        v.wait(timeout=600)
        tgt.terminate()
    print(f"data and log in {d}")


if __name__ == "__main__":
    main()
