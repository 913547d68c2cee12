#!/usr/bin/env python3
"""Differential PromQL fuzzer: vigil against Debian's Prometheus 2.42 on targetsim data.

What it does
    Writes 6 h of targetsim data (2 targets x 165 series, 15 s interval, ending 2 h ago so that
    retention keeps it and none of it is in a head) as OpenMetrics, imports it with
    `vigil tsdb import openmetrics` and `promtool tsdb create-blocks-from openmetrics`, starts
    both servers on 127.0.0.1 with no scrape targets and checks that both hold every sample.
    Then it generates random well-typed PromQL (selectors with matchers, offset and @, range
    functions, subqueries, aggregations, arithmetic/comparison/set operators with vector
    matching, label, math and date functions, histogram_quantile, topk/bottomk/quantile,
    count_values, sort) and evaluates each query on both servers as three instant queries and
    one range query (30 to 60 min, step 1 m).

How to run it (from the repository root; needs python3, prometheus and promtool):
    cargo build --release -p vigil && python3 tools/promql_fuzz.py --n 2000 --seed 7
    python3 tools/promql_fuzz.py --vigil path/to/vigil --seconds 600 --workdir /tmp/fz
A given --workdir is kept, and a later run with it reuses the imported data. The queries
depend on --seed and on the data's start (a whole hour), so a run repeats with the same seed and
workdir; WORKDIR/queries.txt lists the queries in order.

What counts as a difference
    One side fails and the other does not (error messages are not compared), or the result
    types, the series' label sets, the points' timestamps or the values differ (relative
    tolerance 1e-6, NaN equals NaN). Series order counts only for an instant query whose
    outermost function is sort/sort_desc over distinct values.
    A differing query is minimized (the smallest sub-expression that still differs the same
    way, then with fewer offsets, @ and matchers) and classified by its minimized form:
    - skipped: the query has a topk/bottomk whose input holds tied values (which of the tied
      series is kept is unspecified);
    - known: a difference listed in docs/promql.md, "Prometheus 3.x behaviour that differs from
      Debian's prometheus 2.42" (vigil follows 3.x), recognised by KNOWN_CHECKS below, also
      when it starts in a sub-expression or at an inner point of a subquery; or one that starts
      in an expression whose operands agree to within the tolerance but not to the last bit
      (a last-bit difference amplified, e.g. by ceil, %, a comparison or cos of 1e192);
    - unexpected: everything else, grouped by a signature of the minimized query.
    A server that dies is restarted; vigil dying counts as unexpected, Prometheus dying does not.

Window boundaries
    2.42 closes range, lookback and subquery windows ([t - r, t]); 3.x and vigil leave them
    open ((t - r, t]). So that this never shows: every sample timestamp has a non-zero
    millisecond part (checked), every evaluation time and @ time is a whole second that is
    11 or 13 (mod 30), and every range, offset and subquery step is a multiple of 30 s, except
    that a subquery nested in another one (evaluated at the outer's 30 s-aligned points) gets
    an offset that is not a multiple of 30 s.

Output: each difference goes to --out (default WORKDIR/diffs.txt), a summary to stdout. Exit
status 1 when unexpected differences were found, else 0 (130 when interrupted).
"""
import argparse, collections, json, math, random, re, shutil, signal, socket, subprocess, sys, tempfile, time
import urllib.error, urllib.parse, urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HOURS = 6  # of data; the evaluation times in settings_for() assume it

# ================================ data and servers ==================================


