package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
)

// TestEndToEnd builds the real sluice binary, starts `sluice server` on
// 127.0.0.1:0 against bbolt and against a real ZooKeeper, and drives it with
// the sluice CLI the way an operator would (issue 3, "Done when").
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the sluice binary and starts servers; not in -short")
	}
	bin := e2eBuild(t)
	t.Run("bolt", func(t *testing.T) {
		dir := t.TempDir()
		srv := e2eStart(t, bin, "bolt://"+filepath.Join(dir, "sluice.db"), dir)
		e2eTour(t, bin, srv)
		srv.shutdown(t)
	})
	t.Run("zookeeper", func(t *testing.T) {
		zk := zktest.Start(t)
		dir := t.TempDir()
		srv := e2eStart(t, bin, "zk://"+zk.Addr()+"/sluice-e2e", dir)
		e2eTour(t, bin, srv)
		srv.shutdown(t)
	})
}

// e2eBuild builds ./cmd/sluice (this package) into a temp dir.
func e2eBuild(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	bin := filepath.Join(t.TempDir(), "sluice")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// e2eServer is a running `sluice server` process.
type e2eServer struct {
	url     string // http://127.0.0.1:PORT
	dataDir string
	token   string // the bootstrap admin token, read from <data-dir>/admin.token
	cmd     *exec.Cmd
	out     *e2eBuffer
	done    chan error
}

// e2eBuffer collects a process's output for failure messages.
type e2eBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *e2eBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *e2eBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var (
	e2eListenRE = regexp.MustCompile(`https?://127\.0\.0\.1:([1-9][0-9]*)`)
	e2eTokenRE  = regexp.MustCompile(`sl[cp]_[A-Za-z0-9_-]+`)
)

// output returns what the server printed, tokens redacted.
func (s *e2eServer) output() string { return e2eRedact(s.out.String()) }

// e2eRedact hides API and pin tokens in text bound for the test log.
func e2eRedact(s string) string { return e2eTokenRE.ReplaceAllString(s, "sl?_<redacted>") }

// e2eStart runs `sluice server --addr 127.0.0.1:0` and waits until it
// prints its bound address and /readyz answers 200. Cleanup kills it if the
// test did not shut it down.
func e2eStart(t *testing.T, bin, store, dataDir string) *e2eServer {
	t.Helper()
	s := &e2eServer{dataDir: dataDir, out: &e2eBuffer{}, done: make(chan error, 1)}
	s.cmd = exec.Command(bin, "server", "--addr", "127.0.0.1:0", "--store", store, "--data-dir", dataDir)
	s.cmd.Dir = dataDir
	s.cmd.Env = append(os.Environ(), "SLUICE_TOKEN=", "SLUICE_SERVER=")
	pr, pw := io.Pipe()
	s.cmd.Stdout = io.MultiWriter(s.out, pw)
	s.cmd.Stderr = io.MultiWriter(s.out, pw)
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start sluice server: %v", err)
	}
	go func() { s.done <- s.cmd.Wait(); pw.Close() }()
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			s.cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() {
			t.Logf("sluice server output:\n%s", s.output())
		}
	})

	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := e2eListenRE.FindString(sc.Text()); m != "" {
				select {
				case addr <- m:
				default:
				}
			}
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case s.url = <-addr:
	case err := <-s.done:
		t.Fatalf("sluice server exited before listening: %v\n%s", err, s.output())
	case <-time.After(30 * time.Second):
		t.Fatalf("sluice server printed no http://127.0.0.1:PORT address in 30s:\n%s", s.output())
	}
	ready, err := api.New(api.Config{Servers: []string{s.url}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer ready.Close()
	testkit.Eventually(t, 30*time.Second, s.url+"/readyz answering 200", func() error {
		if err := ready.Ready(context.Background()); err != nil {
			return fmt.Errorf("%w\n%s", err, s.output())
		}
		return nil
	})

	tokenPath := filepath.Join(dataDir, "admin.token")
	st, err := os.Stat(tokenPath)
	if err != nil {
		t.Fatalf("bootstrap token file: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", tokenPath, st.Mode().Perm())
	}
	b, err := os.ReadFile(tokenPath)
	if err != nil {
		t.Fatal(err)
	}
	s.token = strings.TrimSpace(string(b))
	if !strings.HasPrefix(s.token, "slc_") {
		t.Fatalf("admin.token does not hold an slc_ token")
	}
	return s
}

// shutdown sends SIGTERM and expects a clean exit within 15s.
func (s *e2eServer) shutdown(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("sluice server exited with %v after SIGTERM; want a clean exit", err)
		}
	case <-time.After(15 * time.Second):
		t.Errorf("sluice server still running 15s after SIGTERM")
	}
}

