#!/usr/bin/env bash
# Proxy benchmark: direct to the backend (the ceiling), nginx, Caddy, a bare
# fasthttp forwarder (the most a fasthttp data plane reaches: issue 16's
# calibration), an event-loop forwarder in Go (deploy/bench/evproxy: the
# most a Go data plane without a goroutine per connection reaches) and
# Sluice (its default engine, loop; its fast engine; its net/http engine for
# reference), in alternating rounds in one run on this machine, with wrk.
# Each scenario (connections, response size, POST body, TLS) is run against
# every target in every round. Prints, per scenario, the medians of
# requests/s, of wrk's p50/p99 latency and of the proxy's CPU time per
# request, and Sluice's ratios to nginx, Caddy and the bare forwarder.
#
# nginx and Caddy do the same work as Sluice: they pass the client's Host
# and add X-Forwarded-For, -Host and -Proto (Caddy does by default; nginx
# is told to with proxy_set_header). The bare forwarder adds nothing; the
# event-loop one adds the three X-Forwarded-* as nginx does.
#
#   deploy/bench/proxy.sh                        # 3 rounds x 5 s, every scenario
#   ROUNDS=5 DURATION=10 deploy/bench/proxy.sh   # steadier
#   SCENARIOS="small/32 small/256" deploy/bench/proxy.sh
#
# Scenarios (SCENARIOS, space-separated NAME/CONNECTIONS): small (64-byte
# answers), 4k (4 KiB), 64k (64 KiB), post16k (POST with a 16 KiB body,
# 64-byte answer), tls (64-byte answers over HTTPS: nginx, Caddy and Sluice
# serve the same self-signed certificate; wrk speaks HTTP/1.1 over it).
# Default: small/32 small/256 4k/256 64k/256 post16k/256 tls/32 tls/256.
#
# Other knobs (environment): SLUICE_PEER (the path of another sluice
# binary, e.g. built from main: run as one more target, "peer", on its
# default engine in the same rounds, for an A/B of a change), ROUNDS (3), DURATION
# seconds per run (5),
# THREADS (2), OUT (a file for the raw per-round results; default: in the
# temp dir, printed at the end), SLUICE_ACCESS_LOG (off; nginx and Caddy run
# without one), PROFILE (a path: after the rounds, a 10 s CPU profile of
# Sluice's default engine under wrk -c256 on "small" is written there and its
# top functions printed).
#
# Every Sluice route has a rate limit far above what wrk reaches and a
# circuit breaker. Everything runs on loopback (127.0.0.1:19000-19020) and
# stops by itself. Needs: go, openssl, and nginx, caddy, wrk (installed from
# Debian when missing).
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
THREADS=${THREADS:-2}
SCENARIOS=${SCENARIOS:-"small/32 small/256 4k/256 64k/256 post16k/256 tls/32 tls/256"}
SLUICE_ACCESS_LOG=${SLUICE_ACCESS_LOG:-off}
PROFILE=${PROFILE:-}
BACKEND_PORT=19000
declare -A port=([direct]=19000 [nginx]=19001 [caddy]=19002 [sluice]=19003 [sluice-std]=19004 [fasthttp]=19005 [evloop]=19007 [sluice-fast]=19009
	[nginx-tls]=19011 [caddy-tls]=19012 [sluice-tls]=19013 [sluice-std-tls]=19014)
SLUICE_PEER=${SLUICE_PEER:-}
[ -z "$SLUICE_PEER" ] || port[peer]=19006
DEBUG_PORT=19020

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
command -v openssl >/dev/null || missing+=(openssl)
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
	&& go build -o "$work/bareproxy" ./deploy/bench/bareproxy \
	&& go build -o "$work/evproxy" ./deploy/bench/evproxy \
	&& go build -o "$work/sluice" ./cmd/sluice)

# One self-signed certificate for every TLS listener.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
	-addext subjectAltName=IP:127.0.0.1 -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

# --- servers -----------------------------------------------------------
declare -A pid_of # target → the pids whose CPU time is the target's
"$work/backend" -addr 127.0.0.1:$BACKEND_PORT &
pids+=($!)
pid_of[direct]=$!
"$work/bareproxy" -addr "127.0.0.1:${port[fasthttp]}" -upstream "127.0.0.1:$BACKEND_PORT" &
pids+=($!)
pid_of[fasthttp]=$!
"$work/evproxy" -addr "127.0.0.1:${port[evloop]}" -upstream "127.0.0.1:$BACKEND_PORT" &
pids+=($!)
pid_of[evloop]=$!

mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $work/nginx/body;
	client_body_buffer_size 64k;
	proxy_temp_path $work/nginx/proxy;
	fastcgi_temp_path $work/nginx/fastcgi;
	uwsgi_temp_path $work/nginx/uwsgi;
	scgi_temp_path $work/nginx/scgi;
	upstream backend {
		server 127.0.0.1:$BACKEND_PORT;
		keepalive 256;
	}
	server {
		listen 127.0.0.1:${port[nginx]};
		listen 127.0.0.1:${port[nginx-tls]} ssl;
		ssl_certificate $work/cert.pem;
		ssl_certificate_key $work/key.pem;
		location / {
			proxy_pass http://backend;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header Host \$http_host;
			proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
			proxy_set_header X-Forwarded-Host \$http_host;
			proxy_set_header X-Forwarded-Proto \$scheme;
		}
	}
}
CONF
"$NGINX" -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' &
pids+=($!)
pid_of[nginx]=$! # and its workers, found when measuring
pid_of[nginx-tls]=$!

cat >"$work/Caddyfile" <<CONF
{
	admin off
	auto_https off
}
http://127.0.0.1:${port[caddy]} {
	bind 127.0.0.1
	reverse_proxy 127.0.0.1:$BACKEND_PORT
}
https://127.0.0.1:${port[caddy-tls]} {
	bind 127.0.0.1
	tls $work/cert.pem $work/key.pem
	reverse_proxy 127.0.0.1:$BACKEND_PORT
}
CONF
XDG_DATA_HOME=$work/caddy XDG_CONFIG_HOME=$work/caddy caddy run --config "$work/Caddyfile" --adapter caddyfile >"$work/caddy.log" 2>&1 &
pids+=($!)
pid_of[caddy]=$!
pid_of[caddy-tls]=$!

# Sluice: one route with a rate limit far above what wrk reaches and a
# breaker. A bbolt file is opened by one process, so each proxy has its
# own copy.
cat >"$work/routes.yaml" <<CONF
routes:
  - name: bench
    match: {path_prefix: /}
    upstream: {static: ["127.0.0.1:$BACKEND_PORT"]}
    rate_limit: {rps: 100000000, burst: 100000000}
    circuit_breaker: {consecutive_failures: 50, open_for: 5s}
CONF
"$work/seed" -store "$work/seed.db" -routes "$work/routes.yaml"
start_sluice() { # name engine [flags…]
	local name=$1 engine=$2
	shift 2
	cp "$work/seed.db" "$work/$name.db"
	"$work/sluice" proxy --addr "127.0.0.1:${port[$name]}" --store "bolt://$work/$name.db" --engine "$engine" \
		--access-log "$SLUICE_ACCESS_LOG" --log-level warn "$@" 2>"$work/$name.log" &
	pids+=($!)
	pid_of[$name]=$!
}
start_sluice sluice loop --debug-addr "127.0.0.1:$DEBUG_PORT"
start_sluice sluice-fast fast
if [ -n "$SLUICE_PEER" ]; then
	cp "$work/seed.db" "$work/peer.db"
	"$SLUICE_PEER" proxy --addr "127.0.0.1:${port[peer]}" --store "bolt://$work/peer.db" \
		--access-log "$SLUICE_ACCESS_LOG" --log-level warn 2>"$work/peer.log" &
	pids+=($!)
	pid_of[peer]=$!
fi
start_sluice sluice-std std
start_sluice sluice-tls loop --tls-cert "$work/cert.pem" --tls-key "$work/key.pem"
start_sluice sluice-std-tls std --tls-cert "$work/cert.pem" --tls-key "$work/key.pem"

