// Package proxyserver runs Sluice's reverse proxy on a configsvc store: it
// wires router.Router to its adapters (x/time/rate limiters, gobreaker
// breakers, Prometheus metrics, pins from the store's records), follows the
// route file sluice-system/routes.yaml and the instances of every routed
// service, publishes its live route table in the store's records (for the
// admin server's GET /v1/routes), and serves HTTP, or HTTPS with a
// certificate reloaded when its files change, with the chosen engine:
// router/fasthttpengine (Options.Engine "fast", the default) or net/http
// ("std"); HTTP/2 clients of TLS are served by net/http either way.
// `sluice proxy` and `sluice server --proxy-addr` both use it.
package proxyserver
