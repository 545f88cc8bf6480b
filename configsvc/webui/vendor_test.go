package webui

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// vendored lists the files vendor/build.sh writes, relative to this
// package: the editor bundle embedded in the binary and axe-core for the
// browser tests, each with its licences.
var vendored = []string{
	"static/vendor/codemirror.js",
	"static/vendor/parsers.js",
	"static/vendor/THIRD-PARTY-LICENSES.txt",
	"testdata/axe/axe.min.js",
	"testdata/axe/LICENSE.txt",
}

// TestVendorBundlesReproduce rebuilds the vendored browser code with
// vendor/build.sh from vendor/package-lock.json into a temporary folder and
// compares it with the committed files byte for byte, so that what the binary
// embeds is exactly what the lock file builds. It needs node and npm (and the
// npm registry); without them it fails under CI=true or
// SLUICE_REQUIRE_TOOLS=1 and skips otherwise. -short skips it outside CI.
func TestVendorBundlesReproduce(t *testing.T) {
	required := os.Getenv("CI") == "true" || os.Getenv("SLUICE_REQUIRE_TOOLS") == "1"
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			if required {
				t.Fatalf("%s not found: the vendored bundles cannot be checked (install Debian's nodejs and npm)", tool)
			}
			t.Skipf("%s not found; set SLUICE_REQUIRE_TOOLS=1 to make this a failure", tool)
		}
	}
	if testing.Short() && !required {
		t.Skip("-short: the rebuild installs packages from npm")
	}
	out := t.TempDir()
	cmd := exec.Command("bash", filepath.Join("vendor", "build.sh"), out)
	cmd.Env = append(os.Environ(), "npm_config_update_notifier=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("vendor/build.sh: %v\n%s", err, b)
	}
	for _, f := range vendored {
		want, err := os.ReadFile(filepath.FromSlash(f))
		if err != nil {
			t.Fatalf("committed %s: %v", f, err)
		}
		got, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(f)))
		if err != nil {
			t.Fatalf("rebuilt %s: %v", f, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: the rebuild from package-lock.json (%d bytes) differs from the committed file (%d bytes); run configsvc/webui/vendor/build.sh and commit the result", f, len(got), len(want))
		}
	}
}
