package webui_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/gin-gonic/gin"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/boltstore/bolttest"
	"github.com/sluicehq/sluice/configsvc/format"
	"github.com/sluicehq/sluice/configsvc/httpapi"
	"github.com/sluicehq/sluice/configsvc/rollout"
	"github.com/sluicehq/sluice/configsvc/schema"
	"github.com/sluicehq/sluice/configsvc/secrets"
	"github.com/sluicehq/sluice/configsvc/secrets/localkey"
	"github.com/sluicehq/sluice/configsvc/webui"
	"github.com/sluicehq/sluice/router/routesfile"
)

func TestMain(m *testing.M) {
	// gin's debug mode prints every route at startup; the tests don't need it.
	gin.SetMode(gin.TestMode)
	os.Exit(m.Run())
}

// console is a real admin server (httpapi on boltstore in a temp dir)
// serving the embedded console on 127.0.0.1.
type console struct {
	store  *boltstore.Store
	url    string
	admin  string      // admin API token
	viewer string      // viewer-on-* API token
	api    *api.Client // the admin API with the admin token
	grays  []string    // the grays richConsole made
}

func startConsole(t *testing.T) *console {
	t.Helper()
	return startConsoleWith(t, nil)
}

// startConsoleWith is startConsole with the server's handler wrapped by
// wrap (nil: none), e.g. to cut connections server-side.
func startConsoleWith(t *testing.T, wrap func(http.Handler) http.Handler) *console {
	t.Helper()
	return startConsoleOpts(t, consoleOpts{wrap: wrap})
}

// consoleOpts adapts the server startConsoleOpts starts.
type consoleOpts struct {
	// wrap wraps the server's handler (nil: none).
	wrap func(http.Handler) http.Handler
	// rollouts runs a rollout driver on the store, as sluice server does,
	// checking every 100 ms, and tells it of the rollouts the API starts.
	rollouts bool
	// secrets seals secret files (*.secret.*) with a local keyring in the
	// test's temp dir, as sluice server does.
	secrets bool
}

// startConsoleOpts is startConsole with opts.
func startConsoleOpts(t *testing.T, opts consoleOpts) *console {
	t.Helper()
	ctx := context.Background()
	st := bolttest.MustOpen(t, boltstore.Options{})
	// Publishes are validated by the store, as the sluice command wires it:
	// formats, the route schema for sluice-system/routes.yaml, and the JSON
	// Schema beside a file (F.schema.json).
	validator := configsvc.Validators(format.Validator{}, configsvc.EachFile(routesfile.Validate), schema.NewValidator())
	var backend configsvc.Store = st
	var keys secrets.Keyring
	if opts.secrets {
		kr, err := localkey.Open(filepath.Join(t.TempDir(), "secrets.key"), true)
		if err != nil {
			t.Fatal(err)
		}
		keys = secrets.NewKeychain(st.Records(), kr)
		backend = secrets.NewStore(st, keys)
	}
	store := configsvc.Validating(backend, validator)
	cfg := httpapi.Config{Store: store, UI: webui.FS(), StreamRecheck: 200 * time.Millisecond, Keyring: keys}
	if opts.rollouts {
		d, err := rollout.New(rollout.Config{Store: store, Interval: 100 * time.Millisecond, ScanInterval: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Rollouts = d
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- d.Run(rctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("rollout driver: %v", err)
			}
		})
	}
	srv, err := httpapi.New(cfg)
	if err != nil {
		t.Fatalf("httpapi.New: %v", err)
	}
	var h http.Handler = srv
	if opts.wrap != nil {
		h = opts.wrap(h)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(func() {
		_ = srv.Close() // ends the event streams first, so ts.Close does not wait on them
		ts.Close()
	})
	admin, err := srv.Bootstrap(ctx)
	if err != nil || admin == "" {
		t.Fatalf("bootstrap admin token: %q, %v", admin, err)
	}
	viewer, _, err := access.NewTokens(st.Records(), nil).Create(ctx, "vera-viewer",
		[]access.Grant{{Role: access.RoleViewer, Pattern: "*"}}, "test")
	if err != nil {
		t.Fatalf("create viewer token: %v", err)
	}
	client, err := api.New(api.Config{Servers: []string{ts.URL}, Token: admin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return &console{store: st, url: ts.URL + "/", admin: admin, viewer: viewer, api: client}
}

// dryRunBreaker, while on, answers every dry run (?dry_run=true) 503, as a
// server that cannot run one would, so that a test reaches the publish's own
// answer past the review.
type dryRunBreaker struct{ on atomic.Bool }

func (d *dryRunBreaker) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.on.Load() && r.URL.Query().Get("dry_run") == "true" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":{"code":"unavailable","message":"the dry run is switched off by the test"}}`))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// chromiumPath finds Debian's Chromium. A missing browser fails the test
// under CI=true or SLUICE_REQUIRE_BROWSER=1 and skips it otherwise.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("SLUICE_CHROMIUM"), "/usr/bin/chromium", "chromium", "chromium-browser"} {
		if p == "" {
			continue
		}
		if full, err := exec.LookPath(p); err == nil {
			return full
		}
	}
	if os.Getenv("CI") == "true" || os.Getenv("SLUICE_REQUIRE_BROWSER") == "1" {
		t.Fatal("chromium not found (install Debian's chromium package, or set SLUICE_CHROMIUM)")
	}
	t.Skip("chromium not found; set SLUICE_REQUIRE_BROWSER=1 to make this a failure")
	return ""
}

// startBrowser starts one headless Chromium with a fresh profile for the test.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 860),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	if err := chromedp.Do(bctx); err != nil {
		cancelBrowser()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(bctx, 10*time.Second)
		defer cancel()
		_ = chromedp.Cancel(cctx)
		cancelBrowser()
		cancelAlloc()
	})
	return bctx
}

