package access

import (
	"testing"

	"github.com/sluicehq/sluice/configsvc"
)

// TestSecretsGrant: reading secret values takes a secrets grant on the
// ref; admin does not imply it, and the grant gives nothing else.
func TestSecretsGrant(t *testing.T) {
	var az Authorizer
	mk := func(grants ...string) *Principal {
		p := &Principal{}
		for _, s := range grants {
			g, err := ParseGrant(s)
			if err != nil {
				t.Fatal(err)
			}
			p.Grants = append(p.Grants, g)
		}
		return p
	}
	orders, billing := Target{Ref: configsvc.Service("orders")}, Target{Ref: configsvc.Service("billing")}
	for _, tc := range []struct {
		name   string
		p      *Principal
		a      Action
		t      Target
		allows bool
	}{
		{"secrets on its pattern", mk("secrets:ord*"), ActionSecrets, orders, true},
		{"secrets elsewhere", mk("secrets:orders"), ActionSecrets, billing, false},
		{"admin does not imply it", mk("admin"), ActionSecrets, orders, false},
		{"editor does not imply it", mk("editor:orders"), ActionSecrets, orders, false},
		{"secrets reads nothing else", mk("secrets:orders"), ActionRead, orders, false},
		{"admin with the grant", mk("admin", "secrets:*"), ActionSecrets, billing, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d := az.Decide(tc.p, tc.a, tc.t); d.Allowed != tc.allows {
				t.Errorf("Decide = %+v, want allowed %v", d, tc.allows)
			}
		})
	}
}
