#!/usr/bin/env python3
"""Export a training set's distributions as an OpenMetrics file: a drift baseline.

The file holds, at one timestamp, what the live model's metrics would hold had they counted the
training rows: a classic histogram per numeric column and a counter per value of each
categorical column, named after the example service's metrics with `_baseline` added:

    model_input_value_baseline_bucket{feature="x",le="0.5"} 412 1767225600
    model_input_category_baseline_total{feature="country",value="de"} 250 1767225600

Import it with `vigil tsdb import openmetrics baseline.om DATADIR`, then compare live traffic
against it with `@`, as config/alerts.yml's *FromTraining rules do:

    drift_psi(sum by (job, feature, le) (increase(model_input_value_bucket[1h])),
              sum by (job, feature, le) (model_input_value_baseline_bucket @ 1767225600))

docs/drift.md ("Training baselines") has the workflow. Standard library only.
"""

import argparse
import csv
import math
import re
import sys

# The buckets of the example service's model_input_value (crates/ml-service).
DEFAULT_BUCKETS = [-3.0, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0]
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def escape(value):
    """A label value as OpenMetrics quotes it."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def labels(pairs):
    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in pairs) + "}"


def fmt(x):
    """A bucket bound as the example service prints it: integers without a fraction."""
    if x == math.inf:
        return "+Inf"
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    return repr(x)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("csv", help="training rows, with a header line")
    p.add_argument("--timestamp", type=int, required=True,
                   help="Unix time in seconds of every sample (the `@` of the queries)")
    p.add_argument("--numeric", action="append", default=[],
                   help="a numeric column, histogrammed (repeatable)")
    p.add_argument("--categorical", action="append", default=[],
                   help="a categorical column, counted per value (repeatable)")
    p.add_argument("--buckets", default=",".join(fmt(b) for b in DEFAULT_BUCKETS),
                   help="upper bounds of the numeric columns' buckets, comma-separated")
    p.add_argument("--label", action="append", default=[],
                   help="NAME=VALUE added to every series, e.g. job=ml-service (repeatable)")
    p.add_argument("--prefix", default="model_input",
                   help="metric name prefix (default model_input)")
    p.add_argument("-o", "--output", help="output file (default: standard output)")
    args = p.parse_args(argv)
    if not args.numeric and not args.categorical:
        p.error("name at least one --numeric or --categorical column")
    try:
        args.buckets = sorted(float(b) for b in args.buckets.split(",") if b.strip())
    except ValueError:
        p.error(f"--buckets: not a list of numbers: {args.buckets!r}")
    if any(math.isnan(b) or math.isinf(b) for b in args.buckets):
        p.error("--buckets: finite numbers only (+Inf is always added)")
    extra = []
    for item in args.label:
        name, sep, value = item.partition("=")
        if not sep or not LABEL_NAME.match(name) or name in ("feature", "le", "value"):
            p.error(f"--label {item!r}: want NAME=VALUE with a label name other than feature, le, value")
        extra.append((name, value))
    args.label = sorted(extra)
    return args


def main(argv):
    args = parse_args(argv)
    bounds = args.buckets
    hist = {c: [0] * (len(bounds) + 1) for c in args.numeric}  # per bucket, last is +Inf
    sums = {c: 0.0 for c in args.numeric}
    cats = {c: {} for c in args.categorical}
    with open(args.csv, newline="") as f:
        rows = csv.DictReader(f)
        missing = [c for c in args.numeric + args.categorical if c not in (rows.fieldnames or [])]
        if missing:
            sys.exit(f"{args.csv}: no column {', '.join(missing)}")
        for line, row in enumerate(rows, start=2):
            for c in args.numeric:
                try:
                    v = float(row[c])
                except ValueError:
                    sys.exit(f"{args.csv}:{line}: column {c}: not a number: {row[c]!r}")
                if math.isnan(v):
                    continue  # no bucket holds NaN
                i = next((i for i, b in enumerate(bounds) if v <= b), len(bounds))
                hist[c][i] += 1
                sums[c] += v
            for c in args.categorical:
                cats[c][row[c]] = cats[c].get(row[c], 0) + 1

    ts = args.timestamp
    out = []
    if args.numeric:
        name = f"{args.prefix}_value_baseline"
        out.append(f"# TYPE {name} histogram")
        out.append(f"# HELP {name} Training-set distribution of numeric model inputs.")
        for c in args.numeric:
            base = args.label + [("feature", c)]
            cum = 0
            for b, n in zip(bounds + [math.inf], hist[c]):
                cum += n
                out.append(f"{name}_bucket{labels(sorted(base + [('le', fmt(b))]))} {cum} {ts}")
            out.append(f"{name}_count{labels(sorted(base))} {cum} {ts}")
            out.append(f"{name}_sum{labels(sorted(base))} {repr(sums[c])} {ts}")
    if args.categorical:
        name = f"{args.prefix}_category_baseline"
        out.append(f"# TYPE {name} counter")
        out.append(f"# HELP {name} Training-set counts of categorical model inputs.")
        for c in args.categorical:
            for value in sorted(cats[c]):
                pairs = sorted(args.label + [("feature", c), ("value", value)])
                out.append(f"{name}_total{labels(pairs)} {cats[c][value]} {ts}")
    out.append("# EOF")
    text = "\n".join(out) + "\n"
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main(sys.argv[1:])
