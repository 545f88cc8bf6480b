package webui_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// The code editor of issue 17: highlighting per format, the browser-side
// check of JSON, YAML and TOML at its line (a large file checked in the
// worker), search and replace, and the side-by-side merge view for diffs.

// TestEditorHighlightsEachFormat: JSON, YAML, TOML, properties and env files
// are coloured by their syntax; a text file is not.
func TestEditorHighlightsEachFormat(t *testing.T) {
	c := startConsole(t)
	mustService(t, c, "orders", map[string]string{
		"app.json":       appV1,
		"db.yaml":        "# the database\nhost: db.internal\nport: 5432\n",
		"limits.toml":    "# limits\n[limits]\nrps = 100\n",
		"app.properties": "# settings\nserver.port=8080\n",
		"cache.env":      "# cache\nCACHE=redis:6379\n",
		"notes.txt":      "# not a comment\nport: 1\n",
	})
	b := newTab(t, startBrowser(t), c.url)
	b.signIn(c.admin)
	b.do(chromedp.Navigate(c.url+"#/services/orders/files"), chromedp.WaitVisible(chromedp.CSS(`[data-test=editor] .cm-content`)))
	ink := evalJS[string](b, `getComputedStyle(document.querySelector('[data-test=editor] .cm-content')).color`)
	for _, tc := range []struct {
		file     string
		coloured bool
		token    string // a token whose colour is checked
		color    string // its colour (editor.js's highlight style)
	}{
		{"app.json", true, `"name"`, "rgb(31, 78, 121)"},
		{"db.yaml", true, "# the database", "rgb(90, 101, 115)"},
		{"limits.toml", true, "# limits", "rgb(90, 101, 115)"},
		{"app.properties", true, "# settings", "rgb(90, 101, 115)"},
		{"cache.env", true, "# cache", "rgb(90, 101, 115)"},
		{"notes.txt", false, "", ""},
	} {
		b.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`.files [data-file=%q]`, tc.file))))
		b.waitFor(tc.file, fmt.Sprintf(`document.querySelector('[data-test=editor] .cm-content')?.getAttribute('aria-label') === %q`, tc.file))
		colours := evalJS[[]string](b, `[...new Set([...document.querySelectorAll('[data-test=editor] .cm-line span')].map((s) => getComputedStyle(s).color))]`)
		others := 0
		for _, col := range colours {
			if col != ink {
				others++
			}
		}
		if tc.coloured != (others > 0) {
			t.Errorf("%s: colours %v besides the text's %s; want highlighting %v", tc.file, colours, ink, tc.coloured)
		}
		if tc.token != "" {
			got := evalJS[string](b, fmt.Sprintf(`(() => { const s = [...document.querySelectorAll('[data-test=editor] .cm-line span')].find((e) => e.textContent === %q); return s ? getComputedStyle(s).color : 'no token ' + %q; })()`, tc.token, tc.token))
			if got != tc.color {
				t.Errorf("%s: %s is %s, want %s", tc.file, tc.token, got, tc.color)
			}
		}
	}
}

// TestEditorChecksYAMLAndTOML: the browser's check marks a YAML duplicate key
// and a TOML syntax error at their lines before any publish, in a large
// YAML file too (checked in the worker, off the page's thread), and Review
// stays off until they are fixed.
func TestEditorChecksYAMLAndTOML(t *testing.T) {
	c := startConsole(t)
	var big strings.Builder
	for i := 1; i <= 1500; i++ {
		fmt.Fprintf(&big, "key%04d: value %d\n", i, i)
	}
	mustService(t, c, "orders", map[string]string{"big.yaml": big.String(), "limits.toml": limitsV1})
	b := newTab(t, startBrowser(t), c.url)
	b.signIn(c.admin)
	b.do(chromedp.Navigate(c.url+"#/services/orders/files?file=big.yaml"), chromedp.WaitVisible(chromedp.CSS(`[data-test=editor] .cm-content`)))
	// Line 1,201 repeats the key of line 7.
	lines := strings.Split(big.String(), "\n")
	lines[1200] = "key0007: again"
	b.setEditor(strings.Join(lines, "\n"))
	// The marker is drawn when line 1,201 is in view; the list under the
	// editor names it at once.
	b.waitFor("the duplicate key found", `document.querySelector('[data-test=editor-errors] li') !== null`)
	if got := b.lintLines(); got != "1201" {
		t.Errorf("big.yaml: lint marks lines %q, want 1201 (the repeated key)", got)
	}
	if got := b.text(`[data-test=editor-errors] li`); !strings.HasPrefix(got, "Line 1201, column 1:") || !strings.Contains(got, "browser check") {
		t.Errorf("big.yaml: error %q, want line 1201 from the browser's check", got)
	}
	// The error in the list goes to its line, where the marker shows.
	b.do(chromedp.Click(chromedp.CSS(`[data-test=editor-errors] li button`)))
	b.waitFor("the marker at line 1201", `document.querySelector('[data-test=editor] .cm-lint-marker-error') !== null`)
	if got := evalJS[int](b, `import('./vendor/codemirror.js').then((cm) => { const v = cm.EditorView.findFromDOM(document.querySelector('[data-test=editor]')); return v.state.doc.lineAt(v.state.selection.main.head).number; })`); got != 1201 {
		t.Errorf("the error's button put the cursor on line %d, want 1201", got)
	}
	if !evalJS[bool](b, `performance.getEntriesByType('resource').some((r) => r.name.endsWith('/js/check-worker.js'))`) {
		t.Error("the large file was not checked in the worker")
	}
	if !evalJS[bool](b, `document.querySelector('[data-test=review]').disabled`) {
		t.Error("Review is offered with a duplicate key")
	}
	b.do(chromedp.Click(chromedp.CSS(`[data-test=revert-file]`)))
	b.do(chromedp.Click(chromedp.CSS(`.files [data-file="limits.toml"]`)))
	b.waitFor("limits.toml", `document.querySelector('[data-test=editor] .cm-content')?.getAttribute('aria-label') === 'limits.toml'`)
	b.setEditor("[limits]\nrps = 100\nburst = = 5\n")
	b.waitFor("the TOML error marked", `document.querySelector('[data-test=editor] .cm-lint-marker-error') !== null`)
	if got := b.lintLines(); got != "3" {
		t.Errorf("limits.toml: lint marks lines %q, want 3", got)
	}
	b.setEditor("[limits]\nrps = 100\nburst = 5\n")
	b.waitFor("the error to clear", `!document.querySelector('[data-test=editor] .cm-lint-marker-error') && document.querySelector('[data-test=review]').disabled === false`)
}

