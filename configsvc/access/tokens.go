package access

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/lifecycle"
)

// Record collections used by this package.
const (
	TokensCollection    = "tokens"
	SessionsCollection  = "sessions"
	PinsCollection      = "pins"
	AuditCollection     = "audit"
	BootstrapCollection = "bootstrap"
)

// TokenPrefix starts every API token; the rest is 32 random bytes, base64url
// without padding.
const TokenPrefix = "slc_"

// tokenLen is the length of a well-formed token or session id: a 4-byte
// prefix and 43 base64url characters (32 bytes).
const tokenLen = 4 + 43

// MaxTokenName bounds a token's name, in bytes.
const MaxTokenName = 128

// Token is an API token's stored record, as kept in collection "tokens" under
// the SHA-256 hex of the token. It never contains the token.
type Token struct {
	ID        string    `json:"id"` // first 12 hex digits of the token hash
	Name      string    `json:"name"`
	Roles     []Grant   `json:"roles"`
	Created   time.Time `json:"created"`
	CreatedBy string    `json:"created_by"`
	// Expires is when the token stops working (refused from then on and
	// deleted by the next Sweep); zero for a token that does not expire.
	Expires time.Time `json:"expires,omitzero"`
}

// Principal returns the principal authenticated by this token.
func (t *Token) Principal() *Principal {
	return &Principal{TokenID: t.ID, Name: t.Name, Grants: append([]Grant(nil), t.Roles...), Expires: t.Expires}
}

// Expired reports whether the token has expired at now.
func (t *Token) Expired(now time.Time) bool {
	return !t.Expires.IsZero() && !now.Before(t.Expires)
}

// TokenOption modifies one Tokens.Create.
type TokenOption func(*tokenOptions)

type tokenOptions struct {
	ttl    time.Duration
	hasTTL bool
}

// WithTTL makes the token expire ttl after its creation; ParseTokenTTL
// reads one from text. A ttl ≤ 0 is refused by Create with a
// *configsvc.FieldError.
func WithTTL(ttl time.Duration) TokenOption {
	return func(o *tokenOptions) { o.ttl, o.hasTTL = ttl, true }
}

// ParseTokenTTL parses a token lifetime in time.ParseDuration's syntax
// ("24h", "90m"); "" gives 0: no expiry. Errors: a *configsvc.FieldError
// (field "ttl") for text that is not a positive duration.
func ParseTokenTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, tokenTTLError(s)
	}
	return d, nil
}

func tokenTTLError(value string) error {
	return &configsvc.FieldError{Field: "ttl", Value: value, Msg: `must be a positive duration such as "24h" or "90m"`}
}

// HashToken returns the hex SHA-256 of a secret (API token, session id, CSRF
// value or pin token): the key its record is stored under.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// newSecret returns prefix + 32 random bytes in base64url without padding.
func newSecret(prefix string) string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it aborts the process instead)
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// Tokens manages API tokens in a RecordStore. It is safe for concurrent use;
// all state is in the store, so every server on one store sees the same
// tokens.
type Tokens struct {
	records configsvc.RecordStore
	now     func() time.Time
}

// NewTokens returns a Tokens on records. now is the clock (time.Now when nil).
func NewTokens(records configsvc.RecordStore, now func() time.Time) *Tokens {
	if now == nil {
		now = time.Now
	}
	return &Tokens{records: records, now: now}
}

