package configsvc

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

// Selector chooses the instances a gray reaches (its cohort). Every part
// is optional; an instance is in the cohort when ANY part matches it:
// its id is in Instances, it carries every label of one of the Labels
// maps (AND inside a map, OR across maps), or it falls in the sticky
// Percent of instance ids. The zero Selector matches nobody (a gray staged
// before its rollout). Limits: MaxGrayInstances ids, MaxGrayLabelMaps maps
// of 1 to MaxGrayLabelsPerMap labels, MaxSelectorSize bytes encoded.
type Selector struct {
	// Instances are explicit instance ids.
	Instances []string `json:"instances,omitempty"`
	// Labels are label maps, e.g. [{"zone":"b"},{"canary":"true","zone":"a"}].
	Labels []map[string]string `json:"labels,omitempty"`
	// Percent is the share of instance ids in the cohort, 0 to 100 with
	// at most two decimals. Membership is a sticky hash of (gray id,
	// instance id): the same instance id is in or out across restarts,
	// raising the percent only adds instances, lowering it only removes.
	Percent float64 `json:"percent,omitempty"`
}

// percentBuckets is the resolution of Selector.Percent: 0.01 %.
const percentBuckets = 10000

// GrayBucket returns the sticky bucket, 0 to 9999, of an instance id for
// a gray: the first 8 bytes of SHA-256(grayID "\x00" instanceID) as a big
// endian number, modulo 10000. An instance is in a Percent p of the gray
// when its bucket is below round(p*100). The SDK, the admin server and
// the rollout driver all decide membership through Selector.Matches,
// which uses it.
func GrayBucket(grayID, instanceID string) int {
	h := sha256.New()
	h.Write([]byte(grayID))
	h.Write([]byte{0})
	h.Write([]byte(instanceID))
	var sum [sha256.Size]byte
	return int(binary.BigEndian.Uint64(h.Sum(sum[:0])[:8]) % percentBuckets)
}

