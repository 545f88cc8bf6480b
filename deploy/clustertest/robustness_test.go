package clustertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
)

// The robustness run of issue 20, in the style of etcd's robustness tests.
const (
	robustClients = 6
	// robustLeaderKillEvery: the ZooKeeper leader is killed with SIGKILL this
	// often (and restarted a second later).
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
	// robustCheckTimeout bounds each porcupine check; a check that runs out
	// fails the test like a violation (nothing was proved).
	robustCheckTimeout = 60 * time.Second
	// robustPause is the least pause of a client between two rounds (read,
	// then maybe a write); it keeps the history to a few thousand operations.
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

// opKind is what a client asked.
type opKind string

const (
	opRead opKind = "read" // GET the file at the head
	opPut  opKind = "put"  // PUT the file without If-Match
	opCAS  opKind = "cas"  // PUT the file with If-Match: a revision the client read
)

// regInput is an operation's request.
type regInput struct {
	Kind   opKind `json:"kind"`
	Value  string `json:"value,omitempty"`  // put, cas: the content written (unique per write)
	Expect int64  `json:"expect,omitempty"` // cas: the If-Match revision
}

// outcome is how an operation ended, as far as its client can tell.
type outcome string

const (
	outOK           outcome = "ok"
	outPrecondition outcome = "precondition_failed" // a cas answered 412
	// outUnknown: a write that got a 503, a timeout or a broken connection
	// may or may not have taken effect. As etcd's robustness tests do, it
	// is recorded with an infinite return time, so that the checker may
	// place its effect anywhere after its call, or nowhere.
	outUnknown outcome = "unknown"
)

// regOutput is an operation's answer.
type regOutput struct {
	Outcome outcome `json:"outcome"`
	Rev     int64   `json:"revision,omitempty"` // read: the head it saw; an ok write: the revision it created
	Value   string  `json:"value,omitempty"`    // read: the file's content
}

// regState is the model's state: the service's head revision and the
// content of the one file the clients write, which is at that revision.
type regState struct {
	Rev   int64  `json:"revision"`
	Value string `json:"value"`
}

// opMeta says where an operation went and what went wrong; it is shown in
// the visualization and kept in the history, never used by the checker.
type opMeta struct {
	Server string `json:"server,omitempty"`
	Err    string `json:"error,omitempty"`
}

// stepRegister is the sequential specification of the service's head:
//   - a read returns the head revision and the file's content;
//   - a write without If-Match creates the next revision with its content
//     and returns its number;
//   - a write with If-Match creates the next revision only when the head is
//     the expected one, and is refused with 412 otherwise;
//   - a write whose outcome is unknown may have been applied (the checker
//     may also place it after everything else, which is as if it never was).
func stepRegister(s regState, in regInput, out regOutput) (bool, regState) {
	next := regState{Rev: s.Rev + 1, Value: in.Value}
	switch in.Kind {
	case opRead:
		return out.Outcome == outOK && out.Rev == s.Rev && out.Value == s.Value, s
	case opPut:
		switch out.Outcome {
		case outOK:
			return out.Rev == next.Rev, next
		case outUnknown:
			return true, next
		}
	case opCAS:
		switch out.Outcome {
		case outOK:
			return s.Rev == in.Expect && out.Rev == next.Rev, next
		case outPrecondition:
			return s.Rev != in.Expect, s
		case outUnknown:
			if s.Rev == in.Expect {
				return true, next
			}
			return true, s
		}
	}
	return false, s
}

// registerModel is stepRegister as a porcupine model starting at init.
func registerModel(init regState) porcupine.Model {
	return porcupine.Model{
		Init: func() any { return init },
		Step: func(st, in, out any) (bool, any) {
			return stepRegister(st.(regState), in.(regInput), out.(regOutput))
		},
		Equal: func(a, b any) bool { return a.(regState) == b.(regState) },
		Hash:  func(st any) uint64 { return uint64(st.(regState).Rev) },
		DescribeOperation: func(in, out any) string {
			i, o := in.(regInput), out.(regOutput)
			res := string(o.Outcome)
			if o.Outcome == outOK {
				res = fmt.Sprintf("r%d", o.Rev)
			}
			switch i.Kind {
			case opRead:
				if o.Outcome == outOK {
					res = fmt.Sprintf("r%d %q", o.Rev, o.Value)
				}
				return "read() → " + res
			case opCAS:
				return fmt.Sprintf("cas(if r%d, %q) → %s", i.Expect, i.Value, res)
			default:
				return fmt.Sprintf("put(%q) → %s", i.Value, res)
			}
		},
		DescribeState: func(st any) string {
			s := st.(regState)
			return fmt.Sprintf("r%d %q", s.Rev, s.Value)
		},
		DescribeOperationMetadata: func(m any) string {
			if m == nil {
				return ""
			}
			md := m.(opMeta)
			return strings.TrimSpace(md.Server + " " + md.Err)
		},
	}
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
}

// do runs in through the servers in w's order (w%2 first), moving on to
// the other only when the connection could not be made (the request was
// then never sent), and records it under client *id. Reads that failed are
// left out (they changed nothing), as are writes that surely did not take
// effect (409: the head moved under an unconditional write; both servers
// refused the connection). A write with an unknown outcome gets an
// infinite return time, and *id a new client id, so that each client id's
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
	opts := []api.WriteOption{api.WithMessage("robustness")}
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
// SLUICE_ROBUSTNESS_DURATION (default 40s). The history must be
// linearizable against stepRegister (porcupine). When it is not, the
// history, porcupine's visualization and the processes' logs are kept
// under test-output/robustness/ and the failure names the folder. The same
// checker must then find the recorded history illegal once a stale read or
// a reissued revision number is injected into it.
func TestRobustnessLinearizableUnderLeaderAndServerKills(t *testing.T) {
	dur := robustnessDuration(t)
	ens := startEnsemble(t)
	c := newCluster(t, ens.Servers())
	servers := []*server{c.startServer("server-a"), c.startServer("server-b")}
	logs := []string{servers[0].log, servers[1].log}
	r := &robustRun{apis: []*api.Client{c.client(servers[0]), c.client(servers[1])}, counts: map[string]int{}}
	r.nextID.Store(robustClients)

	mustCreate(t, r.apis[0], robustService)
	first := mustPut(t, r.apis[0], robustService, robustFile, "initial\n")
	init := regState{Rev: first.Number, Value: "initial\n"}

	seed := uint64(time.Now().UnixNano())
	t.Logf("robustness run of %v, %d clients, seed %d", dur, robustClients, seed)
	r.rec.start = time.Now()
	ctx, stop := context.WithTimeout(context.Background(), dur)
	var wg sync.WaitGroup
	// Should the harness fail the test early, the clients end before the
	// cleanups stop the processes.
	defer func() { stop(); wg.Wait() }()
	for w := range robustClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.client(ctx, w, rand.New(rand.NewPCG(seed, uint64(w))))
		}()
	}

	// The faults, on the test's goroutine (the harness may fail the test).
	leaderKills, serverKills := 0, 0
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
		time.Sleep(time.Second)
		ens.Restart(leader)
		nextLeader = nextLeader.Add(robustLeaderKillEvery)
	}
	<-ctx.Done()
	wg.Wait()

	// The ensemble and both servers are whole again: one last read through
	// each server shows where the history ended.
	for w := range servers {
		id := int(r.nextID.Add(1) - 1)
		waitFor(t, 30*time.Second, "a final read through "+r.apis[w].Server(), func() error {
			if _, ok := r.do(&id, w, regInput{Kind: opRead}); !ok {
				return errors.New("the read failed")
			}
			return nil
		})
	}
	for _, u := range r.unexpected {
		t.Errorf("unexpected answer (want 2xx, 409, 412 or 503): %s", u)
	}

	ops := r.rec.history()
	model := registerModel(init)
	began := time.Now()
	res, info := porcupine.CheckOperationsVerbose(model, ops, robustCheckTimeout)
	took := time.Since(began).Round(time.Millisecond)
	unknown, seen := unknownWrites(ops)
	t.Logf("%v with %d ZooKeeper leader kills and %d server kills: %d operations in the history (%s); %d writes of unknown outcome, %d of them read later; porcupine: %s in %v",
		dur, leaderKills, serverKills, len(ops), r.tally(), unknown, seen, res, took)
	if res != porcupine.Ok {
		dir := artifactDir(t)
		keepHistory(t, dir, model, init, ops, info, logs, ens)
		what := "NOT linearizable"
		if res == porcupine.Unknown {
			what = fmt.Sprintf("not checked: porcupine ran out of its %v", robustCheckTimeout)
		}
		t.Fatalf("the history is %s; history, visualization and logs kept in %s", what, dir)
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
		bad, what, ok := inj.fn(init, ops)
		if !ok {
			t.Errorf("self-test %s: the history has no operation to change", inj.name)
			continue
		}
		if res := porcupine.CheckOperationsTimeout(model, bad, robustCheckTimeout); res != porcupine.Illegal {
			t.Errorf("self-test %s: the checker says %s for the history with %s; want Illegal", inj.name, res, what)
		} else {
			t.Logf("self-test %s: Illegal once %s", inj.name, what)
		}
	}
}