// Create makes a new token named name with roles, created by createdBy (the
// creator's token id, or "bootstrap"); WithTTL gives it an expiry (default:
// none). It returns the token, to be shown once, and its record. Errors:
// *configsvc.FieldError for a bad name, grant or ttl; store errors wrapped.
func (ts *Tokens) Create(ctx context.Context, name string, roles []Grant, createdBy string, opts ...TokenOption) (string, Token, error) {
	var o tokenOptions
	for _, opt := range opts {
		opt(&o)
	}
	if name == "" || !printable(name, MaxTokenName) {
		return "", Token{}, &configsvc.FieldError{Field: "name", Value: name, Msg: fmt.Sprintf("must be 1-%d printable characters", MaxTokenName)}
	}
	if len(roles) == 0 {
		return "", Token{}, &configsvc.FieldError{Field: "roles", Msg: "must hold at least one grant"}
	}
	if len(roles) > 64 {
		return "", Token{}, &configsvc.LimitError{What: "grant count", Size: int64(len(roles)), Limit: 64}
	}
	grants := make([]Grant, len(roles))
	for i, g := range roles {
		if err := g.Validate(); err != nil {
			return "", Token{}, err
		}
		grants[i] = g
	}
	if o.hasTTL && o.ttl <= 0 {
		return "", Token{}, tokenTTLError(o.ttl.String())
	}
	secret := newSecret(TokenPrefix)
	hash := HashToken(secret)
	now := ts.now().UTC()
	t := Token{ID: hash[:12], Name: name, Roles: grants, Created: now, CreatedBy: createdBy}
	if o.hasTTL {
		t.Expires = now.Add(o.ttl)
	}
	data, err := json.Marshal(t)
	if err != nil {
		return "", Token{}, fmt.Errorf("access: encode token %s: %w", t.ID, err)
	}
	if err := ts.records.Put(ctx, TokensCollection, hash, data); err != nil {
		return "", Token{}, fmt.Errorf("access: store token %s: %w", t.ID, err)
	}
	return secret, t, nil
}

