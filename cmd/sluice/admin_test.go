package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/boltstore"
)

// TestAdminBumpGeneration runs `sluice admin generation` and `sluice admin
// bump-generation` against a bbolt store: the bump needs --yes and a
// reason, prints the new generation, and stamps it on the store's heads.
func TestAdminBumpGeneration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	st, err := boltstore.Open(path, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := st.Create(ctx, configsvc.Service("orders")); err != nil {
		t.Fatal(err)
	}
	before, err := st.Generation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	sluice := func(args ...string) (string, string, int) {
		var out, errb bytes.Buffer
		env := Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
		code := run(ctx, append(args, "--store", "bolt://"+path), env)
		return out.String(), errb.String(), code
	}
	out, _, code := sluice("admin", "generation")
	var g configsvc.StoreGeneration
	if code != 0 || json.Unmarshal([]byte(out), &g) != nil || g.ID != before.ID {
		t.Fatalf("admin generation: exit %d, %q; want %s", code, out, before.ID)
	}
	if _, stderr, code := sluice("admin", "bump-generation", "--reason", "restored"); code == 0 || !strings.Contains(stderr, "--yes") {
		t.Fatalf("bump without --yes: exit %d, %q; want a refusal naming --yes", code, stderr)
	}
	if _, stderr, code := sluice("admin", "bump-generation", "--yes"); code == 0 || !strings.Contains(stderr, "--reason") {
		t.Fatalf("bump without a reason: exit %d, %q; want a refusal naming --reason", code, stderr)
	}
	out, stderr, code := sluice("admin", "bump-generation", "--reason", "restored the backup of Monday", "--yes")
	if code != 0 || json.Unmarshal([]byte(out), &g) != nil || g.ID == before.ID || g.Previous != before.ID || g.Reason != "restored the backup of Monday" {
		t.Fatalf("bump: exit %d, %q (%s); want a new generation after %s with the reason", code, out, stderr, before.ID)
	}
	st, err = boltstore.Open(path, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if h, err := st.Head(ctx, configsvc.Service("orders")); err != nil || h.Generation != g.ID {
		t.Fatalf("head after the bump: %+v, %v; want generation %s", h, err, g.ID)
	}
}
