package secrets

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/configsvc"
)

// Magic is the first line of every envelope; Redacted the first bytes of
// every redaction placeholder. Both are plain ASCII so that every layer
// can carry them as text.
const (
	Magic    = "sluice-secret/v1\n"
	Redacted = "# sluice: secret file"
)

// AlgAES256GCM is the content cipher: AES-256-GCM with a 96-bit random nonce.
const AlgAES256GCM = "A256GCM"

// MaxPlaintext is the largest secret file, in bytes: its envelope (base64
// ciphertext and a header) must stay within configsvc.MaxFileSize.
const MaxPlaintext = configsvc.MaxFileSize/4*3 - 4096

// Errors of the package. The admin API answers ErrKey with 503 and its
// message (which names the file, the revision and the key id, never a
// value), ErrNotEnvelope with 400.
var (
	// ErrKey: the key a secret needs is missing from the keyring, or does
	// not open it (wrong key, tampered envelope). The server refuses to
	// serve the file; it never falls back to anything else.
	ErrKey = errors.New("secret key unavailable")
	// ErrNoKeyring: the server has no keyring configured. It wraps ErrKey.
	ErrNoKeyring = fmt.Errorf("no keyring for secret files is configured (docs/secrets.md): %w", ErrKey)
	// ErrNotEnvelope: a secret file's stored content is not an envelope.
	ErrNotEnvelope = fmt.Errorf("secret file is not encrypted: %w", configsvc.ErrInvalid)
)

// Keyring wraps and unwraps data keys with key-encryption keys. Wrap uses
// the keyring's active key and returns its id; Unwrap takes the id stored
// with the wrapped key. aad binds the wrapped key to one service, file and
// revision: Unwrap with another aad fails. Implementations are safe for
// concurrent use. Unwrap wraps ErrKey when the key id is unknown or the key
// does not open the wrapped key.
type Keyring interface {
	Wrap(ctx context.Context, dataKey, aad []byte) (keyID string, wrapped []byte, err error)
	Unwrap(ctx context.Context, keyID string, wrapped, aad []byte) ([]byte, error)
}

// Header is the clear part of an envelope: what the value is bound to and
// how its data key is wrapped. It holds no secret: the data key is wrapped.
type Header struct {
	Alg string `json:"alg"`
	// Kind and Name are the service or group, File the file; Context is
	// "r<N>" for revision N, or "gray:<id>" for a gray's change (a promote
	// copies it to main as it is).
	Kind    configsvc.Kind `json:"kind"`
	Name    string         `json:"name"`
	File    string         `json:"file"`
	Context string         `json:"ctx"`
	// Size is the plaintext length in bytes.
	Size int64 `json:"size"`
	// KeyID names the key-encryption key; Wrapped is the wrapped data key.
	KeyID   string `json:"kid"`
	Wrapped []byte `json:"wrapped"`
	Nonce   []byte `json:"nonce"`
}

// AAD returns the associated data binding h's value to its service, file
// and revision: both the content and the wrapped data key are sealed with
// it.
func (h *Header) AAD() []byte {
	return []byte("sluice-secret/v1\x00" + string(h.Kind) + "\x00" + h.Name + "\x00" + h.File + "\x00" + h.Context)
}

// Ref returns the service or group h is bound to.
func (h *Header) Ref() configsvc.Ref { return configsvc.Ref{Kind: h.Kind, Name: h.Name} }

// Revision returns the revision h is bound to, 0 for a gray's change.
func (h *Header) Revision() int64 {
	n, _ := strconv.ParseInt(strings.TrimPrefix(h.Context, "r"), 10, 64)
	if !strings.HasPrefix(h.Context, "r") {
		return 0
	}
	return n
}

// RevisionContext returns the Context of revision n.
func RevisionContext(n int64) string { return "r" + strconv.FormatInt(n, 10) }

// GrayContext returns the Context of a change of gray id.
func GrayContext(id string) string { return "gray:" + id }

