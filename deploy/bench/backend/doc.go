// Command backend is the upstream of the proxy benchmark (deploy/bench/proxy.sh):
// it answers every request with a short fixed body, as fast as it can.
package main
