#!/usr/bin/env bash
# Fan-out sizing (docs/benchmarks.md, "Fan-out"): one `sluice server` on a
# standalone ZooKeeper, measured by deploy/sizing against a minimal Go SSE
# broadcaster in the same run:
#   1. ZooKeeper packets per publish with 10 and with 5,000 streams on the
#      published service (mntr packets_received, next to the idle count);
#   2. STREAMS streams on the published service plus SERVICES x PER_SERVICE
#      idle ones (default 5,000 + 100 x 150 = 20,000): memory per idle
#      stream (3 s after opening, and again after IDLE more, default 240 s:
#      what opening the streams left behind — net/http's buffers of the
#      connections the streams took over, the stacks of the requests —
#      is garbage that an idle process collects at the Go runtime's
#      periodic collection, every 2 minutes, and returns to the OS over
#      the following seconds),
#      publish → all delivered p99 against the broadcaster's.
# Each configuration runs RUNS times (a fresh server each time); the
# summary gives medians.
#
#   deploy/sizing/fanout.sh
#   RUNS=1 STREAMS=1000 SERVICES=10 PER_SERVICE=100 deploy/sizing/fanout.sh
#
# Loopback only; every tool run is bounded by --timeout; ZooKeeper and the
# server are stopped at the end. Raises the file limit of the server it
# starts (ulimit; root may raise the hard limit too).
set -euo pipefail
RUNS=${RUNS:-3}
STREAMS=${STREAMS:-5000}
SERVICES=${SERVICES:-100}
PER_SERVICE=${PER_SERVICE:-150}
PUBLISHES=${PUBLISHES:-5}
IDLE=${IDLE:-240s}
ZK_PORT=${ZK_PORT:-22998}
ADDR=${ADDR:-127.0.0.1:17070}
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/sluice-fanout-sizing.XXXXXX)
zkpid=
srvpid=
stop_server() { if [ -n "$srvpid" ]; then kill "$srvpid" 2>/dev/null || true; wait "$srvpid" 2>/dev/null || true; srvpid=; fi; }
cleanup() { stop_server; [ -n "$zkpid" ] && kill "$zkpid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM

limit=$(( (STREAMS + SERVICES * PER_SERVICE) * 2 + 4096 ))
ulimit -Hn "$limit" 2>/dev/null || true
ulimit -n "$limit" 2>/dev/null || ulimit -n "$(ulimit -Hn)"

cp=$("$repo/deploy/zookeeper/classpath.sh")
mkdir -p "$work/data"
cat >"$work/zoo.cfg" <<CFG
tickTime=2000
dataDir=$work/data
clientPortAddress=127.0.0.1
clientPort=$ZK_PORT
admin.enableServer=false
maxClientCnxns=0
4lw.commands.whitelist=ruok,mntr
CFG
java -Xmx512m -cp "$cp" org.apache.zookeeper.server.quorum.QuorumPeerMain "$work/zoo.cfg" >"$work/zk.log" 2>&1 &
zkpid=$!
for _ in $(seq 1 60); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$ZK_PORT") 2>/dev/null; then break; fi
  sleep 0.5
done

go build -o "$work/sluice" "$repo/cmd/sluice"
go build -o "$work/sizing" "$repo/deploy/sizing"

# start_server ROOT: a fresh server on its own ZooKeeper root; sets SLUICE_TOKEN.
start_server() {
  local dir="$work/server-$1"
  mkdir -p "$dir"
  "$work/sluice" server --addr "$ADDR" --store "zk://127.0.0.1:$ZK_PORT/$1" --data-dir "$dir" \
    --max-streams-per-token -1 >"$dir/server.log" 2>&1 &
  srvpid=$!
  for _ in $(seq 1 100); do
    [ -s "$dir/admin.token" ] && curl -fsS "http://$ADDR/readyz" >/dev/null 2>&1 && break
    sleep 0.2
  done
  SLUICE_TOKEN=$(cat "$dir/admin.token")
  export SLUICE_TOKEN
}

results="$work/results.jsonl"
for r in $(seq 1 "$RUNS"); do
  for n in 10 "$STREAMS"; do
    start_server "zk-$n-$r"
    "$work/sizing" --server "http://$ADDR" --service orders --watchers "$n" --publishes "$PUBLISHES" \
      --zk "127.0.0.1:$ZK_PORT" --settle 1s --timeout 5m --json | sed "s/^/{\"kind\":\"zk\",\"run\":$r,\"r\":/; s/\$/}/" >>"$results"
    stop_server
  done
  start_server "full-$r"
  "$work/sizing" --server "http://$ADDR" --service orders --watchers "$STREAMS" --services "$SERVICES" \
    --per-service "$PER_SERVICE" --publishes "$PUBLISHES" --peer --idle "$IDLE" --timeout 15m --json |
    sed "s/^/{\"kind\":\"full\",\"run\":$r,\"r\":/; s/\$/}/" >>"$results"
  stop_server
done

python3 - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
med = statistics.median
print("ZooKeeper packets per publish per server (mntr packets_received; idle = same interval without a publish):")
for n in sorted({x["r"]["hot_streams"] for x in rows if x["kind"] == "zk"}):
    v = [x["r"] for x in rows if x["kind"] == "zk" and x["r"]["hot_streams"] == n]
    print(f"  {n:>6} streams: {med(r['zk_packets_per_publish'] for r in v):6.1f} per publish, idle {med(r['zk_packets_idle_per_interval'] for r in v):5.1f}  (runs: {len(v)})")
for x in [x for x in rows if x["kind"] == "zk"]:
    r = x["r"]
    print(f"    run {x['run']} {r['hot_streams']:>6} streams: p99 {med(r['server']['p99_ms']):.1f} ms")
v = [x["r"] for x in rows if x["kind"] == "full"]
if v:
    r0 = v[0]
    print(f"{r0['streams']} streams ({r0['hot_streams']} on the published service), runs: {len(v)}; medians over runs of each run's median over {len(r0['server']['p99_ms'])} publishes:")
    for name in ("server", "peer"):
        s = [r[name] for r in v]
        print(f"  {name:<6} p50 {med(med(x['p50_ms']) for x in s):7.1f} ms  p99 {med(med(x['p99_ms']) for x in s):7.1f} ms  max {med(med(x['max_ms']) for x in s):7.1f} ms"
              f"  rss/idle stream {med(x['rss_per_stream_kib'] for x in s):5.1f} KiB (after the idle wait {med(x.get('rss_per_stream_idle_kib', 0) for x in s):5.1f})  missing {sum(x['missing'] for x in s)}")
    ratios = [med(r["server"]["p99_ms"]) / med(r["peer"]["p99_ms"]) for r in v]
    print(f"  p99 server / broadcaster per run: {', '.join(f'{x:.2f}' for x in ratios)}; median {med(ratios):.2f}")
    print(f"  server goroutines per stream: {med(r['server']['goroutines_per_stream'] for r in v):.2f}; publish ack median {med(med(r['server']['ack_ms']) for r in v):.1f} ms")
PY
