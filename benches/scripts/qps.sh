#!/bin/bash
# Cheap queries at full speed: how many requests a second vigil answers and their latency
# percentiles (wrk, from Debian's package), against a data directory of your choice (for
# example one `compare.py storage --keep-data` or `vigil tsdb import` left behind).
#   bash benches/scripts/qps.sh DATA_DIR [target/release/vigil] [SECONDS] [TIME]
# Each request kind runs SECONDS (default 30) with 2 wrk threads and 64 connections on
# 127.0.0.1:19095; the queries are evaluated at TIME (Unix seconds; default now: give a time
# inside the data, or the selectors find nothing). The data directory is copied first, so it
# is not changed.
set -eu
DATA=$(realpath "$1")
BIN=$(realpath "${2:-target/release/vigil}")
SECS=${3:-30}
AT=${4:+&time=$4}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 2; }
D=$(mktemp -d)
cp -r "$DATA" "$D/data"
printf 'global:\n  scrape_interval: 15s\nscrape_configs: []\n' > "$D/p.yml"
"$BIN" --config.file="$D/p.yml" --storage.tsdb.path="$D/data" \
  --web.listen-address=127.0.0.1:19095 > "$D/vigil.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$D"' EXIT
until curl -sf 127.0.0.1:19095/-/ready >/dev/null; do sleep 0.2; done
for path in "/-/healthy" "/api/v1/query?query=vector(1)" \
  "/api/v1/query?query=process_open_fds$AT" \
  "/api/v1/query?query=sum(rate(http_requests_total%5B5m%5D))$AT"; do
  echo "== GET $path"
  wrk -t2 -c64 -d"${SECS}s" --latency "http://127.0.0.1:19095$path" |
    grep -E "Requests/sec|Non-2xx|Socket errors|^ +(50|90|99)%|Latency +[0-9]"
done
echo "vigil RSS after: $(awk '/VmRSS/ {print $2/1024}' /proc/$PID/status) MiB"
