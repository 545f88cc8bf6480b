package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/configsvc/api"
)

const testToken = "slc_test-token-never-printed"

// fakeAPI is an httptest admin server: routes map "METHOD /path" to a
// handler, and every request is recorded.
type fakeAPI struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	routes map[string]http.HandlerFunc
	reqs   []recorded
}

type recorded struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   []byte
}

func newFakeAPI(t *testing.T) *fakeAPI {
	t.Helper()
	f := &fakeAPI{t: t, routes: map[string]http.HandlerFunc{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, recorded{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Clone(), body})
		h := f.routes[r.Method+" "+r.URL.EscapedPath()]
		f.mu.Unlock()
		if h == nil {
			writeJSON(w, http.StatusNotFound, map[string]any{"error": map[string]any{"code": "not_found", "message": "no route " + r.URL.Path}})
			return
		}
		h(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) handle(route string, h http.HandlerFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes[route] = h
}

// reply registers a fixed JSON answer.
func (f *fakeAPI) reply(route string, status int, v any) {
	f.handle(route, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, status, v) })
}

func (f *fakeAPI) last(route string) recorded {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.reqs) - 1; i >= 0; i-- {
		if f.reqs[i].Method+" "+f.reqs[i].Path == route {
			return f.reqs[i]
		}
	}
	f.t.Fatalf("no request %s; got %v", route, f.reqs)
	return recorded{}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func apiErr(code, msg string, details map[string]any) map[string]any {
	return map[string]any{"error": map[string]any{"code": code, "message": msg, "details": details}}
}

// result is the outcome of one command line.
type result struct {
	stdout, stderr string
	err            error
}

// all returns everything the user could see.
func (r result) all() string {
	s := r.stdout + r.stderr
	if r.err != nil {
		s += r.err.Error()
	}
	return s
}

// runCLI runs one command line with env as the environment (SLUICE_SERVER
// and SLUICE_TOKEN preset to the fake server and testToken unless given).
func runCLI(t *testing.T, f *fakeAPI, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	vars := map[string]string{"SLUICE_DATA_DIR": t.TempDir()}
	if f != nil {
		vars["SLUICE_SERVER"] = f.srv.URL
		vars["SLUICE_TOKEN"] = testToken
	}
	for k, v := range env {
		vars[k] = v
	}
	var out, errb bytes.Buffer
	e := Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return vars[k] }}
	root := &cobra.Command{Use: "sluice", SilenceUsage: true, SilenceErrors: true}
	root.SetIn(e.Stdin)
	root.SetOut(e.Stdout)
	root.SetErr(e.Stderr)
	root.AddCommand(Commands(e)...)
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return result{out.String(), errb.String(), err}
}

func TestErrorsCarryServerMessageAndDetails(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   any
		header map[string]string
		want   []string
	}{
		{
			name:   "parse error with position",
			status: http.StatusUnprocessableEntity,
			body:   apiErr("invalid", `db.json:3:5: invalid json: invalid character '}'`, map[string]any{"file": "db.json", "line": 3, "column": 5, "format": "json"}),
			want:   []string{"db.json:3:5: invalid json", "HTTP 422 invalid", "file=db.json line=3 column=5 format=json"},
		},
		{
			name:   "limit",
			status: http.StatusRequestEntityTooLarge,
			body:   apiErr("too_large", "file too big", map[string]any{"what": `file "a.txt"`, "size": 600000, "limit": 524288}),
			want:   []string{"HTTP 413 too_large", `what=file "a.txt" size=600000 limit=524288`},
		},
		{
			name:   "unavailable with Retry-After",
			status: http.StatusServiceUnavailable,
			body:   apiErr("unavailable", "store unavailable", nil),
			header: map[string]string{"Retry-After": "2"},
			want:   []string{"store unavailable (HTTP 503 unavailable; retry after 2s)"},
		},
		{
			name:   "not the API's error shape",
			status: http.StatusBadGateway,
			body:   "upstream down",
			want:   []string{"upstream down", "HTTP 502 bad_gateway"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAPI(t)
			f.handle("PUT /v1/services/orders/files/db.json", func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				writeJSON(w, tc.status, tc.body)
			})
			r := runCLI(t, f, nil, "{}", "put", "orders", "db.json", "-")
			if r.err == nil {
				t.Fatal("put succeeded; want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(r.err.Error(), w) {
					t.Errorf("error %q does not contain %q", r.err, w)
				}
			}
			if strings.Contains(r.all(), testToken) {
				t.Error("the token was printed")
			}
		})
	}
}

