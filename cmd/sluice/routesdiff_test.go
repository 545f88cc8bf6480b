package main

import (
	"reflect"
	"testing"

	"github.com/sluicehq/sluice/configsvc/api"
)

// TestRoutesDiff checks the routes a dry run of routes.yaml reports: added,
// removed and modified by name, an unchanged route (however its file is
// formatted) left out, and a head that no longer parses counted as empty.
func TestRoutesDiff(t *testing.T) {
	const (
		orders  = "  - name: orders\n    match: {path_prefix: /orders}\n    upstream: {service: orders, balancer: round_robin}\n"
		orders2 = "  - name: orders\n    match: {path_prefix: /orders}\n    upstream: {service: orders, balancer: least_requests}\n"
		pay     = "  - name: pay\n    match: {path_prefix: /pay}\n    upstream: {service: pay}\n"
		payFlow = "  - name: pay\n    match:\n      path_prefix: /pay\n    upstream:\n      service: pay\n"
		refunds = "  - name: refunds\n    match: {path_prefix: /refunds}\n    upstream: {service: pay}\n"
	)
	for _, tc := range []struct {
		name     string
		old, new string
		want     []api.RouteChange
	}{
		{"first routes", "", "routes:\n" + orders, []api.RouteChange{{Route: "orders", Change: api.RouteAdded}}},
		{"unchanged, reformatted", "routes:\n" + orders + pay, "routes:\n" + orders + payFlow, []api.RouteChange{}},
		{"added, removed, modified", "routes:\n" + orders + pay, "routes:\n" + orders2 + refunds,
			[]api.RouteChange{{Route: "orders", Change: api.RouteModified}, {Route: "pay", Change: api.RouteRemoved}, {Route: "refunds", Change: api.RouteAdded}}},
		{"head no longer parses", "routes: [", "routes:\n" + pay, []api.RouteChange{{Route: "pay", Change: api.RouteAdded}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := routesDiff([]byte(tc.old), []byte(tc.new))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("routesDiff = %+v, want %+v", got, tc.want)
			}
		})
	}
	if _, err := routesDiff(nil, []byte("routes: [")); err == nil {
		t.Error("new content that does not parse: no error")
	}
}
