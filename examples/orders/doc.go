// Command orders is a small HTTP service that uses the Sluice Go SDK: it
// reads its configuration (orders.yaml) live from ZooKeeper or from the
// Sluice admin server, registers itself as an instance of service "orders",
// serves a value from its config, answers /whoami with its instance id, and
// passes a debugging pin on when it calls its downstream.
//
//	go run ./examples/orders --server http://127.0.0.1:7070 --token "$SLUICE_TOKEN" --id orders-1 --addr 127.0.0.1:9001
//	go run ./examples/orders --zk 127.0.0.1:2181 --id orders-2 --addr 127.0.0.1:9002 --downstream http://127.0.0.1:9101
//
// Endpoints: GET /greeting (the config value), GET /whoami (instance id),
// GET /config (the whole decoded config and its revision), GET /checkout
// (calls the downstream with the caller's X-Sluice-Pin).
package main