func TestPutSendsContentMessageIfMatchAndToken(t *testing.T) {
	f := newFakeAPI(t)
	f.handle("PUT /v1/services/orders/files/db.yaml", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"4"`)
		writeJSON(w, http.StatusOK, map[string]any{"revision": 4, "author": "admin", "message": "m", "changes": []map[string]any{{"file": "db.yaml"}}})
	})
	r := runCLI(t, f, nil, "port: 5432\n", "put", "orders", "db.yaml", "-m", "bump pool", "--if-match", "3")
	if r.err != nil {
		t.Fatal(r.err)
	}
	req := f.last("PUT /v1/services/orders/files/db.yaml")
	if string(req.Body) != "port: 5432\n" {
		t.Errorf("body %q", req.Body)
	}
	for h, want := range map[string]string{"If-Match": `"3"`, "X-Sluice-Message": "bump pool", "Authorization": "Bearer " + testToken} {
		if got := req.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	if want := "orders: published revision 4 (db.yaml)\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
}

func TestPutFromFileAndStaleIfMatch(t *testing.T) {
	f := newFakeAPI(t)
	f.reply("PUT /v1/services/orders/files/db.yaml", http.StatusPreconditionFailed, apiErr("precondition_failed", "head is 5, not 3", nil))
	path := filepath.Join(t.TempDir(), "db.yaml")
	if err := os.WriteFile(path, []byte("a: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, f, nil, "", "put", "orders", "db.yaml", path, "--if-match", "3")
	if r.err == nil || !strings.Contains(r.err.Error(), "HTTP 412") || !strings.Contains(r.err.Error(), "revision 3 is no longer the newest") {
		t.Fatalf("err = %v; want a 412 explaining revision 3 is stale", r.err)
	}
	if got := f.last("PUT /v1/services/orders/files/db.yaml").Body; string(got) != "a: 1\n" {
		t.Errorf("body %q, want the file's content", got)
	}
}

func TestPutRefusesMultiLineMessage(t *testing.T) {
	f := newFakeAPI(t)
	r := runCLI(t, f, nil, "x", "put", "orders", "a.txt", "-", "-m", "two\nlines")
	if r.err == nil || !strings.Contains(r.err.Error(), "one-line message") {
		t.Fatalf("err = %v", r.err)
	}
	if len(f.reqs) != 0 {
		t.Errorf("sent %d requests; want none", len(f.reqs))
	}
}

func TestTokenResolution(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, TokenFile), []byte("slc_from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"flag wins", map[string]string{"SLUICE_TOKEN": "slc_env", "SLUICE_DATA_DIR": dir}, []string{"--token", "slc_flag"}, "Bearer slc_flag"},
		{"env before file", map[string]string{"SLUICE_TOKEN": "slc_env", "SLUICE_DATA_DIR": dir}, nil, "Bearer slc_env"},
		{"file from SLUICE_DATA_DIR", map[string]string{"SLUICE_TOKEN": "", "SLUICE_DATA_DIR": dir}, nil, "Bearer slc_from-file"},
		{"file from --data-dir", map[string]string{"SLUICE_TOKEN": ""}, []string{"--data-dir", dir}, "Bearer slc_from-file"},
		{"none", map[string]string{"SLUICE_TOKEN": ""}, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAPI(t)
			f.reply("GET /v1/whoami", http.StatusOK, map[string]any{"id": "ab12", "name": "n", "roles": []map[string]any{{"role": "admin", "pattern": "*"}}})
			r := runCLI(t, f, tc.env, "", append([]string{"whoami"}, tc.args...)...)
			if r.err != nil {
				t.Fatal(r.err)
			}
			if got := f.last("GET /v1/whoami").Header.Get("Authorization"); got != tc.want {
				t.Errorf("Authorization %q, want %q", got, tc.want)
			}
		})
	}
}

func TestUnauthorizedSaysWhereTheTokenCameFromNotWhatItIs(t *testing.T) {
	f := newFakeAPI(t)
	f.reply("GET /v1/whoami", http.StatusUnauthorized, apiErr("unauthorized", "unknown token", nil))
	r := runCLI(t, f, nil, "", "whoami")
	if r.err == nil || !strings.Contains(r.err.Error(), "token from SLUICE_TOKEN") {
		t.Fatalf("err = %v; want the token's source named", r.err)
	}
	if strings.Contains(r.all(), testToken) {
		t.Error("the token was printed")
	}
	dir := t.TempDir()
	r = runCLI(t, f, map[string]string{"SLUICE_TOKEN": "", "SLUICE_DATA_DIR": dir}, "", "whoami")
	want := "no token sent: none of --token, SLUICE_TOKEN or " + filepath.Join(dir, TokenFile) + " is set"
	if r.err == nil || !strings.Contains(r.err.Error(), want) {
		t.Fatalf("err = %v; want %q", r.err, want)
	}
}

func TestOutputFormats(t *testing.T) {
	history := []map[string]any{
		{"revision": 2, "author": "ci", "time": "2026-01-02T03:04:05Z", "message": "rollback to revision 1", "rollback_of": 1, "changes": []map[string]any{{"file": "db.yaml"}}},
		{"revision": 1, "author": "alice", "time": "2026-01-01T00:00:00Z", "message": "first", "changes": []map[string]any{{"file": "db.yaml"}, {"file": "old.txt", "delete": true}}},
	}
	tests := []struct {
		name   string
		body   any
		args   []string
		want   string
		isJSON bool
	}{
		{
			name: "table",
			body: map[string]any{"revisions": history},
			args: []string{"history", "orders"},
			want: "REVISION  TIME                  AUTHOR  FILES             MESSAGE\n" +
				"2         2026-01-02 03:04:05Z  ci      db.yaml           rollback to revision 1\n" +
				"1         2026-01-01 00:00:00Z  alice   db.yaml,-old.txt  first\n",
		},
		{
			name: "table of one revision",
			body: map[string]any{"revisions": history[1:]},
			args: []string{"history", "orders"},
			want: "REVISION  TIME                  AUTHOR  FILES             MESSAGE\n" +
				"1         2026-01-01 00:00:00Z  alice   db.yaml,-old.txt  first\n",
		},
		{
			name:   "json is the server's data",
			body:   map[string]any{"revisions": history},
			args:   []string{"history", "orders", "-o", "json"},
			isJSON: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAPI(t)
			f.reply("GET /v1/services/orders/revisions", http.StatusOK, tc.body)
			r := runCLI(t, f, nil, "", tc.args...)
			if r.err != nil {
				t.Fatal(r.err)
			}
			if got := f.last("GET /v1/services/orders/revisions").RawQuery; got != "limit=20" {
				t.Errorf("query %q, want limit=20", got)
			}
			if !tc.isJSON {
				if r.stdout != tc.want {
					t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, tc.want)
				}
				return
			}
			var got, want any
			if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
				t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
			}
			b, _ := json.Marshal(tc.body)
			json.Unmarshal(b, &want)
			gb, _ := json.Marshal(got)
			wb, _ := json.Marshal(want)
			if string(gb) != string(wb) {
				t.Errorf("json %s, want %s", gb, wb)
			}
		})
	}
	t.Run("bad -o", func(t *testing.T) {
		r := runCLI(t, newFakeAPI(t), nil, "", "history", "orders", "-o", "yaml")
		if r.err == nil || !strings.Contains(r.err.Error(), "must be table or json") {
			t.Fatalf("err = %v", r.err)
		}
	})
}

func TestGetPrintsRawContentAtRevision(t *testing.T) {
	f := newFakeAPI(t)
	f.handle("GET /v1/services/orders/files/db.yaml", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"2"`)
		io.WriteString(w, "port: 1\n")
	})
	r := runCLI(t, f, nil, "", "get", "orders", "db.yaml", "--revision", "2")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.stdout != "port: 1\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	if q := f.last("GET /v1/services/orders/files/db.yaml").RawQuery; q != "revision=2" {
		t.Errorf("query %q", q)
	}
	r = runCLI(t, f, nil, "", "get", "orders", "db.yaml", "-o", "json")
	var got map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got["content"] != "port: 1\n" || got["revision"] != float64(2) {
		t.Errorf("json output %q (%v)", r.stdout, err)
	}
}