// printable reports whether s is at most max bytes without control
// characters.
func printable(s string, max int) bool {
	return len(s) <= max && !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// validID returns a *configsvc.FieldError unless id has the shape of a
// token's or pin's id: the first 12 hex digits of its hash.
func validID(id string) error {
	if len(id) != 12 || strings.Trim(id, "0123456789abcdef") != "" {
		return &configsvc.FieldError{Field: "id", Value: id, Msg: "must be 12 lowercase hex digits"}
	}
	return nil
}

// wellFormed reports whether s has the shape of a secret with prefix: the
// length, the prefix, and 43 base64url characters that decode to 32 bytes
// (as base64.RawURLEncoding.Strict would). It looks at nothing but s (the
// stored secrets are found by hash), so it tells a caller nothing they did
// not send; it spares the store every lookup of a value that cannot be a
// secret.
func wellFormed(s, prefix string) bool {
	if len(s) != tokenLen || subtle.ConstantTimeCompare([]byte(s[:len(prefix)]), []byte(prefix)) != 1 {
		return false
	}
	ok := true
	for i := len(prefix); i < len(s); i++ {
		c := s[i]
		ok = ok && (c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_')
	}
	// 43 characters carry 258 bits, 256 of them the secret's: the last
	// character's two low bits are zero.
	return ok && strings.IndexByte("AEIMQUYcgkosw048", s[len(s)-1]) >= 0
}

// Authenticate returns the principal of token. The lookup is keyed by the
// token's SHA-256, so its timing reveals nothing about the stored tokens.
// A malformed, unknown, revoked or expired token gives an error wrapping
// ErrUnauthenticated; a store failure is returned wrapped (e.g.
// configsvc.ErrUnavailable), so callers can tell "no" from "cannot say".
func (ts *Tokens) Authenticate(ctx context.Context, token string) (*Principal, error) {
	if !wellFormed(token, TokenPrefix) {
		return nil, fmt.Errorf("access: malformed token: %w", ErrUnauthenticated)
	}
	t, err := ts.byHash(ctx, HashToken(token))
	if err != nil {
		return nil, err
	}
	return t.Principal(), nil
}

func (ts *Tokens) byHash(ctx context.Context, hash string) (*Token, error) {
	data, err := ts.records.Get(ctx, TokensCollection, hash)
	if errors.Is(err, configsvc.ErrNotFound) {
		return nil, fmt.Errorf("access: unknown token: %w", ErrUnauthenticated)
	}
	if err != nil {
		return nil, fmt.Errorf("access: look up token: %w", err)
	}
	var t Token
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, fmt.Errorf("access: decode token record: %w", err)
	}
	if t.Expired(ts.now()) {
		return nil, fmt.Errorf("access: token %s expired at %s: %w", t.ID, t.Expires.UTC().Format(time.RFC3339), ErrUnauthenticated)
	}
	return &t, nil
}

// Sweep deletes the tokens that have expired and returns how many it
// removed. Several servers may sweep at once; a token already gone is not
// an error.
func (ts *Tokens) Sweep(ctx context.Context) (int, error) {
	now := ts.now()
	return deleteWhere(ctx, ts.records, TokensCollection, func(data []byte) bool {
		var t Token
		return json.Unmarshal(data, &t) == nil && t.Expired(now)
	})
}

// List returns every token's record, oldest first.
func (ts *Tokens) List(ctx context.Context) ([]Token, error) {
	recs, err := ts.records.List(ctx, TokensCollection)
	if err != nil {
		return nil, fmt.Errorf("access: list tokens: %w", err)
	}
	out := make([]Token, 0, len(recs))
	for _, r := range recs {
		var t Token
		if err := json.Unmarshal(r.Data, &t); err != nil {
			return nil, fmt.Errorf("access: decode token record: %w", err)
		}
		out = append(out, t)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Revoke deletes the token whose id is id (12 hex digits). Sessions opened
// with it stop working at their next request. ErrNotFound (wrapped) if no
// token has that id; *configsvc.FieldError for a malformed id.
func (ts *Tokens) Revoke(ctx context.Context, id string) (Token, error) {
	if err := validID(id); err != nil {
		return Token{}, err
	}
	recs, err := ts.records.List(ctx, TokensCollection)
	if err != nil {
		return Token{}, fmt.Errorf("access: revoke token %s: %w", id, err)
	}
	for _, r := range recs {
		if !strings.HasPrefix(r.ID, id) {
			continue
		}
		var t Token
		_ = json.Unmarshal(r.Data, &t)
		if err := ts.records.Delete(ctx, TokensCollection, r.ID); err != nil {
			return Token{}, fmt.Errorf("access: revoke token %s: %w", id, err)
		}
		return t, nil
	}
	return Token{}, fmt.Errorf("access: revoke token %s: %w", id, configsvc.ErrNotFound)
}

// BootstrapGrace is how long Bootstrap waits for another server's
// in-progress bootstrap to produce its token before concluding that server
// died half-way and creating the admin token itself.
const BootstrapGrace = 10 * time.Second

// Bootstrap creates the first admin token when the store holds no tokens.
// It returns the new token (to print once and write to a 0600 file) and
// true, or "" and false when tokens already exist or another server won the
// bootstrap race.
//
// Race safety across servers on one store: each contender appends a marker
// to collection "bootstrap"; only the one whose marker has the lowest
// sequence number creates the token. A loser waits (up to grace, polling)
// for the winner's token to appear; if none does, the winner died half-way
// and the loser creates the token itself. sleep is called between polls
// (time.Sleep-like; tests inject their own) and must return early with
// ctx's error when ctx ends.
func (ts *Tokens) Bootstrap(ctx context.Context, grace time.Duration, sleep func(context.Context, time.Duration) error) (string, bool, error) {
	if sleep == nil {
		sleep = lifecycle.Sleep
	}
	empty, err := ts.empty(ctx)
	if err != nil || !empty {
		return "", false, err
	}
	marker, _ := json.Marshal(map[string]any{"time": ts.now().UTC(), "nonce": newSecret("")[:16]})
	seq, err := ts.records.Append(ctx, BootstrapCollection, marker, 1000)
	if err != nil {
		return "", false, fmt.Errorf("access: bootstrap: %w", err)
	}
	first, err := ts.records.Scan(ctx, BootstrapCollection, 0, 1000)
	if err != nil {
		return "", false, fmt.Errorf("access: bootstrap: %w", err)
	}
	won := len(first) > 0 && first[len(first)-1].ID == fmt.Sprint(seq)
	if !won {
		const step = 250 * time.Millisecond
		for waited := time.Duration(0); waited < grace; waited += step {
			if err := sleep(ctx, step); err != nil {
				return "", false, err
			}
			empty, err := ts.empty(ctx)
			if err != nil || !empty {
				return "", false, err
			}
		}
	}
	secret, _, err := ts.Create(ctx, "bootstrap-admin", []Grant{{Role: RoleAdmin, Pattern: "*"}}, "bootstrap")
	if err != nil {
		return "", false, err
	}
	return secret, true, nil
}

func (ts *Tokens) empty(ctx context.Context) (bool, error) {
	recs, err := ts.records.List(ctx, TokensCollection)
	if err != nil {
		return false, fmt.Errorf("access: bootstrap: list tokens: %w", err)
	}
	return len(recs) == 0, nil
}
