#!/usr/bin/env bash
# Store benchmarks with their ceilings, in one run on this machine:
#   bbolt:     boltstore Publish / reads   vs  BenchmarkRawUpdate (a bare fsynced bbolt update)
#   ZooKeeper: zkstore Publish / reads     vs  BenchmarkStore/RawMulti (a bare create+set Multi, same client)
# Each benchmark runs COUNT times (default 5); the script prints the median
# ns/op, its ratio to the ceiling's median, and the spread of the runs (the
# fastest and slowest, in % of the median). Needs ZooKeeper (make zookeeper).
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
go test -run '^$' -bench . -benchmem -count "$COUNT" ./configsvc/boltstore >"$raw"
go test -run '^$' -bench BenchmarkStore -benchmem -count "$COUNT" -timeout 20m ./configsvc/zkstore >>"$raw"

printf "%-44s %14s %10s %14s %s\n" benchmark "median ns/op" "x ceiling" "spread" runs
# median ns/op per benchmark name, then ratios to the ceiling of its store.
awk '
/^Benchmark/ {
	name=$1; sub(/-[0-9]+$/, "", name)
	for (i = 2; i <= NF; i++) if ($(i+1) == "ns/op") { v[name] = v[name] " " $i; n[name]++ }
}
function median(s,   a, k, m, i, j, t) {
	k = split(s, a, " ")
	for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	lo = a[1]; hi = a[k]
	return (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
}
END {
	for (b in v) { med[b] = median(v[b]); low[b] = lo; high[b] = hi }
	boltc = med["BenchmarkRawUpdate"]; zkc = med["BenchmarkStore/RawMulti"]
	for (b in med) {
		c = (b ~ /^BenchmarkStore\//) ? zkc : boltc
		printf "%-44s %14.0f %10.2f %6.0f%%..+%.0f%% %d\n", b, med[b], (c > 0 ? med[b] / c : 0),
			100 * (low[b] - med[b]) / med[b], 100 * (high[b] - med[b]) / med[b], n[b]
	}
}' "$raw" | sort
