package vaulttransit_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/secrets"
	"github.com/sluicehq/sluice/configsvc/secrets/vaulttransit"
)

// fakeTransit is the part of Vault's transit engine the keyring uses, on
// loopback: encrypt, decrypt, rotate and read of one key, with versions.
type fakeTransit struct {
	mu       sync.Mutex
	versions map[int]cipher.AEAD
	latest   int
	minDec   int
	token    string
}

func newFakeTransit(t *testing.T, token string) (*fakeTransit, *httptest.Server) {
	f := &fakeTransit{versions: map[int]cipher.AEAD{}, token: token, minDec: 1}
	f.rotate()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeTransit) rotate() {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	b, _ := aes.NewCipher(key)
	g, _ := cipher.NewGCM(b)
	f.latest++
	f.versions[f.latest] = g
}

func (f *fakeTransit) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fail := func(code int, msg string) {
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]any{"errors": []string{msg}})
	}
	if r.Header.Get("X-Vault-Token") != f.token {
		fail(403, "permission denied")
		return
	}
	var in map[string]string
	_ = json.NewDecoder(r.Body).Decode(&in)
	answer := func(data map[string]any) { _ = json.NewEncoder(w).Encode(map[string]any{"data": data}) }
	switch r.URL.Path {
	case "/v1/transit/encrypt/sluice":
		pt, _ := base64.StdEncoding.DecodeString(in["plaintext"])
		g := f.versions[f.latest]
		nonce := make([]byte, g.NonceSize())
		_, _ = rand.Read(nonce)
		answer(map[string]any{"ciphertext": "vault:v" + strconv.Itoa(f.latest) + ":" + base64.StdEncoding.EncodeToString(g.Seal(nonce, nonce, pt, nil))})
	case "/v1/transit/decrypt/sluice":
		parts := strings.SplitN(in["ciphertext"], ":", 3)
		v, _ := strconv.Atoi(strings.TrimPrefix(parts[1], "v"))
		g := f.versions[v]
		raw, _ := base64.StdEncoding.DecodeString(parts[2])
		if g == nil || v < f.minDec || len(raw) < 12 {
			fail(400, "invalid ciphertext: key version too old")
			return
		}
		pt, err := g.Open(nil, raw[:12], raw[12:], nil)
		if err != nil {
			fail(400, "cipher: message authentication failed")
			return
		}
		answer(map[string]any{"plaintext": base64.StdEncoding.EncodeToString(pt)})
	case "/v1/transit/keys/sluice/rotate":
		f.rotate()
		w.WriteHeader(http.StatusNoContent)
	case "/v1/transit/keys/sluice":
		answer(map[string]any{"latest_version": f.latest})
	default:
		fail(404, "no handler for route "+r.URL.Path)
	}
}

func TestVaultTransitWrapUnwrap(t *testing.T) {
	ctx := context.Background()
	_, srv := newFakeTransit(t, "root-token")
	kr, err := vaulttransit.New(vaulttransit.Config{Address: srv.URL, Token: "root-token", Key: "sluice"})
	if err != nil {
		t.Fatal(err)
	}
	dek := make([]byte, 32)
	_, _ = rand.Read(dek)
	id, wrapped, err := kr.Wrap(ctx, dek, []byte("aad-1"))
	if err != nil || id != "vault:sluice:v1" {
		t.Fatalf("Wrap = %q, %v", id, err)
	}
	got, err := kr.Unwrap(ctx, id, wrapped, []byte("aad-1"))
	if err != nil || string(got) != string(dek) {
		t.Fatalf("Unwrap = %v", err)
	}
	if _, err := kr.Unwrap(ctx, id, wrapped, []byte("aad-2")); !errors.Is(err, secrets.ErrKey) {
		t.Errorf("Unwrap bound to another aad = %v, want ErrKey", err)
	}
	bad, _ := vaulttransit.New(vaulttransit.Config{Address: srv.URL, Token: "wrong", Key: "sluice"})
	if _, err := bad.Unwrap(ctx, id, wrapped, []byte("aad-1")); !errors.Is(err, secrets.ErrKey) || strings.Contains(err.Error(), "wrong") {
		t.Errorf("Unwrap with a bad token = %v, want ErrKey without the token", err)
	}
}

// TestVaultTransitRotateKeepsHistory: after the transit key is rotated and
// its old version can no longer decrypt, the Keychain's rotation has
// re-wrapped every store key, so revisions sealed before still open.
func TestVaultTransitRotateKeepsHistory(t *testing.T) {
	ctx := context.Background()
	fake, srv := newFakeTransit(t, "root-token")
	kr, _ := vaulttransit.New(vaulttransit.Config{Address: srv.URL, Token: "root-token", Key: "sluice"})
	b, err := boltstore.Open(filepath.Join(t.TempDir(), "s.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	kc := secrets.NewKeychain(b.Records(), kr)
	ref := configsvc.Service("orders")
	env, err := secrets.Seal(ctx, kc, ref, "db.secret.yaml", secrets.RevisionContext(1), []byte("password: v1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	rot, err := secrets.NewKeychain(b.Records(), kr).Rotate(ctx)
	if err != nil || rot.KEK != "vault:sluice:v2" || len(rot.Rewrapped) != 1 {
		t.Fatalf("Rotate = %+v, %v", rot, err)
	}
	fake.mu.Lock()
	fake.minDec = 2 // retire version 1
	fake.mu.Unlock()
	pt, err := secrets.Open(ctx, secrets.NewKeychain(b.Records(), kr), ref, "db.secret.yaml", env)
	if err != nil || string(pt) != "password: v1" {
		t.Fatalf("Open after rotation = %q, %v", pt, err)
	}
}
