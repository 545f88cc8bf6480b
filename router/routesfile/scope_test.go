package routesfile_test

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/router/routesfile"
)

func TestRateLimitScope(t *testing.T) {
	const head = "routes:\n  - name: orders\n    upstream: {service: orders}\n    rate_limit: {rps: 100"
	tests := []struct {
		name      string
		yaml      string
		wantScope string
		wantErr   string
	}{
		{"default", head + "}\n", "", ""},
		{"proxy", head + ", scope: proxy}\n", "proxy", ""},
		{"cluster", head + ", scope: cluster}\n", "cluster", ""},
		{"unknown", head + ", scope: region}\n", "", "routes[0].rate_limit.scope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			routes, err := routesfile.Parse([]byte(tc.yaml))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse: err %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := routes[0].RateLimit.Scope; got != tc.wantScope {
				t.Fatalf("scope %q, want %q", got, tc.wantScope)
			}
		})
	}
}
