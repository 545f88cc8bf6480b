package access

import "errors"

// Errors returned (wrapped) by authentication. Their messages never contain
// a token, session id or CSRF value.
var (
	// ErrUnauthenticated: a token or session is missing, malformed, unknown,
	// revoked or expired (HTTP 401).
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrCSRF: a cookie-authenticated state-changing request lacks the
	// X-Sluice-CSRF header matching its session (HTTP 403).
	ErrCSRF = errors.New("CSRF check failed")
)
