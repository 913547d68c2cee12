#!/usr/bin/env python3
"""Crash campaign for vigil (issue 20): SIGKILL the real binary at random moments, over and over,
while it scrapes, cuts the head into blocks, compacts blocks, applies retention, writes WAL
checkpoints (head snapshots) and sends remote write; after every restart check that nothing
committed was lost and nothing is duplicated.

A maintainer runs it before a release (it is not part of CI; CI runs the 30-kill version in
crates/vigil/tests/crash_campaign.rs). Python standard library only.

    cargo build --release -p vigil --bin vigil
    python3 tools/crash_campaign.py --cycles 200            # target/release/vigil
    python3 tools/crash_campaign.py --vigil target/debug/vigil --cycles 20 --seed 7

What it starts, all on 127.0.0.1:
- targets: tiny HTTP servers in this process; each serves `crash_served_total{target,series}`
  whose value is how many times the target has served /metrics (the target's served count),
  so values of one series strictly increase with time and a duplicate shows;
- a remote-write receiver (snappy + protobuf decoded here) that records every sample it gets;
- vigil with a short block range (--storage.tsdb.min-block-duration, default 2s: head
  compaction every ~3 s, maintenance every 500 ms), a short retention (default 30s) so blocks
  are compacted and deleted all the time, and a 100 ms scrape interval.

Per cycle: start vigil (a start that fails or is not ready within 60 s is a failed start);
query every sample of job "crash"; compare with what was queryable just before the last kill
(committed = queryable = in the WAL, as crates/vigil/tests/restart.rs counts it): a sample
missing now is lost unless retention may have dropped it (older than now minus the retention,
plus a margin); a sample whose value changed is corrupt; per series timestamps must strictly
increase and the served count too (duplicates). Blocks on disk must not overlap in time and
none may have been quarantined (`*.corrupted`). Then let vigil run a random 0.3-3 s, note
what is queryable, wait a random 0-150 ms and SIGKILL it.

At the end vigil is started once more and given up to 60 s to send everything to the
receiver: every committed sample must have arrived there (resends are counted, not errors).
Exit status 0 when every count is zero.
"""

import argparse
import http.server
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

# ---------------------------------------------------------------- targets


class Target:
    """One scrape target: N counter series whose value is the target's served count."""

    def __init__(self, index, series):
        self.index = index
        self.series = series
        self.served = 0
        self.lock = threading.Lock()

    def body(self):
        with self.lock:
            self.served += 1
            n = self.served
        lines = ["# TYPE crash_served_total counter"]
        for s in range(self.series):
            lines.append(f'crash_served_total{{target="{self.index}",series="{s}"}} {n}')
        return ("\n".join(lines) + "\n").encode()


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A SIGKILLed vigil resets its connections mid-request: expected here, not news.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def serve(handler_cls):
    srv = QuietServer(("127.0.0.1", 0), handler_cls)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def start_target(t):
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            b = t.body()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(b)))
            self.end_headers()
            self.wfile.write(b)

        def log_message(self, *a):
            pass

    return serve(H)


# ---------------------------------------------------------------- remote-write receiver


