#!/usr/bin/env bash
# Store benchmarks with their ceilings, in one run on this machine:
#   bbolt:     boltstore Publish / reads   vs  BenchmarkRawUpdate (a bare fsynced bbolt update)
#   ZooKeeper: zkstore Publish / reads     vs  BenchmarkStore/RawMulti (a bare create+set Multi, same client)
# The script runs COUNT rounds (default 5); each round runs every benchmark
# once, the ceiling right beside what it bounds, so that a round's ratio
# compares two measurements taken under the same load. It prints, per
# benchmark, the median ns/op, the median of the rounds' ratios to the
# ceiling, and the lowest and highest of those ratios (the spread).
# Needs ZooKeeper (make zookeeper).
#
#   deploy/bench/store.sh            # COUNT=5
#   COUNT=3 deploy/bench/store.sh
#   RAW=/tmp/store.txt deploy/bench/store.sh   # also keep the raw go test output
set -euo pipefail
COUNT=${COUNT:-5}
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
raw=$(mktemp /tmp/sluice-store-bench.XXXXXX)
trap 'if [ -n "${RAW:-}" ]; then cp "$raw" "$RAW"; fi; rm -f "$raw"' EXIT

export SLUICE_REQUIRE_ZOOKEEPER=1
go test -c -o "$raw.bolt" ./configsvc/boltstore
go test -c -o "$raw.zk" ./configsvc/zkstore
trap 'if [ -n "${RAW:-}" ]; then cp "$raw" "$RAW"; fi; rm -f "$raw" "$raw.bolt" "$raw.zk"' EXIT
for round in $(seq "$COUNT"); do
	(cd configsvc/boltstore && "$raw.bolt" -test.run '^$' -test.bench . -test.benchmem) | sed "s/^/$round /" >>"$raw"
	(cd configsvc/zkstore && "$raw.zk" -test.run '^$' -test.bench BenchmarkStore -test.benchmem -test.timeout 20m) | sed "s/^/$round /" >>"$raw"
done

printf "%-44s %14s %10s %14s %s\n" benchmark "median ns/op" "x ceiling" "ratio range" rounds
# Per benchmark: the median ns/op; per round, the ratio to the ceiling of
# its store measured in that round; then the median and range of those.
awk '
function sort(a, k,   i, j, t) {
	for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
}
function median(a, k) { return (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2 }
$2 ~ /^Benchmark/ {
	round = $1; name = $2; sub(/-[0-9]+$/, "", name)
	for (i = 3; i <= NF; i++) if ($(i+1) == "ns/op") ns[name, round] = $i
	names[name] = 1; rounds[round] = 1
}
END {
	for (b in names) {
		ceiling = (b ~ /^BenchmarkStore\//) ? "BenchmarkStore/RawMulti" : "BenchmarkRawUpdate"
		k = 0; r = 0
		for (round in rounds) {
			if (!((b, round) in ns)) continue
			v[++k] = ns[b, round]
			if ((ceiling, round) in ns) q[++r] = ns[b, round] / ns[ceiling, round]
		}
		sort(v, k); sort(q, r)
		printf "%-44s %14.0f %10.2f %6.2f..%-6.2f %d\n", b, median(v, k), (r ? median(q, r) : 0), (r ? q[1] : 0), (r ? q[r] : 0), k
		delete v; delete q
	}
}' "$raw" | sort
