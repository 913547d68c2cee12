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

Imports (backfill): every --import-every'th cycle (default 3; 0: none) the script writes an
OpenMetrics file of its own series (`crash_imported{job="crash_import",batch,series}`, a new
batch label each time, timestamps 5 block ranges and more in the past, so older than what vigil's
head holds but inside the retention), runs `vigil tsdb import openmetrics FILE DATA` into the
running vigil's data directory and SIGKILLs it at a random moment (up to 1.1 times as long as
an import takes; one finished before its kill is run again in a third of the cases, as a user
unsure whether it finished would). Half of these cycles then SIGKILL vigil 0-600 ms after the import ended, in
the middle of its loading and merging of the new block. After the restart the script runs a
killed import again to completion, as a user would, and waits until vigil serves the batch.
Imported samples are checked as scraped ones are (lost, changed, out of order), and exactly:
every sample of every finished batch present with its value, none that no file holds. On disk,
blocks may overlap for a moment (an imported block next to blocks cut from the head, or a
block of a killed import next to the re-run's): after each start vigil must have merged them
within 5 s.

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


# Ports the benchmarks listen on (soak.py's 39090 and up; 29090 and up): never taken here.
BENCH_PORTS = (range(29090, 29201), range(39090, 39201))


def serve(handler_cls):
    while True:
        srv = QuietServer(("127.0.0.1", 0), handler_cls)
        if not any(srv.server_address[1] in r for r in BENCH_PORTS):
            break
        srv.server_close()
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
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not any(port in r for r in BENCH_PORTS):
            return port


def http_get(port, path, timeout=10):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return r.status, r.read().decode()


IMPORT_JOB = "crash_import"


def query_samples(port, window_s, selector='{job=~"crash|crash_import"}'):
    """{(labels tuple, ts ms): value} of every raw sample of `selector` in the window (the
    scraped job and the imported one), and the points per series."""
    q = urllib.parse.quote(f"{selector}[{window_s}s]")
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


def imported(key):
    return dict(key).get("job") == IMPORT_JOB


class Import:
    """`vigil tsdb import` runs of the script's own batches; what finished batches hold."""

    def __init__(self, binary, workdir, series, per_series):
        self.binary, self.workdir = binary, workdir
        self.series, self.per_series = series, per_series
        self.expected = {}  # (labels, ts) -> value of every finished batch
        self.duration = 0.05  # of a whole run, measured as runs finish
        self.batch = 0
        # Where kills landed: nothing on disk yet, its block half-written (`<ulid>.tmp`), its
        # block in place (renamed, whole).
        self.stages = {"before its block": 0, "while writing its block": 0, "after its block": 0}

    @staticmethod
    def own(data, start_ms):
        """Names in `data` of the import's block directories: their ULID-like name starts with
        the block range's start (a multiple of the import's 18 h default)."""
        r = 18 * 3600 * 1000
        prefix = f"{start_ms // r * r:016x}-"
        return {n for n in os.listdir(data) if n.startswith(prefix)}

    def write_batch(self, end_ms, step_ms=100):
        """A new batch's file, samples up to `end_ms`; returns (path, {(labels, ts): value})."""
        self.batch += 1
        b = self.batch
        path = os.path.join(self.workdir, f"import{b}.om")
        want = {}
        lines = ["# TYPE crash_imported gauge"]
        start = (end_ms // step_ms - self.per_series) * step_ms
        for s in range(self.series):
            key = tuple(
                sorted(
                    {
                        "__name__": "crash_imported",
                        "job": IMPORT_JOB,
                        "batch": str(b),
                        "series": str(s),
                    }.items()
                )
            )
            for i in range(self.per_series):
                t = start + i * step_ms
                v = s * 1000 + i
                lines.append(
                    f'crash_imported{{job="{IMPORT_JOB}",batch="{b}",series="{s}"}} '
                    f"{v} {t // 1000}.{t % 1000:03d}"
                )
                want[(key, t)] = str(v)
        lines.append("# EOF")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.start_ms = start
        return path, want

    def run(self, path, data, kill_after=None):
        """Runs an import; SIGKILLs it after `kill_after` s if still running. Returns "killed",
        "ok" (exit status 0) or "failed"."""
        log = open(os.path.join(self.workdir, "import.log"), "a")
        before = self.own(data, self.start_ms) if os.path.isdir(data) else set()
        started = time.time()
        proc = subprocess.Popen(
            [self.binary, "tsdb", "import", "openmetrics", path, data],
            stdout=log,
            stderr=log,
        )
        # Polled every millisecond (Popen.wait's timeout sleeps up to 50 ms between polls).
        deadline = started + (kill_after if kill_after is not None else 120)
        while proc.poll() is None and time.time() < deadline:
            time.sleep(0.001)
        if proc.poll() is None:
            if kill_after is None:
                raise RuntimeError(f"import of {path} did not finish in 120 s")
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            if proc.returncode == -signal.SIGKILL:
                new = self.own(data, self.start_ms) - before
                if any(n.endswith(".tmp") for n in new):
                    self.stages["while writing its block"] += 1
                elif new:
                    self.stages["after its block"] += 1
                else:
                    self.stages["before its block"] += 1
                return "killed"
        if proc.returncode != 0:
            return "failed"
        self.duration = 0.7 * self.duration + 0.3 * (time.time() - started)
        return "ok"


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
    "new blocks loaded (imports)": "Loaded new block",
    "overlapping blocks merged": "Merging blocks that overlap in time",
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
    ap.add_argument(
        "--import-every",
        type=int,
        default=3,
        help="every N-th cycle kills a `vigil tsdb import` (0: no imports)",
    )
    ap.add_argument("--import-series", type=int, default=200)
    ap.add_argument("--import-samples", type=int, default=50, help="per series, 100 ms apart")
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
    imports = Import(os.path.abspath(args.vigil), workdir, args.import_series, args.import_samples)
    data_dir = os.path.join(workdir, "data")
    window_s = int(retention_ms / 1000) * 4 + 60
    # Samples older than this before "now" may be gone by retention (blocks go whole, the
    # head cuts at newest - retention; a block range of margin covers block alignment).
    keep_ms = retention_ms - 2 * block_ms - 1000

    started = time.time()
    failed_starts = lost = corrupt = dups = overlaps = quarantined = 0
    checked = 0
    # Imports: kills, runs that finished before their kill, re-runs after a kill, runs that
    # exited with an error, samples of finished batches missing / with another value / in no
    # file, and starts after which overlapping blocks were still there 5 s later.
    import_kills = import_finished = import_reruns = import_failed = finished_reruns = 0
    finished_paths = set()
    imp_lost = imp_changed = imp_extra = imp_checked = overlaps_kept = 0
    rerun = None  # (path, samples) of a batch to import again at the next start
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
        if rerun:
            # As a user would: the killed import once more, to completion; vigil serves the
            # batch after its next maintenance pass.
            path, want = rerun
            rerun = None
            if path in finished_paths:
                finished_reruns += 1
            else:
                import_reruns += 1
            if imports.run(path, data_dir) != "ok":
                import_failed += 1
                first_failures.append(f"cycle {cycle}: import re-run failed (import.log)")
            imports.expected.update(want)
            deadline = time.time() + 10
            while time.time() < deadline:
                got, _ = query_samples(vigil.port, window_s, f'{{job="{IMPORT_JOB}"}}')
                if all(k in got for k in want):
                    break
                time.sleep(0.1)
        # Blocks that overlap (an import's) are merged by the next maintenance passes.
        deadline = time.time() + 5
        while block_problems(data_dir)[0] and time.time() < deadline:
            time.sleep(0.1)
        if block_problems(data_dir)[0]:
            overlaps_kept += 1
            if len(first_failures) < 5:
                first_failures.append(f"cycle {cycle}: overlapping blocks 5 s after the start")
        now_ms = time.time() * 1000
        now, series = query_samples(vigil.port, window_s)
        checked += len(now)
        d = duplicates(series)
        dups += d
        miss = [k for k, v in seen.items() if k[1] > now_ms - keep_ms and k not in now]
        bad = [k for k, v in seen.items() if k in now and now[k] != v]
        lost += len(miss)
        corrupt += len(bad)
        # Imported samples, exactly: every one of a finished batch (unless retention may have
        # dropped it) with its value, and nothing that no finished batch holds (a killed
        # import's batch was run again above).
        fresh = {k: v for k, v in imports.expected.items() if k[1] > now_ms - keep_ms}
        got = {k: v for k, v in now.items() if imported(k[0])}
        imp_checked += len(got)
        im = [k for k in fresh if k not in got]
        ic = [k for k, v in fresh.items() if k in got and got[k] != v]
        ix = [k for k in got if k not in imports.expected]
        imp_lost += len(im)
        imp_changed += len(ic)
        imp_extra += len(ix)
        if (im or ic or ix) and len(first_failures) < 5:
            first_failures.append(
                f"cycle {cycle}: imported samples lost {len(im)} (e.g. {im[:2]}), changed "
                f"{len(ic)}, in no file {len(ix)} (e.g. {ix[:2]})\n{vigil.log()[-3000:]}"
            )
        if (miss or bad or d) and len(first_failures) < 5:
            first_failures.append(
                f"cycle {cycle}: lost {len(miss)} (e.g. {miss[:2]}), changed {len(bad)}, "
                f"duplicates {d}\n{vigil.log()[-3000:]}"
            )
        if cycle == args.cycles:
            break
        import_cycle = args.import_every > 0 and cycle % args.import_every == args.import_every - 1
        if import_cycle:
            time.sleep(rng.uniform(0.3, 1.5))
            # Older than anything the head holds (5 block ranges and a second), newer than
            # what retention drops.
            end_ms = int(time.time() * 1000 - 5 * block_ms - 1000)
            path, want = imports.write_batch(end_ms)
            res = imports.run(path, data_dir, kill_after=rng.uniform(0, 1.1 * imports.duration))
            if res == "killed":
                import_kills += 1
                rerun = (path, want)
            else:
                import_finished += 1
                finished_paths.add(path)
                imports.expected.update(want)
                if rng.random() < 1 / 3:
                    # A user unsure whether it finished runs it again: two blocks, same samples.
                    rerun = (path, want)
                if res == "failed":
                    import_failed += 1
                    first_failures.append(f"cycle {cycle}: import failed (import.log)")
            # Half the time vigil dies while it loads and merges the new block.
            time.sleep(rng.uniform(0, 0.6) if rng.random() < 0.5 else rng.uniform(0.3, 1.5))
        else:
            time.sleep(rng.uniform(0.3, 3.0))
        seen, _ = query_samples(vigil.port, window_s)
        committed.update((k, v) for k, v in seen.items() if not imported(k[0]))
        time.sleep(rng.uniform(0, 0.15))
        vigil.kill()
        count_events(events, vigil.log())
        o, q = block_problems(data_dir)
        if not import_cycle:
            # After an import an imported block may not be merged yet: checked after the start.
            overlaps += o
        quarantined = max(quarantined, q)
        if (cycle + 1) % 10 == 0:
            print(
                f"{cycle + 1} kills, {time.time() - started:.0f} s: failed starts {failed_starts}, "
                f"lost {lost}, changed {corrupt}, duplicates {dups}, import kills {import_kills}",
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
    print(f"overlapping blocks  {overlaps} (summed over kills outside import cycles)")
    print(f"overlaps kept       {overlaps_kept} (starts after which blocks still overlapped 5 s later)")
    print(
        f"imports             {import_kills} killed, {import_finished} finished before their "
        f"kill, {import_reruns} re-run after a kill, {finished_reruns} finished ones run again, "
        f"{import_failed} failed; {imports.batch} batches of "
        f"{args.import_series * args.import_samples} samples"
    )
    print("import kills landed  " + ", ".join(f"{k} {v}" for k, v in imports.stages.items()))
    print(
        f"imported samples    {imp_checked} checked after restarts, {len(imports.expected)} of "
        f"finished batches; lost {imp_lost}, changed {imp_changed}, in no file {imp_extra}"
    )
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
    bad_total += imp_lost + imp_changed + imp_extra + overlaps_kept + import_failed
    sys.exit(1 if bad_total else 0)


if __name__ == "__main__":
    main()