// TestEditorSearchAndReplace: Ctrl+F opens the editor's search, and replace
// all changes every match, as an edit of the draft.
func TestEditorSearchAndReplace(t *testing.T) {
	c := startConsole(t)
	mustService(t, c, "orders", map[string]string{"app.yaml": "a: 8080\nb: 8080\nc: 9090\n"})
	b := newTab(t, startBrowser(t), c.url)
	b.signIn(c.admin)
	b.do(chromedp.Navigate(c.url+"#/services/orders/files"), chromedp.WaitVisible(chromedp.CSS(`[data-test=editor] .cm-content`)),
		chromedp.Click(chromedp.CSS(`[data-test=editor] .cm-content`)),
		chromedp.KeyEvent("f", chromedp.KeyModifiers(chromedp.ModifierCtrl)))
	b.waitFor("the search panel", `document.activeElement?.name === 'search'`)
	b.do(chromedp.KeyEvent("8080"))
	b.do(chromedp.Click(chromedp.CSS(`.cm-search input[name=replace]`)), chromedp.KeyEvent("7070"),
		chromedp.Click(chromedp.CSS(`.cm-search button[name=replaceAll]`)))
	b.waitFor("the replacement", `document.querySelector('[data-test=change-count]')?.textContent === '1 unpublished change'`)
	if got := b.editorText(); got != "a: 7070\nb: 7070\nc: 9090\n" {
		t.Errorf("after replace all the editor holds %q", got)
	}
}

// TestEditorMergeViewForDiffs: a diff in the history switches to a
// side-by-side view of the two revisions (CodeMirror's merge view, changed
// lines marked), loading the texts it needs, and back.
func TestEditorMergeViewForDiffs(t *testing.T) {
	c := startConsole(t)
	mustService(t, c, "orders", map[string]string{"app.json": appV1})
	b := newTab(t, startBrowser(t), c.url)
	b.signIn(c.admin)
	b.do(chromedp.Navigate(c.url+"#/services/orders/files"), chromedp.WaitVisible(chromedp.CSS(`[data-test=editor] .cm-content`)))
	b.setEditor(appV2)
	b.publish("port 9090")
	b.waitFor("revision 2", `document.querySelector('[data-test=head-revision]').textContent === 'revision 2'`)
	b.do(chromedp.Navigate(c.url+"#/services/orders/history"), chromedp.WaitVisible(chromedp.CSS(`[data-test=changes-2]`)),
		chromedp.Click(chromedp.CSS(`[data-test=changes-2]`)))
	b.waitFor("the diff", `document.querySelector('[data-test=diff-out] [data-test=side-by-side]') !== null`)
	b.do(chromedp.Click(chromedp.CSS(`[data-test=diff-out] [data-test=side-by-side]`)))
	b.waitFor("the merge view", `document.querySelectorAll('[data-test=diff-out] .cm-mergeView .cm-editor').length === 2`)
	texts := evalJS[[]string](b, `import('./vendor/codemirror.js').then((cm) => [...document.querySelectorAll('[data-test=diff-out] .cm-mergeView .cm-editor')].map((e) => cm.EditorView.findFromDOM(e).state.doc.toString()))`)
	if len(texts) != 2 || texts[0] != appV1 || texts[1] != appV2 {
		t.Errorf("side by side shows %q, want revision 1 and revision 2 of app.json", texts)
	}
	if n := b.count(`[data-test=diff-out] .cm-merge-b .cm-changedLine`); n != 1 {
		t.Errorf("%d changed lines marked on the new side, want 1 (the port)", n)
	}
	if got := evalJS[string](b, `document.querySelector('[data-test=diff-out] [data-test=side-by-side]').getAttribute('aria-pressed')`); got != "true" {
		t.Errorf("the switch reads aria-pressed=%s in the side-by-side view", got)
	}
	b.shot("26-side-by-side")
	b.do(chromedp.Click(chromedp.CSS(`[data-test=diff-out] [data-test=side-by-side]`)))
	b.waitFor("the unified diff", `document.querySelector('[data-test=diff-out] .cm-mergeView') === null && document.querySelector('[data-test=diff-out] table') !== null`)
}
