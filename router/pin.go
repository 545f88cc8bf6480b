package router

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"
)

// PinHeader carries a pin token on a request; PinCookie is its cookie twin.
const (
	PinHeader      = "X-Sluice-Pin"
	PinCookie      = "sluice_pin"
	InstanceHeader = "X-Sluice-Instance"
)

// Pin sends a developer's requests for some services to chosen instances.
// It is stored (as JSON, in the "pins" record collection) under the SHA-256
// of its token; the token itself is shown once at creation and never stored.
type Pin struct {
	ID        string            `json:"id"`      // first 12 hex digits of the token hash
	Targets   map[string]string `json:"targets"` // service → instance id
	Note      string            `json:"note,omitempty"`
	CreatedBy string            `json:"created_by"`
	Created   time.Time         `json:"created"`
	Expires   time.Time         `json:"expires"`
	Revoked   bool              `json:"revoked,omitempty"`
	RevokedBy string            `json:"revoked_by,omitempty"`
}

// Errors a PinResolver returns; the proxy answers 403 with the reason.
var (
	ErrPinUnknown = errors.New("unknown pin")
	ErrPinExpired = errors.New("pin expired")
	ErrPinRevoked = errors.New("pin revoked")
)

// PinResolver looks a pin up by the token a request carries.
type PinResolver interface {
	// ResolvePin returns the pin for token, or an error wrapping
	// ErrPinUnknown, ErrPinExpired or ErrPinRevoked; other errors mean the
	// lookup itself failed.
	ResolvePin(ctx context.Context, token string) (Pin, error)
}

// HashToken returns the hex SHA-256 of a pin (or API) token: the key it is
// stored under.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Check returns the pin's state at time now: nil, ErrPinRevoked or ErrPinExpired.
func (p *Pin) Check(now time.Time) error {
	switch {
	case p.Revoked:
		return ErrPinRevoked
	case !now.Before(p.Expires):
		return ErrPinExpired
	}
	return nil
}
