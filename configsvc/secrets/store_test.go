package secrets_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/format"
	"github.com/sluicehq/sluice/configsvc/schema"
	"github.com/sluicehq/sluice/configsvc/secrets"
	"github.com/sluicehq/sluice/configsvc/secrets/localkey"
)

var orders = configsvc.Service("orders")

// mustStore returns a validating secrets.Store on a bbolt file in a temp
// dir, as `sluice server` wires it, its backend and its keyring.
func mustStore(t *testing.T) (*configsvc.ValidatingStore, configsvc.Store, *localkey.Keyring) {
	t.Helper()
	dir := t.TempDir()
	kr, err := localkey.Open(filepath.Join(dir, "secrets.key"), true)
	if err != nil {
		t.Fatal(err)
	}
	b, err := boltstore.Open(filepath.Join(dir, "s.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	st := configsvc.Validating(secrets.NewStore(b, kr), configsvc.Validators(format.Validator{}, schema.NewValidator()))
	if err := st.Create(context.Background(), orders); err != nil {
		t.Fatal(err)
	}
	return st, b, kr
}

func plain(ctx context.Context) context.Context {
	return configsvc.WithSecretViewAll(ctx, configsvc.SecretPlaintext)
}

func mustPublish(t *testing.T, st configsvc.Store, base int64, files ...string) {
	t.Helper()
	var chs []configsvc.Change
	for i := 0; i+1 < len(files); i += 2 {
		chs = append(chs, configsvc.Change{File: files[i], Content: []byte(files[i+1])})
	}
	if _, err := st.Publish(context.Background(), orders, configsvc.Changeset{Base: base, Author: "t", Changes: chs}); err != nil {
		t.Fatalf("publish on %d: %v", base, err)
	}
}

func TestStoreViews(t *testing.T) {
	ctx := context.Background()
	st, raw, _ := mustStore(t)
	mustPublish(t, st, 0, "db.secret.yaml", "password: one\n", "app.yaml", "a: 1\n")
	mustPublish(t, st, 1, "db.secret.yaml", "password: two\n")

	stored, _, err := raw.File(ctx, orders, "db.secret.yaml", 0)
	if err != nil || !secrets.IsEnvelope(stored) || bytes.Contains(stored, []byte("two")) {
		t.Fatalf("backend holds %q, %v; want an envelope", stored, err)
	}
	h, _, err := secrets.Parse(stored)
	if err != nil || h.Revision() != 2 || h.File != "db.secret.yaml" || h.Size != int64(len("password: two\n")) {
		t.Fatalf("header = %+v, %v", h, err)
	}
	for _, tc := range []struct {
		name string
		ctx  context.Context
		want func([]byte) bool
	}{
		{"default is redacted", ctx, func(b []byte) bool { return secrets.IsRedacted(b) && strings.Contains(string(b), "revision 2") }},
		{"plaintext", plain(ctx), func(b []byte) bool { return string(b) == "password: two\n" }},
		{"envelope", configsvc.WithSecretViewAll(ctx, configsvc.SecretEnvelope), func(b []byte) bool { return bytes.Equal(b, stored) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _, err := st.File(tc.ctx, orders, "db.secret.yaml", 0)
			if err != nil || !tc.want(b) {
				t.Errorf("File = %q, %v", b, err)
			}
			snap, err := st.Snapshot(tc.ctx, orders, 2)
			if err != nil || !tc.want(snap.Files["db.secret.yaml"]) || string(snap.Files["app.yaml"]) != "a: 1\n" {
				t.Errorf("Snapshot = %q, %v", snap.Files, err)
			}
			r, err := st.Revision(tc.ctx, orders, 2)
			if err != nil || !tc.want(r.Changes[0].Content) {
				t.Errorf("Revision = %+v, %v", r, err)
			}
		})
	}
	// The backend's own answer is untouched by a redacting read (no shared slice rewritten).
	again, _, _ := raw.File(ctx, orders, "db.secret.yaml", 0)
	if !bytes.Equal(again, stored) {
		t.Error("a read through the secrets store changed what the backend returns")
	}
}

// TestAttackSecretPlaceholderRepublished: content read back without the
// grant (a placeholder) or as an envelope cannot be published as the
// value: the publish is refused, the stored secret stays.
func TestAttackSecretPlaceholderRepublished(t *testing.T) {
	ctx := context.Background()
	st, _, _ := mustStore(t)
	mustPublish(t, st, 0, "db.secret.txt", "password: one\n")
	for _, view := range []configsvc.SecretView{configsvc.SecretRedacted, configsvc.SecretEnvelope} {
		b, _, _ := st.File(configsvc.WithSecretViewAll(ctx, view), orders, "db.secret.txt", 0)
		_, err := st.Publish(ctx, orders, configsvc.Changeset{Base: 1, Author: "t", Changes: []configsvc.Change{{File: "db.secret.txt", Content: b}}})
		if !errors.Is(err, configsvc.ErrInvalid) {
			t.Errorf("republishing view %d = %v, want ErrInvalid", view, err)
		}
	}
}

// TestAttackSecretEnvelopeMoved: an envelope copied by someone with write
// access to the store into another file, or into another revision, is
// refused, never decrypted as the other file's value.
func TestAttackSecretEnvelopeMoved(t *testing.T) {
	ctx := context.Background()
	_, raw, kr := mustStore(t)
	sst := secrets.NewStore(raw, kr)
	env, err := secrets.Seal(ctx, kr, orders, "a.secret.txt", secrets.RevisionContext(1), []byte("value-a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := secrets.Open(ctx, kr, orders, "b.secret.txt", env); !errors.Is(err, secrets.ErrKey) {
		t.Errorf("Open in another file = %v, want ErrKey", err)
	}
	if _, err := secrets.Open(ctx, kr, configsvc.Service("payments"), "a.secret.txt", env); !errors.Is(err, secrets.ErrKey) {
		t.Errorf("Open in another service = %v, want ErrKey", err)
	}
	// Forge the header to claim another file: the wrapped key and the
	// ciphertext are bound to the original one.
	forged := bytes.Replace(env, []byte(`"file":"a.secret.txt"`), []byte(`"file":"b.secret.txt"`), 1)
	if _, err := secrets.Open(ctx, kr, orders, "b.secret.txt", forged); !errors.Is(err, secrets.ErrKey) {
		t.Errorf("Open of a forged header = %v, want ErrKey", err)
	}
	// Written straight into the backend at revision 2, bound to revision 1.
	if _, err := raw.Publish(ctx, orders, configsvc.Changeset{Base: 0, Author: "t", Changes: []configsvc.Change{{File: "x.txt", Content: []byte("x")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Publish(ctx, orders, configsvc.Changeset{Base: 1, Author: "t", Changes: []configsvc.Change{{File: "a.secret.txt", Content: env}}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := sst.File(plain(ctx), orders, "a.secret.txt", 0); !errors.Is(err, secrets.ErrKey) {
		t.Errorf("File of an envelope moved to another revision = %v, want ErrKey", err)
	}
}

// TestSecretGrayAndRollback: a gray's change to a secret file is stored as
// an envelope; promoting it keeps the value readable; a rollback
// republishes the old value under a new envelope of the new revision.
func TestSecretGrayAndRollback(t *testing.T) {
	ctx := context.Background()
	st, raw, _ := mustStore(t)
	mustPublish(t, st, 0, "db.secret.yaml", "password: one\n")
	g, err := st.CreateGray(ctx, orders, configsvc.Gray{Author: "t", BaseRevision: 1,
		Changes:  []configsvc.Change{{File: "db.secret.yaml", Content: []byte("password: gray\n")}},
		Selector: configsvc.Selector{Instances: []string{"i-1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if !secrets.IsRedacted(g.Changes[0].Content) {
		t.Errorf("CreateGray returns %q, want a placeholder", g.Changes[0].Content)
	}
	rg, err := raw.Gray(ctx, orders, g.ID)
	if err != nil || !secrets.IsEnvelope(rg.Changes[0].Content) || bytes.Contains(rg.Changes[0].Content, []byte("gray\n")) {
		t.Fatalf("backend gray holds %q, %v; want an envelope", rg.Changes[0].Content, err)
	}
	pg, err := st.Gray(plain(ctx), orders, g.ID)
	if err != nil || string(pg.Changes[0].Content) != "password: gray\n" {
		t.Fatalf("gray in plaintext = %q, %v", pg.Changes[0].Content, err)
	}
	if _, _, err := st.EndGray(ctx, orders, g.ID, g.Version, configsvc.GrayEnd{State: configsvc.GrayPromoted,
		Promote: &configsvc.Changeset{Base: 1, Author: "t"}}); err != nil {
		t.Fatal(err)
	}
	b, _, err := st.File(plain(ctx), orders, "db.secret.yaml", 0)
	if err != nil || string(b) != "password: gray\n" {
		t.Fatalf("after promote = %q, %v", b, err)
	}
	rev, err := configsvc.Rollback(ctx, st, orders, configsvc.RollbackRequest{To: 1, Author: "t"})
	if err != nil {
		t.Fatal(err)
	}
	b, _, err = st.File(plain(ctx), orders, "db.secret.yaml", 0)
	if err != nil || string(b) != "password: one\n" {
		t.Fatalf("after rollback = %q, %v", b, err)
	}
	stored, _, _ := raw.File(ctx, orders, "db.secret.yaml", 0)
	if h, _, err := secrets.Parse(stored); err != nil || h.Revision() != rev.Number {
		t.Errorf("rollback stored %+v, %v; want an envelope of revision %d", h, err, rev.Number)
	}
}

// TestFaultSecretStoreWithoutKeyring: without a keyring a secret file can
// be neither published nor read in plaintext; a plain file is unaffected.
func TestFaultSecretStoreWithoutKeyring(t *testing.T) {
	ctx := context.Background()
	_, raw, _ := mustStore(t)
	st := secrets.NewStore(raw, nil)
	_, err := st.Publish(ctx, orders, configsvc.Changeset{Author: "t", Changes: []configsvc.Change{{File: "db.secret.txt", Content: []byte("x")}}})
	if !errors.Is(err, secrets.ErrNoKeyring) {
		t.Errorf("publish without keyring = %v, want ErrNoKeyring", err)
	}
	mustPublish(t, st, 0, "plain.txt", "ok")
}

// TestAttackSecretValueInValidationError: a secret file its schema refuses
// is answered with the file, position and rule, never words that quote the
// value (they reach the API answer, the request log and the audit): a
// pattern violation's message quotes the refused string.
func TestAttackSecretValueInValidationError(t *testing.T) {
	ctx := context.Background()
	st, _, _ := mustStore(t)
	const value = "hunter2-not-a-number"
	for _, tc := range []struct {
		name  string
		files []string
	}{
		{"parse", []string{"db.secret.json", `{"port": ` + value + `}`}},
		{"schema", []string{"db.secret.json.schema.json", `{"type":"object","properties":{"port":{"type":"string","pattern":"^[0-9]+$"}}}`,
			"db.secret.json", `{"port": "` + value + `"}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var chs []configsvc.Change
			for i := 0; i+1 < len(tc.files); i += 2 {
				chs = append(chs, configsvc.Change{File: tc.files[i], Content: []byte(tc.files[i+1])})
			}
			_, err := st.Publish(ctx, orders, configsvc.Changeset{Author: "t", Changes: chs})
			if !errors.Is(err, configsvc.ErrInvalid) {
				t.Fatalf("publish = %v, want ErrInvalid", err)
			}
			if strings.Contains(fmt.Sprintf("%v %+v", err, err), "hunter2") {
				t.Errorf("the refusal quotes the value: %v", err)
			}
		})
	}
}
