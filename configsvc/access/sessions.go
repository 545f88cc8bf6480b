package access

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

// SessionPrefix starts every console session id; CSRFPrefix every CSRF value.
const (
	SessionPrefix = "sls_"
	CSRFPrefix    = "slx_"
)

// DefaultSessionTTL is how long a console session lasts when NewSessions is
// given 0.
const DefaultSessionTTL = 12 * time.Hour

// session is the stored record of a console session, kept in collection
// "sessions" under the SHA-256 hex of the session id. It holds the hash of
// the token that opened it (so revoking the token ends the session) and the
// hash of its CSRF value; never a secret.
type session struct {
	TokenHash string    `json:"token_hash"`
	CSRFHash  string    `json:"csrf_hash"`
	TokenID   string    `json:"token_id"`
	Created   time.Time `json:"created"`
	Expires   time.Time `json:"expires"`
}

// Sessions manages console sessions in a RecordStore. It is safe for
// concurrent use; every server on one store shares them.
type Sessions struct {
	records configsvc.RecordStore
	tokens  *Tokens
	now     func() time.Time
	ttl     time.Duration
}

// NewSessions returns a Sessions on records whose sessions last ttl
// (DefaultSessionTTL when 0), resolving tokens through tokens. now is the
// clock (time.Now when nil).
func NewSessions(records configsvc.RecordStore, tokens *Tokens, ttl time.Duration, now func() time.Time) *Sessions {
	if now == nil {
		now = time.Now
	}
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	return &Sessions{records: records, tokens: tokens, now: now, ttl: ttl}
}

// Open authenticates token and opens a session for it. It returns the
// session id (for an HttpOnly cookie), the CSRF value (for a script-readable
// cookie the console echoes in a header), the expiry and the principal.
// Errors: ErrUnauthenticated (wrapped) for a bad token; store errors.
func (s *Sessions) Open(ctx context.Context, token string) (id, csrf string, expires time.Time, p *Principal, err error) {
	p, err = s.tokens.Authenticate(ctx, token)
	if err != nil {
		return "", "", time.Time{}, nil, err
	}
	id, csrf = newSecret(SessionPrefix), newSecret(CSRFPrefix)
	now := s.now().UTC()
	rec := session{TokenHash: HashToken(token), CSRFHash: HashToken(csrf), TokenID: p.TokenID, Created: now, Expires: now.Add(s.ttl)}
	data, _ := json.Marshal(rec)
	if err := s.records.Put(ctx, SessionsCollection, HashToken(id), data); err != nil {
		return "", "", time.Time{}, nil, fmt.Errorf("access: store session: %w", err)
	}
	p.Session = true
	return id, csrf, rec.Expires, p, nil
}

// Authenticate returns the principal of session id. When checkCSRF is set
// (a state-changing request), csrf must be the session's CSRF value, compared
// in constant time. An unknown, expired or malformed session, a session whose
// token was revoked, or a CSRF mismatch gives an error wrapping
// ErrUnauthenticated; store failures are returned wrapped.
func (s *Sessions) Authenticate(ctx context.Context, id, csrf string, checkCSRF bool) (*Principal, error) {
	if !wellFormed(id, SessionPrefix) {
		return nil, fmt.Errorf("access: malformed session: %w", ErrUnauthenticated)
	}
	data, err := s.records.Get(ctx, SessionsCollection, HashToken(id))
	if errors.Is(err, configsvc.ErrNotFound) {
		return nil, fmt.Errorf("access: unknown session: %w", ErrUnauthenticated)
	}
	if err != nil {
		return nil, fmt.Errorf("access: look up session: %w", err)
	}
	var rec session
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("access: decode session: %w", err)
	}
	if !s.now().Before(rec.Expires) {
		return nil, fmt.Errorf("access: session expired: %w", ErrUnauthenticated)
	}
	if checkCSRF && subtle.ConstantTimeCompare([]byte(HashToken(csrf)), []byte(rec.CSRFHash)) != 1 {
		return nil, fmt.Errorf("access: missing or wrong CSRF header: %w", ErrCSRF)
	}
	t, err := s.tokens.byHash(ctx, rec.TokenHash)
	if err != nil {
		return nil, err
	}
	p := t.Principal()
	p.Session = true
	return p, nil
}

// Close ends session id. Closing an unknown session is not an error.
func (s *Sessions) Close(ctx context.Context, id string) error {
	if !wellFormed(id, SessionPrefix) {
		return nil
	}
	err := s.records.Delete(ctx, SessionsCollection, HashToken(id))
	if err != nil && !errors.Is(err, configsvc.ErrNotFound) {
		return fmt.Errorf("access: close session: %w", err)
	}
	return nil
}

// Sweep deletes expired sessions and returns how many it removed.
func (s *Sessions) Sweep(ctx context.Context) (int, error) {
	recs, err := s.records.List(ctx, SessionsCollection)
	if err != nil {
		return 0, fmt.Errorf("access: sweep sessions: %w", err)
	}
	now, n := s.now(), 0
	for _, r := range recs {
		var rec session
		if json.Unmarshal(r.Data, &rec) == nil && now.Before(rec.Expires) {
			continue
		}
		if err := s.records.Delete(ctx, SessionsCollection, r.ID); err != nil && !errors.Is(err, configsvc.ErrNotFound) {
			return n, fmt.Errorf("access: sweep sessions: %w", err)
		}
		n++
	}
	return n, nil
}
