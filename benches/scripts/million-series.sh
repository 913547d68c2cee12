#!/bin/bash
# One million active series: 50 targets x 20,005 series, scraped every 15 s. Prints the time
# to fill the head; CPU per sample and RSS over a window of MINUTES (default 12, so that each
# series holds at least 40 samples); RSS every 30 s with its slope per ingested sample over
# the window's second half, extrapolated to a 3 h head (720 samples a series; an upper bound,
# since a chunk leaves memory for chunks_head/ once it holds 120 samples); disk; then the
# restart times after kill -9 (WAL replay) and after a clean stop (head snapshot).
# Run from the repository root:
#   MINUTES=12 bash benches/scripts/million-series.sh [target/release/vigil]
# Needs ports 19090 and 19099-19149 free; about MINUTES + 3 minutes.
set -u
ROOT=$(pwd)
BIN=$(realpath "${1:-target/release/vigil}")
TARGETSIM="$ROOT/../shared/bench/targetsim.py"
D=$(mktemp -d); cd "$D"
log() { echo "[$(date +%T)] $*"; }
python3 "$TARGETSIM" --base-port 19100 --targets 50 --series 20000 --step-ms 15000 --seed 1 --max-runtime 3600 > ts.log 2>&1 &
sleep 5
python3 - <<'PY'
t=",".join(f"'127.0.0.1:{19100+i}'" for i in range(50))
open('scrape.yml','w').write(f"""global:
  scrape_interval: 15s
  scrape_timeout: 10s
scrape_configs:
  - job_name: targetsim
    static_configs:
      - targets: [{t}]
""")
PY
start() { $BIN --config.file=$D/scrape.yml --storage.tsdb.path=$D/data --web.listen-address=127.0.0.1:19090 >> $D/vigil.log 2>&1 & echo $!; }
metric() { curl -s 127.0.0.1:19090/metrics | awk -v m="$1" '$1==m {print $2}'; }
cpu() { awk '{print ($14+$15)/100}' /proc/$1/stat; }
rss() { awk '/VmRSS/ {print $2/1024}' /proc/$1/status; }
t0=$(date +%s.%N); pid=$(start); log "started pid $pid"
until curl -sf 127.0.0.1:19090/-/ready >/dev/null; do sleep 0.2; done
while true; do n=$(metric prometheus_tsdb_head_series); [ -n "$n" ] && [ "${n%.*}" -ge 1000000 ] && break; sleep 1; done
t1=$(date +%s.%N); log "head holds $n series after $(python3 -c "print(round($t1-$t0,1))") s; RSS $(rss $pid) MiB"
sleep 60
c0=$(cpu $pid); a0=$(metric prometheus_tsdb_head_samples_appended_total); w0=$(date +%s.%N)
: > rss.txt
for i in $(seq 1 $(( ${MINUTES:-12} * 2 ))); do
  sleep 30
  a=$(metric prometheus_tsdb_head_samples_appended_total); r=$(rss $pid)
  echo "$a $r" >> rss.txt
  log "RSS $r MiB series $(metric prometheus_tsdb_head_series) samples appended $a"
done
c1=$(cpu $pid); a1=$(metric prometheus_tsdb_head_samples_appended_total); w1=$(date +%s.%N)
n=$(metric prometheus_tsdb_head_series)
python3 -c "
w=$w1-$w0; c=$c1-$c0; a=$a1-$a0
print('window %.0f s: %.0f samples/s, %.3f cores, %.2f us/sample' % (w, a/w, c/w, c/a*1e6))
pts=[tuple(map(float,l.split())) for l in open('rss.txt')]
# The second half of the window: past the first chunk cut of every series.
pts=pts[len(pts)//2:]
n=$n
mx=sum(p[0] for p in pts)/len(pts); my=sum(p[1] for p in pts)/len(pts)
k=sum((p[0]-mx)*(p[1]-my) for p in pts)/sum((p[0]-mx)**2 for p in pts)
per=k*2**20
last=pts[-1]; held=last[0]/n
at3h=last[1]+k*(720-held)*n
print('RSS slope %.3f bytes per ingested sample; %.1f samples a series held; RSS %.0f MiB (%.0f bytes a series) now, %.0f MiB (%.0f bytes a series) extrapolated to 720 samples a series (3 h at 15 s)' % (per, held, last[1], last[1]*2**20/n, at3h, at3h*2**20/n))"
log "RSS $(rss $pid) MiB; VmHWM $(awk '/VmHWM/ {print $2/1024}' /proc/$pid/status) MiB; disk $(du -sm data | cut -f1) MiB"
up=$(curl -s '127.0.0.1:19090/api/v1/query?query=sum(up)'); log "sum(up): $up"
# Crash: SIGKILL, then restart and time WAL replay.
kill -9 $pid; sleep 1; log "killed -9"
t0=$(date +%s.%N); pid=$(start)
until curl -sf 127.0.0.1:19090/-/ready >/dev/null; do sleep 0.2; done
t1=$(date +%s.%N); log "ready after crash in $(python3 -c "print(round($t1-$t0,1))") s; series $(metric prometheus_tsdb_head_series); RSS $(rss $pid) MiB"
grep -iE "replay" $D/vigil.log | tail -5
sleep 20
# Clean stop, then restart from the snapshot.
kill -TERM $pid; t0=$(date +%s.%N); while kill -0 $pid 2>/dev/null; do sleep 0.1; done; t1=$(date +%s.%N)
log "clean shutdown took $(python3 -c "print(round($t1-$t0,1))") s"
t0=$(date +%s.%N); pid=$(start)
until curl -sf 127.0.0.1:19090/-/ready >/dev/null; do sleep 0.2; done
t1=$(date +%s.%N); log "ready after clean stop in $(python3 -c "print(round($t1-$t0,1))") s; series $(metric prometheus_tsdb_head_series); RSS $(rss $pid) MiB"
tail -5 $D/vigil.log
kill -TERM $pid; while kill -0 $pid 2>/dev/null; do sleep 0.2; done
kill %1 2>/dev/null; wait; rm -rf "$D"
