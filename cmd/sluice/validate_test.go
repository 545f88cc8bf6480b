package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateCommand runs `sluice validate` on a directory laid out like a
// service: formats, a schema with violations, the route schema.
func TestValidateCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "orders")
	sys := filepath.Join(filepath.Dir(dir), "sluice-system")
	for path, content := range map[string]string{
		filepath.Join(dir, "db.yaml"):             "host: \"\"\nport: 99999\n",
		filepath.Join(dir, "db.yaml.schema.json"): `{"type":"object","properties":{"host":{"minLength":1},"port":{"maximum":65535}}}`,
		filepath.Join(dir, "ok.json"):             `{"a": 1}`,
		filepath.Join(sys, "routes.yaml"):         "routes:\n  - name: x\n    balancer: nonsense\n",
	} {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	exec := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"validate"}, args...), Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }})
		return code, out.String(), errb.String()
	}
	t.Run("Violations", func(t *testing.T) {
		code, out, stderr := exec(dir)
		if code != 1 || !strings.Contains(stderr, "2 violation(s)") {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
		for _, want := range []string{filepath.Join(dir, "db.yaml") + ":1:1: /host: minLength", filepath.Join(dir, "db.yaml") + ":2:1: /port: maximum: got 99999, want 65535"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("OneValidFile", func(t *testing.T) {
		if code, out, stderr := exec(filepath.Join(dir, "ok.json")); code != 0 || !strings.Contains(out, "1 file(s) valid") {
			t.Fatalf("exit %d, %q %q", code, out, stderr)
		}
	})
	t.Run("JSON", func(t *testing.T) {
		code, out, _ := exec("-o", "json", filepath.Join(dir, "db.yaml"))
		var rep validateReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 1 || rep.Files != 1 || len(rep.Violations) != 2 || rep.Violations[1].Line != 2 {
			t.Fatalf("exit %d, %+v, %v", code, rep, err)
		}
	})
	t.Run("RoutesSchema", func(t *testing.T) {
		code, out, _ := exec(sys)
		if code != 1 || !strings.Contains(out, "routes.yaml") || !strings.Contains(out, "(routes)") {
			t.Fatalf("exit %d: %s", code, out)
		}
	})
}
