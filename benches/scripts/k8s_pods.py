#!/usr/bin/env python3
"""What `kubernetes_sd_configs` costs vigil with many pods in one namespace.

Starts a minimal fake Kubernetes API server (list, and watches that stream what the script
changes) holding N pods, and a release vigil with one pod-role job against it, then measures:

  1. the initial list: time until /api/v1/targets shows every target, vigil's CPU time for
     it, and its RSS against the same vigil with no pods;
  2. churn: M pod updates (readiness flips, as a rolling restart makes) streamed through the
     watch: CPU time per event and the time until the last one shows.

Two jobs are measured in one run: `kept` keeps every pod as a target (each at a distinct
127.x address on a closed port, scraped once an hour, so scraping costs nothing), `annotated`
keeps only annotated pods (1 in 100), so the rest are dropped targets, as in the usual
annotation-driven config. Usage:

    python3 benches/scripts/k8s_pods.py target/release/vigil [--pods 10000] [--updates 1000]
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CLK = os.sysconf("SC_CLK_TCK")


class Cluster:
    def __init__(self, n):
        self.lock = threading.Condition()
        self.rv = 0
        self.pods = {}
        self.history = []
        for i in range(n):
            self.put(i, ready=True)

    def pod(self, i, ready):
        ip = f"127.{1 + i // 65536}.{(i // 256) % 256}.{i % 256}"
        ann = {"prometheus.io/scrape": "true"} if i % 100 == 0 else {}
        return {
            "metadata": {"name": f"model-{i}", "namespace": "serving", "uid": f"uid-{i}",
                         "resourceVersion": str(self.rv),
                         "labels": {"app": "model", "pod-template-hash": "5d9f7c8b6",
                                    "app.kubernetes.io/name": "model-server",
                                    "app.kubernetes.io/version": "2.1.0"},
                         "annotations": ann,
                         "ownerReferences": [{"kind": "ReplicaSet", "name": "model-5d9f7c8b6",
                                              "controller": True}]},
            "spec": {"nodeName": f"node-{i % 50}",
                     "containers": [{"name": "server", "image": "registry/model:2.1.0",
                                     "ports": [{"name": "metrics", "containerPort": 1,
                                                "protocol": "TCP"}]}]},
            "status": {"podIP": ip, "hostIP": f"192.168.0.{i % 50}", "phase": "Running",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
        }

    def put(self, i, ready):
        with self.lock:
            self.rv += 1
            p = self.pod(i, ready)
            kind = "MODIFIED" if i in self.pods else "ADDED"
            self.pods[i] = p
            self.history.append((self.rv, kind, p))
            self.lock.notify_all()


def handler(cluster):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_GET(self):
            path, _, query = self.path.partition("?")
            params = dict(kv.split("=", 1) for kv in query.split("&") if "=" in kv)
            if not path.endswith("/pods"):
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if params.get("watch") not in ("1", "true"):
                with cluster.lock:
                    body = json.dumps({"kind": "PodList", "apiVersion": "v1",
                                       "metadata": {"resourceVersion": str(cluster.rv)},
                                       "items": list(cluster.pods.values())}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            sent = int(params.get("resourceVersion", "0") or 0)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            while True:
                with cluster.lock:
                    out = []
                    for rv, kind, obj in cluster.history:
                        if rv > sent:
                            o = dict(obj, kind="Pod", apiVersion="v1")
                            out.append(json.dumps({"type": kind, "object": o}))
                            sent = rv
                    if not out:
                        cluster.lock.wait(1.0)
                        continue
                data = ("\n".join(out) + "\n").encode()
                try:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()
                except OSError:
                    return
    return H


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def targets(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/targets", timeout=30) as r:
        d = json.load(r)["data"]
    return d["activeTargets"], d["droppedTargetCounts"]


def start_vigil(binary, api_port, workdir, name, kept=True):
    """vigil with the `annotated` job (and the `kept` job when `kept`)."""
    d = os.path.join(workdir, name)
    os.makedirs(d)
    sd = f"api_server: 'http://127.0.0.1:{api_port}'"
    jobs = ""
    if kept:
        jobs += f"  - job_name: kept\n    kubernetes_sd_configs: [{{role: pod, {sd}}}]\n"
    jobs += (f"  - job_name: annotated\n"
             f"    kubernetes_sd_configs: [{{role: pod, {sd}, namespaces: {{names: [serving]}}}}]\n"
             f"    relabel_configs:\n"
             f"      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]\n"
             f"        action: keep\n"
             f"        regex: 'true'\n")
    cfg = f"global:\n  scrape_interval: 1h\n  scrape_timeout: 1s\nscrape_configs:\n{jobs}"
    with open(os.path.join(d, "prometheus.yml"), "w") as f:
        f.write(cfg)
    port = free_port()
    p = subprocess.Popen([binary, f"--config.file={d}/prometheus.yml",
                          f"--storage.tsdb.path={d}/data",
                          f"--web.listen-address=127.0.0.1:{port}"],
                         stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "log"), "w"))
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    return p, port


def scenario(a, work, cluster, api_port, base_rss, kept):
    name = "every pod a target (+ annotated job)" if kept else "annotated job only"
    p, port = start_vigil(a.vigil, api_port, work, "kept" if kept else "annotated", kept)
    try:
        measure(a, cluster, base_rss, kept, name, p, port)
    finally:
        p.terminate()
        p.wait()


def measure(a, cluster, base_rss, kept, name, p, port):
    start = time.time()
    cpu0 = cpu_seconds(p.pid)
    want_kept = a.pods if kept else 0
    want_annotated = (a.pods + 99) // 100
    while True:
        act, dropped = targets(port)
        n_kept = sum(1 for t in act if t["scrapePool"] == "kept")
        n_ann = sum(1 for t in act if t["scrapePool"] == "annotated")
        if n_kept == want_kept and n_ann == want_annotated:
            break
        if time.time() - start > 300:
            sys.exit(f"not converged: kept {n_kept}, annotated {n_ann}")
        time.sleep(0.5)
    converged = time.time() - start
    cpu_list = cpu_seconds(p.pid) - cpu0
    time.sleep(3)
    rss = rss_mib(p.pid)
    print(f"[{name}] initial list of {a.pods} pods ({want_kept} + {want_annotated} targets, "
          f"{dropped.get('annotated', 0)} dropped): converged in {converged:.1f} s, "
          f"vigil CPU {cpu_list:.2f} s (both include /api/v1/targets polling)")
    print(f"[{name}] RSS {rss:.1f} MiB, {base_rss:.1f} MiB with no pods: "
          f"{(rss - base_rss) * 1024 * 1024 / a.pods:.0f} bytes per pod")
    cpu1 = cpu_seconds(p.pid)
    t1 = time.time()
    first = cluster.rv
    for k in range(a.updates):
        i = (k * 7919) % a.pods
        cluster.put(i, ready=not cluster.pods[i]["status"]["conditions"][0]["status"] == "True")
    last = ((a.updates - 1) * 7919) % a.pods
    want_ready = cluster.pods[last]["status"]["conditions"][0]["status"].lower()
    pool = "kept" if kept else None
    while True:
        act, dropped = targets(port)
        if pool is None:
            # Dropped targets are not listed with labels past keep_dropped_targets; take
            # the event counter instead.
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
                m = r.read().decode()
            upd = sum(float(l.rsplit(" ", 1)[1]) for l in m.splitlines()
                      if l.startswith('prometheus_sd_kubernetes_events_total{event="update",role="pod"}'))
            if upd >= a.updates:
                break
        elif any(t["scrapePool"] == pool
                 and t["discoveredLabels"].get("__meta_kubernetes_pod_name") == f"model-{last}"
                 and t["discoveredLabels"].get("__meta_kubernetes_pod_ready") == want_ready
                 for t in act):
            break
        if time.time() - t1 > 300:
            sys.exit("updates not seen")
        time.sleep(0.5)
    cpu_upd = cpu_seconds(p.pid) - cpu1
    print(f"[{name}] {a.updates} pod updates (rv {first}..{cluster.rv}): seen in "
          f"{time.time() - t1:.1f} s, vigil CPU {cpu_upd:.2f} s "
          f"({cpu_upd / a.updates * 1e3:.2f} ms per event); RSS after {rss_mib(p.pid):.1f} MiB")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("vigil")
    ap.add_argument("--pods", type=int, default=10000)
    ap.add_argument("--updates", type=int, default=1000)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="k8s-pods-")
    try:
        empty = Cluster(0)
        srv0 = ThreadingHTTPServer(("127.0.0.1", 0), handler(empty))
        threading.Thread(target=srv0.serve_forever, daemon=True).start()
        p0, _ = start_vigil(a.vigil, srv0.server_address[1], work, "empty")
        try:
            time.sleep(5)
            base_rss = rss_mib(p0.pid)
        finally:
            p0.terminate()
            p0.wait()
        cluster = Cluster(a.pods)
        srv = ThreadingHTTPServer(("127.0.0.1", 0), handler(cluster))
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        for kept in (False, True):
            scenario(a, work, cluster, srv.server_address[1], base_rss, kept)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