// unknownWrites counts the writes of unknown outcome in ops, and those of
// them whose value a read returned (so they took effect).
func unknownWrites(ops []porcupine.Operation) (unknown, seen int) {
	read := map[string]bool{}
	for _, op := range ops {
		if op.Input.(regInput).Kind == opRead {
			read[op.Output.(regOutput).Value] = true
		}
	}
	for _, op := range ops {
		if op.Output.(regOutput).Outcome == outUnknown {
			unknown++
			if read[op.Input.(regInput).Value] {
				seen++
			}
		}
	}
	return unknown, seen
}

// ackedWrites returns the index of every write acknowledged with a
// revision, by that revision.
func ackedWrites(ops []porcupine.Operation) map[int64]int {
	m := map[int64]int{}
	for i, op := range ops {
		if op.Input.(regInput).Kind != opRead && op.Output.(regOutput).Outcome == outOK {
			m[op.Output.(regOutput).Rev] = i
		}
	}
	return m
}

// injectStaleRead returns ops with one read (in the middle of the history)
// made to return the revision before the one it saw, although the write
// that created the one it saw had been acknowledged before the read began.
func injectStaleRead(init regState, ops []porcupine.Operation) ([]porcupine.Operation, string, bool) {
	acked := ackedWrites(ops)
	values := map[int64]string{init.Rev: init.Value}
	for _, op := range ops {
		if o := op.Output.(regOutput); op.Input.(regInput).Kind == opRead && o.Outcome == outOK {
			values[o.Rev] = o.Value
		} else if o.Outcome == outOK {
			values[o.Rev] = op.Input.(regInput).Value
		}
	}
	var candidates []int
	for i, op := range ops {
		o := op.Output.(regOutput)
		if op.Input.(regInput).Kind != opRead || o.Outcome != outOK {
			continue
		}
		w, ok := acked[o.Rev]
		if _, known := values[o.Rev-1]; ok && known && ops[w].Return < op.Call {
			candidates = append(candidates, i)
		}
	}
	if len(candidates) == 0 {
		return nil, "", false
	}
	i := candidates[len(candidates)/2]
	bad := append([]porcupine.Operation(nil), ops...)
	o := bad[i].Output.(regOutput)
	bad[i].Output = regOutput{Outcome: outOK, Rev: o.Rev - 1, Value: values[o.Rev-1]}
	return bad, fmt.Sprintf("a read of r%d made to return r%d", o.Rev, o.Rev-1), true
}

