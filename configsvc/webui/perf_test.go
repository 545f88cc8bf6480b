package webui_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// keyBudgetMS is issue 17's bound: a key in an 18,000-line file is handled
// in under 16 ms (one frame at 60 Hz).
const keyBudgetMS = 16

// bigFile returns an 18,002-line file of format ext ("yaml" or "json"): 1,800
// sections of 10 lines, each ending with a line `note: "section N"`.
func bigFile(ext string) string {
	var sb strings.Builder
	switch ext {
	case "yaml":
		sb.WriteString("# 1,800 backends\n")
		for i := 1; i <= 1800; i++ {
			fmt.Fprintf(&sb, "backend%04d:\n  host: b%04d.internal\n  port: %d\n  weight: 10\n  tls: true\n  timeout: 2s\n  retries: 3\n  pool: {min: 1, max: 20}\n  tags: [eu, blue]\n  note: \"section %d\"\n", i, i, 10000+i, i)
		}
	case "json":
		sb.WriteString("{\n")
		for i := 1; i <= 1800; i++ {
			sep := ","
			if i == 1800 {
				sep = ""
			}
			fmt.Fprintf(&sb, "  \"backend%04d\": {\n    \"host\": \"b%04d.internal\",\n    \"port\": %d,\n    \"weight\": 10,\n    \"tls\": true,\n    \"timeout\": \"2s\",\n    \"retries\": 3,\n    \"tags\": [\"eu\", \"blue\"],\n    \"note\": \"section %d\"\n  }%s\n", i, i, 10000+i, i, sep)
		}
		sb.WriteString("}\n")
	}
	return sb.String()
}

// percentile returns the p-th percentile (0..1) of xs, nearest rank.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s)-1)+0.5))]
}

