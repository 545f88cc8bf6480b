// Package routesfile parses and validates the proxy's route file,
// routes.yaml of the reserved service sluice-system, into router.Route
// values. Errors name the field and its line: "routes[2].rate_limit.rps".
package routesfile
