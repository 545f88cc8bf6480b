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
}

// Principal returns the principal authenticated by this token.
func (t *Token) Principal() *Principal {
	return &Principal{TokenID: t.ID, Name: t.Name, Grants: append([]Grant(nil), t.Roles...)}
}

// HashToken returns the hex SHA-256 of a token (or session id): the key its
// record is stored under.
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
// creator's token id, or "bootstrap"). It returns the token, to be shown
// once, and its record. Errors: *configsvc.FieldError for a bad name or
// grant; store errors wrapped.
func (ts *Tokens) Create(ctx context.Context, name string, roles []Grant, createdBy string) (string, Token, error) {
	if name == "" || len(name) > MaxTokenName || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
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
	secret := newSecret(TokenPrefix)
	hash := HashToken(secret)
	t := Token{ID: hash[:12], Name: name, Roles: grants, Created: ts.now().UTC(), CreatedBy: createdBy}
	data, err := json.Marshal(t)
	if err != nil {
		return "", Token{}, fmt.Errorf("access: encode token %s: %w", t.ID, err)
	}
	if err := ts.records.Put(ctx, TokensCollection, hash, data); err != nil {
		return "", Token{}, fmt.Errorf("access: store token %s: %w", t.ID, err)
	}
	return secret, t, nil
}

// wellFormed reports whether s has the shape of a secret with prefix,
// without branching on its content beyond the length and prefix.
func wellFormed(s, prefix string) bool {
	return len(s) == tokenLen && subtle.ConstantTimeCompare([]byte(s[:len(prefix)]), []byte(prefix)) == 1
}

// Authenticate returns the principal of token. The lookup is keyed by the
// token's SHA-256, so its timing reveals nothing about the stored tokens.
// A malformed, unknown or revoked token gives an error wrapping
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
	return &t, nil
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
	if len(id) != 12 || strings.Trim(id, "0123456789abcdef") != "" {
		return Token{}, &configsvc.FieldError{Field: "id", Value: id, Msg: "must be 12 lowercase hex digits"}
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
