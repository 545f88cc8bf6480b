#!/usr/bin/env bash
# ensemble.sh — run a local 3-node ZooKeeper ensemble on 127.0.0.1 for demos
# and cluster tests, from the release `make zookeeper` installs in
# .tools/zookeeper (or $ZOOKEEPER_HOME; see classpath.sh).
#
#   ensemble.sh start        start the three nodes and wait for a quorum
#   ensemble.sh stop         stop them (SIGTERM, then SIGKILL after 10 s)
#   ensemble.sh status       one line per node: id, client port, pid, mode
#   ensemble.sh kill-leader  kill -9 the current leader; prints its id
#   ensemble.sh start-node N / kill-node N
#   ensemble.sh servers      the connect string (127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3)
#
# Environment: ZK_DIR (default ./sluice-data/zk-ensemble), ZK_BASE_PORT
# (default 22181: client ports 22181-22183, peer ports 22281-22283, election
# ports 22381-22383), ZK_HEAP (default 256m).
set -euo pipefail

ZK_DIR=${ZK_DIR:-./sluice-data/zk-ensemble}
BASE=${ZK_BASE_PORT:-22181}
HEAP=${ZK_HEAP:-256m}
N=3

classpath() { "$(dirname "${BASH_SOURCE[0]}")/classpath.sh"; }

client_port() { echo $((BASE + $1 - 1)); }

four() { # four-letter word to node $1
  local port; port=$(client_port "$1")
  exec 3<>"/dev/tcp/127.0.0.1/$port" 2>/dev/null || return 1
  printf '%s' "$2" >&3
  timeout 2 cat <&3 || true
  exec 3>&-
}

mode() { four "$1" srvr 2>/dev/null | awk -F': ' '/^Mode/ {print $2}'; }

pidof_node() { local f="$ZK_DIR/$1/pid"; [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"; }

configure() {
  local i=$1 d="$ZK_DIR/$1"
  mkdir -p "$d/data"
  echo "$i" >"$d/data/myid"
  {
    echo "tickTime=500"
    echo "initLimit=10"
    echo "syncLimit=5"
    echo "dataDir=$(cd "$d/data" && pwd)"
    echo "clientPortAddress=127.0.0.1"
    echo "clientPort=$(client_port "$i")"
    echo "admin.enableServer=false"
    echo "4lw.commands.whitelist=srvr,stat,ruok,mntr"
    echo "minSessionTimeout=1000"
    echo "autopurge.snapRetainCount=3"
    echo "autopurge.purgeInterval=1"
    for j in $(seq 1 $N); do
      echo "server.$j=127.0.0.1:$((BASE + 100 + j - 1)):$((BASE + 200 + j - 1))"
    done
  } >"$d/zoo.cfg"
}

start_node() {
  local i=$1 d="$ZK_DIR/$1"
  if pidof_node "$i" >/dev/null; then return 0; fi
  [ -f "$d/zoo.cfg" ] || configure "$i"
  nohup java -Xmx"$HEAP" -Dzookeeper.log.dir="$d" -Dzookeeper.root.logger=INFO,CONSOLE \
    -cp "$(classpath)" org.apache.zookeeper.server.quorum.QuorumPeerMain "$d/zoo.cfg" \
    >"$d/zookeeper.log" 2>&1 &
  echo $! >"$d/pid"
}

wait_quorum() {
  for _ in $(seq 1 120); do
    local ok=0
    for i in $(seq 1 $N); do
      case "$(mode "$i")" in leader|follower) ok=$((ok + 1)) ;; esac
    done
    [ "$ok" -ge 2 ] && return 0
    sleep 0.5
  done
  echo "ensemble.sh: no quorum after 60 s; logs in $ZK_DIR/*/zookeeper.log" >&2
  return 1
}

stop_node() {
  local i=$1 sig=${2:-TERM} pid
  pid=$(pidof_node "$i") || return 0
  kill -"$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$ZK_DIR/$i/pid"
}

case "${1:-}" in
  start)
    for i in $(seq 1 $N); do start_node "$i"; done
    wait_quorum
    echo "ensemble up: $("$0" servers)"
    ;;
  stop) for i in $(seq 1 $N); do stop_node "$i"; done ;;
  status)
    for i in $(seq 1 $N); do
      echo "node $i port $(client_port "$i") pid $(pidof_node "$i" || echo -) mode $(mode "$i" || true)"
    done
    ;;
  kill-leader)
    for i in $(seq 1 $N); do
      if [ "$(mode "$i")" = leader ]; then stop_node "$i" KILL; echo "$i"; exit 0; fi
    done
    echo "ensemble.sh: no leader found" >&2; exit 1
    ;;
  start-node) start_node "$2" ;;
  kill-node) stop_node "$2" KILL ;;
  servers)
    s=""; for i in $(seq 1 $N); do s="$s${s:+,}127.0.0.1:$(client_port "$i")"; done; echo "$s"
    ;;
  *) sed -n '2,17p' "$0"; exit 2 ;;
esac