func TestPublishSendsOneChangeset(t *testing.T) {
	f := newFakeAPI(t)
	f.reply("POST /v1/services/orders/revisions", http.StatusCreated, map[string]any{"revision": 8, "changes": []map[string]any{{"file": "a.json"}, {"file": "b.yaml"}, {"file": "old.txt", "delete": true}}})
	dir := t.TempDir()
	pa, pb := filepath.Join(dir, "a.json"), filepath.Join(dir, "local.yaml")
	os.WriteFile(pa, []byte(`{"a":1}`), 0o600)
	os.WriteFile(pb, []byte("b: 2\n"), 0o600)
	r := runCLI(t, f, nil, "", "publish", "orders", "-f", pa, "-f", "b.yaml="+pb, "--delete", "old.txt", "-m", "two files")
	if r.err != nil {
		t.Fatal(r.err)
	}
	var body struct {
		Base    *int64 `json:"base_revision"`
		Message string `json:"message"`
		Changes []struct {
			File    string  `json:"file"`
			Content *string `json:"content"`
			Delete  bool    `json:"delete"`
		} `json:"changes"`
	}
	req := f.last("POST /v1/services/orders/revisions")
	if err := json.Unmarshal(req.Body, &body); err != nil {
		t.Fatal(err)
	}
	if body.Base != nil || body.Message != "two files" || len(body.Changes) != 3 {
		t.Fatalf("body %s", req.Body)
	}
	if c := body.Changes[0]; c.File != "a.json" || c.Content == nil || *c.Content != `{"a":1}` {
		t.Errorf("change 0 = %+v", c)
	}
	if c := body.Changes[1]; c.File != "b.yaml" || c.Content == nil || *c.Content != "b: 2\n" {
		t.Errorf("change 1 = %+v", c)
	}
	if c := body.Changes[2]; c.File != "old.txt" || !c.Delete || c.Content != nil {
		t.Errorf("change 2 = %+v", c)
	}
	if want := "orders: published revision 8 (a.json, b.yaml, -old.txt)\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
	// --base N (even 0) is sent; a stale one is explained.
	f.reply("POST /v1/services/orders/revisions", http.StatusConflict, apiErr("conflict", "head is 8, not 0", nil))
	r = runCLI(t, f, nil, "", "publish", "orders", "-f", pa, "--base", "0")
	if r.err == nil || !strings.Contains(r.err.Error(), "revision 0 is no longer the newest") {
		t.Fatalf("err = %v", r.err)
	}
	json.Unmarshal(f.last("POST /v1/services/orders/revisions").Body, &body)
	if body.Base == nil || *body.Base != 0 {
		t.Errorf("base %v, want 0", body.Base)
	}
}