def snappy_decode(buf):
    """Snappy block format (what remote write sends), decoder only."""
    n, pos = varint(buf, 0)
    if n > 64 << 20:
        raise ValueError("claimed length too large")
    out = bytearray()
    while pos < len(buf):
        tag = buf[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:
            ln = tag >> 2
            if ln >= 60:
                extra = ln - 59
                ln = int.from_bytes(buf[pos : pos + extra], "little")
                pos += extra
            ln += 1
            out += buf[pos : pos + ln]
            pos += ln
            continue
        if kind == 1:
            ln = ((tag >> 2) & 7) + 4
            off = ((tag >> 5) << 8) | buf[pos]
            pos += 1
        elif kind == 2:
            ln = (tag >> 2) + 1
            off = int.from_bytes(buf[pos : pos + 2], "little")
            pos += 2
        else:
            ln = (tag >> 2) + 1
            off = int.from_bytes(buf[pos : pos + 4], "little")
            pos += 4
        if off == 0 or off > len(out):
            raise ValueError("bad snappy offset")
        for _ in range(ln):
            out.append(out[-off])
    if len(out) != n:
        raise ValueError("snappy length mismatch")
    return bytes(out)


def pb_fields(buf):
    """(field number, wire type, value) of a protobuf message."""
    pos = 0
    while pos < len(buf):
        key, pos = varint(buf, pos)
        f, wt = key >> 3, key & 7
        if wt == 0:
            v, pos = varint(buf, pos)
        elif wt == 1:
            v = buf[pos : pos + 8]
            pos += 8
        elif wt == 2:
            ln, pos = varint(buf, pos)
            v = buf[pos : pos + ln]
            pos += ln
        elif wt == 5:
            v = buf[pos : pos + 4]
            pos += 4
        else:
            raise ValueError(f"wire type {wt}")
        yield f, wt, v


def varint(buf, pos):
    shift = n = 0
    while True:
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return n, pos


def decode_write_request(body):
    """prometheus.WriteRequest -> [(labels tuple, ts ms, value)]"""
    out = []
    for f, _, ts in pb_fields(snappy_decode(body)):
        if f != 1:
            continue
        labels, samples = [], []
        for g, _, v in pb_fields(ts):
            if g == 1:
                lab = dict((h, x.decode()) for h, _, x in pb_fields(v))
                labels.append((lab.get(1, ""), lab.get(2, "")))
            elif g == 2:
                val, t = 0.0, 0
                for h, _, x in pb_fields(v):
                    if h == 1:
                        val = struct.unpack("<d", x)[0]
                    elif h == 2:
                        t = x - (1 << 64) if x >= 1 << 63 else x
                samples.append((t, val))
        key = tuple(sorted(labels))
        out += [(key, t, v) for t, v in samples]
    return out


class Receiver:
    def __init__(self):
        self.samples = {}  # (labels, ts) -> value
        self.received = 0
        self.errors = 0
        self.lock = threading.Lock()
        rec = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    got = decode_write_request(body)
                    with rec.lock:
                        for k, t, v in got:
                            rec.received += 1
                            rec.samples[(k, t)] = v
                    code = 204
                except Exception:  # noqa: BLE001 - counted, reported in the summary
                    with rec.lock:
                        rec.errors += 1
                    code = 400
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = serve(H)
        self.port = self.srv.server_address[1]


# ---------------------------------------------------------------- vigil


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, path, timeout=10):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return r.status, r.read().decode()


def query_samples(port, window_s):
    """{(labels tuple, ts ms): value} of every raw sample of job "crash" in the window."""
    q = urllib.parse.quote(f'{{job="crash"}}[{window_s}s]')
    status, body = http_get(port, f"/api/v1/query?query={q}", timeout=30)
    if status != 200:
        raise RuntimeError(body)
    out, series = {}, {}
    for s in json.loads(body)["data"]["result"]:
        key = tuple(sorted(s["metric"].items()))
        pts = [(round(float(t) * 1000), v) for t, v in s.get("values", [])]
        series[key] = pts
        for t, v in pts:
            out[(key, t)] = v
    return out, series


def duplicates(series):
    """Samples that break strict order: timestamps, and the served count of crash_served_total."""
    bad = 0
    for key, pts in series.items():
        counter = dict(key).get("__name__") == "crash_served_total"
        for (t0, v0), (t1, v1) in zip(pts, pts[1:]):
            if t1 <= t0 or (counter and float(v1) <= float(v0)):
                bad += 1
    return bad