// Matches reports whether inst is in the cohort of gray grayID under s
// (see Selector). It looks at inst.ID and inst.Labels only: the caller
// picks which instances to ask about (a service's, or for a shared group
// those of the services that link it). It is the one implementation of
// membership: the SDK evaluates itself with it, the admin server its
// cohort views and promote readiness, the rollout driver its gates.
func (s Selector) Matches(grayID string, inst Instance) bool {
	if slices.Contains(s.Instances, inst.ID) {
		return true
	}
	for _, m := range s.Labels {
		if len(m) > 0 && hasLabels(inst.Labels, m) {
			return true
		}
	}
	if s.Percent > 0 {
		return GrayBucket(grayID, inst.ID) < int(math.Round(s.Percent*100))
	}
	return false
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// IsZero reports whether s matches nobody: no ids, no label maps, 0 %.
func (s Selector) IsZero() bool {
	return len(s.Instances) == 0 && len(s.Labels) == 0 && s.Percent == 0
}

// Validate checks s against the limits: at most MaxGrayInstances valid,
// distinct instance ids; at most MaxGrayLabelMaps label maps, each of 1 to
// MaxGrayLabelsPerMap labels whose keys (non-empty) and values are at most
// MaxGrayLabelLen bytes; a percent from 0 to 100 with at most two
// decimals; at most MaxSelectorSize bytes encoded (the head of a service
// carries every active gray's selector). It returns a *FieldError
// (ErrInvalid) or a *LimitError (ErrTooLarge) naming the field, e.g.
// "selector.labels[1]".
func (s Selector) Validate() error {
	if len(s.Instances) > MaxGrayInstances {
		return &LimitError{What: "selector instance count", Size: int64(len(s.Instances)), Limit: MaxGrayInstances}
	}
	seen := make(map[string]bool, len(s.Instances))
	for i, id := range s.Instances {
		field := fmt.Sprintf("selector.instances[%d]", i)
		if err := ValidateInstanceID(id); err != nil {
			return &FieldError{Field: field, Value: id, Msg: err.(*FieldError).Msg}
		}
		if seen[id] {
			return &FieldError{Field: field, Value: id, Msg: "appears twice"}
		}
		seen[id] = true
	}
	if len(s.Labels) > MaxGrayLabelMaps {
		return &LimitError{What: "selector label map count", Size: int64(len(s.Labels)), Limit: MaxGrayLabelMaps}
	}
	for i, m := range s.Labels {
		field := fmt.Sprintf("selector.labels[%d]", i)
		if len(m) == 0 {
			return &FieldError{Field: field, Msg: "must name at least one label (an empty map would match every instance; use percent 100)"}
		}
		if len(m) > MaxGrayLabelsPerMap {
			return &LimitError{What: field + " label count", Size: int64(len(m)), Limit: MaxGrayLabelsPerMap}
		}
		for k, v := range m {
			if k == "" || len(k) > MaxGrayLabelLen {
				return &FieldError{Field: field, Value: k, Msg: "label keys must be 1 to " + itoa(MaxGrayLabelLen) + " bytes"}
			}
			if len(v) > MaxGrayLabelLen {
				return &FieldError{Field: field + "." + k, Value: v, Msg: "label values must be at most " + itoa(MaxGrayLabelLen) + " bytes"}
			}
		}
	}
	if err := ValidatePercent("selector.percent", s.Percent); err != nil {
		return err
	}
	if b, _ := json.Marshal(s); len(b) > MaxSelectorSize {
		return &LimitError{What: "selector", Size: int64(len(b)), Limit: MaxSelectorSize}
	}
	return nil
}

// ValidatePercent checks a gray percent: a number from 0 to 100 with at
// most two decimals (the resolution of the sticky buckets). It returns a
// *FieldError on field.
func ValidatePercent(field string, p float64) error {
	if math.IsNaN(p) || p < 0 || p > 100 {
		return &FieldError{Field: field, Value: fmt.Sprint(p), Msg: "must be from 0 to 100"}
	}
	if math.Abs(p*100-math.Round(p*100)) > 1e-6 {
		return &FieldError{Field: field, Value: fmt.Sprint(p), Msg: "must have at most two decimals"}
	}
	return nil
}

// GrayApplyStatus is what an instance did about a gray it is in.
type GrayApplyStatus string

// The statuses of a GrayStatus and a CohortMember.
const (
	// GrayApplied: the instance runs main + the gray.
	GrayApplied GrayApplyStatus = "applied"
	// GrayRejected: the instance refused the gray's content (GrayStatus.Reason says why).
	GrayRejected GrayApplyStatus = "rejected"
	// GrayPending: the instance is in the cohort and has not reported either yet.
	GrayPending GrayApplyStatus = "pending"
)

// GrayStatus is an instance's report about one gray it is in
// (Instance.Grays, keyed by gray id): applied or rejected, with the
// reason (at most MaxInstanceErrorLen bytes) and the gray Version it saw.
// The SDK writes it; the cohort views and the rollout driver read it.
type GrayStatus struct {
	Status  GrayApplyStatus `json:"status"`
	Reason  string          `json:"reason,omitempty"`
	Version int64           `json:"version,omitempty"`
}

// validateGrayStatuses checks Instance.Grays: at most MaxInstanceGrays
// entries keyed by gray ids, each with a known status and a reason of at
// most MaxInstanceErrorLen bytes.
func validateGrayStatuses(m map[string]GrayStatus) error {
	if len(m) > MaxInstanceGrays {
		return &LimitError{What: "instance gray count", Size: int64(len(m)), Limit: MaxInstanceGrays}
	}
	for id, st := range m {
		if err := ValidateGrayID(id); err != nil {
			return &FieldError{Field: "grays", Value: id, Msg: err.(*FieldError).Msg}
		}
		switch st.Status {
		case GrayApplied, GrayRejected, GrayPending:
		default:
			return &FieldError{Field: "grays." + id + ".status", Value: string(st.Status), Msg: "must be applied, rejected or pending"}
		}
		if len(st.Reason) > MaxInstanceErrorLen {
			return &LimitError{What: "grays." + id + ".reason", Size: int64(len(st.Reason)), Limit: MaxInstanceErrorLen}
		}
	}
	return nil
}

// CohortMember is one live instance in a gray's cohort and what it
// reported about the gray: its GrayStatus, or GrayPending when it has
// reported nothing yet.
type CohortMember struct {
	Service string            `json:"service"`
	ID      string            `json:"id"`
	Labels  map[string]string `json:"labels,omitempty"`
	Status  GrayApplyStatus   `json:"status"`
	Reason  string            `json:"reason,omitempty"`
	// Version is the gray version the instance reported; 0 when pending.
	Version int64 `json:"version,omitempty"`
}

// Cohort returns the instances of instances that g's selector matches,
// with their status about g, sorted by service and id. A report the
// instance made about an earlier version counts: a gray's content never
// changes, only its selector does.
func (g *Gray) Cohort(instances []Instance) []CohortMember {
	out := []CohortMember{}
	for _, inst := range instances {
		if !g.Selector.Matches(g.ID, inst) {
			continue
		}
		m := CohortMember{Service: inst.Service, ID: inst.ID, Labels: inst.Labels, Status: GrayPending}
		if st, ok := inst.Grays[g.ID]; ok && st.Status != GrayPending {
			m.Status, m.Reason, m.Version = st.Status, st.Reason, st.Version
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Service != out[j].Service {
			return out[i].Service < out[j].Service
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// NotReadyError refuses to promote a gray while instances of its cohort
// have rejected it or not applied it yet (promote with force to override).
// It matches ErrConflict; the admin API answers it 409 with code
// "not_ready" and the instances in its details.
type NotReadyError struct {
	GrayID    string
	Instances []CohortMember // the members not applied, sorted
}

// Error names the gray and how many instances rejected or have not
// applied it, with the first few ids.
func (e *NotReadyError) Error() string {
	var rejected, pending []string
	for _, m := range e.Instances {
		if m.Status == GrayRejected {
			rejected = append(rejected, m.ID)
		} else {
			pending = append(pending, m.ID)
		}
	}
	s := "gray " + e.GrayID + " is not ready to promote:"
	if len(rejected) > 0 {
		s += " " + count(len(rejected), "instance") + " rejected it (" + firstFew(rejected) + ")"
		if len(pending) > 0 {
			s += ","
		}
	}
	if len(pending) > 0 {
		have := " have"
		if len(pending) == 1 {
			have = " has"
		}
		s += " " + count(len(pending), "instance") + have + " not applied it yet (" + firstFew(pending) + ")"
	}
	return s + "; promote with force to override"
}

// Is reports whether target is ErrConflict.
func (e *NotReadyError) Is(target error) bool { return target == ErrConflict }

// count returns "1 instance" or "n instances".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return itoa(int64(n)) + " " + noun + "s"
}

func firstFew(ids []string) string {
	const n = 5
	if len(ids) <= n {
		return strings.Join(ids, ", ")
	}
	return strings.Join(ids[:n], ", ") + ", …"
}

// CheckReady returns a *NotReadyError when a member of cohort (from
// Gray.Cohort over the live instances) has rejected the gray or not
// applied it yet; nil when every member applied it, or the cohort is
// empty.
func CheckReady(grayID string, cohort []CohortMember) error {
	var bad []CohortMember
	for _, m := range cohort {
		if m.Status != GrayApplied {
			bad = append(bad, m)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return &NotReadyError{GrayID: grayID, Instances: bad}
}