// writeEditor writes a fake $EDITOR: a shell script that runs body with the
// file to edit as $1.
func writeEditor(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "editor.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEdit(t *testing.T) {
	tests := []struct {
		name       string
		editor     string
		putStatus  int
		wantPut    bool
		wantErr    []string
		wantStdout string
		wantKept   bool
	}{
		{name: "publishes with If-Match of the revision read", editor: `printf 'port: 2\n' > "$1"`, putStatus: 200, wantPut: true, wantStdout: "orders: published revision 6 (db.yaml)\n"},
		{name: "stale: refused and told to re-run", editor: `printf 'port: 2\n' > "$1"`, putStatus: 412, wantPut: true, wantErr: []string{"changed on the server after you opened it at revision 5", "Re-run `sluice edit orders db.yaml`"}, wantKept: true},
		{name: "invalid: refused, copy kept", editor: `printf 'port: [\n' > "$1"`, putStatus: 422, wantPut: true, wantErr: []string{"line=2", "edited copy is kept"}, wantKept: true},
		{name: "unchanged: nothing sent", editor: `true`, wantPut: false},
		{name: "editor fails: nothing sent", editor: `exit 3`, wantPut: false, wantErr: []string{"nothing published"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAPI(t)
			f.handle("GET /v1/services/orders/files/db.yaml", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("ETag", `"5"`)
				io.WriteString(w, "port: 1\n")
			})
			f.handle("PUT /v1/services/orders/files/db.yaml", func(w http.ResponseWriter, r *http.Request) {
				switch tc.putStatus {
				case 412:
					writeJSON(w, 412, apiErr("precondition_failed", "stale", nil))
				case 422:
					writeJSON(w, 422, apiErr("invalid", "db.yaml:2:1: invalid yaml", map[string]any{"file": "db.yaml", "line": 2, "column": 1}))
				default:
					writeJSON(w, 200, map[string]any{"revision": 6})
				}
			})
			tmp := t.TempDir()
			r := runCLI(t, f, map[string]string{"EDITOR": writeEditor(t, tc.editor), "TMPDIR": tmp}, "", "edit", "orders", "db.yaml")
			if len(tc.wantErr) == 0 && r.err != nil {
				t.Fatal(r.err)
			}
			for _, w := range tc.wantErr {
				if r.err == nil || !strings.Contains(r.err.Error(), w) {
					t.Errorf("err = %v; want it to contain %q", r.err, w)
				}
			}
			put := 0
			for _, q := range f.reqs {
				if q.Method == http.MethodPut {
					put++
					if q.Header.Get("If-Match") != `"5"` || string(q.Body) == "port: 1\n" {
						t.Errorf("PUT If-Match %q body %q", q.Header.Get("If-Match"), q.Body)
					}
				}
			}
			if (put > 0) != tc.wantPut {
				t.Errorf("%d PUTs; want a put: %v", put, tc.wantPut)
			}
			if tc.wantStdout != "" && r.stdout != tc.wantStdout {
				t.Errorf("stdout %q, want %q", r.stdout, tc.wantStdout)
			}
			left, _ := os.ReadDir(tmp)
			if !tc.wantKept && len(left) != 0 {
				t.Errorf("temp files left behind: %v", left)
			}
			if tc.wantKept {
				// The kept copy is named in the error and holds the edit.
				msg := r.err.Error()
				i := strings.Index(msg, "kept at ")
				path := strings.Fields(msg[i+len("kept at "):])[0]
				path = strings.TrimSuffix(path, ".")
				if filepath.Dir(path) != tmp || len(left) != 1 {
					t.Errorf("kept copy %s not the one file in $TMPDIR %s (%v)", path, tmp, left)
				}
				b, err := os.ReadFile(path)
				if err != nil || !strings.HasPrefix(string(b), "port: ") || string(b) == "port: 1\n" {
					t.Errorf("kept copy %s: %q, %v", path, b, err)
				}
			}
		})
	}
}

func TestTokenCreatePrintsTokenAloneOnStdout(t *testing.T) {
	f := newFakeAPI(t)
	f.reply("POST /v1/tokens", http.StatusCreated, map[string]any{"id": "0123456789ab", "name": "ci", "token": "slc_NEWTOKEN", "roles": []map[string]any{{"role": "viewer", "pattern": "orders"}}})
	r := runCLI(t, f, nil, "", "token", "create", "--name", "ci", "--role", "viewer:orders", "--role", "editor:team-a-*")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.stdout != "slc_NEWTOKEN\n" {
		t.Errorf("stdout %q, want the token alone", r.stdout)
	}
	if !strings.Contains(r.stderr, "0123456789ab") || !strings.Contains(r.stderr, "shown once") {
		t.Errorf("stderr %q", r.stderr)
	}
	var body struct {
		Name  string      `json:"name"`
		Roles []api.Grant `json:"roles"`
	}
	json.Unmarshal(f.last("POST /v1/tokens").Body, &body)
	if body.Name != "ci" || len(body.Roles) != 2 || body.Roles[0] != (api.Grant{Role: "viewer", Pattern: "orders"}) || body.Roles[1] != (api.Grant{Role: "editor", Pattern: "team-a-*"}) {
		t.Errorf("body %+v", body)
	}
}

func TestTokenCreateTTL(t *testing.T) {
	f := newFakeAPI(t)
	f.reply("POST /v1/tokens", http.StatusCreated, map[string]any{"id": "0123456789ab", "name": "ci", "token": "slc_NEWTOKEN", "roles": []map[string]any{{"role": "viewer", "pattern": "orders"}}, "expires": "2026-01-02T00:00:00Z"})
	if r := runCLI(t, f, nil, "", "token", "create", "--name", "ci", "--role", "viewer:orders", "--ttl", "24h"); r.err != nil {
		t.Fatal(r.err)
	}
	var body api.TokenRequest
	json.Unmarshal(f.last("POST /v1/tokens").Body, &body)
	if body.TTL != "24h0m0s" {
		t.Errorf("ttl sent %q, want 24h0m0s", body.TTL)
	}
	if r := runCLI(t, f, nil, "", "token", "create", "--name", "ci", "--role", "viewer:orders", "--ttl", "0s"); r.err == nil || !strings.Contains(r.err.Error(), "--ttl") {
		t.Errorf("--ttl 0s: err %v", r.err)
	}
}

