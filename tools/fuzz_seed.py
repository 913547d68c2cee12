#!/usr/bin/env python3
"""Seeds the corpora of the fuzz targets (fuzz/corpus/<target>/, not committed).

Reads the repository's own testdata/ and config/, and Prometheus' test data in
../shared/testdata (or $VIGIL_SHARED_DIR/testdata) at run time: nothing of ../shared is copied
into the repository. Seeds that no file holds (remote-write and remote-read protobufs, web
configs) are made here. With --vigil PATH, head snapshots are made by running that binary for a
few seconds on loopback (scraping itself) and stopping it cleanly.

    python3 tools/fuzz_seed.py [--vigil target/debug/vigil] [--only TARGET]
"""

import argparse
import glob
import hashlib
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.environ.get("VIGIL_SHARED_DIR", os.path.join(ROOT, "..", "shared")), "testdata")
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def files(*patterns):
    out = []
    for p in patterns:
        out.extend(sorted(glob.glob(p, recursive=True)))
    return [f for f in out if os.path.isfile(f)]


def read(path):
    with open(path, "rb") as f:
        return f.read()


# --- protobuf, by hand (the few messages of remote write and read) ---

def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, wire, payload):
    key = varint(num << 3 | wire)
    if wire == 2:
        return key + varint(len(payload)) + payload
    return key + payload


def label(name, value):
    return field(1, 2, name.encode()) + field(2, 2, value.encode())


def sample(value, ts):
    return field(1, 1, struct.pack("<d", value)) + field(2, 0, varint(ts))


def timeseries(labels, samples):
    body = b"".join(field(1, 2, label(n, v)) for n, v in labels)
    body += b"".join(field(2, 2, sample(v, t)) for v, t in samples)
    return body


def write_request(series):
    return b"".join(field(1, 2, timeseries(l, s)) for l, s in series)


def read_request(matchers, start, end):
    ms = b"".join(field(3, 2, field(1, 0, varint(t)) + field(2, 2, n.encode()) + field(3, 2, v.encode()))
                  for t, n, v in matchers)
    q = field(1, 0, varint(start)) + field(2, 0, varint(end)) + ms
    return field(1, 2, q) + field(2, 0, varint(1))


def remote_seeds():
    now = 1_700_000_000_000
    reqs = [
        write_request([([("__name__", "up"), ("job", "a")], [(1.0, now), (0.0, now + 15000)])]),
        write_request([([("__name__", "http_requests_total"), ("code", "200"), ("instance", "x:9")],
                        [(float(i), now + i * 1000) for i in range(20)]),
                       ([("__name__", "temp")], [(float("nan"), now)])]),
        write_request([([("job", "no-name")], [(1.0, now)]), ([("__name__", "")], [(1.0, now)])]),
        read_request([(0, "__name__", "up"), (2, "job", "a|b")], now - 3600_000, now),
        read_request([(1, "job", ""), (3, "instance", ".*")], 0, now),
    ]
    for r in reqs:
        # Even first byte: the target compresses the rest; with bit 1, frames it too.
        put("remote_write_decode", b"\x00" + r)
        put("remote_write_decode", b"\x02" + r)


def config_seeds():
    for f in files(os.path.join(SHARED, "configs", "*.yml"), os.path.join(ROOT, "config", "*.yml")):
        put("config_parse", read(f))


def rule_seeds():
    rule_files = files(
        os.path.join(ROOT, "testdata", "rules", "*.yml"),
        os.path.join(ROOT, "config", "alerts.yml"),
        os.path.join(SHARED, "rules", "**", "*.yml"),
    )
    templates = set()
    for f in rule_files:
        text = read(f)
        put("rule_file", text)
        for line in text.decode(errors="replace").splitlines():
            if "{{" in line and ":" in line:
                v = line.split(":", 1)[1].strip().strip("'\"|>")
                if "{{" in v:
                    templates.add(v)
    for t in sorted(templates):
        put("template_expand", t)
    for t in [
        '{{ $labels.instance }} is {{ $value | humanize }}',
        '{{ range query "up" }}{{ .Labels.instance }}={{ .Value }} {{ end }}',
        '{{ with query "up" }}{{ . | first | value | humanizePercentage }}{{ end }}',
        '{{ if gt $value 1.0 }}high{{ else if eq $value 0.0 }}zero{{ else }}low{{ end }}',
        '{{ printf "%.2f %s %d" $value $labels.job 3 }}',
        '{{ $x := 1 }}{{ range $i, $v := $labels }}{{ $i }}:{{ $v }}{{ end }}{{ $x }}',
        '{{ .ExternalURL }}/graph?g0.expr={{ "up" | urlquery }} {{ $externalLabels.cluster }}',
        '{{ humanizeDuration 3600.5 }} {{ humanize1024 2048 }} {{ humanizeTimestamp 1.6e9 }}',
        '{{- /* comment */ -}} {{ toUpper "a" }}{{ title "b c" }}{{ reReplaceAll "a(.)" "$1" "ab" }}',
    ]:
        put("template_expand", t)