// injectReissuedRevision returns ops with one acknowledged write (in the
// middle of the history) made to return the revision of an earlier
// acknowledged write that had returned before it began: the first write
// lost and its number issued again, as issue 20 saw on ZooKeeper 3.8.0.
func injectReissuedRevision(_ regState, ops []porcupine.Operation) ([]porcupine.Operation, string, bool) {
	acked := ackedWrites(ops)
	revs := make([]int64, 0, len(acked))
	for rev := range acked {
		revs = append(revs, rev)
	}
	sort.Slice(revs, func(i, j int) bool { return revs[i] < revs[j] })
	for k := len(revs) / 2; k < len(revs); k++ {
		later := ops[acked[revs[k]]]
		for j := k - 1; j >= 0; j-- {
			if earlier := ops[acked[revs[j]]]; earlier.Return < later.Call {
				bad := append([]porcupine.Operation(nil), ops...)
				bad[acked[revs[k]]].Output = regOutput{Outcome: outOK, Rev: revs[j]}
				return bad, fmt.Sprintf("the write acknowledged as r%d made to return r%d, which an earlier write had", revs[k], revs[j]), true
			}
		}
	}
	return nil, "", false
}

// historyEntry is one operation of a kept history.
type historyEntry struct {
	Client int       `json:"client"`
	Input  regInput  `json:"input"`
	Output regOutput `json:"output"`
	Call   int64     `json:"call_ns"`
	// Return is math.MaxInt64 for an operation whose outcome is unknown.
	Return int64  `json:"return_ns"`
	Meta   opMeta `json:"meta"`
}

