package clustertest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/testkit"
)

// The robustness run of issue 20, in the style of etcd's robustness tests.
const (
	robustClients = 6
	// robustLeaderKillEvery: the ZooKeeper leader is killed with SIGKILL this
	// often. The killed node stays down 1 to 8 s (at random) before it is
	// restarted; when it is back in the ensemble only after the next kill
	// was due, that kill comes at once, hitting a leader whose follower has
	// only just synchronised with it: the moment the data-loss bugs of
	// ZooKeeper before 3.8.4/3.9.2 need (ZOOKEEPER-4643/4646/4785).
	robustLeaderKillEvery = 8 * time.Second
	// robustServerKillEvery: a `sluice server` (A, then B, …) is killed with
	// SIGKILL this often, first at 20 s (once in the default run), and
	// restarted on its address 2 s later.
	robustServerKillEvery = 20 * time.Second
	// robustDefaultDuration is the run's length without
	// SLUICE_ROBUSTNESS_DURATION.
	robustDefaultDuration = 40 * time.Second
	// robustRequestTimeout bounds one operation; the server answers 503
	// within its store timeout (5 s, twice for a write) long before.
	robustRequestTimeout = 15 * time.Second
	// robustCheckTimeout bounds porcupine's check of one window of the
	// history; a check that runs out fails the test like a violation
	// (nothing was proved).
	robustCheckTimeout = 60 * time.Second
	// robustPause is the least pause of a client between two rounds (read,
	// then maybe a write); it keeps the default run to about 9 000
	// operations.
	robustPause = 20 * time.Millisecond

	robustService = "robust"
	robustFile    = "register.txt"
)

// robustnessDuration is how long the clients run: env
// SLUICE_ROBUSTNESS_DURATION (a Go duration), default 40s.
func robustnessDuration(t *testing.T) time.Duration {
	t.Helper()
	v := os.Getenv("SLUICE_ROBUSTNESS_DURATION")
	if v == "" {
		return robustDefaultDuration
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("SLUICE_ROBUSTNESS_DURATION=%q: want a positive Go duration such as 5m", v)
	}
	return d
}

// recorder collects the operations of a run with timestamps from one
// monotonic clock. It is safe for concurrent use.
type recorder struct {
	start time.Time

	mu  sync.Mutex
	ops []porcupine.Operation
}

func (r *recorder) now() int64 { return int64(time.Since(r.start)) }

func (r *recorder) add(op porcupine.Operation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, op)
}

func (r *recorder) history() []porcupine.Operation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]porcupine.Operation(nil), r.ops...)
}

// robustRun is the clients' side of a run: the servers they call, the
// history and tallies. It is safe for concurrent use.
type robustRun struct {
	apis   []*api.Client // one per server
	rec    recorder
	nextID atomic.Int64 // the next client id for the history

	mu         sync.Mutex
	counts     map[string]int // "put ok", "cas 412", "read 503" …
	unexpected []string
	seen       map[string]watchedRev // revisions the watch saw, by message
	watchedTo  int64                 // the last revision the watch saw
	gap        string                // the first gap or repeat the watch saw
}

// follow records the revisions of the service that a watch through cl
// sees after revision from, until ctx ends.
func (r *robustRun) follow(ctx context.Context, cl *api.Client, from int64) {
	for ev := range cl.Watch(ctx, configsvc.Service(robustService), from) {
		if ev.Revision == nil {
			continue
		}
		at := r.rec.now()
		r.mu.Lock()
		if ev.Revision.Number != r.watchedTo+1 && r.gap == "" {
			r.gap = fmt.Sprintf("r%d after r%d", ev.Revision.Number, r.watchedTo)
		}
		r.watchedTo = max(r.watchedTo, ev.Revision.Number)
		r.seen[ev.Revision.Message] = watchedRev{Rev: ev.Revision.Number, At: at}
		r.mu.Unlock()
	}
}

// watchReached reports whether the watch saw revision rev, and any gap.
func (r *robustRun) watchReached(rev int64) (bool, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.watchedTo >= rev, r.gap
}