func TestParseRole(t *testing.T) {
	tests := []struct {
		in      string
		want    api.Grant
		wantErr string
	}{
		{"admin", api.Grant{Role: "admin"}, ""},
		{"editor:orders", api.Grant{Role: "editor", Pattern: "orders"}, ""},
		{"viewer:team-a-*", api.Grant{Role: "viewer", Pattern: "team-a-*"}, ""},
		{"agent:*", api.Grant{Role: "agent", Pattern: "*"}, ""},
		{"proxy:*", api.Grant{Role: "proxy", Pattern: "*"}, ""},
		{"admin:orders", api.Grant{}, "takes no pattern"},
		{"editor", api.Grant{}, "needs a service or group name"},
		{"owner:x", api.Grant{}, "must be admin, editor:GLOB"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseRole(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)
	tests := []struct{ in, want, wantErr string }{
		{"90m", "2026-03-04T10:30:00Z", ""},
		{"2026-03-01T00:00:00+02:00", "2026-02-28T22:00:00Z", ""},
		{"-1h", "", "must be positive"},
		{"yesterday", "", "give a duration"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseSince(tc.in, now)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestPinCreatePrintsTokenAndCurlLine(t *testing.T) {
	f := newFakeAPI(t)
	f.reply("POST /v1/pins", http.StatusCreated, map[string]any{"id": "feed", "token": "pin_TOK", "targets": map[string]string{"orders": "orders-7"}, "expires": "2026-01-01T00:30:00Z"})
	r := runCLI(t, f, nil, "", "pin", "create", "--target", "orders=orders-7", "--target", "payments=payments-2", "--ttl", "1h", "--note", "bug 123")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !strings.Contains(r.stdout, "curl -H 'X-Sluice-Pin: pin_TOK' http://127.0.0.1:7080/") {
		t.Errorf("stdout %q lacks the curl line", r.stdout)
	}
	var body struct {
		Targets map[string]string `json:"targets"`
		TTL     string            `json:"ttl"`
		Note    string            `json:"note"`
	}
	json.Unmarshal(f.last("POST /v1/pins").Body, &body)
	if body.TTL != "1h0m0s" || body.Note != "bug 123" || body.Targets["orders"] != "orders-7" || body.Targets["payments"] != "payments-2" {
		t.Errorf("body %+v", body)
	}
	for _, bad := range [][]string{{"--target", "orders"}, {"--target", "a=1", "--target", "a=2"}, {}} {
		r := runCLI(t, f, nil, "", append([]string{"pin", "create"}, bad...)...)
		if r.err == nil {
			t.Errorf("pin create %v succeeded", bad)
		}
	}
}

func TestRollbackAndDiff(t *testing.T) {
	f := newFakeAPI(t)
	f.reply("POST /v1/services/orders/rollback", http.StatusOK, map[string]any{"revision": 9, "rollback_of": 2, "changes": []map[string]any{{"file": "db.yaml"}}})
	f.reply("GET /v1/services/orders/diff", http.StatusOK, map[string]any{"from": 1, "to": 2, "files": []map[string]any{
		{"file": "db.yaml", "status": "modified", "diff": "--- db.yaml@1\n+++ db.yaml@2\n@@ -1 +1 @@\n-a: 1\n+a: 2\n"},
		{"file": "same.txt", "status": "unchanged"},
	}})
	r := runCLI(t, f, nil, "", "rollback", "orders", "--to", "2", "--file", "db.yaml", "-m", "undo")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if want := "orders: rolled back to revision 2 as revision 9 (db.yaml)\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
	var body api.RollbackRequest
	json.Unmarshal(f.last("POST /v1/services/orders/rollback").Body, &body)
	if body.ToRevision != 2 || body.Message != "undo" || len(body.Files) != 1 || body.Files[0] != "db.yaml" {
		t.Errorf("body %+v", body)
	}
	if r := runCLI(t, f, nil, "", "rollback", "orders"); r.err == nil || !strings.Contains(r.err.Error(), "--to N is required") {
		t.Errorf("rollback without --to: %v", r.err)
	}
	r = runCLI(t, f, nil, "", "diff", "orders", "1", "2")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if want := "modified db.yaml\n--- db.yaml@1\n+++ db.yaml@2\n@@ -1 +1 @@\n-a: 1\n+a: 2\n"; r.stdout != want {
		t.Errorf("diff stdout %q, want %q", r.stdout, want)
	}
	if q := f.last("GET /v1/services/orders/diff").RawQuery; q != "from=1&to=2" {
		t.Errorf("query %q", q)
	}
}

func TestSharedGroupsAndLinks(t *testing.T) {
	f := newFakeAPI(t)
	f.reply("PUT /v1/services/orders/links/redis-common", http.StatusNoContent, nil)
	f.reply("GET /v1/shared/redis-common/users", http.StatusOK, map[string]any{"group": "redis-common", "services": []string{"billing", "orders"}})
	f.reply("GET /v1/shared", http.StatusOK, map[string]any{"groups": []string{"redis-common"}})
	f.reply("GET /v1/services", http.StatusOK, map[string]any{"services": []string{}})
	f.handle("PUT /v1/shared/redis-common/files/redis.yaml", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"revision": 4})
	})
	steps := []struct {
		args []string
		want string
	}{
		{[]string{"link", "orders", "redis-common"}, "service orders now uses shared group redis-common\n"},
		{[]string{"shared", "users", "redis-common"}, "SERVICE\nbilling\norders\n"},
		{[]string{"shared", "list"}, "NAME\nredis-common\n"},
		{[]string{"services"}, "no services yet (create one with `sluice services create NAME`)\n"},
		{[]string{"shared", "put", "redis-common", "redis.yaml", "-"}, "redis-common: published revision 4 (redis.yaml)\n"},
	}
	for _, s := range steps {
		t.Run(strings.Join(s.args, " "), func(t *testing.T) {
			r := runCLI(t, f, nil, "addr: x\n", s.args...)
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.stdout != s.want {
				t.Errorf("stdout %q, want %q", r.stdout, s.want)
			}
		})
	}
}

func TestServerUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	r := runCLI(t, nil, map[string]string{"SLUICE_SERVER": url, "SLUICE_TOKEN": testToken}, "", "services")
	if r.err == nil || !strings.Contains(r.err.Error(), "cannot reach the sluice server at "+url) {
		t.Fatalf("err = %v", r.err)
	}
	if strings.Contains(r.all(), testToken) {
		t.Error("the token was printed")
	}
	r = runCLI(t, nil, map[string]string{"SLUICE_SERVER": "ftp://x"}, "", "services")
	if r.err == nil || !strings.Contains(r.err.Error(), "must be an http:// or https:// URL") {
		t.Fatalf("err = %v", r.err)
	}
}

func TestNamesAreEscapedInPaths(t *testing.T) {
	f := newFakeAPI(t)
	r := runCLI(t, f, nil, "", "get", "orders", "../../v1/tokens")
	if r.err == nil {
		t.Fatal("want the fake's 404")
	}
	if got := f.reqs[0].Path; got != "/v1/services/orders/files/..%2F..%2Fv1%2Ftokens" {
		t.Errorf("path %q: the name was not escaped as one segment", got)
	}
}

func TestConnectionFlagsBeforeOrAfterTheVerb(t *testing.T) {
	f := newFakeAPI(t)
	f.reply("GET /v1/services", http.StatusOK, map[string]any{"services": []string{"orders"}})
	for _, args := range [][]string{
		{"--server", f.srv.URL, "--token", "slc_x", "-o", "json", "services"},
		{"services", "--server", f.srv.URL, "--token", "slc_x", "-o", "json"},
		{"--server=" + f.srv.URL, "services", "list", "--token=slc_x", "--output=json"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := runCLI(t, nil, nil, "", args...)
			if r.err != nil {
				t.Fatal(r.err)
			}
			if !json.Valid([]byte(r.stdout)) || !strings.Contains(r.stdout, `"orders"`) {
				t.Errorf("stdout %q, want the JSON list", r.stdout)
			}
			if got := f.last("GET /v1/services").Header.Get("Authorization"); got != "Bearer slc_x" {
				t.Errorf("Authorization %q", got)
			}
		})
	}
}

