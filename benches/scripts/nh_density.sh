#!/usr/bin/env bash
# Native-histogram storage, vigil beside Prometheus 2.42 (--enable-feature=native-histograms):
# both scrape the same client_golang exporter (benches/scripts/nh_exporter: N histograms,
# bucket factor 1.1, 20 observations a second each) every second for DURATION seconds, then
# each one's data directory is measured (apparent bytes per histogram sample) and its RSS
# (bytes per histogram series). Usage: nh_density.sh VIGIL_BIN [HISTOGRAMS] [DURATION]
set -euo pipefail
VIGIL=$(realpath "$1"); N=${2:-500}; DUR=${3:-180}
W=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
here=$(dirname "$(realpath "$0")")
( cd "$here/nh_exporter" && GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off CGO_ENABLED=0 go build -o "$W/nh_exporter" . )
"$W/nh_exporter" 19400 "$N" & sleep 1
cat > "$W/p.yml" <<YML
global: {scrape_interval: 1s, scrape_timeout: 1s}
scrape_configs:
  - job_name: nh
    scrape_native_histograms: true
    static_configs: [{targets: ["127.0.0.1:19400"]}]
YML
# Prometheus 2.42 does not know scrape_native_histograms (the feature flag switches it on).
grep -v scrape_native_histograms "$W/p.yml" > "$W/prom.yml"
/usr/bin/prometheus --config.file="$W/prom.yml" --storage.tsdb.path="$W/prom" \
  --web.listen-address=127.0.0.1:19401 --enable-feature=native-histograms >"$W/prom.log" 2>&1 & PP=$!
"$VIGIL" --config.file="$W/p.yml" --storage.tsdb.path="$W/vigil" \
  --web.listen-address=127.0.0.1:19402 >"$W/vigil.log" 2>&1 & VP=$!
sleep "$DUR"
q() { curl -s "http://127.0.0.1:$1/api/v1/query" --data-urlencode "query=$2" | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)'; }
for sys in "prometheus $PP 19401 $W/prom" "vigil $VP 19402 $W/vigil"; do
  set -- $sys
  samples=$(q "$3" "sum(count_over_time(inference_latency_seconds[1h]))")
  series=$(q "$3" "count(inference_latency_seconds)")
  bytes=$(du -sb --apparent-size "$4" | cut -f1)
  rss=$(awk '/VmRSS/ {print $2*1024}' /proc/$2/status)
  python3 - "$1" "$samples" "$series" "$bytes" "$rss" <<'PY'
import sys
name, samples, series, b, rss = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
print(f"{name}: {int(samples)} histogram samples in {int(series)} series; disk {b} bytes = {b/samples:.1f} bytes/sample; RSS {rss/2**20:.1f} MiB = {rss/series:.0f} bytes/series")
PY
done