// do runs in through the servers in w's order (w%2 first), moving on to
// the other only when the connection could not be made (the request was
// then never sent), and records it under client *id. Reads that failed are
// left out (they changed nothing), as are writes that surely did not take
// effect (409: the head moved under an unconditional write; both servers
// refused the connection). A write with an unknown outcome (503, timeout,
// broken connection) gets an infinite return time until the watch
// resolves it, and *id a new client id, so that each client id's
// operations stay sequential.
func (r *robustRun) do(id *int, w int, in regInput) (regOutput, bool) {
	call := r.rec.now()
	var (
		out    regOutput
		err    error
		server string
	)
	for i := range len(r.apis) {
		cl := r.apis[(w+i)%len(r.apis)]
		server = cl.Server()
		out, err = robustSend(cl, in)
		if err == nil || !connRefused(err) {
			break
		}
	}
	ret := r.rec.now()
	st := status(err)
	label := "ok"
	switch {
	case err == nil:
	case st == 0 && connRefused(err):
		label = "refused"
	case st == 0:
		label = "no answer"
	default:
		label = fmt.Sprint(st)
	}
	r.count(string(in.Kind) + " " + label)

	keep := true
	switch {
	case err == nil:
		out.Outcome = outOK
	case in.Kind == opRead:
		// A read has no effect; one that failed tells nothing — except a
		// 404, which says the service's file is gone: a store that went
		// back to before the run's first revision.
		if st == http.StatusNotFound {
			out = regOutput{Outcome: outOK}
		} else {
			keep = false
		}
		if st != 0 && st != http.StatusServiceUnavailable && st != http.StatusNotFound {
			r.unexpect("read through %s: %v", server, err)
		}
	case st == http.StatusPreconditionFailed && in.Kind == opCAS:
		out = regOutput{Outcome: outPrecondition}
	case st == http.StatusConflict, st == 0 && connRefused(err):
		keep = false
	default:
		out = regOutput{Outcome: outUnknown}
		ret = math.MaxInt64
		if st != 0 && st != http.StatusServiceUnavailable {
			r.unexpect("%s through %s: %v", in.Kind, server, err)
		}
	}
	if keep {
		meta := opMeta{Server: server}
		if err != nil {
			meta.Err = err.Error()
		}
		r.rec.add(porcupine.Operation{ClientId: *id, Input: in, Call: call, Output: out, Return: ret, Metadata: meta})
		if ret == math.MaxInt64 {
			*id = int(r.nextID.Add(1) - 1)
		}
	}
	return out, keep && err == nil
}

func (r *robustRun) count(k string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts[k]++
}

func (r *robustRun) unexpect(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.unexpected) < 20 {
		r.unexpected = append(r.unexpected, fmt.Sprintf(format, args...))
	}
}

func (r *robustRun) tally() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	keys := make([]string, 0, len(r.counts))
	for k := range r.counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, r.counts[k])
	}
	return strings.Join(parts, ", ")
}

// client is one of the run's clients until ctx ends: each round reads the
// file, then 30 % of rounds stop there, 30 % write it without If-Match and
// 40 % write it with If-Match on the revision just read.
func (r *robustRun) client(ctx context.Context, w int, rng *rand.Rand) {
	id := w
	for seq := 0; ctx.Err() == nil; seq++ {
		read, readOK := r.do(&id, w, regInput{Kind: opRead})
		value := fmt.Sprintf("client %d write %d\n", w, seq)
		switch x := rng.IntN(10); {
		case x < 3:
		case x < 6 || !readOK:
			r.do(&id, w, regInput{Kind: opPut, Value: value})
		default:
			r.do(&id, w, regInput{Kind: opCAS, Value: value, Expect: read.Rev})
		}
		select {
		case <-ctx.Done():
		case <-time.After(robustPause + time.Duration(rng.Int64N(int64(robustPause)))):
		}
	}
}

// robustSend sends one operation to cl.
func robustSend(cl *api.Client, in regInput) (regOutput, error) {
	ctx, cancel := context.WithTimeout(context.Background(), robustRequestTimeout)
	defer cancel()
	svc := configsvc.Service(robustService)
	if in.Kind == opRead {
		f, err := cl.File(ctx, svc, robustFile, 0)
		return regOutput{Rev: f.Revision, Value: string(f.Content)}, err
	}
	opts := []api.WriteOption{api.WithMessage(writeMessage(in.Value))}
	if in.Kind == opCAS {
		opts = append(opts, api.IfMatch(in.Expect))
	}
	rev, err := cl.PutFile(ctx, svc, robustFile, []byte(in.Value), opts...)
	return regOutput{Rev: rev.Number}, err
}

