package clustertest

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
)

// The linearizability checker of the robustness test: porcupine with a
// model of the service's head, the history's writes of unknown outcome
// narrowed by a watch, and the check done window by window.

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
	// is recorded with an infinite return time (math.MaxInt64), so that the
	// checker may place its effect anywhere after its call, or nowhere.
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

// opMeta says where an operation went, what went wrong and how the watch
// resolved it; it is shown in the visualization and kept in the history,
// never used by the checker.
type opMeta struct {
	Server   string `json:"server,omitempty"`
	Err      string `json:"error,omitempty"`
	Resolved string `json:"resolved,omitempty"`
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
			md, _ := m.(opMeta)
			return strings.TrimSpace(strings.Join([]string{md.Server, md.Err, md.Resolved}, " "))
		},
	}
}

// watchedRev is a revision as the run's watch saw it: its number and when
// it arrived (on the history's clock).
type watchedRev struct {
	Rev int64
	At  int64
}

// writeMessage is the revision message of a write: it names the write, so
// that the revisions the watch sees tell which writes of unknown outcome
// took effect.
func writeMessage(value string) string { return "robustness: " + strings.TrimSpace(value) }

// resolveUnknown narrows the writes of unknown outcome with the revisions
// a watch saw (by message), as etcd's robustness tests do with theirs. A
// write the watch saw as revision R took effect: it is kept as creating R,
// and its return time becomes the earliest of the watch's arrival and the
// return of the first operation that saw revision R or a later one (its
// effect happened before either). When complete is set (the watch saw
// every revision, without a gap, up to the last one the history read), a
// write the watch did not see never took effect before the history ended,
// which for the checker is as if it never did: it is dropped. Otherwise it
// stays unknown. Either way the history only gets stricter, so nothing it
// hides is a violation: a write dropped or placed wrongly makes the check
// fail, not pass.
func resolveUnknown(ops []porcupine.Operation, seen map[string]watchedRev, complete bool) (kept, dropped []porcupine.Operation) {
	// firstSeen[R]: the earliest return of a definite operation that saw
	// revision R or a later one.
	var maxRev int64
	for _, op := range ops {
		if o := op.Output.(regOutput); o.Outcome == outOK {
			maxRev = max(maxRev, o.Rev)
		}
	}
	firstSeen := make([]int64, maxRev+2)
	for i := range firstSeen {
		firstSeen[i] = math.MaxInt64
	}
	for _, op := range ops {
		if o := op.Output.(regOutput); o.Outcome == outOK && o.Rev >= 0 {
			firstSeen[o.Rev] = min(firstSeen[o.Rev], op.Return)
		}
	}
	for r := maxRev - 1; r >= 0; r-- {
		firstSeen[r] = min(firstSeen[r], firstSeen[r+1])
	}

	for _, op := range ops {
		if op.Output.(regOutput).Outcome != outUnknown {
			kept = append(kept, op)
			continue
		}
		meta, _ := op.Metadata.(opMeta)
		w, ok := seen[writeMessage(op.Input.(regInput).Value)]
		switch {
		case ok:
			ret := w.At
			if w.Rev <= maxRev && firstSeen[w.Rev] >= op.Call {
				ret = min(ret, firstSeen[w.Rev])
			}
			op.Output = regOutput{Outcome: outOK, Rev: w.Rev}
			op.Return = max(ret, op.Call)
			meta.Resolved = fmt.Sprintf("outcome unknown; the watch saw it as r%d", w.Rev)
			op.Metadata = meta
			kept = append(kept, op)
		case complete:
			meta.Resolved = "outcome unknown; the watch never saw it"
			op.Metadata = meta
			dropped = append(dropped, op)
		default:
			kept = append(kept, op)
		}
	}
	return kept, dropped
}

// robustWindowOps is the least number of operations the checker takes at a
// time: porcupine's memory grows with the square of a history's length.
const robustWindowOps = 2000

// checked is the result of checkLinearizable.
type checked struct {
	Result  porcupine.CheckResult
	Windows int // how many windows were checked
	// For a window that was not found linearizable: its first state, its
	// operations and porcupine's account of them (for the visualization).
	Init regState
	Ops  []porcupine.Operation
	Info porcupine.LinearizationInfo
}