// artifactDir is the folder kept for a failed robustness check:
// test-output/robustness/<test>-<time>/ at the repository root (or under
// the temp dir when the root is not found). CI keeps the workspace, so it
// can be looked at after a failed run.
func artifactDir(t *testing.T) string {
	root := os.TempDir()
	if wd, err := os.Getwd(); err == nil {
		for d := wd; filepath.Dir(d) != d; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				root = d
				break
			}
		}
	}
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	return filepath.Join(root, "test-output", "robustness", name+"-"+time.Now().Format("20060102-150405"))
}

// keepHistory writes a history that failed its check (history.json),
// porcupine's visualization of it (visualization.html) and, when given,
// the processes' logs and the ensemble's logs and transaction logs to dir.
// Server logs are redacted; failures to copy a log are logged, the others
// fail the test.
func keepHistory(t *testing.T, dir string, model porcupine.Model, init regState, ops []porcupine.Operation, info porcupine.LinearizationInfo, logs []string, ens *zktest.Ensemble) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Errorf("keep the history: %v", err)
		return
	}
	entries := make([]historyEntry, len(ops))
	for i, op := range ops {
		entries[i] = historyEntry{Client: op.ClientId, Input: op.Input.(regInput), Output: op.Output.(regOutput), Call: op.Call, Return: op.Return}
		if m, ok := op.Metadata.(opMeta); ok {
			entries[i].Meta = m
		}
	}
	b, err := json.MarshalIndent(struct {
		Init       regState       `json:"init"`
		Operations []historyEntry `json:"operations"`
	}{init, entries}, "", " ")
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "history.json"), b, 0o644)
	}
	if err != nil {
		t.Errorf("keep the history: %v", err)
	}
	if err := porcupine.VisualizePath(model, info, filepath.Join(dir, "visualization.html")); err != nil {
		t.Errorf("keep the visualization: %v", err)
	}
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, filepath.Base(l)), []byte(redact(string(b))), 0o644)
		}
		if err != nil {
			t.Logf("keep %s: %v", l, err)
		}
	}
	if ens == nil {
		return
	}
	// ZooKeeper's logs, configuration and transaction logs, to tell a store
	// that lost data from a client that misread it.
	for i := range ens.Size() {
		src := ens.Node(i).Dir()
		dst := filepath.Join(dir, fmt.Sprintf("zookeeper-node%d", i+1))
		files, _ := filepath.Glob(filepath.Join(src, "zk.*"))
		txn, _ := filepath.Glob(filepath.Join(src, "data", "version-2", "*"))
		files = append(append(files, filepath.Join(src, "zoo.cfg")), txn...)
		for _, f := range files {
			if err := copyFile(f, filepath.Join(dst, filepath.Base(f))); err != nil {
				t.Logf("keep %s: %v", f, err)
			}
		}
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// TestRobustnessCheckerCatchesViolations runs the robustness test's checker
// over small made-up histories: the ones a correct service can produce pass,
// and each kind of violation it exists to find — a stale read, an
// acknowledged write lost and its revision number issued again, a false or
// missing 412, a value nobody wrote — fails.
func TestRobustnessCheckerCatchesViolations(t *testing.T) {
	init := regState{Rev: 1, Value: "v1"}
	// call is an operation's request with its answer.
	type call struct {
		in  regInput
		out regOutput
	}
	read := func(rev int64, v string) call {
		return call{regInput{Kind: opRead}, regOutput{Outcome: outOK, Rev: rev, Value: v}}
	}
	put := func(v string, o outcome, rev int64) call {
		return call{regInput{Kind: opPut, Value: v}, regOutput{Outcome: o, Rev: rev}}
	}
	cas := func(expect int64, v string, o outcome, rev int64) call {
		return call{regInput{Kind: opCAS, Expect: expect, Value: v}, regOutput{Outcome: o, Rev: rev}}
	}
	type op struct {
		client     int
		call, ret  int64
		c          call
		unknownRet bool
	}
	mk := func(client int, at, ret int64, c call) op {
		return op{client: client, call: at, ret: ret, c: c}
	}
	unknown := func(client int, at int64, c call) op {
		return op{client: client, call: at, c: c, unknownRet: true}
	}
	for _, tc := range []struct {
		name string
		ops  []op
		want porcupine.CheckResult
	}{
		{"sequential reads and writes", []op{
			mk(0, 0, 1, read(1, "v1")),
			mk(0, 2, 3, put("a", outOK, 2)),
			mk(1, 4, 5, cas(2, "b", outOK, 3)),
			mk(1, 6, 7, cas(2, "c", outPrecondition, 0)),
			mk(0, 8, 9, read(3, "b")),
		}, porcupine.Ok},
		{"stale read after an acknowledged write", []op{
			mk(0, 0, 1, put("a", outOK, 2)),
			mk(0, 2, 3, put("b", outOK, 3)),
			mk(1, 4, 5, read(2, "a")),
		}, porcupine.Illegal},
		{"concurrent read may see either side of a write", []op{
			mk(0, 0, 10, put("a", outOK, 2)),
			mk(1, 1, 2, read(1, "v1")),
			mk(2, 3, 4, read(2, "a")),
			mk(1, 5, 6, read(2, "a")),
		}, porcupine.Ok},
		{"a read that goes back in time", []op{
			mk(0, 0, 10, put("a", outOK, 2)),
			mk(1, 1, 2, read(2, "a")),
			mk(1, 3, 4, read(1, "v1")),
		}, porcupine.Illegal},
		{"revision reissued to a second acknowledged write", []op{
			mk(0, 0, 1, put("a", outOK, 2)),
			mk(1, 2, 3, put("b", outOK, 2)),
		}, porcupine.Illegal},
		{"acknowledged write lost", []op{
			mk(0, 0, 1, cas(1, "a", outOK, 2)),
			mk(1, 2, 3, read(1, "v1")),
		}, porcupine.Illegal},
		{"412 although the head was the If-Match revision", []op{
			mk(0, 0, 1, read(1, "v1")),
			mk(0, 2, 3, cas(1, "a", outPrecondition, 0)),
		}, porcupine.Illegal},
		{"If-Match write applied on a moved head", []op{
			mk(0, 0, 1, put("a", outOK, 2)),
			mk(1, 2, 3, cas(1, "b", outOK, 3)),
		}, porcupine.Illegal},
		{"read of a value nobody wrote", []op{
			mk(0, 0, 1, put("a", outOK, 2)),
			mk(1, 2, 3, read(2, "z")),
		}, porcupine.Illegal},
		{"write of unknown outcome that took effect", []op{
			unknown(0, 0, put("a", outUnknown, 0)),
			mk(1, 2, 3, read(2, "a")),
			mk(1, 4, 5, put("b", outOK, 3)),
		}, porcupine.Ok},
		{"write of unknown outcome that never took effect", []op{
			unknown(0, 0, cas(1, "a", outUnknown, 0)),
			mk(1, 2, 3, put("b", outOK, 2)),
			mk(1, 4, 5, read(2, "b")),
		}, porcupine.Ok},
		{"write of unknown outcome seen before it was sent", []op{
			mk(1, 0, 1, read(2, "a")),
			unknown(0, 2, put("a", outUnknown, 0)),
		}, porcupine.Illegal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ops := make([]porcupine.Operation, len(tc.ops))
			for i, o := range tc.ops {
				ret := o.ret
				if o.unknownRet {
					ret = math.MaxInt64
				}
				ops[i] = porcupine.Operation{ClientId: o.client, Input: o.c.in, Call: o.call, Output: o.c.out, Return: ret}
			}
			if got := porcupine.CheckOperationsTimeout(registerModel(init), ops, 10*time.Second); got != tc.want {
				t.Fatalf("checker says %s, want %s", got, tc.want)
			}
		})
	}
}