def block_problems(data):
    """(overlapping block pairs, quarantined blocks) in the data directory."""
    metas, quarantined = [], 0
    for name in os.listdir(data):
        p = os.path.join(data, name)
        if name.endswith(".corrupted"):
            quarantined += 1
        if not re.fullmatch(r"[0-9a-fA-F]{16}-[0-9a-fA-F]{16}", name):
            continue
        try:
            with open(os.path.join(p, "meta.json")) as f:
                m = json.load(f)
            metas.append((m["minTime"], m["maxTime"], name))
        except (OSError, ValueError, KeyError):
            pass  # the next start judges it (quarantine is counted then)
    metas.sort()
    overlaps = sum(1 for a, b in zip(metas, metas[1:]) if b[0] < a[1])
    return overlaps, quarantined


class Vigil:
    def __init__(self, binary, workdir, args):
        self.binary, self.workdir, self.args = binary, workdir, args
        self.proc = None
        self.port = None

    def start(self, log_name):
        self.port = free_port()
        log = open(os.path.join(self.workdir, log_name), "w")
        self.log_name = log_name
        self.proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={os.path.join(self.workdir, 'prometheus.yml')}",
                f"--storage.tsdb.path={os.path.join(self.workdir, 'data')}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                f"--storage.tsdb.min-block-duration={self.args.block}",
                f"--storage.tsdb.retention.time={self.args.retention}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if http_get(self.port, "/-/ready", timeout=2)[0] == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc:
            self.proc.wait()

    def log(self):
        with open(os.path.join(self.workdir, self.log_name), errors="replace") as f:
            return f.read()


def seconds(d):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", d)
    if not m:
        raise SystemExit(f"duration {d!r}: use e.g. 500ms, 30s, 5m")
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


EVENTS = {
    "head compactions": "Wrote block from the head",
    "block compactions": "Compacted blocks",
    "retention deletions": "Deleting block (retention)",
    "snapshots": "Wrote head snapshot",
    "unfinished block deletions finished": "Finishing the deletion of a block",
    "compacted sources deleted at start": "already compacted into another",
    "half-written blocks removed": "Removing a half-written block",
}