// tab is one signed-out browser tab with its own cookie jar (a new browser
// context), that accepts confirm() dialogs and records uncaught exceptions.
type tab struct {
	t    *testing.T
	ctx  context.Context
	base string
	mu   sync.Mutex
	errs []string
}

func newTab(t *testing.T, browser context.Context, base string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	tb := &tab{t: t, ctx: ctx, base: base}
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		t.Fatalf("open tab: %v", err)
	}
	// Every page records what the console's Content-Security-Policy refused
	// (an inline style, a remote load); the test fails on any.
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: `window.__csp = [];
		document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + (e.sourceFile || '') + ':' + e.lineNumber));`}); err != nil {
		cancel()
		t.Fatalf("inject the CSP recorder: %v", err)
	}
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			tb.mu.Lock()
			tb.errs = append(tb.errs, msg)
			tb.mu.Unlock()
		}
	}()
	go func() {
		defer wg.Done()
		for _, err := range dialogs {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(ctx, 3*time.Second)
		if v, err := chromedp.Run(cctx, chromedp.Evaluate[[]string](`window.__csp || []`)); err == nil {
			for _, e := range v {
				t.Errorf("the console's CSP refused: %s", e)
			}
		}
		ccancel()
		cancel()
		wg.Wait()
		tb.mu.Lock()
		defer tb.mu.Unlock()
		for _, e := range tb.errs {
			t.Errorf("uncaught exception in the console: %s", e)
		}
	})
	return tb
}

const stepTimeout = 15 * time.Second

func (b *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	for _, step := range steps {
		// A node the page re-renders between the query and the action
		// (a list redrawn by a live event) is gone before anything was
		// done to it: the step is run again on the node found now.
		err := chromedp.Do(ctx, step)
		for try := 0; err != nil && try < 3 && strings.Contains(err.Error(), "Could not find node with given id"); try++ {
			err = chromedp.Do(ctx, step)
		}
		if err != nil {
			b.failShot()
			b.t.Fatalf("browser: %v (page text: %q)", err, b.pageText())
		}
	}
}

// pageText returns the visible text of the page, for failure messages.
func (b *tab) pageText() string {
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if len(s) > 600 {
		s = s[:600] + "…"
	}
	return s
}

func evalJS[T any](b *tab, js string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// waitFor polls a JavaScript condition until it is true.
func (b *tab) waitFor(what, cond string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		b.failShot()
		b.t.Fatalf("waiting for %s: %v (page text: %q)", what, err, b.pageText())
	}
}

func (b *tab) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v (page text: %q)", sel, err, b.pageText())
	}
	return s
}

// count returns how many elements match sel now.
func (b *tab) count(sel string) int {
	b.t.Helper()
	return evalJS[int](b, fmt.Sprintf(`document.querySelectorAll(%q).length`, sel))
}

// choose picks an option of a <select> and fires its change event.
func (b *tab) choose(sel, value string) {
	b.t.Helper()
	ok := evalJS[bool](b, fmt.Sprintf(`(() => { const s = document.querySelector(%q); if (!s) return false;
		s.value = %q; s.dispatchEvent(new Event('change')); return s.value === %q; })()`, sel, value, value))
	if !ok {
		b.t.Fatalf("cannot choose %q in %s (page text: %q)", value, sel, b.pageText())
	}
}

// failShot saves what the page looked like when a step failed.
func (b *tab) failShot() {
	ctx, cancel := context.WithTimeout(b.ctx, 3*time.Second)
	defer cancel()
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		name := strings.NewReplacer("/", "_", " ", "_", "'", "").Replace(b.t.Name())
		_ = os.MkdirAll(screenshotDir(), 0o755)
		_ = os.WriteFile(filepath.Join(screenshotDir(), "FAILED-"+name+".png"), png, 0o644)
	}
}

func screenshotDir() string {
	if dir := os.Getenv("SLUICE_SCREENSHOTS"); dir != "" {
		return dir
	}
	return filepath.Join("..", "..", "test-output", "screenshots")
}

// shot saves a full-page PNG under test-output/screenshots, without the
// transient toasts of earlier steps (they would cover the page in the docs).
func (b *tab) shot(name string) {
	b.t.Helper()
	evalJS[bool](b, `(() => { const f = document.querySelector('.flash'); if (f) f.style.visibility = 'hidden'; return true; })()`)
	defer evalJS[bool](b, `(() => { const f = document.querySelector('.flash'); if (f) f.style.visibility = ''; return true; })()`)
	b.shotAsIs(name)
}