func TestCreateSaysWhetherItExisted(t *testing.T) {
	f := newFakeAPI(t)
	status := http.StatusCreated
	f.handle("PUT /v1/services/orders", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, status, map[string]any{"name": "orders", "revision": 0})
	})
	if r := runCLI(t, f, nil, "", "services", "create", "orders"); r.err != nil || r.stdout != "service orders created\n" {
		t.Errorf("first create: %q, %v", r.stdout, r.err)
	}
	status = http.StatusOK
	if r := runCLI(t, f, nil, "", "services", "create", "orders"); r.err != nil || r.stdout != "service orders already exists\n" {
		t.Errorf("second create: %q, %v", r.stdout, r.err)
	}
}

func TestIfMatchZeroAndDiffDefaults(t *testing.T) {
	f := newFakeAPI(t)
	f.reply("PUT /v1/services/orders/files/a.txt", http.StatusOK, map[string]any{"revision": 1})
	f.reply("GET /v1/services/orders/diff", http.StatusOK, map[string]any{"from": 0, "to": 1, "files": []map[string]any{}})
	if r := runCLI(t, f, nil, "x", "put", "orders", "a.txt", "--if-match", "0"); r.err != nil {
		t.Fatal(r.err)
	}
	if got := f.last("PUT /v1/services/orders/files/a.txt").Header.Get("If-Match"); got != `"0"` {
		t.Errorf("If-Match %q, want \"0\" (only if nothing was published yet)", got)
	}
	if r := runCLI(t, f, nil, "x", "put", "orders", "a.txt"); r.err != nil {
		t.Fatal(r.err)
	}
	if got := f.last("PUT /v1/services/orders/files/a.txt").Header.Values("If-Match"); len(got) != 0 {
		t.Errorf("If-Match %q sent without --if-match", got)
	}
	r := runCLI(t, f, nil, "", "diff", "orders")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if q := f.last("GET /v1/services/orders/diff").RawQuery; q != "" {
		t.Errorf("query %q, want none (server defaults)", q)
	}
	if want := "orders: no differences between revisions 0 and 1\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
}

