package configsvc

import (
	"errors"
	"time"
)

// Limits and defaults of a Pin, enforced by access.Pins.Create.
const (
	// MaxPinTargets bounds the services one pin covers.
	MaxPinTargets = 32
	// MaxPinNote bounds a pin's note, in bytes.
	MaxPinNote = 256
	// DefaultPinTTL is a pin's lifetime when its creator names none.
	DefaultPinTTL = 30 * time.Minute
	// MaxPinTTL bounds a pin's lifetime.
	MaxPinTTL = 24 * time.Hour
)

// Pin is a developer's debug pin: it sends their requests for some services
// to chosen instances through the proxy. It is stored as JSON (package access
// keeps it in the "pins" record collection under the SHA-256 of its token);
// the token itself is shown once at creation and never stored.
type Pin struct {
	// ID is the first 12 hex digits of the token's hash: what lists and
	// revocation use.
	ID string `json:"id"`
	// Targets maps each pinned service to the instance id its requests go to.
	Targets   map[string]string `json:"targets"`
	Note      string            `json:"note,omitempty"`
	CreatedBy string            `json:"created_by"`
	Created   time.Time         `json:"created"`
	Expires   time.Time         `json:"expires"`
	// Revoked pins are kept until they expire, so that the proxy can answer
	// "revoked" rather than "unknown".
	Revoked   bool   `json:"revoked,omitempty"`
	RevokedBy string `json:"revoked_by,omitempty"`
}

// Errors saying why a pin token does not pin a request; the proxy answers
// 403 with the reason. They are returned wrapped (with the pin's id, never
// its token).
var (
	// ErrPinUnknown: no pin was created with the token.
	ErrPinUnknown = errors.New("unknown pin")
	// ErrPinExpired: the pin's Expires has passed.
	ErrPinExpired = errors.New("pin expired")
	// ErrPinRevoked: the pin was revoked.
	ErrPinRevoked = errors.New("pin revoked")
)

// Check returns the pin's state at time now: nil while it is active,
// ErrPinRevoked once revoked, else ErrPinExpired from Expires on.
func (p *Pin) Check(now time.Time) error {
	switch {
	case p.Revoked:
		return ErrPinRevoked
	case !now.Before(p.Expires):
		return ErrPinExpired
	}
	return nil
}
