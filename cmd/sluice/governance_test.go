package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
)

// TestCLIGovernance drives issue 14's approval flow through the sluice
// CLI against a real `sluice server` on bbolt and on ZooKeeper: a schema
// refusal lists its violations, --dry-run shows the blast radius, a put
// under a policy creates a change request, its author may not approve it,
// a second person does, the author applies it; an emergency put is listed
// for review.
func TestCLIGovernance(t *testing.T) {
	t.Run("bolt", func(t *testing.T) { cliGovernance(t, nil) })
	t.Run("zookeeper", func(t *testing.T) {
		zk := zktest.Start(t)
		cliGovernance(t, []string{"--store", "zk://" + zk.Addr() + "/sluice-cli-gov"})
	})
}

func cliGovernance(t *testing.T, storeArgs []string) {
	dir := t.TempDir()
	rs := startServerMain(t, append([]string{"--addr", "127.0.0.1:0", "--data-dir", dir}, storeArgs...), nil)
	b, err := os.ReadFile(filepath.Join(dir, adminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	adminTok := strings.TrimSpace(string(b))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin := adminClient(t, rs.url, adminTok)
	mint := func(name string) string {
		tok, err := admin.CreateToken(ctx, api.TokenRequest{Name: name, Roles: []access.Grant{{Role: access.RoleEditor, Pattern: "pay-*"}}})
		if err != nil {
			t.Fatal(err)
		}
		return tok.Secret
	}
	alice, bob := mint("alice"), mint("bob")
	sluice := func(token string, args ...string) (string, error) {
		t.Helper()
		var stdout, stderr srvOutput
		// The editor of `sluice edit` is sed, changing the port.
		vars := map[string]string{"SLUICE_SERVER": rs.url, "SLUICE_TOKEN": token, "SLUICE_DATA_DIR": t.TempDir(), "VISUAL": "sed -i s/6432/7432/"}
		env := Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return vars[k] }}
		if code := run(ctx, args, env); code != 0 {
			return stdout.String() + stderr.String(), errors.New("exit status")
		}
		return stdout.String(), nil
	}
	mustRun := func(token string, args ...string) string {
		t.Helper()
		out, err := sluice(token, args...)
		if err != nil {
			t.Fatalf("sluice %s: %s", strings.Join(args, " "), out)
		}
		return out
	}
	if _, _, err := admin.Create(ctx, configsvc.Service("pay-api")); err != nil {
		t.Fatal(err)
	}
	files := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(files, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mustRun(adminTok, "publish", "pay-api", "-f", write("db.yaml", "port: 5432\n"), "-f", write("db.yaml.schema.json", `{"properties":{"port":{"maximum":65535}}}`), "-m", "seed")

	if out, err := sluice(alice, "put", "pay-api", "db.yaml", write("bad.yaml", "port: 99999\n")); err == nil || !strings.Contains(out, "/port") || !strings.Contains(out, "maximum") {
		t.Fatalf("invalid put: %v\n%s", err, out)
	}
	out := mustRun(alice, "put", "pay-api", "db.yaml", write("db2.yaml", "port: 6432\n"), "--dry-run")
	if !strings.Contains(out, "+port: 6432") || !strings.Contains(out, "would reach 1 service(s), 0 live instance(s)") {
		t.Fatalf("dry run printed:\n%s", out)
	}
	mustRun(adminTok, "policy", "put", "pay", "--pattern", "pay-*", "--approvals", "1")
	out = mustRun(alice, "put", "pay-api", "db.yaml", filepath.Join(files, "db2.yaml"), "-m", "new port")
	id := regexp.MustCompile(`change request ([0-9a-f]{16}) created`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("put under a policy printed:\n%s", out)
	}
	if out := mustRun(bob, "change", "list"); !strings.Contains(out, id[1]) || !strings.Contains(out, "0/1") {
		t.Fatalf("change list:\n%s", out)
	}
	if out, err := sluice(alice, "change", "approve", "pay-api", id[1]); err == nil || !strings.Contains(out, "author") {
		t.Fatalf("self-approval: %v\n%s", err, out)
	}
	mustRun(bob, "change", "approve", "pay-api", id[1], "-m", "ok")
	if out := mustRun(bob, "change", "show", "pay-api", id[1]); !strings.Contains(out, "approved  bob: ok") || !strings.Contains(out, "+port: 6432") {
		t.Fatalf("change show:\n%s", out)
	}
	if out := mustRun(alice, "change", "apply", "pay-api", id[1]); !strings.Contains(out, "published revision 2") {
		t.Fatalf("apply:\n%s", out)
	}
	mustRun(adminTok, "put", "pay-api", "x.txt", write("x.txt", "x"), "--emergency", "incident 7")
	if out := mustRun(bob, "change", "emergencies"); !strings.Contains(out, "incident 7") {
		t.Fatalf("emergencies:\n%s", out)
	}
	if out := mustRun(adminTok, "audit", "--service", "pay-api"); !strings.Contains(out, "EMERGENCY: incident 7") {
		t.Fatalf("audit of the emergency:\n%s", out)
	}
	if out := mustRun(adminTok, "policy", "list"); !strings.Contains(out, "pay-*") {
		t.Fatalf("policy list:\n%s", out)
	}

	// edit --dry-run shows what the edit would do and publishes nothing.
	out = mustRun(alice, "edit", "pay-api", "db.yaml", "--dry-run")
	if !strings.Contains(out, "+port: 7432") || !strings.Contains(out, "creates a change request") {
		t.Fatalf("edit --dry-run printed:\n%s", out)
	}

	// A rollback under the policy: its dry run says so, then it becomes a
	// change request; declined, then approved; the head moves, so the
	// author rebases it, it is approved again and applied.
	out = mustRun(alice, "rollback", "pay-api", "--to", "1", "--file", "db.yaml", "--dry-run")
	if !strings.Contains(out, "dry run: rollback service/pay-api on revision 3") || !strings.Contains(out, "+port: 5432") || !strings.Contains(out, "creates a change request") {
		t.Fatalf("rollback --dry-run printed:\n%s", out)
	}
	out = mustRun(alice, "rollback", "pay-api", "--to", "1", "--file", "db.yaml", "-m", "back to 5432")
	rb := regexp.MustCompile(`change request ([0-9a-f]{16}) created`).FindStringSubmatch(out)
	if rb == nil {
		t.Fatalf("rollback under a policy printed:\n%s", out)
	}
	if out := mustRun(bob, "change", "decline", "pay-api", rb[1], "-m", "not before the release"); !strings.Contains(out, "0 of 1 approvals, 1 decline(s)") {
		t.Fatalf("decline:\n%s", out)
	}
	mustRun(bob, "change", "approve", "pay-api", rb[1], "-m", "released now")
	mustRun(adminTok, "put", "pay-api", "y.txt", write("y.txt", "y"), "--emergency", "incident 8")
	if out, err := sluice(alice, "change", "apply", "pay-api", rb[1]); err == nil || !strings.Contains(out, "sluice change rebase pay-api "+rb[1]) {
		t.Fatalf("apply after the head moved: %v\n%s", err, out)
	}
	if out := mustRun(alice, "change", "rebase", "pay-api", rb[1]); !strings.Contains(out, "now applies to revision 4") {
		t.Fatalf("rebase:\n%s", out)
	}
	mustRun(bob, "change", "approve", "pay-api", rb[1])
	if out := mustRun(alice, "change", "apply", "pay-api", rb[1]); !strings.Contains(out, "published revision 5") {
		t.Fatalf("apply of the rebased rollback:\n%s", out)
	}
	if out := mustRun(bob, "change", "list", "pay-api", "--all"); !strings.Contains(out, rb[1]) || !strings.Contains(out, "applied") {
		t.Fatalf("change list --all:\n%s", out)
	}
}