// e2eResult is one CLI run.
type e2eResult struct {
	stdout, stderr string
	code           int
}

// e2eRun runs the binary with args against srv. The token comes from
// SLUICE_DATA_DIR/admin.token unless env sets SLUICE_TOKEN.
func e2eRun(t *testing.T, bin string, srv *e2eServer, stdin string, env []string, args ...string) e2eResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "SLUICE_SERVER="+srv.url, "SLUICE_DATA_DIR="+srv.dataDir, "SLUICE_TOKEN=")
	cmd.Env = append(cmd.Env, env...)
	cmd.Dir = t.TempDir()
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := e2eResult{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("sluice %v: %v", args, err)
	}
	if strings.Contains(r.stdout+r.stderr, srv.token) {
		t.Errorf("sluice %v printed the admin token", args)
	}
	return r
}

// e2eOK runs a CLI command that must succeed and returns its stdout.
func e2eOK(t *testing.T, bin string, srv *e2eServer, stdin string, args ...string) string {
	t.Helper()
	r := e2eRun(t, bin, srv, stdin, nil, args...)
	if r.code != 0 {
		t.Fatalf("sluice %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, e2eRedact(r.stdout), e2eRedact(r.stderr))
	}
	return r.stdout
}

// e2eFails runs a CLI command that must fail and returns its stderr.
func e2eFails(t *testing.T, bin string, srv *e2eServer, stdin string, env []string, args ...string) string {
	t.Helper()
	r := e2eRun(t, bin, srv, stdin, env, args...)
	if r.code == 0 {
		t.Fatalf("sluice %s succeeded; want a failure\nstdout: %s", strings.Join(args, " "), e2eRedact(r.stdout))
	}
	return r.stderr
}

func e2eContains(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s does not contain %q:\n%s", what, w, got)
		}
	}
}

// e2eWriteFile writes a local file for -f and put.
func e2eWriteFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func e2eChmod(t *testing.T, path string) {
	t.Helper()
	if err := os.Chmod(path, 0o700); err != nil {
		t.Fatal(err)
	}
}

// e2eHistory returns the revision numbers `sluice history -o json` lists.
func e2eHistory(t *testing.T, bin string, srv *e2eServer, svc string) []int64 {
	t.Helper()
	out := e2eOK(t, bin, srv, "", "history", svc, "-o", "json")
	var h struct {
		Revisions []struct {
			Revision int64 `json:"revision"`
		} `json:"revisions"`
	}
	if err := json.Unmarshal([]byte(out), &h); err != nil {
		t.Fatalf("history -o json: %v\n%s", err, out)
	}
	ns := make([]int64, len(h.Revisions))
	for i, r := range h.Revisions {
		ns[i] = r.Revision
	}
	return ns
}

