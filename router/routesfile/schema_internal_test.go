package routesfile

import (
	"reflect"
	"testing"

	"github.com/sluicehq/sluice/router"
)

// TestSchemaMirrorsRoute fails when router.Route, router.Upstream or
// router.RetryPolicy gains, loses or renames a field that routes.yaml's
// types do not mirror (the leaf types are checked by the compiler through
// their conversions in route.route).
func TestSchemaMirrorsRoute(t *testing.T) {
	for _, c := range []struct{ want, got reflect.Type }{
		{reflect.TypeOf(router.Route{}), reflect.TypeOf(route{})},
		{reflect.TypeOf(router.Upstream{}), reflect.TypeOf(upstream{})},
		{reflect.TypeOf(router.RetryPolicy{}), reflect.TypeOf(retries{})},
	} {
		want, got := c.want, c.got
		if want.NumField() != got.NumField() {
			t.Fatalf("router.%s has %d fields, routesfile's %s %d", want.Name(), want.NumField(), got.Name(), got.NumField())
		}
		for i := range want.NumField() {
			if w, g := want.Field(i), got.Field(i); w.Name != g.Name || g.Tag.Get("yaml") == "" {
				t.Errorf("field %d: router.%s.%s, routesfile %s.%s (yaml tag %q)", i, want.Name(), w.Name, got.Name(), g.Name, g.Tag.Get("yaml"))
			}
		}
	}
}
