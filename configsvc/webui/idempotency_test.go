package webui_test

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestConsoleWritesCarryAKeyPerAction: each user action that writes sends
// its own Idempotency-Key; when the answer of a publish is lost (the
// server applied it, then the connection broke), the console sends it
// again under the same key and gets the first answer, so the service gets
// one revision, not two.
func TestConsoleWritesCarryAKeyPerAction(t *testing.T) {
	var mu sync.Mutex
	keys := map[string][]string{} // "METHOD path" → keys received
	lost := 1
	c := startConsoleWith(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			op := r.Method + " " + r.URL.Path
			mu.Lock()
			if r.Method != http.MethodGet {
				keys[op] = append(keys[op], r.Header.Get("Idempotency-Key"))
			}
			drop := op == "POST /v1/services/orders/revisions" && lost > 0
			if drop {
				lost--
			}
			mu.Unlock()
			if drop {
				next.ServeHTTP(httptest.NewRecorder(), r) // applied, answer lost
				if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
					conn.Close()
				}
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	browser := startBrowser(t)
	adm := newTab(t, browser, c.url)
	adm.signIn(c.admin)
	adm.do(chromedp.WaitVisible(chromedp.CSS(`[data-test=new-name]`)))
	adm.typeInto(`[data-test=new-name]`, "orders")
	adm.do(chromedp.Click(chromedp.CSS(`[data-test=create]`)))
	adm.waitFor("the service page", `document.querySelector('[data-test=title]')?.textContent === 'orders'`)

	rev := evalJS[int](adm, `import('/js/api.js').then((api) =>
		api.post('/services/orders/revisions', { changes: [{ file: 'a.txt', content: 'x' }] })).then((r) => r.revision)`)
	if rev != 1 {
		t.Fatalf("publish across a lost answer resolved to revision %d, want 1", rev)
	}
	if h := headRevision(t, c.store, "orders"); h != 1 {
		t.Fatalf("head = %d, want 1: the resent publish must not publish twice", h)
	}
	mu.Lock()
	defer mu.Unlock()
	pub, create := keys["POST /v1/services/orders/revisions"], keys["PUT /v1/services/orders"]
	if len(pub) != 2 || pub[0] == "" || pub[0] != pub[1] {
		t.Fatalf("publish sent with keys %q; want twice the same key", pub)
	}
	if len(create) != 1 || create[0] == "" || create[0] == pub[0] {
		t.Fatalf("create sent with keys %q; want one key of its own", create)
	}
}
