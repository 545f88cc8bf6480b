package webui_test

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/sluicehq/sluice/configsvc"
)

// TestBrowserSecretFileWithoutGrant: a token without the secrets grant
// (here a viewer) sees on the file page, in the history and in a diff that
// db.secret.yaml is secret, its size and revision, never its value.
func TestBrowserSecretFileWithoutGrant(t *testing.T) {
	c := startConsoleOpts(t, consoleOpts{secrets: true})
	ctx := context.Background()
	values := []string{"hunter2-first-value", "hunter2-second-value"}
	mustService(t, c, "orders", map[string]string{"db.secret.yaml": "password: " + values[0] + "\n", "app.json": appV1})
	if _, err := c.api.PutFile(ctx, configsvc.Service("orders"), "db.secret.yaml", []byte("password: "+values[1]+"\n")); err != nil {
		t.Fatal(err)
	}
	b := newTab(t, startBrowser(t), c.url)
	b.signIn(c.viewer)
	noValue := func(where string) {
		t.Helper()
		// The page's text and every editor's document (CodeMirror renders
		// only what is in view).
		all := b.pageText() + evalJS[string](b, `[...document.querySelectorAll('[data-test=editor] .cm-content')].map(e => e.cmView ? e.cmView.view.state.doc.toString() : e.textContent).join('\n')`)
		for _, v := range values {
			if strings.Contains(all, v) {
				t.Errorf("%s shows the secret value %s", where, v)
			}
		}
	}
	b.do(chromedp.Navigate(c.url+"#/services/orders/files?file=db.secret.yaml"), chromedp.WaitVisible(chromedp.CSS(`[data-test=editor] .cm-content`)))
	b.waitFor("db.secret.yaml's placeholder", `document.querySelector('[data-test=editor] .cm-content')?.textContent.includes('secret file')`)
	if got := b.editorText(); !strings.Contains(got, "secret file") || !strings.Contains(got, "bytes") || !strings.Contains(got, "revision 2") {
		t.Errorf("file page shows %q, want that it is secret, its size and revision", got)
	}
	if got := b.text(`[data-test=secret-badge]`); got != "secret: value hidden" {
		t.Errorf("secret badge = %q", got)
	}
	if !b.editorReadOnly() {
		t.Error("the placeholder of a secret file is editable")
	}
	noValue("the file page")
	b.do(chromedp.Navigate(c.url+"#/services/orders/history"), chromedp.WaitVisible(chromedp.CSS(`[data-revision="2"]`)))
	noValue("the history")
	b.do(chromedp.Click(chromedp.CSS(`[data-test=changes-2]`)))
	b.waitFor("the changes of revision 2", `document.querySelector('[data-test=diff-out] h2')?.textContent === 'Revision 1 → 2'`)
	if got := b.text(`[data-test=diff-out]`); !strings.Contains(got, "revision 1") || !strings.Contains(got, "revision 2") {
		t.Errorf("diff 1→2 = %q, want the placeholders of both revisions", got)
	}
	noValue("the diff")
	b.do(chromedp.Navigate(c.url + "#/services/orders/revisions/1/db.secret.yaml"))
	b.waitFor("db.secret.yaml at revision 1", `document.querySelector('[data-test=editor] .cm-content')?.getAttribute('aria-label') === 'db.secret.yaml at revision 1'`)
	noValue("the file at revision 1")
	b.shot("60-secret-file-without-grant")
}
