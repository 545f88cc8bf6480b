package router

import (
	"context"

	"github.com/sluicehq/sluice/configsvc"
)

// PinHeader carries a pin token on a request; PinCookie is its cookie twin.
// InstanceHeader names, on the response to a pinned request, the instance
// that answered.
const (
	PinHeader      = "X-Sluice-Pin"
	PinCookie      = "sluice_pin"
	InstanceHeader = "X-Sluice-Instance"
)

// PinResolver looks a pin up by the token a request carries. Pins are
// minted, stored, revoked and swept by package configsvc/access, whose
// *access.Pins implements PinResolver with a short cache.
type PinResolver interface {
	// ResolvePin returns the pin for token, or an error wrapping
	// configsvc.ErrPinUnknown, ErrPinExpired or ErrPinRevoked (the proxy
	// answers 403 with the reason); other errors mean the lookup itself
	// failed (the proxy answers 503).
	ResolvePin(ctx context.Context, token string) (configsvc.Pin, error)
}
