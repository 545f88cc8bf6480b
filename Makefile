# Sluice — the targets a newcomer guesses.
GO        ?= go
PKGS      ?= ./...
BIN       ?= bin/sluice
# -p 1: one test binary at a time. The suites start JVMs, browsers and multi-process clusters and assert
# timing bounds (e.g. convergence within 2 s after an outage); on 2 cores, overlapping them only adds noise.
GOFLAGS_TEST ?= -race -count=1 -p 1 -timeout 25m

.PHONY: run build test unit bench lint zookeeper chromium fuzz clean

## run: start Sluice on its embedded bbolt default (admin server + proxy).
run:
	$(GO) run ./cmd/sluice server --proxy-addr 127.0.0.1:7080

## build: build the sluice binary into bin/.
build:
	$(GO) build -o $(BIN) ./cmd/sluice

## test: everything, against a real ZooKeeper and headless Chromium (both installed from Debian when
## missing); nothing skips. The cluster tests run their full 60 s leader churn.
test: zookeeper chromium
	SLUICE_REQUIRE_ZOOKEEPER=1 SLUICE_REQUIRE_BROWSER=1 SLUICE_CLUSTER_CHURN=$${SLUICE_CLUSTER_CHURN:-60s} \
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

## zookeeper: install ZooKeeper from Debian's package when it is missing.
zookeeper:
	@if [ -n "$$ZOOKEEPER_HOME" ] || [ -x /usr/share/zookeeper/bin/zkServer.sh ]; then :; \
	else echo "installing ZooKeeper (Debian package zookeeper)"; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq zookeeper >/dev/null; fi

## chromium: install Debian's Chromium (for the console's browser tests) when missing.
chromium:
	@if [ -n "$$SLUICE_CHROMIUM" ] || command -v chromium >/dev/null; then :; \
	else echo "installing Chromium (Debian package chromium)"; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; fi

clean:
	rm -rf bin bench.out

.PHONY: demo demo-stop test-cluster

## demo: a 3-node ZooKeeper ensemble, two servers, a proxy and two examples/orders instances on loopback.
demo:
	deploy/demo/demo.sh start

## demo-stop: stop everything `make demo` started (state in ./sluice-data/demo).
demo-stop:
	deploy/demo/demo.sh stop

## test-cluster: real processes on loopback (ensemble, servers, proxies, SDKs); SLUICE_CLUSTER_CHURN=60s as issue 7 asks.
test-cluster: zookeeper
	SLUICE_REQUIRE_ZOOKEEPER=1 SLUICE_CLUSTER_CHURN=$${SLUICE_CLUSTER_CHURN:-60s} $(GO) test -race -count=1 -timeout 15m -v ./deploy/clustertest/