// shotAsIs saves a full-page PNG with the toasts, e.g. to show a refusal.
func (b *tab) shotAsIs(name string) {
	b.t.Helper()
	dir := screenshotDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatalf("screenshots: %v", err)
	}
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
}

// typeInto replaces the content of a text field by typing, so the page sees
// real key and input events.
func (b *tab) typeInto(sel, text string) {
	b.t.Helper()
	b.do(chromedp.WaitVisible(chromedp.CSS(sel)))
	// chromedp.SetValue cannot set "" (it reads an empty result as failure).
	if !evalJS[bool](b, fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) return false; e.value = ''; e.focus(); return true; })()`, sel)) {
		b.t.Fatalf("no %s to type into", sel)
	}
	b.do(chromedp.SendKeys(chromedp.CSS(sel), text))
}

// setEditor replaces the text of the code editor (CodeMirror) as a user
// would: focus it, select all, and paste the text (a paste event with the
// text as clipboard data, handled by the editor's own input code; typing a
// whole file key by key would let auto-indent and bracket closing change it).
func (b *tab) setEditor(text string) {
	b.t.Helper()
	b.do(chromedp.WaitVisible(chromedp.CSS(`[data-test=editor] .cm-content`)))
	ok := evalJS[bool](b, fmt.Sprintf(`import('./vendor/codemirror.js').then((cm) => {
		const v = cm.EditorView.findFromDOM(document.querySelector('[data-test=editor]'));
		v.focus();
		v.dispatch({ selection: { anchor: 0, head: v.state.doc.length } });
		const dt = new DataTransfer();
		dt.setData('text/plain', %q);
		v.contentDOM.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
		return v.state.doc.toString() === %q;
	})`, text, text))
	if !ok {
		b.t.Fatalf("pasting into the editor did not set its text to %q (got %q)", text, b.editorText())
	}
}

// editorText returns the text in the code editor.
func (b *tab) editorText() string {
	b.t.Helper()
	return evalJS[string](b, `import('./vendor/codemirror.js').then((cm) => cm.EditorView.findFromDOM(document.querySelector('[data-test=editor]')).state.doc.toString())`)
}

// editorLine returns line n (1-based) of the text in the code editor.
func (b *tab) editorLine(n int) string {
	b.t.Helper()
	return evalJS[string](b, fmt.Sprintf(`import('./vendor/codemirror.js').then((cm) => cm.EditorView.findFromDOM(document.querySelector('[data-test=editor]')).state.doc.line(%d).text)`, n))
}

// editorReadOnly reports whether the code editor refuses edits.
func (b *tab) editorReadOnly() bool {
	b.t.Helper()
	return evalJS[bool](b, `import('./vendor/codemirror.js').then((cm) => cm.EditorView.findFromDOM(document.querySelector('[data-test=editor]')).state.readOnly)`)
}

// lintLines waits for the editor's lint to settle and returns the lines its
// error markers are on, in order ("4" or "2,5").
func (b *tab) lintLines() string {
	b.t.Helper()
	return evalJS[string](b, `import('./vendor/codemirror.js').then((cm) => {
		const v = cm.EditorView.findFromDOM(document.querySelector('[data-test=editor]'));
		const lines = [];
		cm.forEachDiagnostic(v.state, (d, from) => lines.push(v.state.doc.lineAt(from).number));
		return lines.join(',');
	})`)
}

func (b *tab) signIn(token string) {
	b.t.Helper()
	b.do(chromedp.Navigate(b.base), chromedp.WaitVisible(chromedp.CSS(`[data-test=token]`)))
	b.typeInto(`[data-test=token]`, token)
	b.do(chromedp.Click(chromedp.CSS(`[data-test=signin]`)), chromedp.WaitVisible(chromedp.CSS(`[data-test=whoami]`)))
}

func (b *tab) publish(message string) {
	b.t.Helper()
	b.waitFor("publish to be offered", `document.querySelector('[data-test=review]')?.disabled === false`)
	b.do(chromedp.Click(chromedp.CSS(`[data-test=review]`)), chromedp.WaitVisible(chromedp.CSS(`[data-test=confirm-publish]`)))
	b.typeInto(`.modal [data-test=message]`, message)
	b.do(chromedp.Click(chromedp.CSS(`[data-test=confirm-publish]`)))
}

func headRevision(t *testing.T, st configsvc.Store, svc string) int64 {
	t.Helper()
	h, err := st.Head(context.Background(), configsvc.Service(svc))
	if err != nil {
		t.Fatalf("head of %s: %v", svc, err)
	}
	return h.Revision
}

func fileAt(t *testing.T, st configsvc.Store, svc, file string, rev int64) string {
	t.Helper()
	b, _, err := st.File(context.Background(), configsvc.Service(svc), file, rev)
	if err != nil {
		t.Fatalf("%s/%s at %d: %v", svc, file, rev, err)
	}
	return string(b)
}
