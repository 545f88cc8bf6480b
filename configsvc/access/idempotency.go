package access

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

// Limits and defaults of idempotency keys.
const (
	// IdempotencyTTL is how long the answer to a request is kept for its
	// idempotency key.
	IdempotencyTTL = 24 * time.Hour
	// MaxIdempotencyKeyLen bounds an idempotency key, in bytes.
	MaxIdempotencyKeyLen = 255
	// MaxIdempotentBody bounds the answer body kept for a key: a longer
	// one is replayed with its status and headers only.
	MaxIdempotentBody = 48 << 10
	// idempotencyShards is how many record collections the keys are
	// spread over (by their hash), each holding at most
	// configsvc.MaxRecordsPerCollection keys at once.
	idempotencyShards = 256
)

// Errors of idempotency keys.
var (
	// ErrInProgress: a request with the same key is still being answered
	// (HTTP 409, code idempotency_in_progress); retry later.
	ErrInProgress = errors.New("a request with this idempotency key is in progress")
	// ErrKeyReused: the key was first used for a different request (HTTP
	// 422). The error wraps a *configsvc.FieldError on the key.
	ErrKeyReused = errors.New("idempotency key reused for a different request")
)

// ValidateIdempotencyKey checks a key: 1 to MaxIdempotencyKeyLen visible
// ASCII characters (no space or control character). It returns a
// *configsvc.FieldError on "Idempotency-Key" (ErrInvalid).
func ValidateIdempotencyKey(key string) error {
	bad := &configsvc.FieldError{Field: "Idempotency-Key", Value: key,
		Msg: fmt.Sprintf("must be 1 to %d visible ASCII characters (a UUID is typical)", MaxIdempotencyKeyLen)}
	if key == "" || len(key) > MaxIdempotencyKeyLen {
		return bad
	}
	for i := 0; i < len(key); i++ {
		if key[i] <= ' ' || key[i] > '~' {
			return bad
		}
	}
	return nil
}

// KeyedRequest is a mutating request carrying an idempotency key.
type KeyedRequest struct {
	// Credential is the secret the request authenticated with (an API
	// token or a console session id): keys are per credential, and the
	// kept answer is encrypted with it, so only its holder can have it
	// replayed. Never stored.
	Credential string
	// Method and Path (escaped) name the route instance: a key is per
	// route.
	Method, Path string
	// Key is the client's idempotency key (ValidateIdempotencyKey).
	Key string
	// Parts are what makes two requests the same besides method and path:
	// the body, the query, the headers that change what is written.
	Parts [][]byte
}

// Answer is an answer kept for a key.
type Answer struct {
	Status int         `json:"status"`
	Header http.Header `json:"header,omitempty"`
	Body   []byte      `json:"body,omitempty"`
}

// keyRecord is the stored record of a key, in collection
// "idempotency-XX" under the hash of credential, method, path and key.
type keyRecord struct {
	// Fingerprint is an HMAC, keyed by the credential, of the request.
	Fingerprint string    `json:"fingerprint"`
	Expires     time.Time `json:"expires"`
	// Until, while Answer is empty, is when the request that claimed the
	// key gives up; past it the outcome of that request is unknown.
	Until time.Time `json:"until,omitzero"`
	// Claim tells one claim from another (a create whose reply was lost
	// is recognised by it).
	Claim string `json:"claim"`
	// Answer is the kept Answer, sealed with AES-GCM under a key derived
	// from the credential; empty while the request runs.
	Answer []byte `json:"answer,omitempty"`
}

// Idempotency keeps the answers of mutating requests by idempotency key in
// a RecordStore, so that every server on the store replays them: a retry
// with the same key (same credential, method and path) within
// IdempotencyTTL gets the first answer and writes nothing. It is safe for
// concurrent use.
type Idempotency struct {
	records configsvc.RecordStore
	now     func() time.Time
}

// NewIdempotency returns an Idempotency on records with the clock now
// (nil: time.Now).
func NewIdempotency(records configsvc.RecordStore, now func() time.Time) *Idempotency {
	if now == nil {
		now = time.Now
	}
	return &Idempotency{records: records, now: now}
}

// Claim is a key claimed by a request being answered. Exactly one of
// Finish and Release ends it.
type Claim struct {
	d    *Idempotency
	coll string
	id   string
	rec  keyRecord
	seal []byte // AES key
}

