#!/usr/bin/env bash
# install.sh — install a ZooKeeper release without the known data-loss bugs
# into a folder laid out like an Apache release:
#
#   $DEST/bin/zkServer.sh  $DEST/bin/zkCli.sh  $DEST/bin/zkEnv.sh
#   $DEST/lib/*.jar        $DEST/conf/         $DEST/VERSION
#
# Used by `make zookeeper` (DEST=.tools/zookeeper), .ci/run, the test harness
# (configsvc/zkstore/zktest finds .tools/zookeeper by itself) and make demo.
#
# Why not Debian bookworm's zookeeper package? It is 3.8.0, which has
# sync/election bugs that lose acknowledged writes when a leader dies
# (ZOOKEEPER-4643, -4646, -4785; fixed in 3.8.4 and 3.9.2). Debian trixie
# packages 3.9.3. Its jars run on bookworm's Java 17 and bookworm's dependency
# jars (netty, jetty, jackson, slf4j …), provided its own zookeeper-jute jar
# comes first on the class path: zookeeper-3.9.3.jar's manifest names
# /usr/share/java/zookeeper-jute.jar, which on bookworm is 3.8's. zkEnv.sh
# below and the harness put the jute jar first.
#
# The .deb files are fetched with `apt-get download` through a temporary
# sources list for trixie (nothing is added to the system's sources); apt
# verifies them against Debian's signed Release files, and this script checks
# the SHA-256 of the pinned version on top.
#
# Environment:
#   DEST                   install folder (default .tools/zookeeper under the repo)
#   ZOOKEEPER_DEB_VERSION  Debian version to install (default 3.9.3-1+deb13u1)
#   ZOOKEEPER_DEB_SUITE    Debian suite it comes from (default trixie)
#   FORCE=1                reinstall even when DEST already holds that version
#
# To test another version, install it elsewhere and point ZOOKEEPER_HOME at it:
#   DEST=/tmp/zk-other ZOOKEEPER_DEB_VERSION=<v> ZOOKEEPER_DEB_SUITE=<suite> deploy/zookeeper/install.sh
#   ZOOKEEPER_HOME=/tmp/zk-other make test
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
DEST=${DEST:-$repo/.tools/zookeeper}
VERSION=${ZOOKEEPER_DEB_VERSION:-3.9.3-1+deb13u1}
SUITE=${ZOOKEEPER_DEB_SUITE:-trixie}
# SHA-256 of the pinned packages (from trixie's Packages index).
declare -A PINNED=(
  [libzookeeper-java_3.9.3-1+deb13u1_all.deb]=66abddcc0caa2c656fc1ad9c073f5c4b22f68c1ef80848922857ddb9a827d348
  [zookeeper_3.9.3-1+deb13u1_all.deb]=85fbaac7c9ee386e3c278145a95ecb13c2c7c9829468c629a4798e8ec1418323
)
# Debian packages that hold the jars zookeeper.jar's manifest names, plus a
# Java runtime. slf4j-simple (in libslf4j-java) is the logging binding.
DEPS=(default-jre-headless libcommons-cli-java libcommons-io-java libdropwizard-metrics-java
  libfindbugs-annotations-java libjackson2-annotations-java libjackson2-core-java libjackson2-databind-java
  libjetty9-extra-java libjetty9-java libnetty-java libslf4j-java libsnappy-java)

say() { echo "zookeeper: $*" >&2; }

if [ -z "${FORCE:-}" ] && [ -f "$DEST/VERSION" ] && [ "$(cat "$DEST/VERSION")" = "$VERSION" ]; then
  exit 0
fi

SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo

missing=()
for p in "${DEPS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing dependencies from Debian: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/apt/sources" "$work/apt/prefs" "$work/debs"
cat >"$work/apt/sources/$SUITE.sources" <<EOF
Types: deb
URIs: http://deb.debian.org/debian
Suites: $SUITE
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
apt_opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$work/apt/sources"
  -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache"
  -o Dir::Etc::Preferences=/dev/null -o "Dir::Etc::PreferencesParts=$work/apt/prefs"
  -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
