// Package prommetrics exports the proxy's measurements (router.Metrics) as
// Prometheus metrics.
package prommetrics