func TestTables(t *testing.T) {
	tests := []struct {
		name  string
		route string
		body  any
		args  []string
		want  string
	}{
		{
			name:  "instances",
			route: "GET /v1/services/orders/instances",
			body: map[string]any{"service": "orders", "instances": []map[string]any{
				{"id": "orders-1", "addr": "10.0.0.7:8080", "revision": 8, "status": "applied", "updated": "2026-01-02T03:04:05Z"},
				{"id": "orders-2", "addr": "10.0.0.8:8080", "revision": 7, "status": "rejected", "rejected_revision": 8, "error": "db.yaml: pool must be > 0", "updated": "2026-01-02T03:04:06Z"},
				{"id": "orders-3", "addr": "10.0.0.9:8080", "revision": 7, "status": "applied", "from_cache": true},
			}},
			args: []string{"instances", "orders"},
			want: "ID        ADDR           REVISION  STATUS    UPDATED               NOTE\n" +
				"orders-1  10.0.0.7:8080  8         applied   2026-01-02 03:04:05Z  -\n" +
				"orders-2  10.0.0.8:8080  7         rejected  2026-01-02 03:04:06Z  rejected 8: db.yaml: pool must be > 0\n" +
				"orders-3  10.0.0.9:8080  7         applied   -                     started from cache\n",
		},
		{
			name:  "no instances",
			route: "GET /v1/services/orders/instances",
			body:  map[string]any{"service": "orders", "instances": []any{}},
			args:  []string{"instances", "orders"},
			want:  "no live instances of orders\n",
		},
		{
			name:  "audit",
			route: "GET /v1/audit",
			body: map[string]any{"entries": []map[string]any{
				{"seq": 2, "time": "2026-01-02T03:04:05Z", "actor_id": "ab", "actor": "ci", "action": "publish", "target": "service/orders/db.yaml", "revision": 4, "outcome": "allowed", "status": 200, "client": "127.0.0.1"},
				{"seq": 1, "time": "2026-01-02T03:04:00Z", "actor": "anonymous", "action": "publish", "target": "service/orders/db.yaml", "outcome": "refused", "status": 401, "reason": "no token", "client": "10.1.1.1", "sampled": true, "count": 12},
			}},
			args: []string{"audit"},
			want: "TIME                  ACTOR      ACTION   TARGET                  REVISION  STATUS  CLIENT     OUTCOME\n" +
				"2026-01-02 03:04:05Z  ci         publish  service/orders/db.yaml  4         200     127.0.0.1  allowed\n" +
				"2026-01-02 03:04:00Z  anonymous  publish  service/orders/db.yaml  -         401     10.1.1.1   refused ×12, sampled: no token\n",
		},
		{
			name:  "tokens",
			route: "GET /v1/tokens",
			body: map[string]any{"tokens": []map[string]any{
				{"id": "0123456789ab", "name": "bootstrap-admin", "roles": []map[string]any{{"role": "admin", "pattern": "*"}}, "created": "2026-01-01T00:00:00Z", "created_by": "bootstrap"},
				{"id": "ba9876543210", "name": "team-a", "roles": []map[string]any{{"role": "editor", "pattern": "team-a-*"}, {"role": "viewer", "pattern": "*"}}, "created": "2026-01-02T00:00:00Z", "created_by": "bootstrap-admin", "expires": "2026-01-03T00:00:00Z"},
			}},
			args: []string{"token", "list"},
			want: "ID            NAME             ROLES                     CREATED               CREATED BY       EXPIRES\n" +
				"0123456789ab  bootstrap-admin  admin                     2026-01-01 00:00:00Z  bootstrap        never\n" +
				"ba9876543210  team-a           editor:team-a-*,viewer:*  2026-01-02 00:00:00Z  bootstrap-admin  2026-01-03 00:00:00Z\n",
		},
		{
			name:  "pins",
			route: "GET /v1/pins",
			body: map[string]any{"pins": []map[string]any{
				{"id": "feedfeedfeed", "targets": map[string]string{"payments": "payments-2", "orders": "orders-7"}, "expires": "2026-01-01T01:00:00Z", "state": "revoked", "created_by": "alice", "note": "bug 123"},
			}},
			args: []string{"pin", "list"},
			want: "ID            TARGETS                               EXPIRES               STATE    CREATED BY  NOTE\n" +
				"feedfeedfeed  orders→orders-7, payments→payments-2  2026-01-01 01:00:00Z  revoked  alice       bug 123\n",
		},
		{
			name:  "live routes",
			route: "GET /v1/routes",
			body: map[string]any{"revision": 4, "proxies": []map[string]any{
				{"id": "proxy-a", "addr": "127.0.0.1:7080", "updated": "2026-01-02T03:04:05Z", "revision": 4, "peers": 2, "routes": []map[string]any{
					{"name": "orders", "match": map[string]any{"path_prefix": "/orders"}, "upstream": map[string]any{"service": "orders", "balancer": "round_robin"},
						"rate_limit": map[string]any{"rps": 100, "burst": 200, "key": "ip", "scope": "cluster", "rejected": 12},
						"instances": []map[string]any{
							{"id": "orders-1", "addr": "10.0.0.7:8080", "breaker": "open", "opened": 1, "in_flight": 0, "requests": 912, "failures": 5},
							{"id": "orders-2", "addr": "10.0.0.8:8080", "breaker": "closed", "opened": 0, "in_flight": 1, "requests": 900, "failures": 0},
						}, "instances_omitted": 3},
					{"name": "static", "match": map[string]any{"path_prefix": "/"}, "upstream": map[string]any{"static": []string{"10.0.0.9:80"}, "balancer": "round_robin"},
						"panic": true, "instances": []map[string]any{
							{"id": "10.0.0.9:80", "addr": "10.0.0.9:80", "opened": 0, "in_flight": 0, "requests": 3, "failures": 0, "ejected": true, "ejections": 1, "health": "unhealthy"},
							{"id": "10.0.0.10:80", "addr": "10.0.0.10:80", "opened": 0, "in_flight": 0, "requests": 2, "failures": 0, "health": "healthy"},
						}},
				}},
				{"id": "proxy-b", "addr": "127.0.0.1:7081", "updated": "2026-01-02T03:04:06Z", "revision": 3, "peers": 2, "routes": []any{}},
			}, "stale": []map[string]any{
				{"id": "proxy-c", "reason": "unreported", "revision": 0, "registered": true},
				{"id": "proxy-old", "reason": "stale", "updated": "2026-01-01T00:00:00Z", "revision": 2, "registered": false},
			}},
			args: []string{"routes", "live"},
			want: "PROXY    REVISION    UPDATED               ROUTE           RATE LIMIT                    REJECTED  INSTANCE      BREAKER  HEALTH              REQUESTS  FAILURES\n" +
				"proxy-a  4           2026-01-02 03:04:05Z  orders          100/s burst 200 ip (cluster)  12        orders-1      open     -                   912       5\n" +
				"proxy-a  4           2026-01-02 03:04:05Z  orders          100/s burst 200 ip (cluster)  12        orders-2      closed   -                   900       0\n" +
				"proxy-a  4           2026-01-02 03:04:05Z  orders          100/s burst 200 ip (cluster)  12        (3 more)      -        -                   -         -\n" +
				"proxy-a  4           2026-01-02 03:04:05Z  static (panic)  -                             -         10.0.0.9:80   -        ejected, unhealthy  3         0\n" +
				"proxy-a  4           2026-01-02 03:04:05Z  static (panic)  -                             -         10.0.0.10:80  -        healthy             2         0\n" +
				"proxy-b  3 (head 4)  2026-01-02 03:04:06Z  -               -                             -         -             -        -                   -         -\n" +
				"proxy-c: registered, but publishes no state\n" +
				"proxy-old: stale, last update 2026-01-01 00:00:00Z (revision 2)\n",
		},
		{
			name:  "no live routes",
			route: "GET /v1/routes",
			body:  map[string]any{"revision": 0, "proxies": []any{}, "stale": []any{}},
			args:  []string{"routes", "live"},
			want:  "no proxy reports its live route table\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAPI(t)
			f.reply(tc.route, http.StatusOK, tc.body)
			r := runCLI(t, f, nil, "", tc.args...)
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.stdout != tc.want {
				t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, tc.want)
			}
		})
	}
}