def web_config_seeds():
    hash_ = "$2b$04$" + "a" * 53
    for t in [
        "",
        f"basic_auth_users:\n  alice: {hash_}\n",
        "http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=31536000\n",
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS12\n  max_version: TLS13\n",
        "tls_server_config:\n  cert: |\n    -----BEGIN CERTIFICATE-----\n    MIIB\n    -----END CERTIFICATE-----\n  key: |\n    -----BEGIN PRIVATE KEY-----\n    MIIB\n    -----END PRIVATE KEY-----\n",
        "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n  curve_preferences: [X25519, CurveP256]\n  prefer_server_cipher_suites: true\n  client_allowed_sans: [a.example]\n",
    ]:
        put("web_config", t)


def promql_seeds():
    queries = set()
    for f in files(os.path.join(SHARED, "promqltest", "*.test"), os.path.join(ROOT, "testdata", "promql", "*.test")):
        for line in read(f).decode(errors="replace").splitlines():
            m = re.match(r"\s*eval(?:_ordered|_fail|_warn|_info)?\s+(?:instant|range)\s+.*?(?:at\s+\S+|from\s+\S+\s+to\s+\S+\s+step\s+\S+)\s+(.*)$", line)
            if m:
                queries.add(m.group(1).strip())
    comp = os.path.join(SHARED, "compliance", "promql-test-queries.yml")
    if os.path.isfile(comp):
        for line in read(comp).decode(errors="replace").splitlines():
            m = re.match(r"\s*-\s*query:\s*'(.*)'\s*$", line) or re.match(r'\s*-\s*query:\s*"(.*)"\s*$', line)
            if m:
                queries.add(m.group(1))
    for q in sorted(queries):
        put("promql_eval", q)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def put_framed(target, data):
    """Seeds a target whose first byte chooses the input as it is (odd) or re-framed with
    right lengths and CRCs (even): the whole input both ways, and its first 4 KiB (the first
    few records) re-framed."""
    put(target, b"\x01" + data)
    put(target, b"\x00" + data)
    put(target, b"\x00" + data[:4096])


def unzstd(frame):
    """The content of a zstd frame, with the `zstd` command (Python's standard library has no
    zstd); None without it."""
    try:
        return subprocess.run(["zstd", "-d", "-c", "-q"], input=frame, capture_output=True,
                              check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None


def vigil_seeds(vigil):
    """head_snapshot and wal_records seeds: a vigil scraping itself, its WAL segments taken
    while it runs (zstd-compressed records, the default) and its snapshot after a clean stop."""
    if not vigil:
        print("head_snapshot, wal_records: no --vigil given, no seeds", file=sys.stderr)
        return
    d = tempfile.mkdtemp(prefix="vigil-fuzz-seed-")
    try:
        port = free_port()
        with open(os.path.join(d, "prometheus.yml"), "w") as f:
            f.write(f"global:\n  scrape_interval: 200ms\nscrape_configs:\n  - job_name: self\n"
                    f"    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n")
        p = subprocess.Popen([vigil, f"--config.file={d}/prometheus.yml", f"--storage.tsdb.path={d}/data",
                              f"--web.listen-address=127.0.0.1:{port}"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(6)
        segs = files(os.path.join(d, "data", "wal", "*"))
        for w in segs:
            put_framed("wal_records", read(w))
        print(f"wal_records: {len(segs)} segment(s) from {vigil}", file=sys.stderr)
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=60)
        snaps = files(os.path.join(d, "data", "**", "snapshot.*"))
        for s in snaps:
            data = read(s)
            put("head_snapshot", b"\x01" + data)  # as it is: one zstd frame (VGSNAP02)
            # The target re-frames plain records (VGSNAP01): the same records uncompressed.
            plain = unzstd(data[8:]) if data.startswith(b"VGSNAP02") else None
            if plain is not None:
                put_framed("head_snapshot", b"VGSNAP01" + plain)
        print(f"head_snapshot: {len(snaps)} snapshot(s) from {vigil}", file=sys.stderr)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vigil", help="a vigil binary, to make head snapshot and WAL seeds")
    ap.add_argument("--only", help="seed this target only")
    a = ap.parse_args()
    if not os.path.isdir(SHARED):
        print(f"note: {SHARED} not found; seeds from this repository only", file=sys.stderr)
    seeders = {
        "remote_write_decode": remote_seeds,
        "config_parse": config_seeds,
        "rule_file": rule_seeds,
        "template_expand": rule_seeds,
        "web_config": web_config_seeds,
        "promql_eval": promql_seeds,
    }
    vigil = lambda: vigil_seeds(a.vigil)  # noqa: E731 - one seeder for two targets
    seeders["head_snapshot"] = vigil
    seeders["wal_records"] = vigil
    done = set()
    for target, seed in seeders.items():
        if a.only and a.only != target or seed in done:
            continue
        done.add(seed)
        seed()
    for target in sorted(seeders):
        d = os.path.join(CORPUS, target)
        n = len(os.listdir(d)) if os.path.isdir(d) else 0
        print(f"{target}: {n} seeds in {d}")


if __name__ == "__main__":
    main()
