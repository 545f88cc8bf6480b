#!/usr/bin/env bash
# Proxy benchmark: direct to the backend (the ceiling), nginx, Caddy and
# Sluice, measured in alternating rounds in one run on this machine, with
# wrk. Prints the medians of requests/s and p50/p99 latency, and Sluice's
# ratios to each peer.
#
#   deploy/bench/proxy.sh                      # 5 rounds x 10 s per target
#   ROUNDS=3 DURATION=5 deploy/bench/proxy.sh  # quicker
#
# Knobs (environment): ROUNDS (5), DURATION seconds per run (10), CONNS (64),
# THREADS (2), BODY bytes of the backend's answer (64), OUT (a file for the
# raw per-round results; default: in the temp dir, printed at the end),
# SLUICE_ACCESS_LOG (off; a path turns Sluice's access log on — nginx and
# Caddy run without one, so off is the fair default).
#
# Everything runs on loopback (127.0.0.1:19000-19003) and stops by itself.
# Needs: go, and nginx, caddy, wrk (installed from Debian when missing).
set -euo pipefail

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
BODY=${BODY:-64}
SLUICE_ACCESS_LOG=${SLUICE_ACCESS_LOG:-off}
BACKEND_PORT=19000 NGINX_PORT=19001 CADDY_PORT=19002 SLUICE_PORT=19003

repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/sluice-bench.XXXXXX)
OUT=${OUT:-$work/results.tsv}
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

log() { printf '%s\n' "$*" >&2; }

# --- tools -------------------------------------------------------------
missing=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v caddy >/dev/null || missing+=(caddy)
command -v wrk >/dev/null || missing+=(wrk)
if [ ${#missing[@]} -gt 0 ]; then
	log "installing from Debian: ${missing[*]}"
	SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

log "building backend, seed and sluice"
(cd "$repo" && go build -o "$work/backend" ./deploy/bench/backend \
	&& go build -o "$work/seed" ./deploy/bench/seed \
	&& go build -o "$work/sluice" ./cmd/sluice)

# --- servers -----------------------------------------------------------
"$work/backend" -addr 127.0.0.1:$BACKEND_PORT -size "$BODY" &
pids+=($!)

mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $work/nginx/body;
	proxy_temp_path $work/nginx/proxy;
	fastcgi_temp_path $work/nginx/fastcgi;
	uwsgi_temp_path $work/nginx/uwsgi;
	scgi_temp_path $work/nginx/scgi;
	upstream backend {
		server 127.0.0.1:$BACKEND_PORT;
		keepalive 256;
	}
	server {
		listen 127.0.0.1:$NGINX_PORT;
		location / {
			proxy_pass http://backend;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
		}
	}
}
CONF
"$NGINX" -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' &
pids+=($!)

cat >"$work/Caddyfile" <<CONF
{
	admin off
	auto_https off
}
http://127.0.0.1:$CADDY_PORT {
	bind 127.0.0.1
	reverse_proxy 127.0.0.1:$BACKEND_PORT
}
CONF
XDG_DATA_HOME=$work/caddy XDG_CONFIG_HOME=$work/caddy caddy run --config "$work/Caddyfile" --adapter caddyfile >"$work/caddy.log" 2>&1 &
pids+=($!)

# Sluice: one route with a rate limit far above what wrk reaches and a breaker.
cat >"$work/routes.yaml" <<CONF
routes:
  - name: bench
    match: {path_prefix: /}
    upstream: {static: ["127.0.0.1:$BACKEND_PORT"]}
    rate_limit: {rps: 100000000, burst: 100000000}
    circuit_breaker: {consecutive_failures: 50, open_for: 5s}
CONF
"$work/seed" -store "$work/sluice.db" -routes "$work/routes.yaml"
"$work/sluice" proxy --addr 127.0.0.1:$SLUICE_PORT --store "bolt://$work/sluice.db" \
	--access-log "$SLUICE_ACCESS_LOG" --log-level warn 2>"$work/sluice.log" &
pids+=($!)

wait_http() {
	for _ in $(seq 1 100); do
		if curl -fsS -o /dev/null "http://127.0.0.1:$1/" 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	log "nothing answers on port $1"; tail -5 "$work"/*.log "$work"/nginx/error.log 2>/dev/null >&2 || true
	exit 1
}
for p in $BACKEND_PORT $NGINX_PORT $CADDY_PORT $SLUICE_PORT; do wait_http "$p"; done

# --- measure -----------------------------------------------------------
declare -A port=([direct]=$BACKEND_PORT [nginx]=$NGINX_PORT [caddy]=$CADDY_PORT [sluice]=$SLUICE_PORT)
targets=(direct nginx caddy sluice)

# to_ms converts wrk's "523.00us" / "1.20ms" / "1.01s" to milliseconds.
to_ms() {
	awk -v v="$1" 'BEGIN {
		if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
		else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
		else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
		else printf "nan" }'
}

run_wrk() { # target seconds → "rps p50ms p99ms non2xx"
	local out rps p50 p99 bad
	out=$(wrk -t"$THREADS" -c"$CONNS" -d"${2}s" --latency "http://127.0.0.1:${port[$1]}/")
	rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
	p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
	p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
	bad=$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$out")
	echo "$rps $p50 $p99 ${bad:-0}"
}

log "warm-up: 2 s per target"
for t in "${targets[@]}"; do run_wrk "$t" 2 >/dev/null; done

printf 'round\ttarget\trps\tp50_ms\tp99_ms\tnon_2xx\n' >"$OUT"
for r in $(seq 1 "$ROUNDS"); do
	for t in "${targets[@]}"; do
		read -r rps p50 p99 bad < <(run_wrk "$t" "$DURATION")
		printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$t" "$rps" "$p50" "$p99" "$bad" >>"$OUT"
		log "round $r/$ROUNDS $t: $rps req/s, p50 ${p50} ms, p99 ${p99} ms, non-2xx $bad"
	done
done

# --- report ------------------------------------------------------------
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
declare -A med_rps med_p50 med_p99
for t in "${targets[@]}"; do
	med_rps[$t]=$(awk -v t="$t" '$2 == t {print $3}' "$OUT" | median)
	med_p50[$t]=$(awk -v t="$t" '$2 == t {print $4}' "$OUT" | median)
	med_p99[$t]=$(awk -v t="$t" '$2 == t {print $5}' "$OUT" | median)
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

echo
echo "Proxy benchmark: $ROUNDS rounds x ${DURATION}s, wrk -t$THREADS -c$CONNS, ${BODY}-byte answers, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
echo "nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///'), caddy $(caddy version | awk '{print $1}'), wrk $(wrk -v 2>&1 | awk 'NR==1 {print $2}'), $(go version | awk '{print $3}')"
echo
echo "| target | req/s (median) | p50 ms | p99 ms | Sluice req/s ratio | Sluice p99 ratio |"
echo "|---|---:|---:|---:|---:|---:|"
for t in "${targets[@]}"; do
	if [ "$t" = sluice ]; then rr="—"; pr="—"; else rr=$(ratio "${med_rps[sluice]}" "${med_rps[$t]}"); pr=$(ratio "${med_p99[sluice]}" "${med_p99[$t]}"); fi
	echo "| $t | ${med_rps[$t]} | ${med_p50[$t]} | ${med_p99[$t]} | $rr | $pr |"
done
echo
echo "Raw rounds: $OUT"
