package configsvc

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"
)

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string ("2m", "1h30m"), as the rollout API and stored rollouts spell it.
type Duration time.Duration

// MarshalJSON writes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a Go duration string ("90s", "2m"); anything else is
// a *FieldError (ErrInvalid).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return &FieldError{Field: "duration", Value: string(b), Msg: `must be a duration string such as "2m"`}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return &FieldError{Field: "duration", Value: s, Msg: `must be a duration such as "90s", "2m" or "1h30m"`}
	}
	*d = Duration(v)
	return nil
}

// RolloutStep is one step of a progressive rollout: the gray's percent,
// then how long the cohort bakes at it with the gates checked.
type RolloutStep struct {
	Percent float64  `json:"percent"`
	Bake    Duration `json:"bake"`
}

// RolloutPhase is where a rollout is.
type RolloutPhase string

// The phases of a rollout (RolloutState.State).
const (
	// RolloutApplying: the percent of the current step is set; waiting
	// until every cohort instance has applied the gray (ApplyTimeout).
	RolloutApplying RolloutPhase = "applying"
	// RolloutBaking: every cohort instance applied it; the gates are
	// checked until the step's bake time has passed.
	RolloutBaking RolloutPhase = "baking"
	// RolloutAborted: a gate failed (Failed says which) or the gray was
	// abandoned; the gray is abandoned.
	RolloutAborted RolloutPhase = "aborted"
	// RolloutPromoted: the last step baked clean, or the gray was
	// promoted by hand; the gray is promoted.
	RolloutPromoted RolloutPhase = "promoted"
)

// The gates of a rollout (GateFailure.Gate).
const (
	// GateAcks: more cohort instances rejected the gray than MaxRejected.
	GateAcks = "acks"
	// GateTraffic: the cohort's 5xx/timeout ratio went over MaxErrorRate
	// (or over the rest's ratio by more than it).
	GateTraffic = "traffic"
	// GateApplyTimeout: cohort instances did not apply the gray within
	// ApplyTimeout.
	GateApplyTimeout = "apply_timeout"
)

// GateFailure records the gate that aborted a rollout, the instances that
// failed it and the figures it compared (e.g. "error_rate", "max_error_rate").
type GateFailure struct {
	Gate      string             `json:"gate"`
	Instances []string           `json:"instances,omitempty"`
	Figures   map[string]float64 `json:"figures,omitempty"`
}

// RolloutState is the recorded progress of a rollout: the step (0-based)
// and its percent, the phase and since when, why it is there. It lives in
// the gray, so whichever server drives the rollout continues from it.
type RolloutState struct {
	Step    int          `json:"step"`
	Percent float64      `json:"percent"`
	State   RolloutPhase `json:"state"`
	Reason  string       `json:"reason,omitempty"`
	Since   time.Time    `json:"since"`
	Failed  *GateFailure `json:"failed,omitempty"`
}

// Rollout is a progressive rollout of a gray: its steps, gates and
// progress. See docs/gray.md.
type Rollout struct {
	// Steps are the percents the gray moves through, ascending, each
	// with its bake time. 1 to MaxRolloutSteps.
	Steps []RolloutStep `json:"steps"`
	// MaxRejected is how many cohort instances may reject the gray before
	// the acks gate fails.
	MaxRejected int `json:"max_rejected"`
	// MaxErrorRate is the traffic gate: the cohort's 5xx/timeout ratio
	// over a bake, 0 to 1.
	MaxErrorRate float64 `json:"max_error_rate"`
	// ApplyTimeout bounds the wait for every cohort instance to apply a
	// step's percent. 0 means DefaultRolloutApplyTimeout (WithDefaults).
	ApplyTimeout Duration `json:"apply_timeout"`
	// State is the progress.
	State RolloutState `json:"state"`
}

// Active reports whether the rollout still drives its gray (applying or
// baking).
func (r *Rollout) Active() bool {
	return r != nil && (r.State.State == RolloutApplying || r.State.State == RolloutBaking)
}

// WithDefaults returns r with a zero ApplyTimeout set to
// DefaultRolloutApplyTimeout.
func (r Rollout) WithDefaults() Rollout {
	if r.ApplyTimeout == 0 {
		r.ApplyTimeout = Duration(DefaultRolloutApplyTimeout)
	}
	return r
}

