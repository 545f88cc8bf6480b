// Command seed writes a route file into a bbolt store for the proxy
// benchmark (deploy/bench/proxy.sh): it creates the service sluice-system
// if needed and publishes the given routes.yaml as its next revision.
package main
