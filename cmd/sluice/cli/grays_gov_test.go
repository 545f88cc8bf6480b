package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
)

// TestGrayCommandsUnderGovernance: `gray create` and `gray promote` take
// --dry-run and --emergency like every publishing verb (issue 14). A dry
// run creates nothing and prints the validation, the diff and the
// instances the gray would reach with the id it drew, which --id then
// creates; under an approval policy both print the change request they
// made, and `change apply` prints the gray created or promoted; a rollout
// is refused under the policy unless --emergency.
func TestGrayCommandsUnderGovernance(t *testing.T) {
	s := newRealServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	orders := configsvc.Service("orders")
	if _, _, err := s.c.Create(ctx, orders); err != nil {
		t.Fatal(err)
	}
	if _, err := s.c.Publish(ctx, orders, api.PublishRequest{Changes: []api.Change{api.PutChange("db.yaml", []byte("pool: 10\n")), api.PutChange("b.txt", []byte("b"))}}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"orders-1", "orders-2", "orders-3"} {
		l, err := s.c.Register(ctx, configsvc.Instance{Service: "orders", ID: id, Addr: "127.0.0.1:1", Status: configsvc.StatusApplied, Revision: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "db.yaml")
	if err := os.WriteFile(db, []byte("pool: 50\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	r := s.must(t, "gray", "create", "orders", "db.yaml="+db, "--percent", "50", "--instances", "orders-1", "--dry-run")
	id := grayIDRe.FindString(r.stdout)
	if !strings.Contains(r.stdout, "dry run: gray.create service/orders on revision 1") || id == "" || !strings.Contains(r.stdout, "--id "+id) ||
		!strings.Contains(r.stdout, "+pool: 50") || !strings.Contains(r.stdout, "orders-1@1") {
		t.Fatalf("gray create --dry-run printed:\n%s", r.stdout)
	}
	if grays, err := s.c.Grays(ctx, orders); err != nil || len(grays) != 0 {
		t.Fatalf("a dry run created grays: %+v, %v", grays, err)
	}
	r = s.must(t, "gray", "create", "orders", "db.yaml="+db, "--percent", "50", "--instances", "orders-1", "--id", id)
	if !strings.Contains(r.stdout, "created gray "+id) {
		t.Fatalf("gray create --id printed:\n%s", r.stdout)
	}
	r = s.must(t, "gray", "promote", id, "--force", "--dry-run")
	if !strings.Contains(r.stdout, "dry run: gray.promote service/orders") || !strings.Contains(r.stdout, "would reach 1 service(s), 3 live instance(s)") {
		t.Fatalf("gray promote --dry-run printed:\n%s", r.stdout)
	}

	if _, err := s.c.PutPolicy(ctx, api.Policy{Name: "orders", Pattern: "orders", Approvals: 1, AuthorMayApprove: true}); err != nil {
		t.Fatal(err)
	}
	b := filepath.Join(dir, "b.txt")
	if err := os.WriteFile(b, []byte("gray b"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = s.must(t, "gray", "create", "orders", "b.txt="+b, "--instances", "orders-2")
	if !strings.Contains(r.stdout, "change request") {
		t.Fatalf("gray create under a policy printed:\n%s", r.stdout)
	}
	crs, err := s.c.Changes(ctx, orders, false)
	if err != nil || len(crs) != 1 || crs[0].Operation != api.OpGrayCreate {
		t.Fatalf("change requests %+v, %v; want the gray creation", crs, err)
	}
	s.must(t, "change", "approve", "orders", crs[0].ID)
	r = s.must(t, "change", "apply", "orders", crs[0].ID)
	created := grayIDRe.FindString(r.stdout)
	if !strings.Contains(r.stdout, "created gray "+created) || created == "" || created == id {
		t.Fatalf("change apply of a gray creation printed:\n%s", r.stdout)
	}

	r = s.must(t, "gray", "promote", id, "--force")
	if !strings.Contains(r.stdout, "change request") {
		t.Fatalf("gray promote under a policy printed:\n%s", r.stdout)
	}
	crs, err = s.c.Changes(ctx, orders, false)
	if err != nil || len(crs) != 1 || crs[0].Operation != api.OpGrayPromote {
		t.Fatalf("change requests %+v, %v; want the promote", crs, err)
	}
	s.must(t, "change", "approve", "orders", crs[0].ID)
	r = s.must(t, "change", "apply", "orders", crs[0].ID)
	if !strings.Contains(r.stdout, "promoted gray "+id+": service/orders revision 2") {
		t.Fatalf("change apply of a promote printed:\n%s", r.stdout)
	}

	if r := s.run(t, "gray", "rollout", created, "--steps", "50%:1m,100%:1m"); r.err == nil || !strings.Contains(r.err.Error(), "last step") {
		t.Fatalf("rollout under a policy: %v", r.err)
	}
	s.must(t, "gray", "rollout", created, "--steps", "50%:1m,100%:1m", "--emergency", "INC-1")
}