// checkLinearizable checks ops from init with stepRegister, window by
// window. A window ends at an instant when no operation is in flight (every
// operation so far returned before the next one was called) once it holds
// windowOps operations; an operation of unknown outcome is in flight
// forever, so no window ends after one. This is exact, not an
// approximation: real-time order puts every operation of a window before
// every operation of the next, and the state between them is forced,
// because every write in a finished window has a known revision — the
// highest one and its value are the head. Each window gets timeout.
func checkLinearizable(init regState, ops []porcupine.Operation, windowOps int, timeout time.Duration) checked {
	sorted := append([]porcupine.Operation(nil), ops...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Call < sorted[j].Call })
	state, start, windows := init, 0, 0
	inFlight := int64(math.MinInt64) // the latest return so far
	check := func(end int) *checked {
		window := sorted[start:end]
		windows++
		model := registerModel(state)
		res, info := porcupine.CheckOperationsVerbose(model, window, timeout)
		if res != porcupine.Ok {
			return &checked{Result: res, Windows: windows, Init: state, Ops: window, Info: info}
		}
		for _, op := range window {
			if o := op.Output.(regOutput); op.Input.(regInput).Kind != opRead && o.Outcome == outOK && o.Rev > state.Rev {
				state = regState{Rev: o.Rev, Value: op.Input.(regInput).Value}
			}
		}
		start = end
		return nil
	}
	for i, op := range sorted {
		if i-start >= windowOps && inFlight < op.Call {
			if c := check(i); c != nil {
				return *c
			}
		}
		inFlight = max(inFlight, op.Return)
	}
	if c := check(len(sorted)); c != nil {
		return *c
	}
	return checked{Result: porcupine.Ok, Windows: windows}
}

// unknownWrites counts the writes of unknown outcome in ops.
func unknownWrites(ops []porcupine.Operation) int {
	n := 0
	for _, op := range ops {
		if op.Output.(regOutput).Outcome == outUnknown {
			n++
		}
	}
	return n
}

// ackedWrites returns the index of every write with a known revision, by
// that revision.
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
// that created the one it saw had returned before the read began.
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

// keptHistory is history.json: the history as checked, the writes of
// unknown outcome dropped from it (the watch never saw them), and the
// window that failed.
type keptHistory struct {
	Init       regState       `json:"init"`
	Operations []historyEntry `json:"operations"`
	Dropped    []historyEntry `json:"dropped,omitempty"`
	Failed     struct {
		Result string   `json:"result"`
		Window int      `json:"window"`
		Init   regState `json:"init"`
		From   int64    `json:"from_call_ns"`
		Ops    int      `json:"operations"`
	} `json:"failed"`
}