def count_events(events, log):
    for k, v in EVENTS.items():
        events[k] += log.count(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vigil", default="target/release/vigil")
    ap.add_argument("--cycles", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--targets", type=int, default=2)
    ap.add_argument("--series", type=int, default=50)
    ap.add_argument("--block", default="2s", help="--storage.tsdb.min-block-duration")
    ap.add_argument("--retention", default="30s", help="--storage.tsdb.retention.time")
    ap.add_argument("--no-remote-write", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    retention_ms = seconds(args.retention) * 1000
    block_ms = seconds(args.block) * 1000
    workdir = tempfile.mkdtemp(prefix="vigil-crash-")
    targets = [Target(i, args.series) for i in range(args.targets)]
    servers = [start_target(t) for t in targets]
    receiver = None if args.no_remote_write else Receiver()
    cfg = (
        "global:\n  scrape_interval: 100ms\n  scrape_timeout: 100ms\n"
        "scrape_configs:\n  - job_name: crash\n    static_configs:\n      - targets: ["
        + ", ".join(f'"127.0.0.1:{s.server_address[1]}"' for s in servers)
        + "]\n"
    )
    if receiver:
        cfg += (
            "remote_write:\n  - url: http://127.0.0.1:%d/api/v1/write\n"
            "    queue_config:\n      batch_send_deadline: 200ms\n" % receiver.port
        )
    with open(os.path.join(workdir, "prometheus.yml"), "w") as f:
        f.write(cfg)
    vigil = Vigil(os.path.abspath(args.vigil), workdir, args)
    window_s = int(retention_ms / 1000) * 4 + 60
    # Samples older than this before "now" may be gone by retention (blocks go whole, the
    # head cuts at newest - retention; a block range of margin covers block alignment).
    keep_ms = retention_ms - 2 * block_ms - 1000

    started = time.time()
    failed_starts = lost = corrupt = dups = overlaps = quarantined = 0
    checked = 0
    committed = {}  # every sample ever seen queryable: (labels, ts) -> value
    seen = {}
    events = dict.fromkeys(EVENTS, 0)
    first_failures = []
    for cycle in range(args.cycles + 1):
        ok = vigil.start(f"cycle{cycle % 3}.log")
        if not ok:
            failed_starts += 1
            first_failures.append(f"cycle {cycle}: failed start\n{vigil.log()[-3000:]}")
            vigil.kill()
            if failed_starts > 3:
                break
            continue
        now_ms = time.time() * 1000
        now, series = query_samples(vigil.port, window_s)
        checked += len(now)
        d = duplicates(series)
        dups += d
        miss = [k for k, v in seen.items() if k[1] > now_ms - keep_ms and k not in now]
        bad = [k for k, v in seen.items() if k in now and now[k] != v]
        lost += len(miss)
        corrupt += len(bad)
        if (miss or bad or d) and len(first_failures) < 5:
            first_failures.append(
                f"cycle {cycle}: lost {len(miss)} (e.g. {miss[:2]}), changed {len(bad)}, "
                f"duplicates {d}\n{vigil.log()[-3000:]}"
            )
        if cycle == args.cycles:
            break
        time.sleep(rng.uniform(0.3, 3.0))
        seen, _ = query_samples(vigil.port, window_s)
        committed.update(seen)
        time.sleep(rng.uniform(0, 0.15))
        vigil.kill()
        count_events(events, vigil.log())
        o, q = block_problems(os.path.join(workdir, "data"))
        overlaps += o
        quarantined = max(quarantined, q)
        if (cycle + 1) % 10 == 0:
            print(
                f"{cycle + 1} kills, {time.time() - started:.0f} s: failed starts {failed_starts}, "
                f"lost {lost}, changed {corrupt}, duplicates {dups}",
                flush=True,
            )

    # Remote write: vigil runs once more until the receiver holds every committed sample.
    rw_missing = 0
    if receiver and vigil.proc and vigil.proc.poll() is None:
        deadline = time.time() + 60
        while True:
            with receiver.lock:
                rw_missing = sum(1 for k in committed if k not in receiver.samples)
            if rw_missing == 0 or time.time() > deadline:
                break
            time.sleep(0.5)
    if rw_missing:
        with receiver.lock:
            miss = sorted(k for k in committed if k not in receiver.samples)
        by_series = {}
        for k, t in miss:
            by_series.setdefault(dict(k).get("__name__"), []).append(t)
        first_failures.append(
            "remote write missing, per metric (count, first and last timestamp): "
            + ", ".join(f"{n}: {len(ts)} {min(ts)}..{max(ts)}" for n, ts in by_series.items())
        )
    vigil.kill()
    if vigil.proc:
        count_events(events, vigil.log())
    took = time.time() - started

    print("\n== vigil crash campaign ==")
    print(f"binary              {args.vigil}")
    print(f"seed                {args.seed}")
    print(f"kills (SIGKILL)     {min(args.cycles, cycle)}")
    print(f"failed starts       {failed_starts}")
    print(f"samples checked     {checked} (after restarts), committed {len(committed)}")
    print(f"lost                {lost}")
    print(f"changed values      {corrupt}")
    print(f"duplicates          {dups}")
    print(f"overlapping blocks  {overlaps} (summed over kills)")
    print(f"quarantined blocks  {quarantined}")
    if receiver:
        print(
            f"remote write        {len(committed) - rw_missing} of {len(committed)} committed "
            f"samples received, {rw_missing} missing; {receiver.received} received in all "
            f"({receiver.received - len(receiver.samples)} resends), {receiver.errors} bad requests"
        )
    print("maintenance seen in the logs: " + ", ".join(f"{k} {v}" for k, v in events.items()))
    print(f"time                {took:.0f} s")
    for f in first_failures:
        print("\n--- " + f)
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"work directory kept: {workdir}")
    bad_total = failed_starts + lost + corrupt + dups + overlaps + quarantined + rw_missing
    sys.exit(1 if bad_total else 0)


if __name__ == "__main__":
    main()