func TestWatchPrintsRevisionsAndResumes(t *testing.T) {
	f := newFakeAPI(t)
	f.reply("GET /v1/services/orders", http.StatusOK, map[string]any{"name": "orders", "revision": 2})
	var mu sync.Mutex
	conns := 0
	f.handle("GET /v1/services/orders/watch", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		conns++
		n := conns
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		switch n {
		case 1:
			io.WriteString(w, ": ok\n\n"+
				"id: 3\nevent: revision\ndata: {\"revision\":3,\"author\":\"ci\",\"time\":\"2026-01-02T03:04:05Z\",\"message\":\"m3\",\"changes\":[{\"file\":\"db.yaml\",\"content\":\"a\"}]}\n\n"+
				"event: links\ndata: {\"links\":[\"redis-common\"]}\n\n"+
				"event: error\ndata: {\"error\":{\"code\":\"unavailable\",\"message\":\"store down\"}}\n\n")
			// The stream breaks here; the client resumes after revision 3.
		default:
			io.WriteString(w, "id: 4\nevent: revision\ndata: {\"revision\":4,\"author\":\"ci\",\"time\":\"2026-01-02T03:04:06Z\",\"message\":\"m4\",\"changes\":[{\"file\":\"old.txt\",\"delete\":true}]}\n\n")
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}
	})
	r := runCLI(t, f, nil, "", "watch", "orders", "--count", "2")
	if r.err != nil {
		t.Fatal(r.err)
	}
	want := "revision 3  2026-01-02 03:04:05Z  ci  db.yaml  m3\n" +
		"links  redis-common\n" +
		"revision 4  2026-01-02 03:04:06Z  ci  -old.txt  m4\n"
	if r.stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, want)
	}
	mustContainAll(t, r.stderr, "after revision 2", "store down (unavailable); still watching", "resuming in")
	var sinces []string
	for _, q := range f.reqs {
		if q.Path == "/v1/services/orders/watch" {
			sinces = append(sinces, q.RawQuery)
			if q.Header.Get("Authorization") != "Bearer "+testToken {
				t.Errorf("watch request without the token")
			}
		}
	}
	if strings.Join(sinces, " ") != "since=2 since=3" {
		t.Errorf("watch requests %v, want since=2 then since=3", sinces)
	}
}

func TestWatchEnds(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    string
	}{
		{"compacted", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "event: error\ndata: {\"error\":{\"code\":\"compacted\",\"message\":\"revision 1 compacted\"}}\n\n")
		}, "watch ended: revision 1 compacted (compacted)"},
		{"forbidden", func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusForbidden, apiErr("forbidden", "viewer of billing only", nil))
		}, "viewer of billing only (HTTP 403 forbidden)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAPI(t)
			f.handle("GET /v1/services/orders/watch", tc.handler)
			r := runCLI(t, f, nil, "", "watch", "orders", "--since", "1")
			if r.err == nil || !strings.Contains(r.err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", r.err, tc.want)
			}
		})
	}
}

func mustContainAll(t *testing.T, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%q does not contain %q", got, w)
		}
	}
}