// StartRollout makes spec (validated, with defaults, see Validate and
// WithDefaults) the rollout of g at time now: at its first step, applying
// since now, with reason (who started it) recorded, and g's selector
// percent set to the first step's percent. It returns ErrConflict while a
// rollout drives g, and spec's validation error. It is what UpdateGray's
// fn does to start a rollout (the admin API, tests).
func StartRollout(g *Gray, spec Rollout, now time.Time, reason string) error {
	if g.Rollout.Active() {
		return fmt.Errorf("gray %s: a rollout is running (step %d of %d, %s): %w", g.ID, g.Rollout.State.Step+1, len(g.Rollout.Steps), g.Rollout.State.State, ErrConflict)
	}
	r := spec.WithDefaults()
	r.Steps = slices.Clone(r.Steps)
	if err := r.Validate(); err != nil {
		return err
	}
	r.State = RolloutState{Step: 0, Percent: r.Steps[0].Percent, State: RolloutApplying, Since: now.UTC(), Reason: reason}
	g.Rollout = &r
	g.Selector.Percent = r.Steps[0].Percent
	return nil
}

// Validate checks the rollout's spec (its State is not looked at): 1 to
// MaxRolloutSteps steps whose percents ascend strictly within 0 to 100
// with at most two decimals and whose bake times are 0 to MaxRolloutBake;
// MaxRejected ≥ 0; MaxErrorRate from 0 to 1; ApplyTimeout from 0 (the
// default) to MaxRolloutApplyTimeout. It returns a *FieldError (ErrInvalid)
// or *LimitError naming the field, e.g. "steps[2].percent".
func (r *Rollout) Validate() error {
	if len(r.Steps) == 0 {
		return &FieldError{Field: "steps", Msg: "must hold at least one step"}
	}
	if len(r.Steps) > MaxRolloutSteps {
		return &LimitError{What: "rollout step count", Size: int64(len(r.Steps)), Limit: MaxRolloutSteps}
	}
	for i, st := range r.Steps {
		field := fmt.Sprintf("steps[%d]", i)
		if err := ValidatePercent(field+".percent", st.Percent); err != nil {
			return err
		}
		if i > 0 && st.Percent <= r.Steps[i-1].Percent {
			return &FieldError{Field: field + ".percent", Value: fmt.Sprint(st.Percent), Msg: fmt.Sprintf("must be above the previous step's %v: steps ascend", r.Steps[i-1].Percent)}
		}
		if st.Bake < 0 || time.Duration(st.Bake) > MaxRolloutBake {
			return &FieldError{Field: field + ".bake", Value: time.Duration(st.Bake).String(), Msg: "must be from 0 to " + MaxRolloutBake.String()}
		}
	}
	if r.MaxRejected < 0 {
		return &FieldError{Field: "max_rejected", Value: itoa(int64(r.MaxRejected)), Msg: "must be 0 or more"}
	}
	if math.IsNaN(r.MaxErrorRate) || r.MaxErrorRate < 0 || r.MaxErrorRate > 1 {
		return &FieldError{Field: "max_error_rate", Value: fmt.Sprint(r.MaxErrorRate), Msg: "must be from 0 to 1"}
	}
	if r.ApplyTimeout < 0 || time.Duration(r.ApplyTimeout) > MaxRolloutApplyTimeout {
		return &FieldError{Field: "apply_timeout", Value: time.Duration(r.ApplyTimeout).String(), Msg: "must be from 0 (the default, " + DefaultRolloutApplyTimeout.String() + ") to " + MaxRolloutApplyTimeout.String()}
	}
	return nil
}

// validateState checks the recorded progress of a rollout against its
// steps: a known phase and a step index within them.
func (r *Rollout) validateState() error {
	switch r.State.State {
	case RolloutApplying, RolloutBaking, RolloutAborted, RolloutPromoted:
	default:
		return &FieldError{Field: "rollout.state.state", Value: string(r.State.State), Msg: "must be applying, baking, aborted or promoted"}
	}
	if r.State.Step < 0 || r.State.Step >= len(r.Steps) {
		return &FieldError{Field: "rollout.state.step", Value: itoa(int64(r.State.Step)), Msg: fmt.Sprintf("must be a step index from 0 to %d", len(r.Steps)-1)}
	}
	return ValidatePercent("rollout.state.percent", r.State.Percent)
}
