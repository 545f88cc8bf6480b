// Package sdk is the Go client that services import to read their Sluice
// configuration: it loads a service's config files (and those of the shared
// groups it links to, seen as "group/file") from ZooKeeper, from the admin
// server's HTTP API, or from an in-process configsvc.Store; keeps them live
// as revisions are published; decodes them into typed values that are read
// without locks or allocation; survives store outages by serving a local
// bbolt cache of the last good state; and registers the running process as
// an ephemeral instance of its service, with the revision it applied or
// rejected.
//
// A Client is opened with Open and must be closed with Close, which stops
// every goroutine the client started:
//
//	c, err := sdk.Open(ctx, sdk.Config{Service: "orders", ZooKeeper: []string{"127.0.0.1:2181"}})
//	if err != nil { … }
//	defer c.Close()
//	db := sdk.Bind[DBConfig](c, "db.yaml")
//	cfg := db.Load() // hot path: no lock, no allocation
//
// A revision whose content does not decode into a bound type, or whose value
// fails the type's Validate() error method, is rejected for that file: the
// last good value stays, Binding.Err reports why, and the instance
// registration records the rejection. A running service never loses its
// configuration because of a bad publish.
//
// PinMiddleware and PinTransport carry a debugging pin (header
// X-Sluice-Pin, or cookie sluice_pin) from incoming requests to outgoing
// ones, so a whole call chain can be pinned through the Sluice proxy;
// PinTransport sends it only to the hosts it allows (cluster-internal ones
// by default).
package sdk
