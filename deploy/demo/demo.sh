#!/usr/bin/env bash
# demo.sh — Sluice "beyond one machine" on loopback: a 3-node ZooKeeper
# ensemble, two admin servers, one proxy and two examples/orders instances,
# with a published config and a route. Used by `make demo` / `make demo-stop`.
#
#   demo.sh start   build, start everything, publish, print what to try
#   demo.sh stop    stop every process it started (pids in the state dir)
#   demo.sh status  one line per process
#
# Environment: DEMO_DIR (default ./sluice-data/demo: pids, logs, tokens,
# ZooKeeper data), GO (default go). Ports: ZooKeeper 22181-22183, servers
# 7070 and 7071, proxy 7080, orders 9001 and 9002 — all on 127.0.0.1.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DEMO_DIR=${DEMO_DIR:-$ROOT/sluice-data/demo}
GO=${GO:-go}
BIN="$DEMO_DIR/bin"
export ZK_DIR="$DEMO_DIR/zk"
export ZK_BASE_PORT=22181
ZK_SERVERS=127.0.0.1:22181,127.0.0.1:22182,127.0.0.1:22183
STORE="zk://$ZK_SERVERS/sluice"
SERVER_A=http://127.0.0.1:7070
SERVER_B=http://127.0.0.1:7071
PROXY=http://127.0.0.1:7080

die() { echo "demo: $*" >&2; exit 1; }

