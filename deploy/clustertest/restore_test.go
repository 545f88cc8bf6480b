package clustertest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/configsvc/zkstore"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
	"github.com/sluicehq/sluice/sdk"
)

// rewriteLog is an sdk.Metrics that counts the rewrites an SDK client
// reported.
type rewriteLog struct {
	appliedLog
	mu       sync.Mutex
	rewrites int
}

func (r *rewriteLog) HistoryRewritten(string, int64, int64) {
	r.mu.Lock()
	r.rewrites++
	r.mu.Unlock()
}

func (r *rewriteLog) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rewrites
}

// restoreRig is a cluster for the restore tests: a 3-node ensemble, a
// `sluice server`, a `sluice proxy` with its metrics, and two SDK clients of
// service orders (one on ZooKeeper, one on the server's event stream).
type restoreRig struct {
	t            *testing.T
	ens          *zktest.Ensemble
	c            *cluster
	srv          *server
	adm          *api.Client
	proxyMetrics string
	sdks         map[string]*sdk.Client // by instance id
	logs         map[string]*rewriteLog
	backup       string // a copy of a node's version-2 folder
	backupRev    int64  // orders' head revision in the backup
	backupRoutes int64  // sluice-system's head revision in the backup
}

// greeting publishes orders.yaml with greeting g through the server.
func (r *restoreRig) greeting(g string) configsvc.Revision {
	r.t.Helper()
	return mustPut(r.t, r.adm, "orders", "orders.yaml", "greeting: "+g+"\n")
}

// routes publishes a route file with one route named name.
func (r *restoreRig) routes(name string) configsvc.Revision {
	r.t.Helper()
	return mustPut(r.t, r.adm, configsvc.SystemService, configsvc.RoutesFile,
		fmt.Sprintf("routes:\n  - name: %s\n    match: {path_prefix: /%s}\n    upstream: {service: orders}\n", name, name))
}

// newRestoreRig starts the cluster, publishes orders r1–r2 and a route
// file, takes the backup (a follower stopped, its data copied, restarted),
// then publishes orders r3–r5 and another route file, and waits until
// every client has them.
func newRestoreRig(t *testing.T) *restoreRig {
	r := &restoreRig{t: t, ens: startEnsemble(t), sdks: map[string]*sdk.Client{}, logs: map[string]*rewriteLog{}}
	r.c = newCluster(t, r.ens.Servers())
	r.srv = r.c.startServer("server")
	r.adm = r.c.client(r.srv)
	mustCreate(t, r.adm, "orders")
	ctx, cancel := callCtx()
	defer cancel()
	if _, _, err := r.adm.Create(ctx, configsvc.Service(configsvc.SystemService)); err != nil {
		t.Fatal(err)
	}
	r.routes("before")
	r.greeting("one")

	metricsAddr := testkit.FreeAddr(t)
	proxyAddr := testkit.FreeAddr(t)
	p := startProc(t, "proxy", nil, bins.sluice, "proxy", "--addr", proxyAddr, "--metrics-addr", metricsAddr,
		"--store", r.c.store, "--access-log", "off")
	r.proxyMetrics = "http://" + metricsAddr + "/metrics"
	testkit.Eventually(t, 60*time.Second, "proxy metrics", func() error {
		select {
		case <-p.done:
			return fmt.Errorf("exited: %v", p.err)
		default:
		}
		_, err := metricValue(r.proxyMetrics, "sluice_proxy_history_rewrites_total")
		return err
	})

	agent := createToken(t, r.adm, "orders-agent", access.RoleAgent, "orders")
	for id, cfg := range map[string]sdk.Config{
		"orders-zk":   {ZooKeeper: r.ens.Servers()},
		"orders-http": {Servers: []string{r.srv.url}, Token: agent},
	} {
		log := &rewriteLog{}
		cfg.Instance, cfg.Metrics = sdk.Instance{ID: id, Addr: "127.0.0.1:9"}, log
		cfg.RetryMin, cfg.RetryMax = 50*time.Millisecond, 500*time.Millisecond
		r.sdks[id], r.logs[id] = openSDK(t, cfg), log
	}

	r.backupRev = r.greeting("two").Number
	r.backupRoutes = r.headRevision(configsvc.SystemService)
	r.waitClients("before the backup", r.backupRev, "two")
	r.takeBackup()

	for _, g := range []string{"three", "four", "five"} {
		r.greeting(g)
	}
	routes := r.routes("after").Number
	r.waitClients("after the backup", r.backupRev+3, "five")
	r.waitProxy("after the backup", routes)
	return r
}