// TestEditorTypingLatency types into 18,000-line YAML and JSON files
// (issue 17: a key must take under 16 ms; the textarea took 90–100 ms per key
// in a 2,000-line file) with real key events from the browser's input
// pipeline, in the middle of the file (section 900 of 1,800, inside a
// string), and measures every key in the page with the Performance API: from
// the keydown (performance.now() in a capturing listener, the first code to
// see the key) to the editor's update listener after the document, the
// syntax tree and the DOM changed, with style and layout forced by reading a
// rectangle (performance.measure). The whole-file check runs meanwhile, as it
// does for a user (in a worker, after each pause).
//
// The bound: after 9 warm-up keys (logged), in a round of 40 keys the 95th
// percentile stays under 16 ms. The machine running the tests is shared, so a
// round that another process slows down is repeated, up to 3 rounds; every
// round is logged (-v) with what Event Timing reports (key press to next
// paint, which includes waiting for the next frame).
func TestEditorTypingLatency(t *testing.T) {
	c := startConsole(t)
	browser := startBrowser(t)
	for _, ext := range []string{"yaml", "json"} {
		t.Run(ext, func(t *testing.T) {
			content := bigFile(ext)
			if n := strings.Count(content, "\n"); n < 18000 {
				t.Fatalf("the test file has %d lines, want 18,000 or more", n)
			}
			svc, file := "big-"+ext, "big."+ext
			mustService(t, c, svc, map[string]string{file: content})
			b := newTab(t, browser, c.url)
			b.signIn(c.admin)
			b.do(chromedp.Navigate(c.url+"#/services/"+svc+"/files"), chromedp.WaitVisible(chromedp.CSS(`[data-test=editor] .cm-content`)))
			// The cursor goes before the closing quote of section 900's note
			// (line 9,001 or so), and a listener starts measuring.
			target := `"section 900"`
			evalJS[bool](b, fmt.Sprintf(`import('./vendor/codemirror.js').then((cm) => {
				const v = cm.EditorView.findFromDOM(document.querySelector('[data-test=editor]'));
				const at = v.state.doc.toString().indexOf(%q) + %d;
				v.dispatch({ selection: { anchor: at }, effects: cm.EditorView.scrollIntoView(at, { y: 'center' }) });
				v.focus();
				window.__keys = []; window.__slow = [];
				new PerformanceObserver((list) => {
					for (const e of list.getEntries()) if (e.name === 'keydown') window.__slow.push(e.duration);
				}).observe({ type: 'event', durationThreshold: 16, buffered: false });
				let start = -1;
				window.addEventListener('keydown', () => { start = performance.now(); }, true);
				v.dispatch({ effects: cm.StateEffect.appendConfig.of(cm.EditorView.updateListener.of((u) => {
					if (!u.docChanged || start < 0) return;
					u.view.contentDOM.getBoundingClientRect();
					window.__keys.push(performance.measure('key', { start, end: performance.now() }).duration);
					start = -1;
				})) });
				return v.hasFocus;
			})`, target, len(target)-1))
			lineNo := evalJS[int](b, `import('./vendor/codemirror.js').then((cm) => { const v = cm.EditorView.findFromDOM(document.querySelector('[data-test=editor]')); return v.state.doc.lineAt(v.state.selection.main.head).number; })`)

			// measure types text key by key and returns what the page measured.
			typed := ""
			measure := func(text string) (keys, slow []float64) {
				evalJS[bool](b, `(() => { window.__keys = []; window.__slow = []; return true; })()`)
				for _, r := range text {
					b.do(chromedp.KeyEvent(string(r)))
				}
				typed += text
				b.waitFor("every key measured", fmt.Sprintf(`window.__keys.length === %d`, len(text)))
				var m struct {
					Keys []float64 `json:"keys"`
					Slow []float64 `json:"slow"`
				}
				if err := json.Unmarshal([]byte(evalJS[string](b, `JSON.stringify({ keys: window.__keys, slow: window.__slow })`)), &m); err != nil {
					t.Fatal(err)
				}
				return m.Keys, m.Slow
			}
			// The first keys right after opening are logged, not bounded: they
			// include compiling the editor's input path and the parser
			// catching up with the jump to the middle of the file.
			warm, _ := measure(" warm up ")
			t.Logf("%s, %d lines, cursor on line %d: the first %d keys after opening took %.1f ms", file, strings.Count(content, "\n"), lineNo, len(warm), warm)

			const perRound = 40
			passed := false
			for round := 1; round <= 3 && !passed; round++ {
				text := (fmt.Sprintf("round %d ", round) + strings.Repeat("typed in the browser ", 3))[:perRound]
				keys, slow := measure(text)
				p50, p95, worst := percentile(keys, 0.5), percentile(keys, 0.95), percentile(keys, 1)
				passed = p95 < keyBudgetMS
				t.Logf("%s round %d, %d keys: median %.1f ms, p95 %.1f ms, max %.1f ms per key (keydown to the editor updated and laid out); Event Timing (key press to next paint, in 8 ms steps, with the wait for the next frame): %d keydowns of 16 ms or more, the slowest %.0f ms",
					file, round, len(keys), p50, p95, worst, len(slow), percentile(slow, 1))
				if !passed {
					t.Logf("round %d: p95 %.1f ms is not under %d ms (keys: %.1f)", round, p95, keyBudgetMS, keys)
				}
			}
			if !passed {
				t.Errorf("typing in an 18,000-line %s file: the 95th percentile of a key was %d ms or more in each of 3 rounds of %d keys (see the log; on a busy machine, rerun alone)", ext, keyBudgetMS, perRound)
			}
			// What was typed is in the document, the edit is counted, and the
			// file still checks clean once the check has run.
			got := b.editorLine(lineNo)
			if !strings.Contains(got, `"section 900`+typed+`"`) {
				t.Fatalf("line %d reads %q after typing %q", lineNo, got, typed)
			}
			b.waitFor("the edit counted", `document.querySelector('[data-test=change-count]')?.textContent === '1 unpublished change'`)
			b.waitFor("the check to pass", `document.querySelector('[data-test=review]')?.disabled === false`)
		})
	}
}