func entries(ops []porcupine.Operation) []historyEntry {
	out := make([]historyEntry, len(ops))
	for i, op := range ops {
		out[i] = historyEntry{Client: op.ClientId, Input: op.Input.(regInput), Output: op.Output.(regOutput), Call: op.Call, Return: op.Return}
		out[i].Meta, _ = op.Metadata.(opMeta)
	}
	return out
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

// keepHistory writes a history that failed its check to dir: history.json
// (keptHistory), porcupine's visualization of the failed window
// (visualization.html) and, when given, the processes' logs (redacted) and
// each ZooKeeper node's log, configuration and transaction logs. Failures
// to copy a log are logged, the others fail the test.
func keepHistory(t *testing.T, dir string, init regState, ops, dropped []porcupine.Operation, c checked, logs []string, ens *zktest.Ensemble) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Errorf("keep the history: %v", err)
		return
	}
	k := keptHistory{Init: init, Operations: entries(ops), Dropped: entries(dropped)}
	k.Failed.Result, k.Failed.Window, k.Failed.Init, k.Failed.Ops = string(c.Result), c.Windows, c.Init, len(c.Ops)
	if len(c.Ops) > 0 {
		k.Failed.From = c.Ops[0].Call
	}
	b, err := json.MarshalIndent(k, "", " ")
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "history.json"), b, 0o644)
	}
	if err != nil {
		t.Errorf("keep the history: %v", err)
	}
	if err := porcupine.VisualizePath(registerModel(c.Init), c.Info, filepath.Join(dir, "visualization.html")); err != nil {
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

// call is a made-up operation's request with its answer.
type call struct {
	in  regInput
	out regOutput
}

func readOf(rev int64, v string) call {
	return call{regInput{Kind: opRead}, regOutput{Outcome: outOK, Rev: rev, Value: v}}
}

func putOf(v string, o outcome, rev int64) call {
	return call{regInput{Kind: opPut, Value: v}, regOutput{Outcome: o, Rev: rev}}
}

func casOf(expect int64, v string, o outcome, rev int64) call {
	return call{regInput{Kind: opCAS, Expect: expect, Value: v}, regOutput{Outcome: o, Rev: rev}}
}

// opAt is a made-up operation of client called at at and returned at ret
// (-1: never, as for an unknown outcome).
func opAt(client int, at, ret int64, c call) porcupine.Operation {
	if ret < 0 {
		ret = math.MaxInt64
	}
	return porcupine.Operation{ClientId: client, Input: c.in, Call: at, Output: c.out, Return: ret}
}

// TestRobustnessCheckerCatchesViolations runs the robustness test's checker
// over small made-up histories, in one window and in windows as small as
// they can be: the ones a correct service can produce pass, and each kind
// of violation it exists to find — a stale read, an acknowledged write lost
// and its revision number issued again, a false or missing 412, a value
// nobody wrote — fails.
func TestRobustnessCheckerCatchesViolations(t *testing.T) {
	init := regState{Rev: 1, Value: "v1"}
	for _, tc := range []struct {
		name string
		ops  []porcupine.Operation
		want porcupine.CheckResult
	}{
		{"sequential reads and writes", []porcupine.Operation{
			opAt(0, 0, 1, readOf(1, "v1")),
			opAt(0, 2, 3, putOf("a", outOK, 2)),
			opAt(1, 4, 5, casOf(2, "b", outOK, 3)),
			opAt(1, 6, 7, casOf(2, "c", outPrecondition, 0)),
			opAt(0, 8, 9, readOf(3, "b")),
		}, porcupine.Ok},
		{"stale read after an acknowledged write", []porcupine.Operation{
			opAt(0, 0, 1, putOf("a", outOK, 2)),
			opAt(0, 2, 3, putOf("b", outOK, 3)),
			opAt(1, 4, 5, readOf(2, "a")),
		}, porcupine.Illegal},
		{"concurrent read may see either side of a write", []porcupine.Operation{
			opAt(0, 0, 10, putOf("a", outOK, 2)),
			opAt(1, 1, 2, readOf(1, "v1")),
			opAt(2, 3, 4, readOf(2, "a")),
			opAt(1, 5, 6, readOf(2, "a")),
		}, porcupine.Ok},
		{"a read that goes back in time", []porcupine.Operation{
			opAt(0, 0, 10, putOf("a", outOK, 2)),
			opAt(1, 1, 2, readOf(2, "a")),
			opAt(1, 3, 4, readOf(1, "v1")),
		}, porcupine.Illegal},
		{"revision reissued to a second acknowledged write", []porcupine.Operation{
			opAt(0, 0, 1, putOf("a", outOK, 2)),
			opAt(1, 2, 3, putOf("b", outOK, 2)),
		}, porcupine.Illegal},
		{"acknowledged write lost", []porcupine.Operation{
			opAt(0, 0, 1, casOf(1, "a", outOK, 2)),
			opAt(1, 2, 3, readOf(1, "v1")),
		}, porcupine.Illegal},
		{"412 although the head was the If-Match revision", []porcupine.Operation{
			opAt(0, 0, 1, readOf(1, "v1")),
			opAt(0, 2, 3, casOf(1, "a", outPrecondition, 0)),
		}, porcupine.Illegal},
		{"If-Match write applied on a moved head", []porcupine.Operation{
			opAt(0, 0, 1, putOf("a", outOK, 2)),
			opAt(1, 2, 3, casOf(1, "b", outOK, 3)),
		}, porcupine.Illegal},
		{"read of a value nobody wrote", []porcupine.Operation{
			opAt(0, 0, 1, putOf("a", outOK, 2)),
			opAt(1, 2, 3, readOf(2, "z")),
		}, porcupine.Illegal},
		{"write of unknown outcome that took effect", []porcupine.Operation{
			opAt(0, 0, -1, putOf("a", outUnknown, 0)),
			opAt(1, 2, 3, readOf(2, "a")),
			opAt(1, 4, 5, putOf("b", outOK, 3)),
		}, porcupine.Ok},
		{"write of unknown outcome that never took effect", []porcupine.Operation{
			opAt(0, 0, -1, casOf(1, "a", outUnknown, 0)),
			opAt(1, 2, 3, putOf("b", outOK, 2)),
			opAt(1, 4, 5, readOf(2, "b")),
		}, porcupine.Ok},
		{"write of unknown outcome seen before it was sent", []porcupine.Operation{
			opAt(1, 0, 1, readOf(2, "a")),
			opAt(0, 2, -1, putOf("a", outUnknown, 0)),
		}, porcupine.Illegal},
		{"stale read in a later window", []porcupine.Operation{
			opAt(0, 0, 1, putOf("a", outOK, 2)),
			opAt(0, 2, 3, readOf(2, "a")),
			opAt(1, 4, 5, putOf("b", outOK, 3)),
			opAt(0, 6, 7, readOf(3, "b")),
			opAt(1, 8, 9, readOf(2, "a")),
		}, porcupine.Illegal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, window := range []int{1, robustWindowOps} {
				if got := checkLinearizable(init, tc.ops, window, 10*time.Second); got.Result != tc.want {
					t.Errorf("in windows of %d operations the checker says %s, want %s", window, got.Result, tc.want)
				}
			}
		})
	}
}