say "fetching ZooKeeper $VERSION from Debian $SUITE"
apt-get "${apt_opts[@]}" update -qq >/dev/null
(cd "$work/debs" && apt-get "${apt_opts[@]}" download -qq "libzookeeper-java=$VERSION" "zookeeper=$VERSION" >/dev/null)
for deb in "$work"/debs/*.deb; do
  name=$(basename "$deb")
  name=${name//%2b/+}
  if [ -n "${PINNED[$name]:-}" ]; then
    got=$(sha256sum "$deb" | cut -d' ' -f1)
    [ "$got" = "${PINNED[$name]}" ] || { say "$name: SHA-256 $got, want ${PINNED[$name]}"; exit 1; }
  fi
  dpkg-deb -x "$deb" "$work/root"
done

upstream=${VERSION%%-*}
jar="$work/root/usr/share/java/zookeeper-$upstream.jar"
jute="$work/root/usr/share/java/zookeeper-jute-$upstream.jar"
[ -f "$jar" ] && [ -f "$jute" ] || { say "the packages hold no zookeeper-$upstream.jar / zookeeper-jute-$upstream.jar"; exit 1; }

stage="$DEST.new"
rm -rf "$stage"
mkdir -p "$stage/bin" "$stage/lib" "$stage/conf"
cp "$jar" "$jute" "$stage/lib/"
# The dependency jars the manifest names (and the logging binding), linked
# from bookworm's packages so that lib/ is complete like a release's.
for dep in $(unzip -p "$jar" META-INF/MANIFEST.MF | tr -d '\r' | sed -n '/^Class-Path:/,/^[A-Z][A-Za-z-]*:/p' |
  sed -e 's/^Class-Path: //' -e '/^[A-Z][A-Za-z-]*:/d' -e 's/^ //' | tr -d '\n' | tr ' ' '\n') /usr/share/java/slf4j-simple.jar; do
  case "$dep" in */zookeeper-jute.jar | "") continue ;; esac
  [ -e "$dep" ] && ln -s "$dep" "$stage/lib/$(basename "$dep")"
done
cp "$work/root/usr/share/zookeeper/bin/zkServer.sh" "$work/root/usr/share/zookeeper/bin/zkCli.sh" "$stage/bin/"
cat >"$stage/bin/zkEnv.sh" <<'EOF'
# zkEnv.sh — environment for zkServer.sh and zkCli.sh of this folder
# (written by deploy/zookeeper/install.sh). The jute jar comes first on the
# class path: zookeeper.jar's manifest would otherwise pull in an older one.
ZOOKEEPER_PREFIX="$(cd "$ZOOBINDIR/.." && pwd)"
ZOOMAIN=org.apache.zookeeper.server.quorum.QuorumPeerMain
ZOOCFGDIR=${ZOOCFGDIR:-$ZOOKEEPER_PREFIX/conf}
ZOOCFG=${ZOOCFG:-zoo.cfg}
case "$ZOOCFG" in /*) ;; *) ZOOCFG="$ZOOCFGDIR/$ZOOCFG" ;; esac
ZOO_LOG_DIR=${ZOO_LOG_DIR:-$ZOOKEEPER_PREFIX/logs}
mkdir -p "$ZOO_LOG_DIR"
JMXDISABLE=${JMXDISABLE:-true}
JAVA=${JAVA:-$(command -v java)}
[ -n "$JAVA_HOME" ] && JAVA="$JAVA_HOME/bin/java"
CLASSPATH="$ZOOCFGDIR"
for j in "$ZOOKEEPER_PREFIX"/lib/zookeeper-jute*.jar "$ZOOKEEPER_PREFIX"/lib/*.jar; do
  case ":$CLASSPATH:" in *":$j:"*) ;; *) CLASSPATH="$CLASSPATH:$j" ;; esac
done
export CLASSPATH
SERVER_JVMFLAGS="${SERVER_JVMFLAGS:-} -Dorg.slf4j.simpleLogger.logFile=$ZOO_LOG_DIR/zookeeper.log"
EOF
cat >"$stage/conf/zoo.cfg" <<'EOF'
# A standalone node on loopback for trying things out; deploy/zookeeper has
# the production example (zoo.cfg.example) and the 3-node ensemble script.
tickTime=2000
dataDir=/tmp/sluice-zookeeper
clientPortAddress=127.0.0.1
clientPort=2181
admin.enableServer=false
4lw.commands.whitelist=srvr,stat,ruok,mntr
EOF
chmod +x "$stage/bin/"*.sh
echo "$VERSION" >"$stage/VERSION"
rm -rf "$DEST"
mv "$stage" "$DEST"
say "installed ZooKeeper $upstream in $DEST"
