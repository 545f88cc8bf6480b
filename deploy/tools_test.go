package deploy_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"
)

// requireTool returns the path of an external program. A missing one fails
// the test under CI=true or SLUICE_REQUIRE_TOOLS=1 (as `make test` sets) and
// skips it otherwise; hint says how to install it.
func requireTool(t *testing.T, name, hint string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" || os.Getenv("SLUICE_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s not found: %s", name, hint)
	}
	t.Skipf("%s not found (%s); set SLUICE_REQUIRE_TOOLS=1 to make this a failure", name, hint)
	return ""
}

// repoPath returns the absolute path of a file given relative to the
// repository root (go test runs in the package's folder, deploy/).
func repoPath(t *testing.T, rel string) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, filepath.FromSlash(rel))
}

// readRepoFile reads a file given relative to the repository root.
func readRepoFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(repoPath(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// unmarshalYAML decodes a YAML document into v through its JSON form, so
// that types with JSON tags (the Kubernetes API types, the promtool test
// format) decode as their own tools decode them. strict refuses fields v
// does not have. It uses the project's one YAML library.
func unmarshalYAML(b []byte, v any, strict bool) error {
	var doc any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return err
	}
	j, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	if strict {
		dec.DisallowUnknownFields()
	}
	return dec.Decode(v)
}
