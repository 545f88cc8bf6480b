package main

import (
	"reflect"
	"sort"

	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/router"
	"github.com/sluicehq/sluice/router/routesfile"
)

// routesDiff is the httpapi.RoutesDiff of `sluice server`: the routes a
// change of sluice-system/routes.yaml adds, removes or modifies, by name,
// parsed with router/routesfile (the admin server does not link the proxy
// itself). Empty content has no routes.
func routesDiff(old, new []byte) ([]api.RouteChange, error) {
	parse := func(b []byte) (map[string]router.Route, error) {
		out := map[string]router.Route{}
		if len(b) == 0 {
			return out, nil
		}
		rs, err := routesfile.Parse(b)
		for _, r := range rs {
			out[r.Name] = r
		}
		return out, err
	}
	a, err := parse(old)
	if err != nil {
		a = map[string]router.Route{} // a head that no longer parses: every route is new
	}
	b, err := parse(new)
	if err != nil {
		return nil, err
	}
	out := []api.RouteChange{}
	for name, r := range b {
		switch prev, ok := a[name]; {
		case !ok:
			out = append(out, api.RouteChange{Route: name, Change: api.RouteAdded})
		case !reflect.DeepEqual(prev, r):
			out = append(out, api.RouteChange{Route: name, Change: api.RouteModified})
		}
	}
	for name := range a {
		if _, ok := b[name]; !ok {
			out = append(out, api.RouteChange{Route: name, Change: api.RouteRemoved})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Route < out[j].Route })
	return out, nil
}
