package webui

import (
	"io/fs"
	"path"
	"regexp"
	"strings"
	"testing"
)

// TestFSServesEveryReferencedAsset checks that index.html is at the root,
// that every stylesheet, script, icon, JS module import and worker it
// (transitively) references is embedded (a missing file would be a blank
// console), and that every embedded script and stylesheet is reachable (no
// dead code shipped in the binary).
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
	// Static imports (one a line, as the console writes them) and workers
	// (new URL('./x.js', import.meta.url)).
	importRe := regexp.MustCompile(`(?m)^import [^'"]*['"](\.\.?/[^'"]+)['"]|new URL\('(\.\.?/[^']+)', import\.meta\.url\)`)
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
		if strings.HasSuffix(p, ".js") && !strings.HasPrefix(p, "vendor/") {
			for _, m := range importRe.FindAllStringSubmatch(string(data), -1) {
				visit(path.Join(path.Dir(p), m[1]+m[2]))
			}
		}
	}
	for _, r := range refs {
		visit(path.Clean(r[1]))
	}
	for _, want := range []string{"js/app.js", "js/router.js", "js/editor.js", "js/check-worker.js", "vendor/codemirror.js", "vendor/parsers.js", "console.css"} {
		if !seen[want] {
			t.Errorf("%s is not reachable from index.html", want)
		}
	}
	err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if (strings.HasSuffix(p, ".js") || strings.HasSuffix(p, ".css")) && !seen[p] {
			t.Errorf("%s is embedded but nothing loads it", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
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
		// The SVG namespace URI (in the icon and in CodeMirror's bundle)
		// names a namespace and loads nothing.
		s := strings.ReplaceAll(string(data), "http://www.w3.org/2000/svg", "")
		if strings.HasSuffix(p, ".js") && regexp.MustCompile(`\bstyle: '`).MatchString(s) {
			t.Errorf("%s sets an inline style attribute, which the console's CSP blocks; use a class", p)
		}
		for _, bad := range []string{"http://", "https://", "//cdn", "localStorage", "sessionStorage", "innerHTML", "eval("} {
			if strings.Contains(s, bad) {
				// The pin page prints a curl line for the local proxy.
				if bad == "http://" && strings.Contains(s, "http://127.0.0.1:7080/") && strings.Count(s, "http://") == strings.Count(s, "http://127.0.0.1:7080/") {
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