func (r *restoreRig) headRevision(svc string) int64 {
	r.t.Helper()
	ctx, cancel := callCtx()
	defer cancel()
	h, err := r.adm.Head(ctx, configsvc.Service(svc))
	if err != nil {
		r.t.Fatal(err)
	}
	return h.Revision
}

// takeBackup copies the data of a follower that has applied everything
// published so far (checked with a store pinned to it), stopped for the
// copy as an operator would, then restarted.
func (r *restoreRig) takeBackup() {
	t := r.t
	leader := r.ens.Leader()
	f := (leader + 1) % r.ens.Size()
	ctx, cancel := callCtx()
	defer cancel()
	st, err := zkstore.Open(ctx, zkstore.Config{Servers: []string{r.ens.Node(f).Addr()}, Root: "/sluice", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	h, err := st.Head(ctx, configsvc.Service("orders"))
	st.Close()
	if err != nil || h.Revision != r.backupRev {
		t.Fatalf("the follower to back up is at revision %d (%v), want %d", h.Revision, err, r.backupRev)
	}
	r.ens.Stop(f)
	r.backup = filepath.Join(t.TempDir(), "version-2")
	if out, err := exec.Command("cp", "-a", filepath.Join(r.ens.Node(f).Dir(), "data", "version-2"), r.backup).CombinedOutput(); err != nil {
		t.Fatalf("copy the backup: %v: %s", err, out)
	}
	r.ens.Restart(f)
}

// restore stops every node, puts the backup in place of each one's data
// (keeping its myid) and starts them again: a restore from a snapshot.
func (r *restoreRig) restore() {
	t := r.t
	for i := range r.ens.Size() {
		r.ens.Stop(i)
	}
	for i := range r.ens.Size() {
		dst := filepath.Join(r.ens.Node(i).Dir(), "data", "version-2")
		if err := os.RemoveAll(dst); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("cp", "-a", r.backup, dst).CombinedOutput(); err != nil {
			t.Fatalf("restore node %d: %v: %s", i+1, err, out)
		}
	}
	r.ens.StartAll()
	t.Logf("ensemble restored to the backup (orders r%d, sluice-system r%d)", r.backupRev, r.backupRoutes)
}

// waitClients waits until both SDK clients serve greeting g at revision rev.
func (r *restoreRig) waitClients(what string, rev int64, g string) {
	r.t.Helper()
	for id, c := range r.sdks {
		testkit.Eventually(r.t, 30*time.Second, id+" "+what, func() error {
			b, _ := c.File("orders.yaml")
			if c.Revision() != rev || string(b) != "greeting: "+g+"\n" {
				return fmt.Errorf("at revision %d with %q, want %d with greeting %s", c.Revision(), b, rev, g)
			}
			return nil
		})
	}
}

// waitProxy waits until the proxy's published state has revision rev of
// sluice-system in force.
func (r *restoreRig) waitProxy(what string, rev int64) {
	r.t.Helper()
	testkit.Eventually(r.t, 30*time.Second, "the proxy "+what, func() error {
		ctx, cancel := callCtx()
		defer cancel()
		live, err := r.adm.LiveRoutes(ctx)
		if err != nil {
			return err
		}
		if len(live.Proxies) != 1 || live.Proxies[0].Revision != rev {
			return fmt.Errorf("proxies %+v, want one with revision %d in force", live.Proxies, rev)
		}
		return nil
	})
}

// waitReported waits until every client reported the rewrite: each SDK in
// its metrics and on its instance record (at revision rev, with generation
// gen when not empty), the server in sluice_watch_rewrites_total (the HTTP
// SDK's stream), the proxy in sluice_proxy_history_rewrites_total.
func (r *restoreRig) waitReported(rev int64, gen string) {
	t := r.t
	t.Helper()
	for id, log := range r.logs {
		testkit.Eventually(t, 30*time.Second, id+" reports the rewrite in its metrics", func() error {
			if log.count() == 0 {
				return fmt.Errorf("no rewrite reported")
			}
			return nil
		})
	}
	testkit.Eventually(t, 30*time.Second, "the instance records report the rewrite", func() error {
		ctx, cancel := callCtx()
		defer cancel()
		list, err := r.adm.Instances(ctx, "orders")
		if err != nil {
			return err
		}
		found := 0
		for _, in := range list {
			if _, ok := r.sdks[in.ID]; !ok {
				continue
			}
			if in.Revision != rev || in.Rewritten == nil || gen != "" && (in.Generation != gen || in.Rewritten.Generation != gen) {
				return fmt.Errorf("instance %s: revision %d, generation %q, rewritten %+v; want revision %d, generation %q and the rewrite", in.ID, in.Revision, in.Generation, in.Rewritten, rev, gen)
			}
			found++
		}
		if found != len(r.sdks) {
			return fmt.Errorf("%d of %d instances registered", found, len(r.sdks))
		}
		return nil
	})
	for _, m := range []struct{ url, name string }{
		{r.srv.url + "/metrics", `sluice_watch_rewrites_total{kind="service"}`},
		{r.proxyMetrics, "sluice_proxy_history_rewrites_total"},
	} {
		testkit.Eventually(t, 30*time.Second, m.name, func() error {
			v, err := metricValue(m.url, m.name)
			if err == nil && v < 1 {
				err = fmt.Errorf("%s = %v", m.name, v)
			}
			return err
		})
	}
}

// TestFaultRestoreOlderSnapshot restores the ensemble from a backup taken
// at orders revision 2 while a server, a proxy and two SDKs (ZooKeeper and
// the server's event stream) run at revision 5, then bumps the generation
// with `sluice admin bump-generation` as docs/operations.md says. Every
// client must take the restored content within seconds, although its
// revision number is lower, and report the rewrite: the SDKs in their
// metrics and instance records, the server and the proxy in theirs. Before
// generations existed they all kept revision 5 until the store issued
// numbers past it, then applied new content under numbers they had seen.
func TestFaultRestoreOlderSnapshot(t *testing.T) {
	r := newRestoreRig(t)
	r.restore()
	out, err := exec.Command(bins.sluice, "admin", "bump-generation", "--store", r.c.store,
		"--reason", "restored the backup of revision 2", "--yes").Output()
	if err != nil {
		t.Fatalf("sluice admin bump-generation: %v: %s", err, out)
	}
	var g configsvc.StoreGeneration
	if err := json.Unmarshal(out, &g); err != nil || g.ID == "" {
		t.Fatalf("bump-generation printed %q: %v", out, err)
	}
	bumped := time.Now()
	r.waitClients("on the restored content", r.backupRev, "two")
	t.Logf("both SDKs on the restored revision %d %v after the bump", r.backupRev, time.Since(bumped).Round(time.Millisecond))
	r.waitProxy("on the restored route file", r.backupRoutes)
	r.waitReported(r.backupRev, g.ID)

	// The new history goes on from there.
	next := r.greeting("six").Number
	if next != r.backupRev+1 {
		t.Fatalf("the first publish after the restore is revision %d, want %d", next, r.backupRev+1)
	}
	r.waitClients("after the restore", next, "six")
}

// TestFaultRestoreWithoutBumpReissuedNumbers restores the same backup but
// forgets the generation bump; revisions 3 to 5 are then published again
// with other content. The clients keep revision 5 of the old history while
// the store is below it (in one generation they never go back), and once
// the store issues revision 5 again they see that its publish id is not
// the one they hold, reload it and report the rewrite.
func TestFaultRestoreWithoutBumpReissuedNumbers(t *testing.T) {
	r := newRestoreRig(t)
	held := r.backupRev + 3
	r.restore()
	time.Sleep(2 * time.Second)
	for id, c := range r.sdks {
		if c.Revision() != held {
			t.Fatalf("%s went to revision %d after the restore; want it to keep %d", id, c.Revision(), held)
		}
	}
	for _, g := range []string{"again three", "again four", "again five"} {
		r.greeting(g)
	}
	routes := r.routes("again")
	r.waitClients("on the reissued revision", held, "again five")
	r.waitProxy("on the reissued route file", routes.Number)
	r.waitReported(held, "")
}

// metricValue returns the value of the sample name (with its labels, as
// the exposition format writes them) scraped from url.
func metricValue(url, name string) (float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` ([0-9.e+-]+)$`).FindSubmatch(body)
	if m == nil {
		return 0, fmt.Errorf("%s not in %s", name, url)
	}
	return strconv.ParseFloat(strings.TrimSpace(string(m[1])), 64)
}