url() { # target path → URL
	case $1 in
	*-tls) echo "https://127.0.0.1:${port[$1]}$2" ;;
	*) echo "http://127.0.0.1:${port[$1]}$2" ;;
	esac
}
wait_http() {
	for _ in $(seq 1 100); do
		if curl -kfsS -o /dev/null "$(url "$1" /)" 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	log "nothing answers for $1"; tail -5 "$work"/*.log "$work"/nginx/error.log 2>/dev/null >&2 || true
	exit 1
}
for t in "${!port[@]}"; do wait_http "$t"; done

# --- measure -----------------------------------------------------------
printf 'wrk.method = "POST"\nwrk.body = string.rep("x", 16384)\nwrk.headers["Content-Type"] = "application/octet-stream"\n' >"$work/post.lua"

# to_ms converts wrk's "523.00us" / "1.20ms" / "1.01s" to milliseconds.
to_ms() {
	awk -v v="$1" 'BEGIN {
		if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
		else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
		else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
		else printf "nan" }'
}

# targets_of scenario → the targets it runs against
targets_of() {
	case $1 in
	tls) echo nginx-tls caddy-tls sluice-tls sluice-std-tls ;;
	*) echo direct nginx caddy fasthttp evloop sluice sluice-fast sluice-std ${SLUICE_PEER:+peer} ;;
	esac
}

# cpu_ticks pid… → the CPU time (user + system, in clock ticks) the
# processes and their children threads used so far; nginx's workers are
# the master's children.
cpu_ticks() {
	local all=() p
	for p in "$@"; do all+=("$p" $(pgrep -P "$p" || true)); done
	for p in "${all[@]}"; do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || true; done | awk '{s += $1} END {print s + 0}'
}
TICK=$(getconf CLK_TCK)

run_wrk() { # target scenario conns seconds → "rps p50ms p99ms non2xx errors cpu_us_per_request"
	local target=$1 scen=$2 conns=$3 secs=$4 path=/ script=() out rps p50 p99 bad errs cpu
	case $scen in
	4k) path=/4k ;;
	64k) path=/64k ;;
	post16k) script=(-s "$work/post.lua") ;;
	esac
	local t0 t1
	t0=$(cpu_ticks ${pid_of[$target]})
	out=$(timeout $((secs + 30)) wrk -t"$THREADS" -c"$conns" -d"${secs}s" --latency "${script[@]}" "$(url "$target" "$path")")
	t1=$(cpu_ticks ${pid_of[$target]})
	rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
	p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
	p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
	bad=$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$out")
	errs=$(awk '/Socket errors:/ {gsub(",", ""); print $4 + $6 + $8 + $10}' <<<"$out")
	# CPU µs per request of the proxy (of the backend for "direct").
	cpu=$(awk -v d=$((t1 - t0)) -v hz="$TICK" -v r="$rps" -v s="$secs" 'BEGIN { if (r > 0) printf "%.2f", d / hz * 1e6 / (r * s); else print "nan" }')
	echo "$rps $p50 $p99 ${bad:-0} ${errs:-0} $cpu"
}

log "warm-up: 2 s per target"
for t in "${!port[@]}"; do run_wrk "$t" small 32 2 >/dev/null; done

printf 'round\tscenario\tconns\ttarget\trps\tp50_ms\tp99_ms\tnon_2xx\tsocket_errors\tcpu_us_per_req\n' >"$OUT"
for r in $(seq 1 "$ROUNDS"); do
	for sc in $SCENARIOS; do
		scen=${sc%/*} conns=${sc#*/}
		for t in $(targets_of "$scen"); do
			read -r rps p50 p99 bad errs cpu < <(run_wrk "$t" "$scen" "$conns" "$DURATION")
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$scen" "$conns" "$t" "$rps" "$p50" "$p99" "$bad" "$errs" "$cpu" >>"$OUT"
			log "round $r/$ROUNDS $scen -c$conns $t: $rps req/s, p50 ${p50} ms, p99 ${p99} ms, non-2xx $bad, socket errors $errs, CPU $cpu µs/request"
		done
	done
done

