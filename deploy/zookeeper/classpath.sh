#!/usr/bin/env bash
# classpath.sh — print the Java class path of the ZooKeeper release the
# scripts in deploy/ run, found the way the test harness finds it:
#   1. $ZOOKEEPER_HOME (an Apache release or an install.sh folder),
#   2. .tools/zookeeper in this repository (`make zookeeper` installs 3.9.3 there),
#   3. Debian's zookeeper package (bookworm's 3.8.0 has known data-loss bugs:
#      a warning is printed).
# zookeeper-jute jars come first: see install.sh for why.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
home=${ZOOKEEPER_HOME:-}
if [ -z "$home" ] && compgen -G "$repo/.tools/zookeeper/lib/zookeeper-*.jar" >/dev/null; then
  home=$repo/.tools/zookeeper
fi
if [ -n "$home" ]; then
  cp="$home/conf"
  for j in "$home"/lib/zookeeper-jute*.jar "$home"/lib/*.jar "$home"/zookeeper-*.jar; do
    [ -e "$j" ] || continue
    case ":$cp:" in *":$j:"*) ;; *) cp="$cp:$j" ;; esac
  done
  echo "$cp"
elif [ -f /usr/share/java/zookeeper.jar ]; then
  echo "classpath.sh: WARNING: using Debian's $(basename "$(readlink -f /usr/share/java/zookeeper.jar)"), which loses acknowledged writes on leader failure; run make zookeeper" >&2
  echo "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar"
else
  echo "classpath.sh: ZooKeeper not found: run make zookeeper, or set ZOOKEEPER_HOME" >&2
  exit 2
fi
