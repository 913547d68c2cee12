"""The ML example service instrumented with OpenTelemetry instead of a Prometheus client.

It serves the same toy model as `crates/ml-service` (prediction = 2x + 1) and pushes its
metrics over OTLP/HTTP (protobuf) to vigil's `/api/v1/otlp/v1/metrics`
(`vigil --web.enable-otlp-receiver`); docs/otlp.md shows what each instrument becomes:

  ml.requests            Counter              -> ml_requests_total{route,status}
  ml.request.duration    Histogram (explicit) -> ml_request_duration_seconds_bucket{le}/_sum/_count
  ml.inference.duration  Histogram (exponential, via a View) -> native histogram
                                                 ml_inference_duration_seconds
  ml.inflight            UpDownCounter        -> ml_inflight{route} (a gauge)
  ml.model.accuracy      ObservableGauge      -> ml_model_accuracy_ratio
  resource attributes    -> job="ml/ml-service", instance="ml-service-0", and target_info

It is deterministic: `--requests N` simulated predictions per round, with latencies drawn
from a fixed cycle, exported with `force_flush` after each round, `--rounds` rounds
`--interval` seconds apart. It prints one JSON line describing what it exported, which
`crates/vigil/tests/otlp.rs` compares with what vigil stored.

Requires `opentelemetry-sdk` and `opentelemetry-exporter-otlp-proto-http` (see .ci/run).
"""

import argparse
import json
import sys
import time

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import (
    ExplicitBucketHistogramAggregation,
    ExponentialBucketHistogramAggregation,
    View,
)
from opentelemetry.sdk.resources import Resource

BOUNDS = [0.05, 0.1, 0.25, 0.5, 1.0]
# One cycle of 10 request latencies (seconds): 2 fast, 3 medium, 4 slow, 1 slower.
LATENCIES = [0.02, 0.08, 0.2, 0.2, 0.08, 0.4, 0.02, 0.2, 0.08, 0.2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", default="http://127.0.0.1:9090/api/v1/otlp/v1/metrics")
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--interval", type=float, default=1.0)
    args = ap.parse_args()

    resource = Resource.create(
        {
            "service.name": "ml-service",
            "service.namespace": "ml",
            "service.instance.id": "ml-service-0",
            "deployment.environment": "test",
            "k8s.pod.name": "ml-service-0-7d4b9",
        }
    )
    exporter = OTLPMetricExporter(endpoint=args.endpoint, timeout=10)
    # A long interval: exports happen only at force_flush, so the test controls them.
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    views = [
        View(
            instrument_name="ml.request.duration",
            aggregation=ExplicitBucketHistogramAggregation(boundaries=BOUNDS),
        ),
        View(
            instrument_name="ml.inference.duration",
            aggregation=ExponentialBucketHistogramAggregation(max_size=160),
        ),
    ]
    # No export at exit: the rounds' flushes are the whole record (deterministic for the test).
    provider = MeterProvider(
        resource=resource, metric_readers=[reader], views=views, shutdown_on_exit=False
    )
    meter = provider.get_meter("ml.service", "0.1.0")

    requests = meter.create_counter("ml.requests", unit="{request}", description="Predictions served.")
    duration = meter.create_histogram("ml.request.duration", unit="s", description="Request latency.")
    inference = meter.create_histogram("ml.inference.duration", unit="s", description="Model inference time.")
    inflight = meter.create_up_down_counter("ml.inflight", unit="{request}", description="Requests in flight.")
    accuracy = {"value": 0.9}

    def observe_accuracy(_options):
        yield Observation(accuracy["value"])

    meter.create_observable_gauge(
        "ml.model.accuracy", callbacks=[observe_accuracy], unit="1", description="Model accuracy."
    )

    exports = []
    total = 0
    errors = 0
    for r in range(args.rounds):
        for i in range(args.requests):
            lat = LATENCIES[(total + i) % len(LATENCIES)]
            status = "500" if (total + i) % 50 == 49 else "200"
            inflight.add(1, {"route": "/predict"})
            duration.record(lat, {"route": "/predict"})
            inference.record(lat / 2)
            requests.add(1, {"route": "/predict", "status": status})
            inflight.add(-1, {"route": "/predict"})
            if status == "500":
                errors += 1
        total += args.requests
        inflight.add(1, {"route": "/predict"})  # one request left open per round
        accuracy["value"] = round(0.9 - 0.01 * r, 4)
        ok = provider.force_flush(timeout_millis=10_000)
        exports.append(
            {"round": r, "requests": total, "errors": errors, "inflight": r + 1,
             "accuracy": accuracy["value"], "flushed": bool(ok)}
        )
        if r + 1 < args.rounds:
            time.sleep(args.interval)
    print(json.dumps({
        "resource": {k: str(v) for k, v in resource.attributes.items()},
        "bounds": BOUNDS,
        "latencies": LATENCIES,
        "exports": exports,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
