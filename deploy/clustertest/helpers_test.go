package clustertest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/testkit"
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
	c.t.Helper()
	return c.startServerAt(name, testkit.FreeAddr(c.t), c.t.TempDir())
}

// restartServer starts a new `sluice server` process in place of s (which
// was killed or is stopped first) on the same address and data directory,
// and waits for /readyz; name names its log.
func (c *cluster) restartServer(s *server, name string) {
	c.t.Helper()
	s.stop()
	s.proc = c.startServerAt(name, strings.TrimPrefix(s.url, "http://"), s.data).proc
}

// startServerAt starts `sluice server` on addr with data directory data and
// waits for /readyz.
func (c *cluster) startServerAt(name, addr, data string) *server {
	t := c.t
	t.Helper()
	p := startProc(t, name, nil, bins.sluice, "server", "--addr", addr, "--store", c.store, "--data-dir", data)
	s := &server{proc: p, url: "http://" + addr, data: data}
	ready, err := api.New(api.Config{Servers: []string{s.url}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer ready.Close()
	testkit.Eventually(t, 60*time.Second, name+" /readyz", func() error {
		select {
		case <-p.done:
			return fmt.Errorf("exited: %v", p.err)
		default:
		}
		ctx, cancel := callCtx()
		defer cancel()
		return ready.Ready(ctx)
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
	addr := testkit.FreeAddr(t)
	// JSON log lines: peersSeen reads them.
	p := startProc(t, name, nil, bins.sluice, "proxy", "--addr", addr, "--store", c.store, "--access-log", "off", "--log-format", "json")
	testkit.Eventually(t, 60*time.Second, name+" serving", func() error {
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
	return startProc(t, id, nil, bins.orders, "--zk", strings.Join(c.zk, ","), "--id", id, "--addr", testkit.FreeAddr(t))
}

// client returns an API client of server s with the admin token; each
// request is bounded by 20 s. The test's cleanup closes it.
func (c *cluster) client(s *server) *api.Client {
	cl, err := api.New(api.Config{Servers: []string{s.url}, Token: c.admin, Timeout: 20 * time.Second})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

// callCtx bounds one API call of a test.
func callCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

// mustCreate creates service svc through cl.
func mustCreate(t *testing.T, cl *api.Client, svc string) {
	t.Helper()
	ctx, cancel := callCtx()
	defer cancel()
	if _, created, err := cl.Create(ctx, configsvc.Service(svc)); err != nil || !created {
		t.Fatalf("create %s through %s: created %v, %v", svc, cl.Server(), created, err)
	}
}

// mustPut publishes content as svc/file through cl with the message
// "clustertest" (opts may replace it) and returns the revision.
func mustPut(t *testing.T, cl *api.Client, svc, file, content string, opts ...api.WriteOption) configsvc.Revision {
	t.Helper()
	ctx, cancel := callCtx()
	defer cancel()
	rev, err := cl.PutFile(ctx, configsvc.Service(svc), file, []byte(content), append([]api.WriteOption{api.WithMessage("clustertest")}, opts...)...)
	if err != nil {
		t.Fatalf("put %s/%s through %s: %v", svc, file, cl.Server(), err)
	}
	return rev
}

// createToken creates a token with one grant and returns it.
func createToken(t *testing.T, cl *api.Client, name string, role access.Role, pattern string) string {
	t.Helper()
	ctx, cancel := callCtx()
	defer cancel()
	tok, err := cl.CreateToken(ctx, api.TokenRequest{Name: name, Roles: []api.Grant{{Role: role, Pattern: pattern}}})
	if err != nil || tok.Secret == "" {
		t.Fatalf("token create: no token (%v)", err)
	}
	return tok.Secret
}

// status returns the HTTP status of the answer err reports, 0 when err is
// not an answer.
func status(err error) int {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// history returns every revision of svc through cl, oldest first (paging
// by 1000).
func history(t *testing.T, cl *api.Client, svc string) []configsvc.Revision {
	t.Helper()
	ctx, cancel := callCtx()
	defer cancel()
	var all []configsvc.Revision
	before := int64(0)
	for {
		page, err := cl.Revisions(ctx, configsvc.Service(svc), before, 1000)
		if err != nil {
			t.Fatalf("history of %s through %s: %v", svc, cl.Server(), err)
		}
		all = append(all, page...)
		if len(page) < 1000 {
			break
		}
		before = page[len(page)-1].Number
	}
	slices.Reverse(all)
	return all
}

// revisionContent returns file's content as changed by revision n of svc.
func revisionContent(t *testing.T, cl *api.Client, svc string, n int64, file string) (string, bool) {
	t.Helper()
	ctx, cancel := callCtx()
	defer cancel()
	rev, err := cl.Revision(ctx, configsvc.Service(svc), n)
	if err != nil {
		t.Fatalf("revision %d of %s through %s: %v", n, svc, cl.Server(), err)
	}
	for _, ch := range rev.Changes {
		if ch.File == file && !ch.Delete {
			return string(ch.Content), true
		}
	}
	return "", false
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