# --- report ------------------------------------------------------------
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
col() { awk -v s="$1" -v c="$2" -v t="$3" -v k="$4" -F'\t' '$2 == s && $3 == c && $4 == t {print $k}' "$OUT" | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

echo
echo "Proxy benchmark: $ROUNDS rounds x ${DURATION}s, wrk -t$THREADS, $(nproc) cores, load average at the end $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///'), caddy $(caddy version | awk '{print $1}'), wrk $(wrk -v 2>&1 | awk 'NR==1 {print $2}'), $(go version | awk '{print $3}')"
echo
echo "CPU µs/req: the proxy's CPU time (user + system, all its threads and workers) per request; for direct, the backend's."
echo
echo "| scenario | conns | target | req/s | p50 ms | p99 ms | CPU µs/req | non-2xx | socket errors |"
echo "|---|---:|---|---:|---:|---:|---:|---:|---:|"
for sc in $SCENARIOS; do
	scen=${sc%/*} conns=${sc#*/}
	for t in $(targets_of "$scen"); do
		echo "| $scen | $conns | $t | $(col "$scen" "$conns" "$t" 5) | $(col "$scen" "$conns" "$t" 6) | $(col "$scen" "$conns" "$t" 7) | $(col "$scen" "$conns" "$t" 10) | $(col "$scen" "$conns" "$t" 8) | $(col "$scen" "$conns" "$t" 9) |"
	done
done
echo
echo "Sluice (its default engine, loop; over TLS the fast engine serves) against its peers, medians of $ROUNDS rounds (target: req/s ≥ 0.9× nginx, p99 ≤ 1.2× nginx):"
echo
echo "| scenario | conns | req/s ÷ nginx | p99 ÷ nginx | CPU/req ÷ nginx | req/s ÷ Caddy | p99 ÷ Caddy | fast engine req/s ÷ nginx | fast engine p99 ÷ nginx | std engine req/s ÷ nginx | bare fasthttp req/s ÷ nginx | bare event loop req/s ÷ nginx |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for sc in $SCENARIOS; do
	scen=${sc%/*} conns=${sc#*/} sfx=
	[ "$scen" = tls ] && sfx=-tls
	s_rps=$(col "$scen" "$conns" "sluice$sfx" 5) s_p99=$(col "$scen" "$conns" "sluice$sfx" 7)
	n_rps=$(col "$scen" "$conns" "nginx$sfx" 5) n_p99=$(col "$scen" "$conns" "nginx$sfx" 7)
	c_rps=$(col "$scen" "$conns" "caddy$sfx" 5) c_p99=$(col "$scen" "$conns" "caddy$sfx" 7)
	s_cpu=$(col "$scen" "$conns" "sluice$sfx" 10) n_cpu=$(col "$scen" "$conns" "nginx$sfx" 10)
	ff_rps=n/a ff_p99=n/a fn_rps=n/a en_rps=n/a
	if [ "$scen" != tls ]; then
		ff_rps=$(ratio "$(col "$scen" "$conns" sluice-fast 5)" "$n_rps")
		ff_p99=$(ratio "$(col "$scen" "$conns" sluice-fast 7)" "$n_p99")
		fn_rps=$(ratio "$(col "$scen" "$conns" fasthttp 5)" "$n_rps")
		en_rps=$(ratio "$(col "$scen" "$conns" evloop 5)" "$n_rps")
	fi
	std_rps=$(col "$scen" "$conns" "sluice-std$sfx" 5)
	echo "| $scen | $conns | **$(ratio "$s_rps" "$n_rps")** | **$(ratio "$s_p99" "$n_p99")** | $(ratio "$s_cpu" "$n_cpu") | $(ratio "$s_rps" "$c_rps") | $(ratio "$s_p99" "$c_p99") | $ff_rps | $ff_p99 | $(ratio "$std_rps" "$n_rps") | $fn_rps | $en_rps |"
done
if [ -n "$SLUICE_PEER" ]; then
	echo
	echo "Sluice (this tree) ÷ peer ($SLUICE_PEER), medians of $ROUNDS rounds:"
	echo
	echo "| scenario | conns | req/s | CPU/req |"
	echo "|---|---:|---:|---:|"
	for sc in $SCENARIOS; do
		scen=${sc%/*} conns=${sc#*/}
		[ "$scen" = tls ] && continue
		echo "| $scen | $conns | $(ratio "$(col "$scen" "$conns" sluice 5)" "$(col "$scen" "$conns" peer 5)") | $(ratio "$(col "$scen" "$conns" sluice 10)" "$(col "$scen" "$conns" peer 10)") |"
	done
fi
echo
echo "Raw rounds: $OUT"

if [ -n "$PROFILE" ]; then
	log "profiling Sluice's default engine for 10 s under wrk -c256 (small)"
	(timeout 40 wrk -t"$THREADS" -c256 -d14s "$(url sluice /)" >/dev/null &)
	sleep 2
	curl -fsS -o "$PROFILE" "http://127.0.0.1:$DEBUG_PORT/debug/pprof/profile?seconds=10"
	sleep 3
	echo
	echo "CPU profile ($PROFILE), top functions by cumulative time:"
	go tool pprof -top -cum -nodecount 40 "$work/sluice" "$PROFILE" 2>/dev/null | sed -n '1,50p'
fi
