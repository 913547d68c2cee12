#!/usr/bin/env python3
"""Restart times of a full head, side by side: each system scrapes targetsim until its head
holds `--fill` of samples (600 s at 1 s: 600 samples a series, as 2.5 h at a 15 s scrape), is
killed with SIGKILL and restarted (WAL replay), then stopped cleanly and restarted again (vigil's
head snapshot; Prometheus' with `--enable-feature=memory-snapshot-on-shutdown`). Prints and
writes (`--json-out`) the time to `/-/ready`, the head series and samples queryable after each
restart, RSS and disk.

    python3 benches/scripts/restart_timing.py --system vigil=target/release/vigil \\
        --system prometheus=/usr/bin/prometheus --targets 50 --series 2000 --fill 600

Needs ../shared/bench/targetsim.py and ports 19090 (`--port`) and 19099-19150 (`--base-port`)
free.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TARGETSIM = os.path.join(HERE, "..", "..", "..", "shared", "bench", "targetsim.py")
PORT = 19090


def get(path, timeout=5.0):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{PORT}{path}", timeout=timeout) as r:
            return r.status, r.read()
    except Exception:  # noqa: BLE001 - not up yet
        return None, b""


def query(q):
    st, body = get("/api/v1/query?query=" + urllib.parse.quote(q), timeout=120)
    if st != 200:
        return None
    res = json.loads(body)["data"]["result"]
    return float(res[0]["value"][1]) if res else 0.0


def own_metric(name):
    """A gauge from the server's own `/metrics` (neither system scrapes itself here)."""
    st, body = get("/metrics", timeout=30)
    if st != 200:
        return None
    for line in body.decode(errors="replace").splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0


def du_mib(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total / 2**20


def argv_for(kind, binary, config, data):
    common = [f"--config.file={config}", f"--storage.tsdb.path={data}",
              f"--web.listen-address=127.0.0.1:{PORT}"]
    if kind == "prometheus":
        return [binary, *common, "--enable-feature=memory-snapshot-on-shutdown"]
    return [binary, *common]


def start(kind, binary, config, data, log):
    p = subprocess.Popen(argv_for(kind, binary, config, data), stdout=log, stderr=log)
    t0 = time.time()
    while get("/-/ready")[0] != 200:
        if p.poll() is not None:
            raise SystemExit(f"{kind} exited with {p.returncode}; see {log.name}")
        time.sleep(0.05)
    return p, time.time() - t0


def state(p, data):
    # What the head serves: series, and the scrapes of the last hour (`up` has one sample each).
    return {
        "series": own_metric("prometheus_tsdb_head_series"),
        "up_samples_1h": query("sum(count_over_time(up[1h]))"),
        "rss_mib": round(rss_mib(p.pid), 1),
        "disk_mib": round(du_mib(data), 1),
    }


def run(kind, binary, args, workdir):
    d = os.path.join(workdir, kind)
    os.makedirs(d, exist_ok=True)
    data = os.path.join(d, "data")
    config = os.path.join(d, "scrape.yml")
    targets = ",".join(f"'127.0.0.1:{args.base_port + i}'" for i in range(args.targets))
    with open(config, "w") as f:
        f.write(f"global:\n  scrape_interval: {args.interval}\n  scrape_timeout: {args.interval}\n"
                f"scrape_configs:\n  - job_name: targetsim\n    static_configs:\n"
                f"      - targets: [{targets}]\n")
    log = open(os.path.join(d, "server.log"), "ab")
    r = {"system": kind, "binary": binary}
    p, _ = start(kind, binary, config, data, log)
    print(f"[{time.strftime('%T')}] {kind}: filling the head for {args.fill} s", flush=True)
    time.sleep(args.fill)
    r["before_kill"] = state(p, data)
    print(f"[{time.strftime('%T')}] {kind}: {r['before_kill']}", flush=True)
    p.send_signal(signal.SIGKILL)
    p.wait()
    p, r["ready_after_kill_s"] = start(kind, binary, config, data, log)
    r["after_kill"] = state(p, data)
    print(f"[{time.strftime('%T')}] {kind}: ready {r['ready_after_kill_s']:.2f} s after SIGKILL; "
          f"{r['after_kill']}", flush=True)
    time.sleep(10)
    t0 = time.time()
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=600)
    r["clean_stop_s"] = round(time.time() - t0, 2)
    p, r["ready_after_stop_s"] = start(kind, binary, config, data, log)
    r["after_stop"] = state(p, data)
    print(f"[{time.strftime('%T')}] {kind}: stop took {r['clean_stop_s']} s, ready "
          f"{r['ready_after_stop_s']:.2f} s after it; {r['after_stop']}", flush=True)
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=600)
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--system", action="append", required=True, help="vigil=PATH or prometheus=PATH")
    ap.add_argument("--targets", type=int, default=50)
    ap.add_argument("--series", type=int, default=2000)
    ap.add_argument("--interval", default="1s")
    ap.add_argument("--fill", type=float, default=600.0, help="seconds of scraping before the kill")
    ap.add_argument("--base-port", type=int, default=19100)
    ap.add_argument("--port", type=int, default=19090, help="HTTP port of the system under test")
    ap.add_argument("--json-out")
    args = ap.parse_args()
    global PORT
    PORT = args.port
    workdir = tempfile.mkdtemp(prefix="vigil-restart-")
    ts = subprocess.Popen([sys.executable, TARGETSIM, "--base-port", str(args.base_port),
                           "--targets", str(args.targets), "--series", str(args.series),
                           "--step-ms", "1000", "--seed", "1", "--max-runtime", "7200"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = []
    try:
        time.sleep(3)
        for spec in args.system:
            kind, _, binary = spec.partition("=")
            results.append(run(kind, binary, args, workdir))
    finally:
        ts.terminate()
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(results, f, indent=1)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
