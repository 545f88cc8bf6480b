package proxyserver

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/router"
)

// bigState is a proxy state of routes routes with insts instances each.
func bigState(routes, insts int) configsvc.ProxyState {
	st := configsvc.ProxyState{ID: "proxy-1", Addr: "127.0.0.1:7080", Updated: time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC), Revision: 7, Peers: 1}
	for i := range routes {
		rs := configsvc.RouteState{Name: fmt.Sprintf("route-%04d", i), Match: configsvc.MatchState{PathPrefix: fmt.Sprintf("/r%d", i)},
			Upstream: configsvc.UpstreamState{Service: "svc", Balancer: string(router.BalancerRoundRobin)}, Instances: []configsvc.InstanceState{}}
		for j := range insts {
			rs.Instances = append(rs.Instances, configsvc.InstanceState{ID: fmt.Sprintf("svc-%05d", j), Addr: fmt.Sprintf("10.0.%d.%d:8080", j/250, j%250), Breaker: "closed", Requests: 123456})
		}
		st.Routes = append(st.Routes, rs)
	}
	return st
}

func TestEncodeStateStaysWithinTheRecordLimit(t *testing.T) {
	tests := []struct {
		name              string
		routes, insts     int
		wantRoutes        int // routes kept; -1: all
		wantInstsCut      bool
		wantRoutesOmitted bool
	}{
		{"small state is whole", 3, 5, 3, false, false},
		{"many instances are cut, every route kept", 4, 2000, 4, true, false},
		{"too many routes: the first are kept without instances", 3000, 2, -1, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := bigState(tc.routes, tc.insts)
			b, err := encodeState(st, MaxStateSize)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > MaxStateSize {
				t.Fatalf("encoded %d bytes, limit %d", len(b), MaxStateSize)
			}
			var got configsvc.ProxyState
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if tc.wantRoutes >= 0 && len(got.Routes) != tc.wantRoutes {
				t.Errorf("%d routes kept, want %d", len(got.Routes), tc.wantRoutes)
			}
			if got.RoutesOmitted+len(got.Routes) != tc.routes || (got.RoutesOmitted > 0) != tc.wantRoutesOmitted {
				t.Errorf("%d routes kept and %d omitted of %d", len(got.Routes), got.RoutesOmitted, tc.routes)
			}
			cut := false
			for i, r := range got.Routes {
				if r.Name != st.Routes[i].Name {
					t.Fatalf("route %d is %s, want %s (file order kept)", i, r.Name, st.Routes[i].Name)
				}
				if len(r.Instances)+r.InstancesOmitted != tc.insts {
					t.Errorf("route %s: %d instances + %d omitted, want %d", r.Name, len(r.Instances), r.InstancesOmitted, tc.insts)
				}
				cut = cut || r.InstancesOmitted > 0
			}
			if cut != tc.wantInstsCut {
				t.Errorf("instances cut = %t, want %t", cut, tc.wantInstsCut)
			}
			if tc.wantInstsCut && !tc.wantRoutesOmitted && len(b) < MaxStateSize/4 {
				t.Errorf("cut to %d bytes: far more than needed", len(b))
			}
			// The caller's state is left as it was.
			if len(st.Routes[0].Instances) != tc.insts || st.Routes[0].InstancesOmitted != 0 {
				t.Error("encodeState modified its argument")
			}
		})
	}
}
