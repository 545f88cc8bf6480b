// Package lifecycle holds the two concurrency helpers Sluice's long-running
// parts share, so that each is written once: Sleep, a wait that ends early
// with its context, and Group, the goroutines a component's Close stops and
// waits for (the stores, the SDK, the proxy). It imports only the standard
// library.
package lifecycle