// TestRobustnessResolvesUnknownOutcomes: a write of unknown outcome that the
// watch saw is kept with its revision, returning no later than the first
// operation that saw it; one the watch did not see is dropped when the watch
// was complete and kept unknown otherwise; and a watch that contradicts an
// acknowledged write makes the check fail, not pass.
func TestRobustnessResolvesUnknownOutcomes(t *testing.T) {
	init := regState{Rev: 1, Value: "v1"}
	ops := []porcupine.Operation{
		opAt(0, 0, -1, putOf("a", outUnknown, 0)),
		opAt(1, 1, -1, casOf(1, "x", outUnknown, 0)),
		opAt(2, 10, 20, readOf(2, "a")),
		opAt(3, 30, 40, putOf("b", outOK, 3)),
	}
	seen := map[string]watchedRev{writeMessage("a"): {Rev: 2, At: 25}, writeMessage("b"): {Rev: 3, At: 45}}

	kept, dropped := resolveUnknown(ops, seen, true)
	if len(kept) != 3 || len(dropped) != 1 || dropped[0].Input.(regInput).Value != "x" {
		t.Fatalf("kept %d and dropped %v; want the write of x dropped, the others kept", len(kept), dropped)
	}
	if got := kept[0]; got.Output != (regOutput{Outcome: outOK, Rev: 2}) || got.Return != 20 {
		t.Errorf("the write of a is kept as %+v returning at %d; want it as r2, returning at 20 (when a read saw it)", got.Output, got.Return)
	}
	if res := checkLinearizable(init, kept, robustWindowOps, 10*time.Second); res.Result != porcupine.Ok {
		t.Errorf("the resolved history is %s, want Ok", res.Result)
	}

	kept, dropped = resolveUnknown(ops, map[string]watchedRev{writeMessage("a"): {Rev: 2, At: 25}}, false)
	if len(kept) != 4 || len(dropped) != 0 || kept[1].Output.(regOutput).Outcome != outUnknown || kept[1].Return != math.MaxInt64 {
		t.Errorf("with an incomplete watch: kept %d, dropped %d, the write of x %+v; want it kept unknown", len(kept), len(dropped), kept[1])
	}

	lie := map[string]watchedRev{writeMessage("a"): {Rev: 3, At: 25}}
	kept, _ = resolveUnknown(ops, lie, true)
	if res := checkLinearizable(init, kept, robustWindowOps, 10*time.Second); res.Result != porcupine.Illegal {
		t.Errorf("with a watch giving a's revision to the acknowledged write of b, the check says %s, want Illegal", res.Result)
	}
}

// TestRobustnessKeepsFailingHistory: the artifacts of a failed check are a
// history.json that reads back as the checked history and porcupine's
// visualization of the window that failed.
func TestRobustnessKeepsFailingHistory(t *testing.T) {
	init := regState{Rev: 1, Value: "v1"}
	ops := []porcupine.Operation{
		opAt(0, 0, 10, putOf("a", outOK, 2)),
		opAt(1, 20, 30, readOf(1, "v1")),
		opAt(2, 40, -1, casOf(2, "b", outUnknown, 0)),
	}
	ops[2].Metadata = opMeta{Server: "http://a", Err: "HTTP 503"}
	dropped := []porcupine.Operation{opAt(3, 5, -1, putOf("c", outUnknown, 0))}
	c := checkLinearizable(init, ops, robustWindowOps, 10*time.Second)
	if c.Result != porcupine.Illegal {
		t.Fatalf("checker says %s for a stale read, want Illegal", c.Result)
	}
	dir := filepath.Join(t.TempDir(), "kept")
	keepHistory(t, dir, init, ops, dropped, c, nil, nil)

	b, err := os.ReadFile(filepath.Join(dir, "history.json"))
	if err != nil {
		t.Fatal(err)
	}
	var kept keptHistory
	if err := json.Unmarshal(b, &kept); err != nil {
		t.Fatalf("history.json: %v", err)
	}
	if kept.Init != init || len(kept.Operations) != len(ops) || len(kept.Dropped) != 1 || kept.Failed.Result != string(porcupine.Illegal) {
		t.Fatalf("history.json holds init %+v, %d operations, %d dropped, result %q; want %+v, %d, 1, Illegal",
			kept.Init, len(kept.Operations), len(kept.Dropped), kept.Failed.Result, init, len(ops))
	}
	for i, op := range ops {
		k := kept.Operations[i]
		meta, _ := op.Metadata.(opMeta)
		if k.Input != op.Input || k.Output != op.Output || k.Call != op.Call || k.Return != op.Return || k.Meta != meta || k.Client != op.ClientId {
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
