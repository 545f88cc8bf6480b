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

// Defaults for the zero values of SessionsConfig.
const (
	// DefaultSessionTTL is how long a console session lasts.
	DefaultSessionTTL = 12 * time.Hour
	// DefaultMaxSessionsPerToken bounds the live console sessions opened
	// with one token.
	DefaultMaxSessionsPerToken = 64
)

// SessionsConfig tunes Sessions. The zero value is the default.
type SessionsConfig struct {
	// TTL is how long a session lasts (never past its token's expiry); 0
	// means DefaultSessionTTL.
	TTL time.Duration
	// MaxPerToken bounds the live sessions of one token: Open refuses
	// more with a *configsvc.CountError. 0 means
	// DefaultMaxSessionsPerToken; negative means no limit.
	MaxPerToken int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

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
	max     int
}

// NewSessions returns a Sessions on records tuned by cfg, resolving tokens
// through tokens.
func NewSessions(records configsvc.RecordStore, tokens *Tokens, cfg SessionsConfig) *Sessions {
	s := &Sessions{records: records, tokens: tokens, now: cfg.Now, ttl: cfg.TTL, max: cfg.MaxPerToken}
	if s.now == nil {
		s.now = time.Now
	}
	if s.ttl <= 0 {
		s.ttl = DefaultSessionTTL
	}
	if s.max == 0 {
		s.max = DefaultMaxSessionsPerToken
	}
	return s
}

// Open authenticates token and opens a session for it. It returns the
// session id (for an HttpOnly cookie), the CSRF value (for a script-readable
// cookie the console echoes in a header), the expiry (the session's TTL
// from now, or the token's expiry when sooner) and the principal.
// Errors: ErrUnauthenticated (wrapped) for a bad token; a
// *configsvc.CountError (configsvc.ErrTooMany) when the token already has
// MaxPerToken live sessions; store errors.
func (s *Sessions) Open(ctx context.Context, token string) (id, csrf string, expires time.Time, p *Principal, err error) {
	p, err = s.tokens.Authenticate(ctx, token)
	if err != nil {
		return "", "", time.Time{}, nil, err
	}
	if s.max > 0 {
		n, err := s.live(ctx, p.TokenID)
		if err != nil {
			return "", "", time.Time{}, nil, err
		}
		if n >= s.max {
			return "", "", time.Time{}, nil, &configsvc.CountError{What: "live console sessions of token " + p.TokenID, Count: int64(n), Limit: int64(s.max)}
		}
	}
	id, csrf = newSecret(SessionPrefix), newSecret(CSRFPrefix)
	now := s.now().UTC()
	rec := session{TokenHash: HashToken(token), CSRFHash: HashToken(csrf), TokenID: p.TokenID, Created: now, Expires: now.Add(s.ttl)}
	if !p.Expires.IsZero() && p.Expires.Before(rec.Expires) {
		rec.Expires = p.Expires.UTC()
	}
	data, _ := json.Marshal(rec)
	if err := s.records.Put(ctx, SessionsCollection, HashToken(id), data); err != nil {
		return "", "", time.Time{}, nil, fmt.Errorf("access: store session: %w", err)
	}
	p.Session, p.Expires = true, rec.Expires
	return id, csrf, rec.Expires, p, nil
}

// live counts the unexpired sessions of the token whose id is tokenID.
// Several servers opening sessions for one token at once may together
// exceed the limit by a few; it bounds a flood, not a count.
func (s *Sessions) live(ctx context.Context, tokenID string) (int, error) {
	recs, err := s.records.List(ctx, SessionsCollection)
	if err != nil {
		return 0, fmt.Errorf("access: count sessions: %w", err)
	}
	now, n := s.now(), 0
	for _, r := range recs {
		var rec session
		_ = json.Unmarshal(r.Data, &rec) // an unreadable record counts for no token
		if rec.TokenID == tokenID && now.Before(rec.Expires) {
			n++
		}
	}
	return n, nil
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
	if p.Expires.IsZero() || rec.Expires.Before(p.Expires) {
		p.Expires = rec.Expires
	}
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
	now := s.now()
	return deleteWhere(ctx, s.records, SessionsCollection, func(data []byte) bool {
		var rec session
		return json.Unmarshal(data, &rec) != nil || !now.Before(rec.Expires)
	})
}

// deleteWhere deletes the records of collection whose data gone reports
// true for, and returns how many it removed. Several servers may sweep at
// once; a record already gone is not an error.
func deleteWhere(ctx context.Context, records configsvc.RecordStore, collection string, gone func(data []byte) bool) (int, error) {
	recs, err := records.List(ctx, collection)
	if err != nil {
		return 0, fmt.Errorf("access: sweep %s: %w", collection, err)
	}
	n := 0
	for _, r := range recs {
		if !gone(r.Data) {
			continue
		}
		if err := records.Delete(ctx, collection, r.ID); err != nil && !errors.Is(err, configsvc.ErrNotFound) {
			return n, fmt.Errorf("access: sweep %s: %w", collection, err)
		}
		n++
	}
	return n, nil
}