def run_tool(argv):
    r = subprocess.run([str(a) for a in argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(map(str, argv))} failed ({r.returncode}):\n{r.stderr[-2000:]}")


def count_samples(om):
    """Number of samples in the file; fails if one lies on a whole second (see module doc)."""
    n = 0
    with open(om) as f:
        for line in f:
            if not line.startswith("#"):
                if not line.rsplit(" ", 1)[1].strip().partition(".")[2].strip("0"):
                    sys.exit(f"{om}: sample on a whole second: {line.strip()}")
                n += 1
    return n


def make_data(args, workdir):
    """Import targetsim data into both data directories, or reuse a kept workdir's.
    Returns (first timestamp in unix seconds, a whole hour; number of samples)."""
    stamp = workdir / "data.json"
    if stamp.exists() and (workdir / "vigil-data").is_dir() and (workdir / "prom-data").is_dir():
        d = json.loads(stamp.read_text())
        if d["start"] > time.time() - 10 * 86400:  # well inside the 15 d retention
            return d["start"], d["samples"]
    for sub in ("vigil-data", "prom-data"):
        shutil.rmtree(workdir / sub, ignore_errors=True)
    start = int(time.time()) // 3600 * 3600 - (HOURS + 2) * 3600
    om = workdir / "data.om"
    print(f"writing {HOURS} h of targetsim data and importing it into both servers", flush=True)
    run_tool([sys.executable, args.shared / "bench" / "targetsim.py", "--openmetrics-out", om,
              "--start", start, "--duration", f"{HOURS}h", "--interval", "15s", "--targets", "2",
              "--series", "165", "--seed", "1"])
    samples = count_samples(om)
    run_tool([args.vigil, "tsdb", "import", "openmetrics", om, workdir / "vigil-data"])
    run_tool([args.promtool, "tsdb", "create-blocks-from", "openmetrics", om, workdir / "prom-data"])
    om.unlink()
    stamp.write_text(json.dumps({"start": start, "samples": samples}))
    return start, samples


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """vigil or Prometheus on 127.0.0.1, serving one data directory."""

    def __init__(self, name, binary, datadir, workdir):
        self.name, self.binary, self.datadir, self.workdir = name, binary, datadir, workdir
        self.proc = self.port = None

    def start(self):
        cfg = self.workdir / "prometheus.yml"
        cfg.write_text("global:\n  scrape_interval: 15s\nscrape_configs: []\n")
        self.port = free_port()
        with open(self.workdir / f"{self.name}.log", "a") as log:
            # Own session: Ctrl-C reaches only this script, which then stops the servers.
            self.proc = subprocess.Popen(
                [str(self.binary), f"--config.file={cfg}", f"--storage.tsdb.path={self.datadir}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
        deadline = time.time() + 120
        while time.time() < deadline:
            if not self.alive():
                sys.exit(f"{self.name} exited with {self.proc.returncode}; see {self.workdir / self.name}.log")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        sys.exit(f"{self.name} not ready after 120 s")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class ServerDied(Exception):
    def __init__(self, server):
        super().__init__(f"{server.name} exited with {server.proc.returncode}")
        self.server = server


# ================================ results and comparison ============================

Err = collections.namedtuple("Err", "msg")
# series: [(labels, [(t_ms, value)])] in the server's order; labels: a sorted tuple of pairs.
Res = collections.namedtuple("Res", "type series")
# points: the value mismatches, [(labels, t_ms, Prometheus value, vigil value)].
Diff = collections.namedtuple("Diff", "cat text points")


def fetch(server, path):
    """Res or Err; raises ServerDied if the server is gone."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=120) as r:
            body = r.read().decode()
    except urllib.error.HTTPError as e:
        body = e.read().decode()
    except OSError as e:
        try:  # a refused or reset connection: give a dying server a moment to be reaped
            server.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass
        if not server.alive():
            raise ServerDied(server)
        return Err(f"http: {e}")
    try:
        v = json.loads(body)
    except ValueError:
        return Err(f"not JSON: {body[:200]}")
    if v.get("status") != "success":
        return Err(f"{v.get('errorType')}: {v.get('error')}")
    rt, result = v["data"]["resultType"], v["data"]["result"]
    point = lambda p: (round(float(p[0]) * 1000), float(p[1]))  # float() reads NaN and ±Inf
    labels = lambda s: tuple(sorted(s["metric"].items()))
    if rt == "scalar":
        return Res(rt, [((), [point(result)])])
    if rt == "string":
        return Res(rt, [((("string", result[1]),), [])])
    if rt == "vector":
        return Res(rt, [(labels(s), [point(s["value"])]) for s in result])
    return Res(rt, [(labels(s), [point(p) for p in s["values"]]) for s in result])


def fmt_labels(labels):
    return "{" + ", ".join(f'{k}="{v}"' for k, v in labels) + "}"


def close(a, b):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if a == b or math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= 1e-6 * max(abs(a), abs(b)) or abs(a - b) < 1e-12


def diff(p, v, ordered=False):
    """None if the results agree, else a Diff."""
    if isinstance(p, Err) or isinstance(v, Err):
        if isinstance(p, Err) and isinstance(v, Err):
            return None
        if isinstance(p, Err):
            return Diff("prom-error", f"Prometheus failed ({p.msg[:300]}), vigil did not: {summ(v)}", [])
        return Diff("vigil-error", f"vigil failed ({v.msg[:300]}), Prometheus did not: {summ(p)}", [])
    if p.type != v.type:
        return Diff("type", f"result type {p.type} (Prometheus) vs {v.type} (vigil)", [])
    pd, vd = dict(p.series), dict(v.series)
    for name, d, r in (("Prometheus", pd, p), ("vigil", vd, v)):
        if len(d) != len(r.series):
            return Diff("dup", f"{name} returned duplicate series", [])
    if set(pd) != set(vd):
        only_p = [fmt_labels(k) for k in pd if k not in vd][:3]
        only_v = [fmt_labels(k) for k in vd if k not in pd][:3]
        return Diff("series", f"series differ: {len(pd)} (Prometheus) vs {len(vd)} (vigil); "
                              f"only in Prometheus {only_p}; only in vigil {only_v}", [])
    bad = []
    for k, pp in pd.items():
        vp = vd[k]
        if [t for t, _ in pp] != [t for t, _ in vp]:
            pts, vts = {t for t, _ in pp}, {t for t, _ in vp}
            return Diff("points", f"{fmt_labels(k)}: {len(pp)} points (Prometheus) vs {len(vp)} (vigil); "
                                  f"only Prometheus at {sorted(pts - vts)[:4]}, only vigil at {sorted(vts - pts)[:4]}", [])
        bad += [(k, t, a, b) for (t, a), (_, b) in zip(pp, vp) if not close(a, b)]
    if bad:
        k, t, a, b = bad[0]
        return Diff("value", f"{fmt_labels(k)} at {t}: Prometheus {a!r} vigil {b!r} ({len(bad)} points differ)", bad)
    if ordered and [k for k, _ in p.series] != [k for k, _ in v.series]:
        return Diff("order", "series order differs", [])
    return None


def summ(r, n=3):
    if isinstance(r, Err):
        return f"ERROR({r.msg[:200]})"
    parts = [f"{fmt_labels(k)} {pts}" if len(pts) <= 2 else f"{fmt_labels(k)} [{len(pts)} pts {pts[0]} .. {pts[-1]}]"
             for k, pts in r.series[:n]]
    more = f" (+{len(r.series) - n} more)" if len(r.series) > n else ""
    return f"{r.type} {len(r.series)} series: " + "; ".join(parts) + more


# ================================ query generator ===================================

BASE = ("instance", "job")
MODEL = BASE + ("model", "version")
FAM = {"http": MODEL + ("method", "status"), "model": MODEL, "feature": MODEL + ("feature",),
       "bucket": MODEL + ("le",), "quantile": MODEL + ("quantile",), "process": BASE}
FAM_LABELS = [tuple(sorted(ls)) for ls in FAM.values()]
METRICS = {  # targetsim's metrics: family
    "http_requests_total": "http", "model_accuracy": "model", "model_input_feature_mean": "feature",
    "request_processing_seconds_count": "model", "request_processing_seconds_sum": "model",
    "prediction_latency_seconds_count": "model", "prediction_latency_seconds_sum": "model",
    "prediction_latency_seconds_bucket": "bucket", "request_processing_seconds": "quantile",
    "process_cpu_seconds_total": "process", "process_open_fds": "process", "process_start_time_seconds": "process",
    "process_resident_memory_bytes": "process", "process_virtual_memory_bytes": "process",
}
VALUES = {  # label: (values for = and !=, regexes)
    "job": (["targetsim"], ["target.*", "t.*sim", ".*"]),
    "instance": (["127.0.0.1:19100", "127.0.0.1:19101"], [".*:19100", "127.*", ".*1"]),
    "model": (["bert-base", "resnet50"], ["bert.*", "res.*|bert-base", ".*5.*"]),
    "version": (["v1", "v2"], ["v1|v2", "v.", "v2"]),
    "method": (["GET", "POST"], ["G.*", "P.*|G.*"]),
    "status": (["200", "400", "404", "500", "503"], ["5..", "4..", "2..", "50[03]"]),
    "feature": (["f00", "f03", "f07", "f09"], ["f0[0-3]", "f0[5-9]", "f.*"]),
    "le": (["+Inf", "0.1", "0.005", "1", "10"], ["0.*", "1|10", ".*Inf"]),
    "quantile": (["0.5", "0.9", "0.99"], ["0.9.*", "0.5"]),
}
RANGE_FNS = ["rate", "irate", "increase", "delta", "idelta", "deriv", "changes", "resets",
             "avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time",
             "stddev_over_time", "stdvar_over_time", "last_over_time", "present_over_time"]
MATH_FNS = ["abs", "ceil", "floor", "round", "sgn", "exp", "ln", "log2", "log10", "sqrt", "sin", "cos",
            "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "deg", "rad"]
DATE_FNS = ["minute", "hour", "day_of_week", "day_of_month", "day_of_year", "days_in_month", "month", "year"]
AGGS = ["sum", "avg", "min", "max", "count", "stddev", "stdvar", "group"]
ARITH = ["+", "-", "*", "/", "%", "^", "atan2"]
CMP = ["==", "!=", ">", "<", ">=", "<="]
BINOPS = ARITH + CMP + [c + " bool" for c in CMP]
QUANTILES = ["0", "0.1", "0.25", "0.5", "0.9", "0.99", "1", "-0.5", "1.5"]
SCALAR_LITS = ["0", "1", "2", "0.5", "-1", "100", "0.95", "1e-3", "3", "-0.5", "10"]
# Ranges, offsets and subquery steps are multiples of 30 s (module doc, "Window boundaries").
RANGES = ["30s", "1m", "2m", "5m", "10m", "15m", "30m", "1h"]
SUBRANGES = ["5m", "10m", "15m", "30m", "1h"]
SUBSTEPS = ["30s", "1m", "2m", "5m", ""]
OFFSETS = ["1m", "5m", "10m", "30m", "1h", "-5m", "-10m", "90s", "-1m"]
NESTED_OFFSETS = ["7s", "1m7s", "5m7s", "-53s"]  # for subqueries inside subqueries: off the 30 s grid
LABEL_FNS = [  # (labels the input needs, template)
    (("model",), 'label_replace({}, "model", "x-$1", "model", "(.*)")'),
    (("version",), 'label_replace({}, "version", "", "version", "v1")'),
    (("instance",), 'label_replace({}, "instance", "$1", "instance", "(.*):.*")'),
    (("model", "version"), 'label_join({}, "model", "/", "model", "version")'),
    ((), 'label_replace({}, "nonexistent", "$1", "nonexistent_src", "(.*)")'),
    (("instance",), 'label_join({}, "instance", "", "instance")'),
]


class N:
    """A generated expression: s = text, t = 'v' (instant vector), 's' (scalar) or 'm' (range
    vector), kids = sub-expressions (for minimizing), labels = the result's label names."""

    def __init__(self, s, t, kids=(), labels=()):
        self.s, self.t, self.kids, self.labels = s, t, list(kids), tuple(sorted(labels))


class Gen:
    """vec(d, T, nested) makes an instant vector of depth <= d whose series carry exactly the
    label names T, so that operators between generated vectors match; nested: in a subquery."""

    def __init__(self, rnd, at_times):
        self.r, self.at_times = rnd, at_times
        self.kinds = [(10, self.leaf), (14, self.range_fn), (12, self.agg), (12, self.unary), (12, self.binop),
                      (5, self.vs_scalar), (5, self.setop), (3, self.label_fn), (3, self.k_agg),
                      (2, self.timefn), (3, self.histq)]

    def ch(self, xs):
        return self.r.choice(xs)

    def p(self, x):
        return self.r.random() < x

    def matchers(self, labels):
        ms = []
        for _ in range(self.ch([0, 0, 1, 1, 1, 2, 2, 3])):
            name = self.ch(labels)
            eqs, res = VALUES[name]
            op = self.ch(["=", "=", "!=", "=~", "=~", "!~"])
            if op in ("=", "!="):
                v = self.ch(eqs + (["nope", ""] if self.p(0.1) else []))
            else:
                v = self.ch(res + (eqs if self.p(0.2) else []) + ([""] if self.p(0.05) else []))
            ms.append(f'{name}{op}"{v}"')
        return ms

    def modifiers(self, nested):
        s = " @ " + self.ch([str(t) for t in self.at_times] + ["start()", "end()"]) if self.p(0.12) else ""
        if nested:
            return s + " offset " + self.ch(NESTED_OFFSETS)
        return s + (" offset " + self.ch(OFFSETS) if self.p(0.15) else "")

    def selector(self, metric, rng=None):
        ms = self.matchers(FAM[METRICS.get(metric, "model")])
        if self.p(0.05):
            ms.insert(self.r.randint(0, len(ms)), f'__name__="{metric}"')
            s = "{" + ", ".join(ms) + "}"
        else:
            s = metric + ("{" + ", ".join(ms) + "}" if ms else "")
        # Top-level modifiers even inside subqueries: no sample sits on a whole second.
        return s + (f"[{rng}]" if rng else "") + self.modifiers(False)

    def metric_with(self, T, exact):
        ms = [m for m, f in METRICS.items() if set(T) <= set(FAM[f]) and (not exact or set(FAM[f]) == set(T))]
        return self.ch(ms) if ms else None

    def grouping(self, T, S):
        """by (T) or without (S - T), S being the input's labels."""
        T, S = sorted(T), sorted(S)
        if set(T) == set(S) and self.p(0.3):
            return " without ()" if self.p(0.5) else f" by ({', '.join(T)})"
        if self.p(0.3) and set(T) <= set(S):
            return f" without ({', '.join(x for x in S if x not in T)})"
        self.r.shuffle(T)
        return f" by ({', '.join(T)})"

    def wider(self, T):
        """The label names of a metric family that has all of T."""
        return self.ch([f for f in FAM_LABELS if set(T) <= set(f)])

    def scalar(self, d, nested=False):
        c = self.r.random()
        if d <= 0 or c < 0.55:
            return N(self.ch(SCALAR_LITS), "s")
        if c < 0.7:
            return N("time()" if c < 0.65 else "pi()", "s")
        if c < 0.85:
            v = self.vec(d - 1, self.ch([(), (), ("instance",)]), nested)
            fn = "sum" if v.labels else self.ch(["sum", "max", "count"])
            inner = N(f"{fn}({v.s})", "v", [v]) if self.p(0.7) else v
            return N(f"scalar({inner.s})", "s", [inner])
        a, b = self.scalar(d - 1, nested), self.scalar(d - 1, nested)
        return N(f"({a.s} {self.ch(ARITH[:-1] + [c + ' bool' for c in CMP])} {b.s})", "s", [a, b])

    def rangev(self, d, T, nested):
        m = self.metric_with(T, True)
        if m and (d <= 0 or self.p(0.6)):
            return N(self.selector(m, self.ch(RANGES)), "m", [], T)
        inner = self.vec(max(d - 1, 0), T, True)
        s = f"({inner.s})" if not inner.s.endswith(")") or self.p(0.3) else inner.s
        return N(f"{s}[{self.ch(SUBRANGES)}:{self.ch(SUBSTEPS)}]" + self.modifiers(nested), "m", [inner], T)

    def vec(self, d, T, nested=False):
        T = tuple(sorted(T))
        if d <= 0:
            return self.leaf(d, T, nested)
        make = self.r.choices([k for _, k in self.kinds], weights=[w for w, _ in self.kinds])[0]
        return make(d, T, nested) or self.leaf(d, T, nested)

    def leaf(self, d, T, nested):
        if T == () and self.p(0.1):
            return N(f"vector({self.scalar(1, nested).s})", "v", [], ())
        m = self.metric_with(T, True)
        if m and self.p(0.8):
            return N(self.selector(m), "v", [], T)
        m = self.metric_with(T, False)
        sel = N(self.selector(m), "v", [], FAM[METRICS[m]])
        return N(f"{self.ch(AGGS)}{self.grouping(T, sel.labels)} ({sel.s})", "v", [sel], T)

    def range_fn(self, d, T, nested):
        rv = self.rangev(d - 1, T, nested)
        c = self.r.random()
        if c < 0.07:
            return N(f"predict_linear({rv.s}, {self.ch(['60', '600', '-300', '0', '3600'])})", "v", [rv], T)
        if c < 0.14:
            return N(f"quantile_over_time({self.ch(QUANTILES)}, {rv.s})", "v", [rv], T)
        if c < 0.2:  # 2.42's name; vigil accepts it for double_exponential_smoothing
            sf, tf = self.ch([("0.5", "0.5"), ("0.1", "0.9"), ("0.9", "0.1"), ("0.3", "0.7"), ("1", "0.5"), ("0.5", "0")])
            return N(f"holt_winters({rv.s}, {sf}, {tf})", "v", [rv], T)
        if c < 0.24 and T == ():
            return N(f"absent_over_time({rv.s})", "v", [rv], ())
        return N(f"{self.ch(RANGE_FNS)}({rv.s})", "v", [rv], T)

    def agg(self, d, T, nested):
        v = self.vec(d - 1, T if self.p(0.25) else self.wider(T), nested)
        a, g = self.ch(AGGS), self.grouping(T, v.labels)
        return N(f"{a}{g} ({v.s})" if self.p(0.5) else f"{a}({v.s}){g}", "v", [v], T)

    def k_agg(self, d, T, nested):
        if self.p(0.45):  # topk/bottomk keep the input's labels
            v = self.vec(d - 1, T, nested)
            k = self.ch(["1", "2", "3", "5", "100", "0"]) if self.p(0.9) else self.scalar(1, nested).s
            by = f" by ({', '.join(self.r.sample(T, self.r.randint(1, len(T))))})" if T and self.p(0.4) else ""
            return N(f"{self.ch(['topk', 'bottomk'])}{by} ({k}, {v.s})", "v", [v], T)
        S = self.wider(T)
        v = self.vec(d - 1, S, nested)
        return N(f"quantile{self.grouping(T, S)} ({self.ch(QUANTILES)}, {v.s})", "v", [v], T)

    def unary(self, d, T, nested):
        v = self.vec(d - 1, T, nested)
        c = self.r.random() * 12
        if c < 6:
            f = self.ch(MATH_FNS)
            if f == "round" and self.p(0.5):
                return N(f"round({v.s}, {self.ch(['0.1', '5', '0.01', '2', '-1', '0'])})", "v", [v], T)
            return N(f"{f}({v.s})", "v", [v], T)
        if c < 7.2:
            lo, hi = self.ch([("0", "1"), ("1", "0"), ("-1", "1"), ("0.5", "100"), ("0", "1e9")])
            return N(f"clamp({v.s}, {lo}, {hi})", "v", [v], T)
        if c < 9:
            s = self.scalar(1, nested)
            return N(f"{self.ch(['clamp_min', 'clamp_max'])}({v.s}, {s.s})", "v", [v, s], T)
        if c < 10:
            return N(f"-({v.s})" if v.s.startswith("-") else f"-{v.s}", "v", [v], T)
        return N(f"{self.ch(['sort', 'sort_desc'])}({v.s})", "v", [v], T)

    def timefn(self, d, T, nested):
        c = self.r.random()
        if T == () and c < 0.3:
            return N(f"{self.ch(DATE_FNS)}()", "v", [], ())
        if c < 0.5:
            v = self.vec(d - 1, T, nested)
            return N(f"timestamp({v.s})", "v", [v], T)
        if c < 0.75 and T and set(T) <= set(BASE):  # dates of real timestamps
            v = N(self.selector("process_start_time_seconds"), "v", [], BASE)
            if set(T) != set(BASE):
                v = N(f"max by ({', '.join(T)}) ({v.s})", "v", [v], T)
        else:
            v = self.vec(d - 1, T, nested)
            if self.p(0.5):
                v = N(f"timestamp({v.s})", "v", [v], T)
        return N(f"{self.ch(DATE_FNS)}({v.s})", "v", [v], T)

    def histq(self, d, T, nested):
        if not set(T) <= set(MODEL):
            return None
        sel = self.selector("prediction_latency_seconds_bucket", self.ch(RANGES[1:6]))
        inner = N(f"{self.ch(['rate', 'rate', 'increase', 'irate'])}({sel})", "v", [], FAM["bucket"])
        if set(T) != set(MODEL) or self.p(0.6):
            g = list(T) + ["le"]
            self.r.shuffle(g)
            inner = N(f"sum by ({', '.join(g)}) ({inner.s})", "v", [inner], T + ("le",))
        return N(f"histogram_quantile({self.ch(QUANTILES)}, {inner.s})", "v", [inner], T)

    def vs_scalar(self, d, T, nested):
        v, s, op = self.vec(d - 1, T, nested), self.scalar(d - 1, nested), self.ch(BINOPS)
        if self.p(0.5):
            return N(f"({v.s} {op} {s.s})", "v", [v, s], T)
        return N(f"({s.s} {op} {v.s})", "v", [s, v], T)

    def binop(self, d, T, nested):
        op = self.ch(BINOPS)
        if not T or self.p(0.5):  # one-to-one
            a, b = self.vec(d - 1, T, nested), self.vec(d - 1, T, nested)
            mod = self.ch(["", "", f" on ({', '.join(T)})", " ignoring ()"]) if T else self.ch(["", " on ()"])
            return N(f"({a.s} {op}{mod} {b.s})", "v", [a, b], T)
        # many-to-one: the T side is "many", the L side "one"
        L = tuple(sorted(self.r.sample(T, self.r.randint(0, len(T) - 1))))
        a, b = self.vec(d - 1, T, nested), self.vec(d - 1, L, nested)
        mod = f" on ({', '.join(L)})" if self.p(0.6) else f" ignoring ({', '.join(x for x in T if x not in L)})"
        extra = f"({self.ch(L)})" if L and self.p(0.2) else ""
        if self.p(0.5):
            return N(f"({a.s} {op}{mod} group_left{extra} {b.s})", "v", [a, b], T)
        return N(f"({b.s} {op}{mod} group_right{extra} {a.s})", "v", [b, a], T)

    def setop(self, d, T, nested):
        op, a = self.ch(["and", "or", "unless"]), self.vec(d - 1, T, nested)
        if op == "or":
            b = self.vec(d - 1, T, nested)
            mod = self.ch(["", "", f" on ({', '.join(T)})"]) if T else ""
            return N(f"({a.s} or{mod} {b.s})", "v", [a, b], T)
        U = self.ch([T] + FAM_LABELS)
        b = self.vec(d - 1, U, nested)
        common = [x for x in T if x in U]
        mod = ""
        if self.p(0.6):
            L = self.r.sample(common, self.r.randint(0, len(common)))
            mod = f" on ({', '.join(L)})" if self.p(0.7) else f" ignoring ({', '.join(L)})"
        return N(f"({a.s} {op}{mod} {b.s})", "v", [a, b], T)

    def label_fn(self, d, T, nested):
        v = self.vec(d - 1, T, nested)
        return N(self.ch([t for need, t in LABEL_FNS if set(need) <= set(T)]).format(v.s), "v", [v], T)

    def top(self):
        d = self.ch([1, 2, 2, 3, 3, 3, 4])
        c = self.r.random()
        if c < 0.08:
            return self.scalar(d)
        if c >= 0.14:
            T = self.ch(FAM_LABELS + [(), ("model",), ("instance",), ("instance", "model"), ("model", "version"), MODEL])
            return self.vec(d, T)
        # Results with labels no other generator expects.
        S, k = self.ch(FAM_LABELS), self.r.random()
        if k < 0.65:
            v = self.vec(d - 1, S)
            if k < 0.3:
                T = self.r.sample(S, self.r.randint(0, 2))
                return N(f'count_values{self.grouping(T, S)} ("val", {v.s})', "v", [v])
            if k < 0.5:
                return N(f'label_replace({v.s}, "m", "$1", "model", "(.*)-.*")', "v", [v])
            return N(f'label_join({v.s}, "mv", "-", "model", "version", "instance")', "v", [v])
        m = self.ch(list(METRICS) + ["nonexistent_metric"])
        if k < 0.85:
            return N(f"absent({self.selector(m)})", "v")
        return N(f"absent_over_time({self.selector(m, self.ch(RANGES))})", "v")


# ================================ evaluation ========================================


def settings_for(S, rnd):
    """Three instant times and one range (step 60 s), all 11 or 13 (mod 30) s after the data's
    start S."""
    rs = rnd.choice([S + 2413, S + 5413, S + 16213, S + 19813])
    return [("i", S + 3013), ("i", S + 11263), ("i", S + 21041), ("r", rs, rs + rnd.choice([1800, 2700, 3600]))]


def api_path(q, st, step=60):
    q = urllib.parse.quote(q, safe="")
    if st[0] == "i":
        return f"/api/v1/query?query={q}&time={st[1]}"
    return f"/api/v1/query_range?query={q}&start={st[1]}&end={st[2]}&step={step}"


def fmt_setting(st, S):
    if st[0] == "i":
        return f"instant time={st[1]} (start+{st[1] - S}s)"
    return f"range start={st[1]} end={st[2]} step=60 (start+{st[1] - S}s .. +{st[2] - S}s)"


def pin(q, st):
    """q with start() and end() replaced by the setting's, to evaluate it at other times."""
    return q.replace("start()", str(st[1])).replace("end()", str(st[-1]))


# A subquery: (inner expression, modifiers).
SUBQUERY = re.compile(r"(.*)\[\d+[smh]:(?:\d+[smh])?\]((?: @ \S+| offset \S+)*)")


def has_ties(res):
    """True if two series share a value at some timestamp (NaN counts as a value)."""
    by_t = collections.defaultdict(list)
    for _, pts in [] if isinstance(res, Err) else res.series:
        for t, v in pts:
            by_t[t].append("NaN" if math.isnan(v) else v)
    return any(len(set(vs)) != len(vs) for vs in by_t.values())


class Fuzzer:
    def __init__(self, prom, vigil, S, log):
        self.prom, self.vigil, self.S, self.log = prom, vigil, S, log
        self.evals = 0  # HTTP query pairs, minimizing and checks included

    def compare(self, q, st):
        """(Diff or None, Prometheus result, vigil result)."""
        path = api_path(q, st)
        pr, vr = fetch(self.prom, path), fetch(self.vigil, path)
        self.evals += 1
        # Order only means something under a top-level sort of distinct values.
        ordered = st[0] == "i" and re.match(r"sort(_desc)?\(", q) is not None and not has_ties(pr)
        return diff(pr, vr, ordered), pr, vr

    def tie_suspect(self, node, st):
        """True if a topk/bottomk in the query ranks tied values, at the setting or within 2 h
        before it (which of them it keeps is unspecified)."""
        stack, ks = [node], []
        while stack:
            n = stack.pop()
            ks += [n] if re.match(r"\(?(topk|bottomk)\b", n.s) else []
            stack += n.kids
        wide = ("r", st[1] - 7200, st[1] + 600 if st[0] == "i" else st[2])
        return any(has_ties(fetch(self.prom, api_path(pin(k.kids[0].s, st), s2, step)))
                   for k in ks for s2, step in ((st, 60), (wide, 30)))

    def minimize(self, node, st, cat=None, reduce=True):
        """The smallest sub-expression that still differs (in category cat, if given), then
        (reduce) its simplest string reduction that does. Returns (that sub-expression,
        (query, Diff, prom, vigil)), or None if the query no longer differs."""
        def fails(q):
            d, pr, vr = self.compare(q, st)
            return (q, d, pr, vr) if d is not None and cat in (None, d.cat) else None

        best, cur = fails(node.s), node
        while best:
            found = next(((k, r) for k in sorted(operands(cur, st), key=lambda k: len(k.s)) for r in [fails(k.s)] if r), None)
            if not found:
                break
            cur, best = found
        while best and reduce:
            found = next((r for c in reductions(best[0]) for r in [fails(c)] if r), None)
            if not found:
                break
            best = found
        return best and (cur, best)

    def known(self, q, st, d, p, v):
        """The reason for a known difference, also for one at the first differing point of a
        subquery in an instant query, found in its expression evaluated there."""
        reason = next((reason for reason, test in KNOWN_CHECKS if test(Case(self, q, st, d, p, v))), None)
        sub = not reason and st[0] == "i" and d.points and SUBQUERY.fullmatch(q)
        if sub:
            inner, inner_st = pin(sub.group(1), st), ("i", d.points[0][1] // 1000)
            d2, p2, v2 = self.compare(inner, inner_st)
            reason = d2 and self.known(inner, inner_st, d2, p2, v2)
        return reason

    def known_cause(self, node, st):
        """Why a difference that no known check explains can still be known: it starts in a
        sub-expression with a known difference, or in one whose operands agree only to within
        the tolerance (a last-bit difference that a discontinuity or a large argument amplifies:
        compensated sums in 3.x, Rust's vs Go's libm). Returns (reason, sub-expression) or None."""
        sub, (q, d, p, v) = self.minimize(node, st, reduce=False) or (node, (None,) * 4)
        reason = q and self.known(q, st, d, p, v)
        if reason:
            return reason + ("" if sub is node else " (in a sub-expression)"), sub.s
        results = [self.compare(k.s, st) for k in operands(sub, st)]
        if results and all(d is None for d, _, _ in results) and not all(identical(p, v) for _, p, v in results):
            return "last-bit float difference in an operand, amplified", sub.s
        return None


def operands(node, st):
    """The sub-expressions a node operates on; in a range query looking through range vectors,
    which only an instant query can return."""
    out, stack = [], list(node.kids)
    while stack:
        k = stack.pop(0)
        if k.t == "m" and st[0] == "r":
            stack[:0] = k.kids
        else:
            out.append(k)
    return out


def identical(p, v):
    rep = lambda r: r if isinstance(r, Err) else sorted(map(repr, r.series))
    return rep(p) == rep(v)


def reductions(q):
    """Simpler variants of q: one offset, @ or matcher less, or a range made 5m."""
    # Offsets off the 30 s grid stay: they keep nested subqueries' windows off their points.
    out = [q[:m.start()] + q[m.end():] for m in re.finditer(r" offset (-?[0-9a-z]+)| @ (\d+|start\(\)|end\(\))", q)
           if not m.group(1) or seconds(m.group(1)) % 30 == 0]
    for m in re.finditer(r"\{([^{}]*)\}", q):
        items = re.findall(r'[a-zA-Z_]+\s*(?:=~|!~|!=|=)\s*"[^"]*"', m.group(1))
        for i in range(len(items)):
            rest = items[:i] + items[i + 1:]
            if items[i].startswith("__name__") and not any(x.startswith("__name__") for x in rest):
                continue  # {__name__="x"} must keep its name
            out.append(q[:m.start()] + ("{" + ", ".join(rest) + "}" if rest else "") + q[m.end():])
    out += [q[:m.start()] + "[5m]" + q[m.end():] for m in re.finditer(r"\[(\d+[smh])\]", q) if m.group(1) != "5m"]
    return out


def signature(q, cat):
    """Groups minimized queries that differ only in metrics, matchers, numbers and groupings."""
    s = re.sub(r"\{[^{}]*\}", "", re.sub(r'"[^"]*"', '"S"', q))
    s = re.sub(r"\b(" + "|".join(METRICS) + r"|nonexistent_metric)\b", "M", s)
    s = re.sub(r"\b\d+(\.\d+)?(e-?\d+)?[smh]?\b", "N", s)
    return cat + " | " + re.sub(r"(by|without|on|ignoring) \([^)]*\)", r"\1(..)", s)


# ================================ known differences =================================


def strip_name(res):
    """The result without __name__, series that differed only in it merged; None if such
    series overlap in time."""
    merged = collections.defaultdict(list)
    for k, pts in res.series:
        merged[tuple(kv for kv in k if kv[0] != "__name__")] += pts
    if any(len({t for t, _ in pts}) != len(pts) for pts in merged.values()):
        return None
    return Res(res.type, [(k, sorted(pts)) for k, pts in merged.items()])


def named_points(res):
    return sum(len(pts) for k, pts in res.series if k and k[0][0] == "__name__")


def name_only(c):
    """The results differ only in which series carry a __name__."""
    if isinstance(c.p, Err) or isinstance(c.v, Err):
        return False
    p, v = strip_name(c.p), strip_name(c.v)
    return p is not None and v is not None and diff(p, v) is None


def merge_count_values(res):
    """A count_values result with its "val" labels rounded to 12 digits (-0 as 0), counts summed."""
    def norm(kv):
        x = float(kv[1]) if kv[0] == "val" else None
        return kv if x is None else ("val", "0" if x == 0 else f"{x:.12g}")
    merged = collections.defaultdict(collections.Counter)
    for k, pts in [] if isinstance(res, Err) else res.series:
        for t, v in pts:
            merged[tuple(map(norm, k))][t] += v
    return Res(res.type, [(k, sorted(c.items())) for k, c in merged.items()])


def seconds(dur):
    sign = -1 if dur.startswith("-") else 1
    return sign * sum(int(n) * {"s": 1, "m": 60, "h": 3600}[u] for n, u in re.findall(r"(\d+)([smh])", dur))


def extrapolated_rate(pts, start, end, rng, is_rate, v3):
    """Prometheus' extrapolatedRate for counters over the raw points [(t_ms, v)] of the window
    (start, end] (seconds). 2.42 clamps the start extrapolation to the counter's zero point
    before the 1.1 x average-interval test, 3.x (v3) after it."""
    if len(pts) < 2:
        return None
    (t0, v0), (tn, vn) = pts[0], pts[-1]
    result, prev = vn - v0, v0
    for _, v in pts[1:]:
        if v < prev:  # counter reset
            result += prev
        prev = v
    sampled = (tn - t0) / 1000
    avg = sampled / (len(pts) - 1)
    to_start, to_end = t0 / 1000 - start, end - tn / 1000
    to_zero = sampled * v0 / result if result > 0 and v0 >= 0 else math.inf
    if not v3:
        to_start = min(to_start, to_zero)
    if to_start >= 1.1 * avg:
        to_start = avg / 2
    if v3:
        to_start = min(to_start, to_zero)
    if to_end >= 1.1 * avg:
        to_end = avg / 2
    return result * (sampled + to_start + to_end) / sampled / (rng if is_rate else 1)


def rate_start_explained(c):
    """rate(x[r]) or increase(subquery) where, at the first differing points, Prometheus returns
    what 2.42's algorithm gives on the raw window and vigil what 3.x's gives."""
    m = re.fullmatch(r"(rate|increase)\((.*)\)", pin(c.q, c.st))
    w = m and re.search(r"\[(\d+[smh])(?::(?:\d+[smh])?)?\]((?: @ \S+| offset \S+)*)$", m.group(2))
    if not w or not c.d.points:
        return False
    fn, arg = m.groups()
    rng = seconds(w.group(1))
    at, off = re.search(r" @ (\d+)", w.group(2)), re.search(r" offset (\S+)", w.group(2))
    for labels, t, p_val, v_val in c.d.points[:5]:
        end = (float(at.group(1)) if at else t / 1000) - (seconds(off.group(1)) if off else 0)
        raw = fetch(c.fz.prom, api_path(arg, ("i", t // 1000)))
        c.fz.evals += 1
        raw = None if isinstance(raw, Err) else strip_name(raw)
        pts = dict(raw.series).get(labels, []) if raw else []
        old, new = (extrapolated_rate(pts, end - rng, end, rng, fn == "rate", v3) for v3 in (False, True))
        if old is None or not (close(old, p_val) and close(new, v_val)):
            return False
    return True


def at_step(res, t):
    return {k: v for k, pts in res.series for ts, v in pts if ts == t}


def same_vector(a, b):
    return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)


def range_bug_in_242(c):
    """A range query, or a subquery in an instant query, where at the steps that differ
    Prometheus' own instant query (of the subquery's expression) agrees with vigil: 2.42
    evaluates steps wrongly."""
    sub = c.st[0] == "i" and SUBQUERY.fullmatch(c.q)
    if not (c.st[0] == "r" or sub) or isinstance(c.p, Err) or isinstance(c.v, Err):
        return False
    steps = sorted({t for _, pts in c.p.series + c.v.series for t, _ in pts})
    bad = [t for t in steps if not same_vector(at_step(c.p, t), at_step(c.v, t))]
    for t in sorted(set(bad[:2] + bad[-2:])):
        inst = fetch(c.fz.prom, api_path(pin(sub.group(1) if sub else c.q, c.st), ("i", t // 1000)))
        c.fz.evals += 1
        if isinstance(inst, Err) or not same_vector(at_step(inst, t), at_step(c.v, t)):
            return False
    return bool(bad)


Case = collections.namedtuple("Case", "fz q st d p v")  # minimized query, setting, Diff, results
CMP_FILTER = r" (==|!=|>=|<=|>|<) (?!bool\b)"  # the generator spaces binary operators

# (reason, test), in the order of docs/promql.md, "Prometheus 3.x behaviour that differs from
# Debian's prometheus 2.42"; the first that holds names a difference.
KNOWN_CHECKS = [
    ("atan2 drops the metric name (3.x)",
     lambda c: c.d.cat == "series" and "atan2" in c.q and name_only(c)),
    ("delayed __name__ removal keeps a name (3.x)",
     lambda c: c.d.cat == "series" and name_only(c) and named_points(c.v) > named_points(c.p)),
    ("last-bit float difference in a count_values label or -0 (3.x compensated sums, libm)",
     lambda c: c.d.cat == "series" and c.q.startswith("count_values")
     and diff(merge_count_values(c.p), merge_count_values(c.v)) is None),
    ("matching error raised before comparison filtering (3.x)",
     lambda c: c.d.cat == "vigil-error" and "matching" in c.v.msg and re.search(CMP_FILTER, c.q)),
    ("label_replace/label_join merge series that do not overlap in time (3.x)",
     lambda c: c.d.cat == "prom-error" and "same labelset" in c.p.msg and re.search(r"label_(replace|join)", c.q)),
    ("delayed __name__ removal: no duplicate series once names are dropped (3.x)",
     lambda c: c.d.cat == "prom-error" and "same labelset" in c.p.msg),
    ("rate/increase of a window starting before the first sample (3.x order of the start tests)",
     lambda c: c.d.cat == "value" and rate_start_explained(c)),
    ("stddev/stdvar of a lone +-Inf or NaN is NaN (3.x; 2.42: 0)",
     lambda c: c.d.cat == "value" and re.search(r"\b(stddev|stdvar)\b", c.q)
     and all(a == 0 and math.isnan(b) for _, _, a, b in c.d.points)),
    ("topk/bottomk with a NaN parameter fail (3.x)",
     lambda c: c.d.cat == "vigil-error" and "Parameter value is NaN" in c.v.msg and re.search(r"\b(topk|bottomk)\b", c.q)),
    ("predict_linear(x[r] @ T) in a range query (2.42 bug: its instant query agrees with vigil)",
     lambda c: "predict_linear(" in c.q and " @ " in c.q and range_bug_in_242(c)),
    ("timestamp(x @ T offset d) (2.42 bug: returns nothing)",
     lambda c: c.d.cat == "series" and not c.p.series and re.match(r"timestamp\(.* @ .* offset ", c.q)),
]


# ================================ driver ============================================


class Stats:
    def __init__(self):
        self.queries = self.both_failed = self.differing = self.ties = self.unexpected_queries = 0
        self.known = collections.Counter()
        self.unexpected = {}  # signature: first example
        self.crashes = collections.Counter()


def check_query(fz, node, settings, stats):
    """Evaluate one query in every setting and classify its first difference, if any."""
    first, all_failed = None, True
    for st in settings:
        d, pr, vr = fz.compare(node.s, st)
        all_failed &= isinstance(pr, Err) and isinstance(vr, Err)
        first = first or (d and (st, d, pr, vr))
    stats.both_failed += all_failed
    if not first:
        return
    st, d, pr, vr = first
    stats.differing += 1
    where = f"    {fmt_setting(st, fz.S)}: {d.text}\n"
    if re.search(r"\b(topk|bottomk)\b", node.s) and fz.tie_suspect(node, st):
        stats.ties += 1
        fz.log.write(f"SKIPPED [topk/bottomk over tied values] {node.s}\n{where}\n")
        return
    cur, (mq, md, mp, mv) = fz.minimize(node, st, d.cat) or (node, (node.s, d, pr, vr))
    reason, cause = fz.known(mq, st, md, mp, mv), mq
    if not reason:
        reason, cause = fz.known_cause(cur, st) or (None, None)
    if reason:
        stats.known[reason] += 1
        fz.log.write(f"KNOWN [{reason}] {node.s}\n{where}    minimized: {mq}\n    cause: {cause}\n\n")
        return
    stats.unexpected_queries += 1
    sig = signature(mq, md.cat)
    example = {"count": 0, "query": mq, "setting": fmt_setting(st, fz.S), "diff": md.text,
               "prom": summ(mp), "vigil": summ(mv)}
    stats.unexpected.setdefault(sig, example)["count"] += 1
    fz.log.write(f"UNEXPECTED [{md.cat}] {node.s}\n{where}    Prometheus: {summ(pr)}\n    vigil:      {summ(vr)}\n"
                 f"    minimized: {mq}\n    minimized diff: {md.text}\n    Prometheus: {summ(mp)}\n"
                 f"    vigil:      {summ(mv)}\n    signature: {sig}\n\n")
    print(f"[{stats.queries}] UNEXPECTED {md.cat}: {mq}  ::  {md.text[:200]}", flush=True)


def fuzz(args, fz, stats, qlog):
    rnd = random.Random(args.seed)
    gen = Gen(rnd, [fz.S + 7213, fz.S + 14413, fz.S + 3013])
    seen, t0 = set(), time.time()
    while stats.queries < args.n and time.time() - t0 < args.seconds:
        node = gen.top()
        if node.s in seen or len(node.s) > 1500:
            continue
        seen.add(node.s)
        stats.queries += 1
        qlog.write(f"{stats.queries}\t{node.s}\n")
        qlog.flush()
        try:
            check_query(fz, node, settings_for(fz.S, rnd), stats)
        except ServerDied as e:
            msg = f"{e} during query {stats.queries}: {node.s}"
            print(msg, flush=True)
            fz.log.write(f"CRASH {msg}\n\n")
            stats.crashes[e.server.name] += 1
            e.server.start()
        fz.log.flush()
        if stats.queries % 500 == 0:
            print(f"{stats.queries} queries, {stats.differing} differing, {stats.unexpected_queries} unexpected, "
                  f"{time.time() - t0:.0f} s", flush=True)


def check_same_data(prom, vigil, S, samples):
    """Both servers must hold every sample, or agreeing would mean little."""
    for server in (prom, vigil):
        got = 0
        for name in METRICS:  # one at a time: 2.42 fails on series that differ only in the name
            r = fetch(server, api_path(f"sum(count_over_time({name}[{HOURS + 1}h]))", ("i", S + HOURS * 3600 + 1807)))
            got += r.series[0][1][0][1] if isinstance(r, Res) and r.series else 0
        if got != samples:
            sys.exit(f"{server.name} holds {got} samples of the known metrics, the file has {samples}")


def summary(stats, seconds_taken, evals):
    lines = [f"queries: {stats.queries} ({stats.both_failed} failed on both sides; {evals} evaluations on "
             f"both servers, minimizing and checks included), {seconds_taken:.0f} s",
             f"differing queries: {stats.differing}: known {sum(stats.known.values())}, "
             f"skipped (topk/bottomk ties) {stats.ties}, unexpected {stats.unexpected_queries}"]
    lines += [f"server deaths: {name} {n}" + (" (unexpected)" if name == "vigil" else "") for name, n in stats.crashes.items()]
    if stats.known:
        lines.append("known differences:")
        lines += [f"  {n:5d}  {reason}" for reason, n in stats.known.most_common()]
    if stats.unexpected:
        lines.append("unexpected differences, by signature:")
        for sig, e in sorted(stats.unexpected.items(), key=lambda x: -x[1]["count"]):
            lines += [f"  [{e['count']}x] {sig}", f"    minimal: {e['query']}", f"    at {e['setting']}",
                      f"    diff: {e['diff']}", f"    Prometheus: {e['prom']}", f"    vigil:      {e['vigil']}"]
    return "\n".join(lines)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vigil", type=Path, default=REPO / "target" / "release" / "vigil", help="default: %(default)s")
    ap.add_argument("--prometheus", type=Path, default=Path("/usr/bin/prometheus"), help="default: %(default)s")
    ap.add_argument("--promtool", type=Path, default=Path("/usr/bin/promtool"), help="default: %(default)s")
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared",
                    help="the shared checkout, whose bench/targetsim.py makes the data (default: %(default)s)")
    ap.add_argument("--workdir", type=Path, help="data and logs (default: a fresh temporary directory)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    ap.add_argument("--seed", type=int, default=1, help="of the query generator (default: 1)")
    ap.add_argument("--n", type=int, default=1000, help="number of queries (default: 1000)")
    ap.add_argument("--seconds", type=float, default=1800, help="time budget (default: 1800)")
    ap.add_argument("--out", type=Path, help="differences log (default: WORKDIR/diffs.txt)")
    args = ap.parse_args()
    for f in (args.vigil, args.prometheus, args.promtool, args.shared / "bench" / "targetsim.py"):
        if not f.is_file():
            ap.error(f"{f} not found")
    args.vigil, args.shared = args.vigil.resolve(), args.shared.resolve()
    return args


def on_sigterm(signum, frame):
    raise KeyboardInterrupt  # stop the servers and clean up as on Ctrl-C


def main():
    args = parse_args()
    temporary = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="promql_fuzz-")) if temporary else args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    out = (args.out or workdir / "diffs.txt").resolve()
    signal.signal(signal.SIGTERM, on_sigterm)
    prom = Server("prometheus", args.prometheus, workdir / "prom-data", workdir)
    vigil = Server("vigil", args.vigil, workdir / "vigil-data", workdir)
    stats, status, t0, logged = Stats(), 0, time.time(), False
    try:
        S, samples = make_data(args, workdir)
        prom.start()
        vigil.start()
        check_same_data(prom, vigil, S, samples)
        print(f"data from {S} ({samples} samples); Prometheus on 127.0.0.1:{prom.port}, "
              f"vigil on 127.0.0.1:{vigil.port}", flush=True)
        with open(out, "w") as log, open(workdir / "queries.txt", "w") as qlog:
            fz = Fuzzer(prom, vigil, S, log)
            try:
                fuzz(args, fz, stats, qlog)
            except KeyboardInterrupt:
                print("interrupted", flush=True)
                status = 130
            text = summary(stats, time.time() - t0, fz.evals)
            log.write("\n==================== SUMMARY ====================\n" + text + "\n")
            logged = True
        print(text)
        if status == 0 and (stats.unexpected_queries or stats.crashes["vigil"]):
            status = 1
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        status = 130
    finally:
        vigil.stop()
        prom.stop()
        if temporary and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        if logged and out.exists():
            print(f"differences log: {out}")
        elif logged:
            print(f"(the differences log went with {workdir}; --keep or --out keeps it)")
        if workdir.exists():
            print(f"work directory: {workdir}")
    return status


if __name__ == "__main__":
    sys.exit(main())