// connRefused reports whether err is a connection that could not be made,
// so the request never reached a server.
func connRefused(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// TestRobustnessLinearizableUnderLeaderAndServerKills is issue 20's
// robustness test: six clients read the file (GET at the head), write it
// without If-Match and write it with If-Match on the revision they read,
// through two `sluice server`s on a 3-node ZooKeeper ensemble, while the
// ZooKeeper leader is killed with SIGKILL every 8 s (and restarted) and a
// server is killed with SIGKILL and restarted, for
// SLUICE_ROBUSTNESS_DURATION (default 40s). A watch of the service
// through both servers tells which writes of unknown outcome took effect
// (resolveUnknown). The history must be linearizable against stepRegister
// (checkLinearizable, with porcupine). When it is not, the history,
// porcupine's visualization and the processes' logs are kept under
// test-output/robustness/ and the failure names the folder. The same
// checker must then find the recorded history illegal once a stale read or
// a reissued revision number is injected into it.
func TestRobustnessLinearizableUnderLeaderAndServerKills(t *testing.T) {
	dur := robustnessDuration(t)
	ens := startEnsemble(t)
	c := newCluster(t, ens.Servers())
	servers := []*server{c.startServer("server-a"), c.startServer("server-b")}
	logs := []string{servers[0].log, servers[1].log}
	r := &robustRun{apis: []*api.Client{c.client(servers[0]), c.client(servers[1])}, counts: map[string]int{}, seen: map[string]watchedRev{}}
	r.nextID.Store(robustClients)

	mustCreate(t, r.apis[0], robustService)
	first := mustPut(t, r.apis[0], robustService, robustFile, "initial\n")
	init := regState{Rev: first.Number, Value: "initial\n"}
	r.watchedTo = init.Rev
	// The watch fails over between the servers like an SDK's.
	watchAPI, err := api.New(api.Config{Servers: []string{servers[1].url, servers[0].url}, Token: c.admin,
		Timeout: 20 * time.Second, RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { watchAPI.Close() })

	seed := uint64(time.Now().UnixNano())
	t.Logf("robustness run of %v, %d clients, seed %d", dur, robustClients, seed)
	r.rec.start = time.Now()
	ctx, stop := context.WithTimeout(context.Background(), dur)
	wctx, stopWatch := context.WithCancel(context.Background())
	var wg, watching sync.WaitGroup
	// Should the harness fail the test early, the clients and the watch end
	// before the cleanups stop the processes.
	defer func() { stop(); stopWatch(); wg.Wait(); watching.Wait() }()
	watching.Add(1)
	go func() {
		defer watching.Done()
		r.follow(wctx, watchAPI, init.Rev)
	}()
	for w := range robustClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.client(ctx, w, rand.New(rand.NewPCG(seed, uint64(w))))
		}()
	}

	// The faults, on the test's goroutine (the harness may fail the test).
	leaderKills, serverKills := 0, 0
	faults := rand.New(rand.NewPCG(seed, robustClients))
	nextLeader := r.rec.start.Add(robustLeaderKillEvery)
	nextServer := r.rec.start.Add(robustServerKillEvery)
	end := r.rec.start.Add(dur)
	for {
		serverTurn := nextServer.Before(nextLeader)
		next := nextLeader
		if serverTurn {
			next = nextServer
		}
		if !next.Before(end) {
			break
		}
		time.Sleep(time.Until(next))
		if serverTurn {
			s := servers[serverKills%2]
			s.kill()
			serverKills++
			t.Logf("%v: killed %s with SIGKILL (%s)", time.Since(r.rec.start).Round(time.Millisecond), s.name, r.tally())
			time.Sleep(2 * time.Second)
			c.restartServer(s, fmt.Sprintf("%s-restart-%d", strings.SplitN(s.name, "-restart", 2)[0], serverKills))
			logs = append(logs, s.log)
			nextServer = nextServer.Add(robustServerKillEvery)
			continue
		}
		leader := ens.Leader()
		ens.Kill(leader)
		leaderKills++
		t.Logf("%v: killed ZooKeeper leader (node %d) with SIGKILL (%s)", time.Since(r.rec.start).Round(time.Millisecond), leader+1, r.tally())
		down := time.Second + time.Duration(faults.Int64N(int64(robustLeaderKillEvery-time.Second)))
		time.Sleep(down)
		ens.Restart(leader)
		t.Logf("%v: node %d restarted after %v down, back in the ensemble", time.Since(r.rec.start).Round(time.Millisecond), leader+1, down.Round(time.Millisecond))
		nextLeader = nextLeader.Add(robustLeaderKillEvery)
	}
	<-ctx.Done()
	wg.Wait()

	// The ensemble and both servers are whole again: one last read through
	// each server shows where the history ended.
	var final int64
	for w := range servers {
		id := int(r.nextID.Add(1) - 1)
		testkit.Eventually(t, 30*time.Second, "a final read through "+r.apis[w].Server(), func() error {
			out, ok := r.do(&id, w, regInput{Kind: opRead})
			if !ok {
				return errors.New("the read failed")
			}
			final = max(final, out.Rev)
			return nil
		})
	}
	// Once the watch has seen every revision up to there, it tells which
	// writes of unknown outcome took effect.
	deadline := time.Now().Add(30 * time.Second)
	reached, gap := r.watchReached(final)
	for !reached && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		reached, gap = r.watchReached(final)
	}
	stopWatch()
	watching.Wait()
	if !reached || gap != "" {
		t.Logf("the watch did not see every revision up to r%d (reached %v, gap %q): writes of unknown outcome stay unknown", final, reached, gap)
	}
	for _, u := range r.unexpected {
		t.Errorf("unexpected answer (want 2xx, 409, 412 or 503): %s", u)
	}

	ops := r.rec.history()
	kept, dropped := resolveUnknown(ops, r.seen, reached && gap == "")
	began := time.Now()
	res := checkLinearizable(init, kept, robustWindowOps, robustCheckTimeout)
	took := time.Since(began).Round(time.Millisecond)
	t.Logf("%v with %d ZooKeeper leader kills and %d server kills: %d operations (%s); %d writes of unknown outcome: %d took effect (the watch saw them), %d dropped (it did not), %d left unknown; porcupine: %s in %v (%d windows)",
		dur, leaderKills, serverKills, len(ops), r.tally(), unknownWrites(ops), unknownWrites(ops)-len(dropped)-unknownWrites(kept), len(dropped), unknownWrites(kept), res.Result, took, res.Windows)
	if res.Result != porcupine.Ok {
		dir := artifactDir(t)
		keepHistory(t, dir, init, kept, dropped, res, logs, ens)
		what := "NOT linearizable"
		if res.Result == porcupine.Unknown {
			what = fmt.Sprintf("not checked: porcupine ran out of its %v", robustCheckTimeout)
		}
		t.Fatalf("the history is %s (window %d of %d operations from %v); history, visualization and logs kept in %s",
			what, res.Windows, len(res.Ops), time.Duration(res.Ops[0].Call).Round(time.Millisecond), dir)
	}
	if leaderKills == 0 && dur >= robustLeaderKillEvery+5*time.Second {
		t.Errorf("no ZooKeeper leader was killed")
	}

	// The checker that passed this history must fail it once it is wrong.
	for _, inj := range []struct {
		name string
		fn   func(regState, []porcupine.Operation) ([]porcupine.Operation, string, bool)
	}{
		{"stale read", injectStaleRead},
		{"reissued revision", injectReissuedRevision},
	} {
		bad, what, ok := inj.fn(init, kept)
		if !ok {
			t.Errorf("self-test %s: the history has no operation to change", inj.name)
			continue
		}
		if res := checkLinearizable(init, bad, robustWindowOps, robustCheckTimeout); res.Result != porcupine.Illegal {
			t.Errorf("self-test %s: the checker says %s for the history with %s; want Illegal", inj.name, res.Result, what)
		} else {
			t.Logf("self-test %s: Illegal once %s", inj.name, what)
		}
	}
}
