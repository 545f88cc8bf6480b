# Sluice — the targets a newcomer guesses.
GO        ?= go
PKGS      ?= ./...
BIN       ?= bin/sluice
# -p 1: one test binary at a time. The suites start JVMs, browsers and multi-process clusters and assert
# timing bounds (e.g. convergence within 2 s after an outage); on 2 cores, overlapping them only adds noise.
GOFLAGS_TEST ?= -race -count=1 -p 1 -timeout 25m

.PHONY: run build test unit bench lint zookeeper chromium prometheus fuzz clean

## run: start Sluice on its embedded bbolt default (admin server + proxy).
run:
	$(GO) run ./cmd/sluice server --proxy-addr 127.0.0.1:7080

## build: build the sluice binary into bin/.
build:
	$(GO) build -o $(BIN) ./cmd/sluice

## test: everything, against a real ZooKeeper, headless Chromium, Prometheus/promtool and
## systemd-analyze (installed from Debian when missing); nothing skips. The cluster tests run their
## full 60 s leader churn.
test: zookeeper chromium prometheus
	SLUICE_REQUIRE_ZOOKEEPER=1 SLUICE_REQUIRE_BROWSER=1 SLUICE_REQUIRE_TOOLS=1 \
	  SLUICE_CLUSTER_CHURN=$${SLUICE_CLUSTER_CHURN:-60s} \
	  $(GO) test $(GOFLAGS_TEST) $(PKGS)

## unit: the tests that need no ZooKeeper (ZooKeeper tests skip).
unit:
	SLUICE_SKIP_ZOOKEEPER=1 $(GO) test -race -count=1 $(PKGS)

## bench: store benchmarks vs their ceilings, SDK Load, propagation vs bare ZooKeeper watchers, proxy vs
## nginx/Caddy; see docs/benchmarks.md.
bench: zookeeper
	deploy/bench/store.sh
	$(GO) test -run '^$$' -bench 'Load|ServeHTTP' -benchmem -count 5 ./sdk ./router
	deploy/bench/watch.sh
	deploy/bench/proxy.sh

## lint: gofmt and go vet.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## fuzz: run each fuzz target for a short while.
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzValidateServiceName -fuzztime 20s ./configsvc
	$(GO) test -run '^$$' -fuzz FuzzValidateFileName -fuzztime 20s ./configsvc
	$(GO) test -run '^$$' -fuzz '^FuzzValidate$$' -fuzztime 20s ./configsvc/format
	$(GO) test -run '^$$' -fuzz '^FuzzYAMLBudget$$' -fuzztime 20s ./configsvc/format
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 20s ./router/routesfile

## zookeeper: install ZooKeeper 3.9.3 (Debian trixie's build, no known data-loss bugs) into .tools/zookeeper
## unless ZOOKEEPER_HOME points at another release; see deploy/zookeeper/README.md.
zookeeper:
	@if [ -n "$$ZOOKEEPER_HOME" ]; then echo "zookeeper: using ZOOKEEPER_HOME=$$ZOOKEEPER_HOME"; \
	else deploy/zookeeper/install.sh; fi

## chromium: install Debian's Chromium (for the console's browser tests) when missing.
chromium:
	@if [ -n "$$SLUICE_CHROMIUM" ] || command -v chromium >/dev/null; then :; \
	else echo "installing Chromium (Debian package chromium)"; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; fi

## prometheus: install Debian's prometheus 2.42 (promtool and prometheus, for the rule tests in
## ./deploy; see deploy/prometheus/README.md) and systemd (systemd-analyze, for the unit-file tests)
## when missing. The tests start their own Prometheus on a random loopback port; on a host where
## systemd runs, the package also enables a prometheus service on :9090
## (`sudo systemctl disable --now prometheus` stops it).
PROMETHEUS_VERSION ?= 2.42
prometheus:
	@if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null || ! command -v systemd-analyze >/dev/null; then \
	  echo "installing prometheus $(PROMETHEUS_VERSION) and systemd (Debian packages)"; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
	    "prometheus=$(PROMETHEUS_VERSION).*" systemd >/dev/null; fi
	@v=$$(promtool --version 2>&1 | head -1); case "$$v" in *"version $(PROMETHEUS_VERSION)."*) echo "prometheus: $$v";; \
	  *) echo "prometheus: want $(PROMETHEUS_VERSION).x, found: $$v"; exit 1;; esac

clean:
	rm -rf bin bench.out

.PHONY: demo demo-stop test-cluster

## demo: a 3-node ZooKeeper ensemble, two servers, a proxy and two examples/orders instances on loopback.
demo: zookeeper
	deploy/demo/demo.sh start

## demo-stop: stop everything `make demo` started (state in ./sluice-data/demo).
demo-stop:
	deploy/demo/demo.sh stop

## test-cluster: real processes on loopback (ensemble, servers, proxies, SDKs); SLUICE_CLUSTER_CHURN=60s as issue 7 asks.
test-cluster: zookeeper
	SLUICE_REQUIRE_ZOOKEEPER=1 SLUICE_CLUSTER_CHURN=$${SLUICE_CLUSTER_CHURN:-60s} $(GO) test -race -count=1 -timeout 15m -v ./deploy/clustertest/
