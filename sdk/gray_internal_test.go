package sdk

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/sluicehq/sluice/configsvc"
)

// TestGrayReportsWithinTheInstanceLimit: an instance in more grays than an
// instance record may hold reports the rejections first, then the lowest
// ids, and the record stays valid.
func TestGrayReportsWithinTheInstanceLimit(t *testing.T) {
	reports := map[string]configsvc.GrayStatus{}
	for i := range configsvc.MaxInstanceGrays + 3 {
		reports[fmt.Sprintf("g-%012x", i)] = configsvc.GrayStatus{Status: configsvc.GrayApplied, Version: 1}
	}
	rejected := fmt.Sprintf("g-%012x", configsvc.MaxInstanceGrays+2) // the highest id
	reports[rejected] = configsvc.GrayStatus{Status: configsvc.GrayRejected, Reason: "bad", Version: 1}
	got := limitGrayReports(reports, configsvc.MaxInstanceGrays)
	if len(got) != configsvc.MaxInstanceGrays || got[rejected].Status != configsvc.GrayRejected {
		t.Fatalf("%d reports, rejected one %+v", len(got), got[rejected])
	}
	ids := slices.Sorted(maps.Keys(got))
	if ids[0] != "g-000000000000" || slices.Contains(ids, fmt.Sprintf("g-%012x", configsvc.MaxInstanceGrays)) {
		t.Fatalf("kept %v…: want the lowest ids after the rejection", ids[:3])
	}
	inst := configsvc.Instance{Service: "orders", ID: "orders-1", Grays: got}
	if err := inst.Validate(); err != nil {
		t.Fatalf("the record with the reports kept: %v", err)
	}
	if small := map[string]configsvc.GrayStatus{"g-000000000001": {Status: configsvc.GrayApplied}}; len(limitGrayReports(small, 64)) != 1 {
		t.Fatal("a small set changed")
	}
}