// Begin looks req's key up and either claims it (the caller answers the
// request, then calls Finish or Release), or returns the answer to replay.
// Errors: ErrKeyReused (wrapping a *configsvc.FieldError) when the key
// was first used for a different request; ErrInProgress while the first
// request runs; configsvc.ErrOutcomeUnknown when the first request gave up
// without an answer (its server stopped): whether it took effect is
// unknown; configsvc.ErrTooMany when too many keys are kept; the store's
// errors. claimFor is how long the request may take before a retry takes
// its outcome for unknown.
func (d *Idempotency) Begin(ctx context.Context, req KeyedRequest, claimFor time.Duration) (*Claim, *Answer, error) {
	id := keyID(req)
	coll := fmt.Sprintf("idempotency-%s", id[:2])
	seal := derive(req.Credential, "answer", id)
	fp := hex.EncodeToString(mac(derive(req.Credential, "fingerprint", id), req.Parts...))
	for attempt := 0; attempt < 5; attempt++ {
		now := d.now()
		data, err := d.records.Get(ctx, coll, id)
		if errors.Is(err, configsvc.ErrNotFound) {
			c := &Claim{d: d, coll: coll, id: id, seal: seal, rec: keyRecord{
				Fingerprint: fp, Expires: now.Add(IdempotencyTTL).UTC(), Until: now.Add(claimFor).UTC(), Claim: newSecret(""),
			}}
			err := d.records.Create(ctx, coll, id, mustMarshal(c.rec))
			if errors.Is(err, configsvc.ErrConflict) {
				continue // claimed at the same moment elsewhere: look again
			}
			if err != nil {
				return nil, nil, fmt.Errorf("access: claim idempotency key: %w", err)
			}
			return c, nil, nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("access: look up idempotency key: %w", err)
		}
		var rec keyRecord
		if err := json.Unmarshal(data, &rec); err != nil {
			return nil, nil, fmt.Errorf("access: idempotency key record: %w", err)
		}
		if !now.Before(rec.Expires) {
			if err := d.records.Delete(ctx, coll, id); err != nil && !errors.Is(err, configsvc.ErrNotFound) {
				return nil, nil, fmt.Errorf("access: expire idempotency key: %w", err)
			}
			continue
		}
		if !hmac.Equal([]byte(rec.Fingerprint), []byte(fp)) {
			return nil, nil, fmt.Errorf("%w: %w", ErrKeyReused, &configsvc.FieldError{Field: "Idempotency-Key", Value: req.Key,
				Msg: "was first used, within 24 h, for a request with another body, query or message; use a new key for a new request"})
		}
		if len(rec.Answer) == 0 {
			if now.Before(rec.Until) {
				return nil, nil, fmt.Errorf("access: Idempotency-Key %q: %w; retry after it answers", configsvc.Truncate(req.Key, configsvc.MaxEchoLen), ErrInProgress)
			}
			return nil, nil, fmt.Errorf("access: the request first sent with Idempotency-Key %q stopped before it answered, so whether it took effect is unknown; read the current state, then send a new request with a new key: %w",
				configsvc.Truncate(req.Key, configsvc.MaxEchoLen), configsvc.ErrOutcomeUnknown)
		}
		ans, err := open(seal, rec.Answer)
		if err != nil {
			return nil, nil, fmt.Errorf("access: idempotency key answer: %w", err)
		}
		return nil, ans, nil
	}
	return nil, nil, fmt.Errorf("access: idempotency key kept changing: %w", configsvc.ErrUnavailable)
}

// Finish keeps ans as the answer to the claimed key (a body over
// MaxIdempotentBody is not kept).
func (c *Claim) Finish(ctx context.Context, ans Answer) error {
	if len(ans.Body) > MaxIdempotentBody {
		ans.Body = nil
	}
	rec := c.rec
	rec.Until = time.Time{}
	rec.Answer = sealAnswer(c.seal, ans)
	if err := c.d.records.Put(ctx, c.coll, c.id, mustMarshal(rec)); err != nil {
		return fmt.Errorf("access: keep the answer of an idempotency key: %w", err)
	}
	return nil
}

// Release forgets the claimed key: the request wrote nothing (it was
// refused for a reason that may pass, or the store was unreachable), so a
// retry with the key runs again.
func (c *Claim) Release(ctx context.Context) error {
	if err := c.d.records.Delete(ctx, c.coll, c.id); err != nil && !errors.Is(err, configsvc.ErrNotFound) {
		return fmt.Errorf("access: release an idempotency key: %w", err)
	}
	return nil
}

// Sweep deletes the keys whose answers expired, and claims that outlived
// IdempotencyTTL. Several servers may sweep at once.
func (d *Idempotency) Sweep(ctx context.Context) (int, error) {
	now := d.now()
	total := 0
	for i := range idempotencyShards {
		n, err := deleteWhere(ctx, d.records, fmt.Sprintf("idempotency-%02x", i), func(data []byte) bool {
			var rec keyRecord
			return json.Unmarshal(data, &rec) != nil || !now.Before(rec.Expires)
		})
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// keyID is the record id of req's key: SHA-256 of the credential's hash,
// method, path and key.
func keyID(req KeyedRequest) string {
	h := sha256.New()
	for _, s := range []string{"sluice idempotency", HashToken(req.Credential), req.Method, req.Path, req.Key} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// derive returns a 32-byte key for purpose and id from the credential.
func derive(credential, purpose, id string) []byte {
	return mac([]byte(credential), []byte("sluice idempotency "+purpose), []byte(id))
}

// mac returns HMAC-SHA256 under key of parts, each length-prefixed.
func mac(key []byte, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		fmt.Fprintf(m, "%d:", len(p))
		m.Write(p)
	}
	return m.Sum(nil)
}

func sealAnswer(key []byte, ans Answer) []byte {
	gcm := newGCM(key)
	nonce := make([]byte, gcm.NonceSize())
	_, _ = rand.Read(nonce) // crypto/rand.Read never fails
	return gcm.Seal(nonce, nonce, mustMarshal(ans), nil)
}

func open(key, sealed []byte) (*Answer, error) {
	gcm := newGCM(key)
	if len(sealed) < gcm.NonceSize() {
		return nil, errors.New("sealed answer too short")
	}
	plain, err := gcm.Open(nil, sealed[:gcm.NonceSize()], sealed[gcm.NonceSize():], nil)
	if err != nil {
		return nil, fmt.Errorf("open the answer: %w", err)
	}
	var ans Answer
	if err := json.Unmarshal(plain, &ans); err != nil {
		return nil, err
	}
	return &ans, nil
}

func newGCM(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(fmt.Sprintf("access: AES with a %d-byte key: %v", len(key), err)) // derive returns 32 bytes
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		panic(fmt.Sprintf("access: GCM: %v", err))
	}
	return gcm
}

func mustMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("access: marshal %T: %v", v, err)) // only this file's types
	}
	return b
}