// IsEnvelope reports whether content is an envelope.
func IsEnvelope(content []byte) bool { return bytes.HasPrefix(content, []byte(Magic)) }

// IsRedacted reports whether content is a redaction placeholder.
func IsRedacted(content []byte) bool { return bytes.HasPrefix(content, []byte(Redacted)) }

// Seal encrypts plaintext for file of ref in context ctxName with a new data
// key wrapped by kr, and returns the envelope.
func Seal(ctx context.Context, kr Keyring, ref configsvc.Ref, file, ctxName string, plaintext []byte) ([]byte, error) {
	if len(plaintext) > MaxPlaintext {
		return nil, &configsvc.FieldError{Field: "content", Value: file,
			Msg: fmt.Sprintf("a secret file is at most %d bytes (MaxPlaintext; got %d)", MaxPlaintext, len(plaintext))}
	}
	h := Header{Alg: AlgAES256GCM, Kind: ref.Kind, Name: ref.Name, File: file, Context: ctxName, Size: int64(len(plaintext))}
	dek := make([]byte, 32)
	h.Nonce = make([]byte, 12)
	if _, err := rand.Read(dek); err != nil {
		return nil, err
	}
	if _, err := rand.Read(h.Nonce); err != nil {
		return nil, err
	}
	aad := h.AAD()
	var err error
	if h.KeyID, h.Wrapped, err = kr.Wrap(ctx, dek, aad); err != nil {
		return nil, fmt.Errorf("secrets: wrap the data key of %s/%s: %w", ref, file, err)
	}
	aead, err := newAEAD(dek)
	if err != nil {
		return nil, err
	}
	ct := aead.Seal(nil, h.Nonce, plaintext, aad)
	return encode(&h, ct)
}

func encode(h *Header, ct []byte) ([]byte, error) {
	hj, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Grow(len(Magic) + len(hj) + base64.StdEncoding.EncodedLen(len(ct)) + 2)
	b.WriteString(Magic)
	b.Write(hj)
	b.WriteByte('\n')
	b.WriteString(base64.StdEncoding.EncodeToString(ct))
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// Parse splits an envelope into its header and ciphertext. It wraps
// ErrNotEnvelope when content is not one.
func Parse(content []byte) (*Header, []byte, error) {
	if !IsEnvelope(content) {
		return nil, nil, ErrNotEnvelope
	}
	rest := content[len(Magic):]
	hj, ctb, ok := bytes.Cut(rest, []byte("\n"))
	if !ok {
		return nil, nil, fmt.Errorf("secrets: envelope without ciphertext: %w", ErrNotEnvelope)
	}
	var h Header
	if err := json.Unmarshal(hj, &h); err != nil {
		return nil, nil, fmt.Errorf("secrets: envelope header: %v: %w", err, ErrNotEnvelope)
	}
	if h.Alg != AlgAES256GCM {
		return nil, nil, fmt.Errorf("secrets: envelope algorithm %q is not %s: %w", h.Alg, AlgAES256GCM, ErrNotEnvelope)
	}
	ct, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(ctb)))
	if err != nil {
		return nil, nil, fmt.Errorf("secrets: envelope ciphertext: %v: %w", err, ErrNotEnvelope)
	}
	return &h, ct, nil
}

// HeaderLine returns the header line (JSON, the envelope's second line) of
// envelope: what the SDK sends for its data key (api.DataKeyRequest).
func HeaderLine(envelope []byte) (string, error) {
	if _, _, err := Parse(envelope); err != nil {
		return "", err
	}
	hj, _, _ := bytes.Cut(envelope[len(Magic):], []byte("\n"))
	return string(hj), nil
}