// e2eTour is the operator's walk through the CLI; every step asserts what the
// user would see.
func e2eTour(t *testing.T, bin string, srv *e2eServer) {
	local := t.TempDir()
	const (
		db1 = "port: 5432\npool: 10\n"
		db2 = "port: 5432\npool: 50\n"
		db3 = "port: 6432\npool: 50\n"
	)

	// Create a service; publish one file; read it back.
	e2eContains(t, "services create", e2eOK(t, bin, srv, "", "services", "create", "orders"), "orders")
	e2eContains(t, "put", e2eOK(t, bin, srv, "", "put", "orders", "db.yaml", e2eWriteFile(t, local, "db.yaml", db1), "-m", "first"), "revision 1")
	if got := e2eOK(t, bin, srv, "", "get", "orders", "db.yaml"); got != db1 {
		t.Fatalf("get db.yaml = %q, want %q", got, db1)
	}
	e2eContains(t, "services", e2eOK(t, bin, srv, "", "services"), "orders")

	// Bad JSON is refused with its line and column, and nothing is written.
	stderr := e2eFails(t, bin, srv, "{\"timeout\": 30,\n \"retries\": }\n", nil, "put", "orders", "features.json", "-")
	e2eContains(t, "bad JSON error", stderr, "features.json:2:", "line=2", "column=", "HTTP 422")
	if revs := e2eHistory(t, bin, srv, "orders"); len(revs) != 1 {
		t.Fatalf("after a refused publish, history = %v; want [1]", revs)
	}

	// Multi-file publish: one revision with both files.
	fa := e2eWriteFile(t, local, "features.json", `{"checkout_v2": true}`)
	fb := e2eWriteFile(t, local, "limits.local", "rps = 100\n")
	e2eContains(t, "publish", e2eOK(t, bin, srv, "", "publish", "orders", "-f", fa, "-f", "limits.toml="+fb, "-m", "two files"), "revision 2")
	if got := e2eOK(t, bin, srv, "", "get", "orders", "limits.toml"); got != "rps = 100\n" {
		t.Fatalf("get limits.toml = %q", got)
	}

	// A stale If-Match is refused; a current one publishes.
	stderr = e2eFails(t, bin, srv, db2, nil, "put", "orders", "db.yaml", "-", "--if-match", "1")
	e2eContains(t, "stale if-match error", stderr, "HTTP 412", "revision 1 is no longer the newest")
	e2eContains(t, "put --if-match 2", e2eOK(t, bin, srv, db2, "put", "orders", "db.yaml", "-", "--if-match", "2", "-m", "bigger pool"), "revision 3")
	e2eContains(t, "put", e2eOK(t, bin, srv, db3, "put", "orders", "db.yaml", "-", "-m", "new port"), "revision 4")

	// History lists every revision, newest first, with its message.
	hist := e2eOK(t, bin, srv, "", "history", "orders")
	e2eContains(t, "history", hist, "REVISION", "first", "two files", "bigger pool", "new port")
	if revs := e2eHistory(t, bin, srv, "orders"); fmt.Sprint(revs) != "[4 3 2 1]" {
		t.Fatalf("history revisions %v, want [4 3 2 1]", revs)
	}

	// Diff shows the changed lines.
	diff := e2eOK(t, bin, srv, "", "diff", "orders", "1", "4")
	e2eContains(t, "diff 1 4", diff, "db.yaml", "-pool: 10", "+pool: 50", "-port: 5432", "+port: 6432", "features.json")

	// Rollback to 1: a new revision whose content equals revision 1.
	e2eContains(t, "rollback", e2eOK(t, bin, srv, "", "rollback", "orders", "--to", "1", "-m", "back to the start"), "revision 5")
	if got := e2eOK(t, bin, srv, "", "get", "orders", "db.yaml"); got != db1 {
		t.Fatalf("after rollback db.yaml = %q, want revision 1's %q", got, db1)
	}
	if got := e2eOK(t, bin, srv, "", "get", "orders", "db.yaml", "--revision", "4"); got != db3 {
		t.Fatalf("history rewritten: db.yaml@4 = %q, want %q", got, db3)
	}
	stderr = e2eFails(t, bin, srv, "", nil, "get", "orders", "features.json")
	e2eContains(t, "get a file the rollback removed", stderr, "HTTP 404")
	e2eContains(t, "diff 1 5", e2eOK(t, bin, srv, "", "diff", "orders", "1", "5"), "no differences")

	// A shared group, linked, lists its users.
	e2eOK(t, bin, srv, "", "shared", "create", "redis-common")
	e2eContains(t, "shared put", e2eOK(t, bin, srv, "addr: 127.0.0.1:6379\n", "shared", "put", "redis-common", "redis.yaml", "-"), "revision 1")
	e2eContains(t, "link", e2eOK(t, bin, srv, "", "link", "orders", "redis-common"), "orders now uses shared group redis-common")
	e2eContains(t, "shared users", e2eOK(t, bin, srv, "", "shared", "users", "redis-common"), "SERVICE", "orders")
	if got := e2eOK(t, bin, srv, "", "shared", "get", "redis-common", "redis.yaml"); got != "addr: 127.0.0.1:6379\n" {
		t.Fatalf("shared get = %q", got)
	}

	// edit publishes what $EDITOR saved, with If-Match on the revision it
	// read; when someone publishes meanwhile it refuses and keeps the copy.
	editor := e2eWriteFile(t, local, "editor.sh", "#!/bin/sh\nsed -i 's/pool: 10/pool: 20/' \"$1\"\n")
	e2eChmod(t, editor)
	r := e2eRun(t, bin, srv, "", []string{"EDITOR=" + editor, "TMPDIR=" + local}, "edit", "orders", "db.yaml", "-m", "edited")
	if r.code != 0 {
		t.Fatalf("edit: exit %d: %s", r.code, r.stderr)
	}
	e2eContains(t, "edit", r.stdout, "revision 6")
	racer := e2eWriteFile(t, local, "racer.sh", fmt.Sprintf("#!/bin/sh\nsed -i 's/pool: 20/pool: 30/' \"$1\"\nprintf 'pool: 40\\n' | %s put orders db.yaml - -m racer >/dev/null\n", bin))
	e2eChmod(t, racer)
	stderr = e2eFails(t, bin, srv, "", []string{"EDITOR=" + racer, "TMPDIR=" + local}, "edit", "orders", "db.yaml")
	e2eContains(t, "stale edit", stderr, "changed on the server after you opened it at revision 6", "nothing was published", "Re-run `sluice edit orders db.yaml`")
	if got := e2eOK(t, bin, srv, "", "get", "orders", "db.yaml"); got != "pool: 40\n" {
		t.Fatalf("after the refused edit db.yaml = %q, want the racer's", got)
	}

	// The SSE watch receives a revision published after it started.
	events := e2eWatch(t, srv, "orders", 7)
	e2eOK(t, bin, srv, "pool: 99\n", "put", "orders", "db.yaml", "-", "-m", "watched")
	select {
	case ev := <-events:
		if ev.Number != 8 || ev.Message != "watched" {
			t.Fatalf("watch got revision %d %q, want 8 \"watched\"", ev.Number, ev.Message)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("watch received no revision event in 15s")
	}
	// `sluice watch` replays from --since and stops after --count.
	e2eContains(t, "sluice watch", e2eOK(t, bin, srv, "", "watch", "orders", "--since", "7", "--count", "1"), "revision 8", "db.yaml", "watched")

	// A viewer token reads but cannot publish.
	viewer := strings.TrimSpace(e2eOK(t, bin, srv, "", "token", "create", "--name", "e2e-viewer", "--role", "viewer:orders"))
	if !strings.HasPrefix(viewer, "slc_") {
		t.Fatalf("token create printed %q, want the token alone", viewer)
	}
	asViewer := []string{"SLUICE_TOKEN=" + viewer}
	if r := e2eRun(t, bin, srv, "", asViewer, "get", "orders", "db.yaml"); r.code != 0 || r.stdout != "pool: 99\n" {
		t.Fatalf("viewer get: exit %d %q %s", r.code, r.stdout, r.stderr)
	}
	stderr = e2eFails(t, bin, srv, "pool: 1\n", asViewer, "put", "orders", "db.yaml", "-")
	e2eContains(t, "viewer put", stderr, "HTTP 403")
	r = e2eRun(t, bin, srv, "", asViewer, "whoami")
	e2eContains(t, "viewer whoami", r.stdout, "e2e-viewer", "viewer:orders")
	if got := e2eOK(t, bin, srv, "", "get", "orders", "db.yaml"); got != "pool: 99\n" {
		t.Fatalf("the viewer's refused put changed db.yaml to %q", got)
	}

	// An instance registered through the API is listed with its revision;
	// a pin to it prints its token with a ready curl line, and can be revoked.
	e2eRegister(t, srv, configsvc.Instance{Service: "orders", ID: "orders-1", Addr: "127.0.0.1:9001", Revision: 8, Status: configsvc.StatusApplied})
	inst := e2eOK(t, bin, srv, "", "instances", "orders")
	e2eContains(t, "instances", inst, "orders-1", "127.0.0.1:9001", "applied")
	if !regexp.MustCompile(`orders-1\s+127\.0\.0\.1:9001\s+8\s+applied`).MatchString(inst) {
		t.Errorf("instances table does not show orders-1 at revision 8:\n%s", inst)
	}
	pin := e2eOK(t, bin, srv, "", "pin", "create", "--target", "orders=orders-1", "--ttl", "10m", "--note", "e2e")
	m := regexp.MustCompile(`(?m)^pin ([0-9a-f]{12}) for orders→orders-1`).FindStringSubmatch(pin)
	if m == nil || !regexp.MustCompile(`curl -H 'X-Sluice-Pin: slp_[A-Za-z0-9_-]+' http://127\.0\.0\.1:7080/`).MatchString(pin) {
		t.Fatalf("pin create output lacks the pin id or the curl line:\n%s", e2eRedact(pin))
	}
	e2eContains(t, "pin list", e2eOK(t, bin, srv, "", "pin", "list"), m[1], "orders→orders-1", "active", "e2e")
	e2eOK(t, bin, srv, "", "pin", "revoke", m[1])
	e2eContains(t, "pin list after revoke", e2eOK(t, bin, srv, "", "pin", "list"), m[1], "revoked")

	// Routes are sluice-system/routes.yaml; the first put creates the service.
	const routes = "routes:\n  - name: orders\n    upstream: {service: orders}\n"
	e2eContains(t, "routes put", e2eOK(t, bin, srv, routes, "routes", "put", "-", "-m", "first route"), "sluice-system: published revision 1")
	if got := e2eOK(t, bin, srv, "", "routes", "get"); got != routes {
		t.Fatalf("routes get = %q, want %q", got, routes)
	}

	// Deleting needs --yes, then the service is gone.
	e2eOK(t, bin, srv, "", "services", "create", "scratch")
	e2eContains(t, "delete without --yes", e2eFails(t, bin, srv, "", nil, "services", "delete", "scratch"), "--yes")
	e2eContains(t, "delete", e2eOK(t, bin, srv, "", "services", "delete", "scratch", "--yes"), "service scratch deleted")
	e2eContains(t, "show deleted", e2eFails(t, bin, srv, "", nil, "services", "show", "scratch"), "HTTP 404")

	// The audit log has the refused put and the publishes.
	e2eContains(t, "audit --service", e2eOK(t, bin, srv, "", "audit", "--service", "orders", "--since", "1h"), "rollback", "publish", "service/orders")
	audit := e2eOK(t, bin, srv, "", "audit", "--limit", "100")
	e2eContains(t, "audit", audit, "e2e-viewer", "refused", "403")
	e2eContains(t, "token list", e2eOK(t, bin, srv, "", "token", "list"), "e2e-viewer", "viewer:orders")
}

// e2eClient returns an API client for srv with the admin token, closed
// when the test ends.
func e2eClient(t *testing.T, srv *e2eServer) *api.Client {
	t.Helper()
	c, err := api.New(api.Config{Servers: []string{srv.url}, Token: srv.token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// e2eRegister registers an instance the way the SDK's HTTP transport
// does: PUT /v1/services/{svc}/instances/{id}, once (it lives 30 s).
func e2eRegister(t *testing.T, srv *e2eServer, inst configsvc.Instance) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := e2eClient(t, srv).PutInstance(ctx, inst); err != nil {
		t.Fatalf("register instance: %v", err)
	}
}

// e2eWatch follows GET /v1/services/{svc}/watch?since=N and sends each
// revision on the returned channel. The stream is closed when the test
// ends; an error that ends it fails the test.
func e2eWatch(t *testing.T, srv *e2eServer, svc string, since int64) <-chan configsvc.Revision {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	watch := e2eClient(t, srv).Watch(ctx, configsvc.Service(svc), since)
	revisions := make(chan configsvc.Revision, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range watch {
			switch {
			case ev.Revision != nil:
				select {
				case revisions <- *ev.Revision:
				case <-ctx.Done():
				}
			case ev.Err != nil && !errors.Is(ev.Err, configsvc.ErrUnavailable):
				t.Errorf("watch %s: %v", svc, ev.Err)
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return revisions
}
