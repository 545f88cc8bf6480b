package clustertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
)

// binaries are the executables TestMain builds once for every test.
type binaries struct{ sluice, orders string }

// bins is set by TestMain before any test runs and never changed after.
var bins binaries

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-clustertest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "clustertest:", err)
		os.Exit(1)
	}
	bins = binaries{sluice: filepath.Join(dir, "sluice"), orders: filepath.Join(dir, "orders")}
	for _, b := range []struct{ out, pkg string }{{bins.sluice, "./cmd/sluice"}, {bins.orders, "./examples/orders"}} {
		cmd := exec.Command("go", "build", "-o", b.out, b.pkg)
		cmd.Dir = "../.."
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "clustertest: go build %s: %v\n%s", b.pkg, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// secretRE matches Sluice API and pin tokens, redacted from anything the
// tests print.
var secretRE = regexp.MustCompile(`slc_[A-Za-z0-9_-]+|(token[^:\n]*: *)[A-Za-z0-9_-]{20,}`)

func redact(s string) string { return secretRE.ReplaceAllString(s, "${1}<redacted>") }

// proc is one process started by a test.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// startProc starts bin with args, output to a log file in the test's temp
// dir. t.Cleanup stops it (SIGTERM, then SIGKILL after 10 s) and, when the
// test failed, shows the redacted end of its log.
func startProc(t *testing.T, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 3000 {
				b = b[len(b)-3000:]
			}
			t.Logf("--- end of %s log ---\n%s", name, redact(string(b)))
		}
	})
	return p
}

