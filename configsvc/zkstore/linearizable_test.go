package zkstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/zkstore"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
)

// staleReadPairs is how many write-then-read pairs each writer of
// TestFaultStaleReadAcrossFollowers makes. Without a sync before its read,
// a store on a node that has not applied the newest commit yet answers
// with the revision before: in this tight loop on the harness ensemble,
// about one read in thirty to one in ten was stale (a probe with a pause
// between pairs saw one in 2,500), so 400 pairs fail the old code with
// near certainty.
const staleReadPairs = 400

// TestFaultStaleReadAcrossFollowers pins store W to one ensemble node and
// store R to another (each is given that node's address only), publishes
// through W and reads right after the publish returned through R: Head,
// File at head, Snapshot at head and the revision list. Every read must
// show the revision just published or a later one (a linearizable read);
// it fails on a store that reads from its node without a sync first. Two
// pairs of stores run at once, writer on the leader and reader on a
// follower, and writer and reader on the two followers; beside them two
// writers on the two followers publish in turn on each other's revision,
// which must never be a conflict.
func TestFaultStaleReadAcrossFollowers(t *testing.T) {
	ens := zktest.StartEnsemble(t, 3)
	leader := ens.Leader()
	var followers []int
	for i := range ens.Size() {
		if i != leader {
			followers = append(followers, i)
		}
	}
	root := fmt.Sprintf("/sluice-test/%d", roots.Add(1))
	pin := func(node int) *zkstore.Store {
		return mustOpen(t, []string{ens.Node(node).Addr()}, func(c *zkstore.Config) { c.Root = root })
	}
	pairs := []struct {
		name string
		w, r *zkstore.Store
	}{
		{"leader-to-follower", pin(leader), pin(followers[0])},
		{"follower-to-follower", pin(followers[0]), pin(followers[1])},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]string, len(pairs)+1)
	// Two writers on the two followers take turns, each publishing on the
	// revision the other just published: a store that reads its base from a
	// lagging server reports a conflict that is not there (a false 409, or a
	// false 412 for an If-Match through the API).
	alt := configsvc.Service("stale-alternating")
	a, b := pin(followers[0]), pin(followers[1])
	if err := a.Create(ctx, alt); err != nil {
		t.Fatalf("Create(%s): %v", alt, err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		errs[len(pairs)] = alternate(ctx, a, b, alt, staleReadPairs)
	}()
	for i, p := range pairs {
		ref := configsvc.Service(fmt.Sprintf("stale-%d", i))
		if err := p.w.Create(ctx, ref); err != nil {
			t.Fatalf("Create(%s): %v", ref, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = writeThenRead(ctx, p.w, p.r, ref, staleReadPairs)
		}()
	}
	wg.Wait()
	for i, p := range pairs {
		if errs[i] != "" {
			t.Errorf("%s: %s", p.name, errs[i])
		}
	}
	if e := errs[len(pairs)]; e != "" {
		t.Errorf("alternating writers: %s", e)
	}
}

// alternate publishes n revisions of ref, in turn through a and b, each on
// top of the revision the other returned. Nobody else writes ref, so any
// conflict is a false one; it returns a description of them, or "".
func alternate(ctx context.Context, a, b configsvc.Store, ref configsvc.Ref, n int) string {
	stores := []configsvc.Store{a, b}
	conflicts, first := 0, ""
	base := int64(0)
	for i := 0; i < n; i++ {
		st := stores[i%2]
		rev, err := st.Publish(ctx, ref, configsvc.Changeset{Base: base, Author: "probe",
			Changes: []configsvc.Change{{File: "a.txt", Content: []byte(fmt.Sprint(i))}}})
		if errors.Is(err, configsvc.ErrConflict) {
			conflicts++
			if first == "" {
				first = fmt.Sprintf("publish on revision %d: %v", base, err)
			}
			h, herr := st.Head(ctx, ref)
			if herr != nil {
				return herr.Error()
			}
			base = h.Revision
			continue
		}
		if err != nil {
			return fmt.Sprintf("publish %d: %v", i, err)
		}
		base = rev.Number
	}
	if conflicts == 0 {
		return ""
	}
	return fmt.Sprintf("%d false conflicts in %d publishes; first: %s", conflicts, n, first)
}

// writeThenRead publishes n revisions of ref through w and, after each,
// reads ref through r four ways. It returns a description of the stale
// reads (and of any error), or "".
func writeThenRead(ctx context.Context, w, r configsvc.Store, ref configsvc.Ref, n int) string {
	stale := map[string]int{}
	first := ""
	for i := 1; i <= n; i++ {
		content := fmt.Sprintf("write %d", i)
		rev, err := w.Publish(ctx, ref, configsvc.Changeset{Base: int64(i - 1), Author: "probe", Message: content,
			Changes: []configsvc.Change{{File: "a.txt", Content: []byte(content)}}})
		if err != nil {
			return fmt.Sprintf("publish %d: %v", i, err)
		}
		check := func(kind string, got int64, err error) bool {
			if err != nil {
				first = fmt.Sprintf("%s after publish %d: %v", kind, rev.Number, err)
				return false
			}
			if got < rev.Number {
				stale[kind]++
				if first == "" {
					first = fmt.Sprintf("%s after publish r%d returned r%d", kind, rev.Number, got)
				}
			}
			return true
		}
		// One read kind per pair, in turn, so each read follows a publish
		// immediately.
		switch i % 4 {
		case 0:
			h, err := r.Head(ctx, ref)
			if !check("Head", h.Revision, err) {
				return first
			}
		case 1:
			_, meta, err := r.File(ctx, ref, "a.txt", 0)
			if !check("File at head", meta.Revision, err) {
				return first
			}
		case 2:
			snap, err := r.Snapshot(ctx, ref, 0)
			if !check("Snapshot at head", snap.Revision, err) {
				return first
			}
		case 3:
			revs, err := r.Revisions(ctx, ref, 0, 1)
			top := int64(0)
			if len(revs) > 0 {
				top = revs[0].Number
			}
			if !check("Revisions", top, err) {
				return first
			}
		}
	}
	if len(stale) == 0 {
		return ""
	}
	return fmt.Sprintf("stale reads in %d pairs: %v; first: %s", n, stale, first)
}