# wait_http NAME URL [seconds]: until URL answers 2xx; fails at once when
# the process NAME (started by launch) has exited.
wait_http() {
  local name=$1 url=$2 n=$((${3:-30} * 10))
  for _ in $(seq 1 "$n"); do
    curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
    kill -0 "$(cat "$DEMO_DIR/$name.pid")" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# launch NAME CMD…: start a process in the background, its pid in NAME.pid.
launch() {
  local name=$1; shift
  local pidf="$DEMO_DIR/$name.pid"
  if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
    die "$name already runs (pid $(cat "$pidf")); run 'make demo-stop' first"
  fi
  nohup "$@" >"$DEMO_DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$pidf"
}

procs() { echo orders-2 orders-1 proxy server-b server-a; }

stop() {
  local p pid
  for p in $(procs); do
    [ -f "$DEMO_DIR/$p.pid" ] || continue
    pid=$(cat "$DEMO_DIR/$p.pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$DEMO_DIR/$p.pid"
  done
  if [ -d "$ZK_DIR" ]; then "$ROOT/deploy/zookeeper/ensemble.sh" stop; fi
  echo "demo stopped (logs and data kept in $DEMO_DIR; rm -rf it for a fresh start)"
}

status() {
  local p
  for p in $(procs); do
    if [ -f "$DEMO_DIR/$p.pid" ] && kill -0 "$(cat "$DEMO_DIR/$p.pid")" 2>/dev/null; then
      echo "$p pid $(cat "$DEMO_DIR/$p.pid")"
    else
      echo "$p not running"
    fi
  done
  "$ROOT/deploy/zookeeper/ensemble.sh" status
}

start() {
  command -v curl >/dev/null || die "curl is needed"
  mkdir -p "$BIN" "$DEMO_DIR/server-a" "$DEMO_DIR/server-b"
  chmod 700 "$DEMO_DIR"
  echo "building sluice and examples/orders…"
  (cd "$ROOT" && "$GO" build -o "$BIN/sluice" ./cmd/sluice && "$GO" build -o "$BIN/orders" ./examples/orders)
  # Whatever fails from here on (a command under set -e, or die), stop what started.
  trap 'rc=$?; if [ "$rc" != 0 ]; then echo "demo: start failed; logs in $DEMO_DIR; stopping what started" >&2; stop; fi' EXIT

  "$ROOT/deploy/zookeeper/ensemble.sh" start

  # Server A starts alone first, so the bootstrap token lands in its data dir.
  launch server-a "$BIN/sluice" server --addr 127.0.0.1:7070 --store "$STORE" --data-dir "$DEMO_DIR/server-a"
  wait_http server-a "$SERVER_A/readyz" 60 || die "server A not ready; see $DEMO_DIR/server-a.log"
  launch server-b "$BIN/sluice" server --addr 127.0.0.1:7071 --store "$STORE" --data-dir "$DEMO_DIR/server-b"
  wait_http server-b "$SERVER_B/readyz" 60 || die "server B not ready; see $DEMO_DIR/server-b.log"
  local tokfile="$DEMO_DIR/server-a/admin.token"
  [ -s "$tokfile" ] || die "no bootstrap token in $tokfile (was the ZooKeeper data left from an older demo? rm -rf $DEMO_DIR)"

  local cli=("$BIN/sluice" --server "$SERVER_A" --data-dir "$DEMO_DIR/server-a")
  "${cli[@]}" services create orders >/dev/null
  printf 'greeting: hello from revision 1\nmax_items: 10\n' |
    "${cli[@]}" put orders orders.yaml - -m "demo: first config" >/dev/null
  printf 'routes:\n  - name: orders\n    match: {path_prefix: /orders}\n    upstream: {service: orders}\n    strip_prefix: true\n    rate_limit: {rps: 50, burst: 50}\n' |
    "${cli[@]}" routes put - -m "demo: route /orders to the orders instances" >/dev/null

  launch proxy "$BIN/sluice" proxy --addr 127.0.0.1:7080 --store "$STORE" --metrics-addr 127.0.0.1:7090 --access-log off
  # One instance follows ZooKeeper, the other server B's event stream.
  launch orders-1 "$BIN/orders" --zk "$ZK_SERVERS" --id orders-1 --addr 127.0.0.1:9001
  local agent
  agent=$("${cli[@]}" token create --name demo-orders-agent --role agent:orders 2>/dev/null)
  SLUICE_TOKEN=$agent launch orders-2 "$BIN/orders" --server "$SERVER_B" --id orders-2 --addr 127.0.0.1:9002
  unset agent

  for i in $(seq 1 100); do
    curl -fsS --max-time 1 "$PROXY/orders/greeting" >/dev/null 2>&1 &&
      [ "$("${cli[@]}" instances orders -o json | grep -o '"orders-[12]"' | sort -u | wc -l)" -ge 2 ] && break
    [ "$i" = 100 ] && die "the proxy does not reach two orders instances; see $DEMO_DIR/*.log"
    sleep 0.2
  done
  trap - EXIT

  cat <<EOF

Sluice demo is up (everything on 127.0.0.1; logs in $DEMO_DIR/*.log):

  ZooKeeper ensemble  $ZK_SERVERS   (deploy/zookeeper/ensemble.sh status; ZK_DIR=$ZK_DIR)
  admin server A      $SERVER_A   console: $SERVER_A/  (sign in with the token in $tokfile)
  admin server B      $SERVER_B   (same store: same services, tokens, audit)
  proxy               $PROXY   metrics: http://127.0.0.1:7090/metrics
  orders-1            127.0.0.1:9001  (SDK on ZooKeeper)
  orders-2            127.0.0.1:9002  (SDK on server B's event stream)

Try (from $ROOT):

  export PATH=$BIN:\$PATH SLUICE_DATA_DIR=$DEMO_DIR/server-a
  for i in 1 2 3 4; do curl -s $PROXY/orders/whoami; done       # round robin over orders-1, orders-2
  curl -s $PROXY/orders/greeting

  # publish through server B; both instances apply it at once
  printf 'greeting: hello from revision 2\nmax_items: 20\n' | sluice --server $SERVER_B put orders orders.yaml - -m "new greeting"
  curl -s $PROXY/orders/greeting; sluice instances orders

  # a bad publish is refused by the instances, which keep the last good value
  printf 'greeting: ""\nmax_items: 0\n' | sluice put orders orders.yaml - -m "oops"
  sluice instances orders                      # shows the rejection and its reason
  sluice rollback orders --to 2 -m "undo oops"; sluice history orders; sluice diff orders 3 4

  # pin your own requests to orders-2 (everyone else stays balanced)
  sluice pin create --target orders=orders-2 --ttl 10m --proxy $PROXY/orders/whoami   # prints the token once
  curl -si -H "X-Sluice-Pin: <token>" $PROXY/orders/whoami     # always orders-2, with X-Sluice-Instance
  sluice pin list; sluice pin revoke <ID>                      # the proxy answers 403 revoked within 2 s

  # fault drill: kill the ZooKeeper leader; publishes pause for the election, nothing is lost
  ZK_DIR=$ZK_DIR deploy/zookeeper/ensemble.sh kill-leader
  sluice history orders --limit 3
  ZK_DIR=$ZK_DIR deploy/zookeeper/ensemble.sh start

Stop with: make demo-stop
EOF
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) sed -n '2,12p' "$0"; exit 2 ;;
esac