// TestRobustnessKeepsFailingHistory: the artifacts of a failed check are a
// history.json that reads back as the checked history and porcupine's
// visualization of it.
func TestRobustnessKeepsFailingHistory(t *testing.T) {
	init := regState{Rev: 1, Value: "v1"}
	ops := []porcupine.Operation{
		{ClientId: 0, Input: regInput{Kind: opPut, Value: "a"}, Call: 0, Output: regOutput{Outcome: outOK, Rev: 2}, Return: 10, Metadata: opMeta{Server: "http://a"}},
		{ClientId: 1, Input: regInput{Kind: opRead}, Call: 20, Output: regOutput{Outcome: outOK, Rev: 1, Value: "v1"}, Return: 30, Metadata: opMeta{Server: "http://b"}},
		{ClientId: 2, Input: regInput{Kind: opCAS, Expect: 2, Value: "b"}, Call: 40, Output: regOutput{Outcome: outUnknown}, Return: math.MaxInt64, Metadata: opMeta{Server: "http://a", Err: "HTTP 503"}},
	}
	model := registerModel(init)
	res, info := porcupine.CheckOperationsVerbose(model, ops, 10*time.Second)
	if res != porcupine.Illegal {
		t.Fatalf("checker says %s for a stale read, want Illegal", res)
	}
	dir := filepath.Join(t.TempDir(), "kept")
	keepHistory(t, dir, model, init, ops, info, nil, nil)

	b, err := os.ReadFile(filepath.Join(dir, "history.json"))
	if err != nil {
		t.Fatal(err)
	}
	var kept struct {
		Init       regState       `json:"init"`
		Operations []historyEntry `json:"operations"`
	}
	if err := json.Unmarshal(b, &kept); err != nil {
		t.Fatalf("history.json: %v", err)
	}
	if kept.Init != init || len(kept.Operations) != len(ops) {
		t.Fatalf("history.json holds init %+v and %d operations, want %+v and %d", kept.Init, len(kept.Operations), init, len(ops))
	}
	for i, op := range ops {
		k := kept.Operations[i]
		if k.Input != op.Input || k.Output != op.Output || k.Call != op.Call || k.Return != op.Return || k.Meta != op.Metadata || k.Client != op.ClientId {
			t.Errorf("history.json operation %d is %+v, want %+v", i, k, op)
		}
	}
	html, err := os.ReadFile(filepath.Join(dir, "visualization.html"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "read() → r1"; !strings.Contains(string(html), want) {
		t.Errorf("visualization.html (%d bytes) does not show the stale read %q", len(html), want)
	}
}
