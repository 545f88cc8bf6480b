package routesfile

import (
	"reflect"
	"testing"

	"github.com/sluicehq/sluice/router"
)

// TestSchemaMirrorsRoute fails when router.Route gains, loses or renames a
// field that routes.yaml's route type does not mirror (the leaf types are
// checked by the compiler through their conversions in route.route).
func TestSchemaMirrorsRoute(t *testing.T) {
	want, got := reflect.TypeOf(router.Route{}), reflect.TypeOf(route{})
	if want.NumField() != got.NumField() {
		t.Fatalf("router.Route has %d fields, routesfile's route %d", want.NumField(), got.NumField())
	}
	for i := range want.NumField() {
		if w, g := want.Field(i), got.Field(i); w.Name != g.Name || g.Tag.Get("yaml") == "" {
			t.Errorf("field %d: router.Route.%s, routesfile route.%s (yaml tag %q)", i, w.Name, g.Name, g.Tag.Get("yaml"))
		}
	}
}
