// Package lifecycle holds the concurrency helpers Sluice's long-running
// parts share, so that each is written once: Sleep, a wait that ends early
// with its context; Group, the goroutines a component's Close stops and
// waits for (the stores, the SDK, the proxy); and Broadcast, how a shared
// watch or reader wakes its readers, on a channel or through a callback
// for readers without a goroutine of their own (configsvc/fanout's hubs,
// the admin server's pins reader). It imports only the standard library.
package lifecycle
