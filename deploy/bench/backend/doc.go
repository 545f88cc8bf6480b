// Command backend is the upstream of the proxy benchmark (deploy/bench/proxy.sh):
// it answers every request with a fixed body (64 bytes, 4 KiB at /4k, 64 KiB
// at /64k), as fast as it can, after reading the request body.
package main
