#!/usr/bin/env bash
# Propagation benchmark: publish-return → OnChange callback latency for N SDK
# clients watching one service, over ZooKeeper and over the admin server's
# SSE stream, next to its ceiling in the same run: N bare go-zookeeper
# watchers on the same ZooKeeper (sluice-bench --transport raw).
#
#   deploy/bench/watch.sh                    # clients 100 and 1000, 3 runs each, 200 publishes
#   RUNS=1 CLIENTS="100" deploy/bench/watch.sh
#
# Starts a standalone ZooKeeper on 127.0.0.1:$ZK_PORT (default 22999) from
# Debian's package in a temp dir, and stops it at the end. Loopback only;
# every run is bounded by --timeout.
set -euo pipefail
RUNS=${RUNS:-3}
CLIENTS=${CLIENTS:-"100 1000"}
PUBLISHES=${PUBLISHES:-200}
ZK_PORT=${ZK_PORT:-22999}
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/sluice-watch-bench.XXXXXX)
zkpid=
cleanup() { [ -n "$zkpid" ] && kill "$zkpid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM
[ -n "${KEEP:-}" ] && trap - EXIT

cp=$("$repo/deploy/zookeeper/classpath.sh")
mkdir -p "$work/data"
cat >"$work/zoo.cfg" <<CFG
tickTime=500
dataDir=$work/data
clientPortAddress=127.0.0.1
clientPort=$ZK_PORT
admin.enableServer=false
maxClientCnxns=0
4lw.commands.whitelist=ruok
CFG
java -Xmx512m -cp "$cp" org.apache.zookeeper.server.quorum.QuorumPeerMain "$work/zoo.cfg" >"$work/zk.log" 2>&1 &
zkpid=$!
for _ in $(seq 1 60); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$ZK_PORT") 2>/dev/null; then break; fi
  sleep 0.5
done

go build -o "$work/sluice-bench" "$repo/cmd/sluice-bench"
results="$work/results.tsv"
for n in $CLIENTS; do
  for r in $(seq 1 "$RUNS"); do
    for t in raw zookeeper http; do
      out="$work/run-$t-$n-$r.json"
      "$work/sluice-bench" watch --transport "$t" --zk "127.0.0.1:$ZK_PORT" --clients "$n" --publishes "$PUBLISHES" \
        --zk-root "/bench-$t-$n-$r" --timeout 5m --json >"$out"
      python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("\t".join(str(x) for x in [r["transport"], r["clients"], r["p50_ns"]/1e6, r["p99_ns"]/1e6, r["max_ns"]/1e6, r["missing"]]))' "$out" >>"$results"
    done
  done
done

python3 - "$results" <<'PY'
import statistics, sys, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    t, n, p50, p99, mx, missing = line.split("\t")
    rows[(t, int(n))].append((float(p50), float(p99), float(mx), int(missing)))
print(f"{'transport':<10} {'clients':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'p99 / raw':>9} {'missing':>7} runs")
for (t, n) in sorted(rows, key=lambda k: (k[1], ["raw", "zookeeper", "http"].index(k[0]))):
    v = rows[(t, n)]
    med = [statistics.median(x[i] for x in v) for i in range(3)]
    raw = statistics.median(x[1] for x in rows[("raw", n)]) if ("raw", n) in rows else float("nan")
    print(f"{t:<10} {n:>7} {med[0]:>8.1f} {med[1]:>8.1f} {med[2]:>8.1f} {med[1]/raw:>9.2f} {sum(x[3] for x in v):>7} {len(v)}")
PY