// stop ends the process gracefully, or kills it after 10 s.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.kill()
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// freeAddr returns a 127.0.0.1 address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitFor polls cond every 50 ms until it returns nil or d passes; then it
// fails the test with what and cond's last error.
func waitFor(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v: %v", what, d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cluster is a ZooKeeper store shared by the servers and proxies a test
// starts.
type cluster struct {
	t     *testing.T
	zk    []string // ZooKeeper client addresses the processes connect to
	store string   // zk://…/sluice
	admin string   // bootstrap admin token
}

func newCluster(t *testing.T, zk []string) *cluster {
	return &cluster{t: t, zk: zk, store: "zk://" + strings.Join(zk, ",") + "/sluice"}
}

// server is a running `sluice server`.
type server struct {
	*proc
	url  string
	data string
}

// startServer starts `sluice server` on a free port and waits for /readyz.
// The first server of a cluster bootstraps the admin token, which the
// cluster keeps (it is never printed).
func (c *cluster) startServer(name string) *server {
	t := c.t
	t.Helper()
	addr := freeAddr(t)
	data := t.TempDir()
	p := startProc(t, name, nil, bins.sluice, "server", "--addr", addr, "--store", c.store, "--data-dir", data)
	s := &server{proc: p, url: "http://" + addr, data: data}
	waitFor(t, 60*time.Second, name+" /readyz", func() error {
		select {
		case <-p.done:
			return fmt.Errorf("exited: %v", p.err)
		default:
		}
		resp, err := http.Get(s.url + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	if c.admin == "" {
		b, err := os.ReadFile(filepath.Join(data, "admin.token"))
		if err != nil {
			t.Fatalf("%s bootstrapped no admin token: %v", name, err)
		}
		c.admin = strings.TrimSpace(string(b))
	}
	return s
}

// proxy is a running `sluice proxy`.
type proxy struct {
	*proc
	url string
}

// startProxy starts `sluice proxy` on a free port; it is usable once it
// answers any HTTP request.
func (c *cluster) startProxy(name string) *proxy {
	t := c.t
	t.Helper()
	addr := freeAddr(t)
	p := startProc(t, name, nil, bins.sluice, "proxy", "--addr", addr, "--store", c.store, "--access-log", "off")
	waitFor(t, 60*time.Second, name+" serving", func() error {
		select {
		case <-p.done:
			return fmt.Errorf("exited: %v", p.err)
		default:
		}
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	return &proxy{proc: p, url: "http://" + addr}
}

// startOrders starts an examples/orders instance following ZooKeeper.
func (c *cluster) startOrders(id string) *proc {
	t := c.t
	t.Helper()
	return startProc(t, id, nil, bins.orders, "--zk", strings.Join(c.zk, ","), "--id", id, "--addr", freeAddr(t))
}

// client calls one server's API with one token.
type client struct {
	base, token string
	hc          *http.Client
}

func (c *cluster) client(s *server) *client {
	return &client{base: s.url, token: c.admin, hc: &http.Client{Timeout: 30 * time.Second}}
}

// reply is an API answer.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) String() string {
	return fmt.Sprintf("HTTP %d %s", r.status, bytes.TrimSpace(r.body))
}

// revision returns the revision in the ETag header, or 0.
func (r reply) revision() int64 {
	n, _ := strconv.ParseInt(strings.Trim(r.header.Get("ETag"), `"`), 10, 64)
	return n
}

// do sends one request; body is sent raw when it is []byte, as JSON
// otherwise. hdr are extra headers as name, value pairs.
func (c *client) do(ctx context.Context, method, path string, body any, hdr ...string) (reply, error) {
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case []byte:
		rd, ctype = bytes.NewReader(b), "text/plain"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return reply{}, err
		}
		rd, ctype = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// must sends one request and fails the test unless the status is want.
func (c *client) must(t *testing.T, want int, method, path string, body any, hdr ...string) reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := c.do(ctx, method, path, body, hdr...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if r.status != want {
		t.Fatalf("%s %s: %v, want %d", method, path, r, want)
	}
	return r
}

// createToken creates a token with one grant and returns it.
func (c *client) createToken(t *testing.T, name, role, pattern string) string {
	t.Helper()
	r := c.must(t, http.StatusCreated, "POST", "/v1/tokens", map[string]any{
		"name": name, "roles": []map[string]string{{"role": role, "pattern": pattern}}})
	var out struct{ Token string }
	if err := json.Unmarshal(r.body, &out); err != nil || out.Token == "" {
		t.Fatalf("token create answer carries no token (%v)", err)
	}
	return out.Token
}

// putFile publishes content as svc/file; ifMatch < 0 sends no If-Match.
func (c *client) putFile(ctx context.Context, svc, file string, content []byte, ifMatch int64) (reply, error) {
	hdr := []string{"X-Sluice-Message", "clustertest"}
	if ifMatch >= 0 {
		hdr = append(hdr, "If-Match", strconv.Quote(strconv.FormatInt(ifMatch, 10)))
	}
	return c.do(ctx, "PUT", "/v1/services/"+svc+"/files/"+file, content, hdr...)
}

// revisionJSON is a revision as the API shows it.
type revisionJSON struct {
	Revision int64  `json:"revision"`
	Author   string `json:"author"`
	Message  string `json:"message"`
	Changes  []struct {
		File    string  `json:"file"`
		Content *string `json:"content"`
		Delete  bool    `json:"delete"`
	} `json:"changes"`
}

// history returns every revision of svc, oldest first (paging by 1000).
func (c *client) history(t *testing.T, svc string) []revisionJSON {
	t.Helper()
	var all []revisionJSON
	before := int64(0)
	for {
		path := "/v1/services/" + svc + "/revisions?limit=1000"
		if before > 0 {
			path += "&before=" + strconv.FormatInt(before, 10)
		}
		r := c.must(t, http.StatusOK, "GET", path, nil)
		var page struct{ Revisions []revisionJSON }
		if err := json.Unmarshal(r.body, &page); err != nil {
			t.Fatal(err)
		}
		all = append(all, page.Revisions...)
		if len(page.Revisions) < 1000 {
			break
		}
		before = page.Revisions[len(page.Revisions)-1].Revision
	}
	for i, j := 0, len(all)-1; i < j; i, j = i+1, j-1 {
		all[i], all[j] = all[j], all[i]
	}
	return all
}

// revisionContent returns file's content as changed by revision n of svc.
func (c *client) revisionContent(t *testing.T, svc string, n int64, file string) (string, bool) {
	t.Helper()
	r := c.must(t, http.StatusOK, "GET", "/v1/services/"+svc+"/revisions/"+strconv.FormatInt(n, 10), nil)
	var rev revisionJSON
	if err := json.Unmarshal(r.body, &rev); err != nil {
		t.Fatal(err)
	}
	for _, ch := range rev.Changes {
		if ch.File == file && ch.Content != nil {
			return *ch.Content, true
		}
	}
	return "", false
}

// tcpProxy forwards 127.0.0.1 connections to the first target that
// accepts; Blackhole makes it stop passing bytes (both ways) without
// closing anything, like a network partition.
type tcpProxy struct {
	ln      net.Listener
	targets []string

	mu    sync.Mutex
	hole  chan struct{} // non-nil while black-holing; closed on Heal
	conns map[net.Conn]struct{}
}

// startTCPProxy listens on a free 127.0.0.1 port; t.Cleanup closes it and
// every connection it holds, and waits for its goroutines.
func startTCPProxy(t *testing.T, targets ...string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, targets: targets, conns: map[net.Conn]struct{}{}}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); p.serve(c) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		wg.Wait()
	})
	return p
}

// Addr is where clients connect.
func (p *tcpProxy) Addr() string { return p.ln.Addr().String() }

// Blackhole stops forwarding: bytes are read and dropped in both directions
// and new connections are accepted but never reach a target.
func (p *tcpProxy) Blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hole == nil {
		p.hole = make(chan struct{})
	}
}

