package webui

import (
	"io/fs"
	"path"
	"regexp"
	"strings"
	"testing"
)

// TestFSServesEveryReferencedAsset checks that index.html is at the root and
// that every stylesheet, script, icon and JS module import it (transitively)
// references is embedded: a missing file would be a blank console.
func TestFSServesEveryReferencedAsset(t *testing.T) {
	fsys := FS()
	index, err := fs.ReadFile(fsys, "index.html")
	if err != nil {
		t.Fatalf("index.html: %v", err)
	}
	refs := regexp.MustCompile(`(?:src|href)="([^"#:]+)"`).FindAllStringSubmatch(string(index), -1)
	if len(refs) < 3 {
		t.Fatalf("index.html references %d assets, want the stylesheet, icon and app module", len(refs))
	}
	importRe := regexp.MustCompile(`(?m)^import [^'"]*['"](\./[^'"]+)['"]`)
	seen := map[string]bool{}
	var visit func(p string)
	visit = func(p string) {
		if seen[p] {
			return
		}
		seen[p] = true
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			t.Errorf("referenced asset %s is not embedded: %v", p, err)
			return
		}
		if strings.HasSuffix(p, ".js") {
			for _, m := range importRe.FindAllStringSubmatch(string(data), -1) {
				visit(path.Join(path.Dir(p), m[1]))
			}
		}
	}
	for _, r := range refs {
		visit(path.Clean(r[1]))
	}
	for _, want := range []string{"js/app.js", "js/api.js", "js/diff.js", "js/editor.js", "js/validate.js", "js/services.js", "js/admin.js", "console.css"} {
		if !seen[want] {
			t.Errorf("%s is not reachable from index.html", want)
		}
	}
}

// TestNoRemoteResources makes sure the console loads nothing from another
// origin (it must work with no internet) and never uses browser storage for
// secrets.
func TestNoRemoteResources(t *testing.T) {
	err := fs.WalkDir(FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(FS(), p)
		if err != nil {
			return err
		}
		s := string(data)
		if strings.HasSuffix(p, ".js") && regexp.MustCompile(`\bstyle: '`).MatchString(s) {
			t.Errorf("%s sets an inline style attribute, which the console's CSP blocks; use a class", p)
		}
		for _, bad := range []string{"http://", "https://", "//cdn", "localStorage", "sessionStorage", "innerHTML", "eval("} {
			if strings.Contains(s, bad) {
				// The pin page prints a curl line for the local proxy.
				if bad == "http://" && strings.Contains(s, "http://127.0.0.1:7080/") && strings.Count(s, "http://") == strings.Count(s, "http://127.0.0.1:7080/") {
					continue
				}
				// The SVG icon carries its XML namespace URI, which loads nothing.
				if bad == "http://" && p == "favicon.svg" {
					continue
				}
				t.Errorf("%s contains %q", p, bad)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