// ParseHeader reads a header line (HeaderLine).
func ParseHeader(line string) (*Header, error) {
	var h Header
	if err := json.Unmarshal([]byte(line), &h); err != nil {
		return nil, fmt.Errorf("secrets: envelope header: %v: %w", err, ErrNotEnvelope)
	}
	if h.Alg != AlgAES256GCM {
		return nil, fmt.Errorf("secrets: envelope algorithm %q is not %s: %w", h.Alg, AlgAES256GCM, ErrNotEnvelope)
	}
	return &h, nil
}

// Rewrap returns envelope with its data key unwrapped by from's key and
// wrapped again by to's active key; the ciphertext is not touched.
func Rewrap(ctx context.Context, from, to Keyring, envelope []byte) ([]byte, error) {
	h, ct, err := Parse(envelope)
	if err != nil {
		return nil, err
	}
	dek, err := from.Unwrap(ctx, h.KeyID, h.Wrapped, h.AAD())
	if err != nil {
		return nil, err
	}
	if h.KeyID, h.Wrapped, err = to.Wrap(ctx, dek, h.AAD()); err != nil {
		return nil, err
	}
	return encode(h, ct)
}

// Open checks that envelope is bound to file of ref and decrypts it with
// its data key from kr. Errors wrap ErrKey (missing or wrong key, tampered
// envelope) or ErrNotEnvelope.
func Open(ctx context.Context, kr Keyring, ref configsvc.Ref, file string, envelope []byte) ([]byte, error) {
	h, ct, err := Parse(envelope)
	if err != nil {
		return nil, err
	}
	if err := h.check(ref, file); err != nil {
		return nil, err
	}
	dek, err := kr.Unwrap(ctx, h.KeyID, h.Wrapped, h.AAD())
	if err != nil {
		return nil, fmt.Errorf("secrets: %s/%s (%s): refusing to serve: %w", ref, file, h.Context, err)
	}
	return OpenWithKey(h, ct, dek)
}

// OpenWithKey decrypts the ciphertext ct of header h with its data key
// (what the SDK does with a key the admin server unwrapped for it).
func OpenWithKey(h *Header, ct, dataKey []byte) ([]byte, error) {
	aead, err := newAEAD(dataKey)
	if err != nil {
		return nil, err
	}
	pt, err := aead.Open(nil, h.Nonce, ct, h.AAD())
	if err != nil {
		return nil, fmt.Errorf("secrets: %s/%s (%s): the data key does not open it (tampered or moved): %w", h.Ref(), h.File, h.Context, ErrKey)
	}
	return pt, nil
}

func (h *Header) check(ref configsvc.Ref, file string) error {
	if h.Kind != ref.Kind || h.Name != ref.Name || h.File != file {
		return fmt.Errorf("secrets: envelope of %s/%s found at %s/%s (moved between files): %w",
			h.Ref(), h.File, ref, file, ErrKey)
	}
	return nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("secrets: data key is %d bytes, not 32: %w", len(key), ErrKey)
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// Placeholder returns what a reader without the secrets grant sees instead
// of a secret file's content: that it is secret, its size and revision.
// It needs no key. For content that is not an envelope it says so, without
// showing it either.
func Placeholder(content []byte) []byte {
	h, _, err := Parse(content)
	if err != nil {
		return []byte(Redacted + " (stored unencrypted; republish it), value hidden\n")
	}
	where := "revision " + strings.TrimPrefix(h.Context, "r")
	if h.Revision() == 0 {
		where = h.Context
	}
	sum := sha256.Sum256(content)
	return []byte(fmt.Sprintf("%s, %d bytes, %s, key %s, envelope %x; value hidden (needs the secrets grant)\n",
		Redacted, h.Size, where, h.KeyID, sum[:6]))
}

// ProposedPlaceholder is Placeholder for a value not sealed yet (the diff
// of a dry run): its size only.
func ProposedPlaceholder(plaintext []byte) []byte {
	return []byte(fmt.Sprintf("%s, %d bytes, proposed; value hidden (needs the secrets grant)\n", Redacted, len(plaintext)))
}