// Heal resumes forwarding for new connections; the connections that lived
// through the partition are closed, as their peers would have given up on
// them.
func (p *tcpProxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hole != nil {
		close(p.hole)
		p.hole = nil
	}
}

func (p *tcpProxy) holed() chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hole
}

// track registers c for closing at cleanup; it reports false (and closes
// c) when the proxy is already closed.
func (p *tcpProxy) track(c net.Conn) func() {
	p.mu.Lock()
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
		c.Close()
	}
}

func (p *tcpProxy) serve(c net.Conn) {
	defer p.track(c)()
	if h := p.holed(); h != nil {
		go func() { <-h; c.Close() }()
		io.Copy(io.Discard, c)
		return
	}
	var up net.Conn
	for _, target := range p.targets {
		var err error
		if up, err = net.DialTimeout("tcp", target, time.Second); err == nil {
			break
		}
	}
	if up == nil {
		return
	}
	defer p.track(up)()
	done := make(chan struct{}, 2)
	go func() { p.pipe(up, c); done <- struct{}{} }()
	go func() { p.pipe(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	<-done
}

// pipe copies src to dst until an error, dropping what it reads while the
// proxy black-holes; after a heal the connection is ended.
func (p *tcpProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	holed := false
	for {
		n, err := src.Read(buf)
		if p.holed() != nil {
			holed = true
		} else if holed {
			return
		} else if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// startEnsemble starts a 3-node ZooKeeper ensemble for one test.
func startEnsemble(t *testing.T) *zktest.Ensemble {
	t.Helper()
	return zktest.StartEnsemble(t, 3)
}

// churnDuration is how long the leader-churn test writes: env
// SLUICE_CLUSTER_CHURN (a Go duration; `make test-cluster` sets 60s),
// default 15s for quick runs.
func churnDuration(t *testing.T) time.Duration {
	t.Helper()
	v := os.Getenv("SLUICE_CLUSTER_CHURN")
	if v == "" {
		return 15 * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("SLUICE_CLUSTER_CHURN=%q: want a positive Go duration such as 60s", v)
	}
	return d
}
