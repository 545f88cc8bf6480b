package approval_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/approval"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/boltstore/bolttest"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/configsvc/zkstore"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
)

var zkRoots atomic.Int64

// eachStore runs fn on the records of a bbolt store and of a ZooKeeper
// store (skipped without ZooKeeper unless SLUICE_REQUIRE_ZOOKEEPER=1).
func eachStore(t *testing.T, fn func(t *testing.T, rs configsvc.RecordStore)) {
	eachStoreWith(t, configsvc.Limits{}, fn)
}

// eachStoreWith is eachStore on stores with limits (zero: the defaults).
func eachStoreWith(t *testing.T, limits configsvc.Limits, fn func(t *testing.T, rs configsvc.RecordStore)) {
	t.Run("bolt", func(t *testing.T) { fn(t, bolttest.MustOpen(t, boltstore.Options{Limits: limits}).Records()) })
	t.Run("zookeeper", func(t *testing.T) {
		zk := zktest.Start(t)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		st, err := zkstore.Open(ctx, zkstore.Config{Servers: zk.Servers(), Root: fmt.Sprintf("/approval-test/%d", zkRoots.Add(1)),
			SessionTimeout: 4 * time.Second, OpTimeout: 5 * time.Second, Limits: limits})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		fn(t, st.Records())
	})
}

var (
	alice = &access.Principal{TokenID: "aaaaaaaaaaaa", Name: "alice", Grants: []access.Grant{{Role: access.RoleEditor, Pattern: "pay-*"}}}
	bob   = &access.Principal{TokenID: "bbbbbbbbbbbb", Name: "bob", Grants: []access.Grant{{Role: access.RoleEditor, Pattern: "pay-*"}}}
	carol = &access.Principal{TokenID: "cccccccccccc", Name: "carol", Grants: []access.Grant{{Role: access.RoleViewer, Pattern: "*"}}}
	admin = &access.Principal{TokenID: "dddddddddddd", Name: "root", Grants: []access.Grant{{Role: access.RoleAdmin, Pattern: "*"}}}
)

func TestPolicies(t *testing.T) {
	ctx := context.Background()
	eachStore(t, func(t *testing.T, rs configsvc.RecordStore) {
		g := approval.New(rs, nil)
		for _, bad := range []approval.Policy{
			{Name: "x", Pattern: "pay-*", Approvals: 0},
			{Name: "x", Pattern: "PAY", Approvals: 1},
			{Name: "x", Pattern: "pay-*", Approvals: 1, ApproverRole: "viewer"},
			{Name: "x", Pattern: "pay-*", Approvals: 1, Expiry: "1s"},
			{Name: "X!", Pattern: "pay-*", Approvals: 1},
		} {
			if _, _, err := g.PutPolicy(ctx, bad, "root"); !errors.Is(err, configsvc.ErrInvalid) {
				t.Errorf("PutPolicy(%+v) = %v, want ErrInvalid", bad, err)
			}
		}
		p, created, err := g.PutPolicy(ctx, approval.Policy{Name: "pay", Pattern: "pay-*", Approvals: 1, DeclineBlocks: true}, "root")
		if err != nil || !created || p.ApproverRole != approval.RoleEditor || p.UpdatedBy != "root" {
			t.Fatalf("PutPolicy = %+v, %v, %v", p, created, err)
		}
		if _, _, err := g.PutPolicy(ctx, approval.Policy{Name: "strict", Pattern: "pay-core", Approvals: 2, ApproverRole: "admin", Expiry: "1h"}, "root"); err != nil {
			t.Fatal(err)
		}
		r, ok, err := g.RuleFor(ctx, configsvc.Service("pay-core"))
		if err != nil || !ok || r.Approvals != 2 || r.ApproverRole != "admin" || !r.DeclineBlocks || r.AuthorMayApprove || r.Expiry != time.Hour || strings.Join(r.Policies, ",") != "pay,strict" {
			t.Fatalf("RuleFor(pay-core) = %+v, %v, %v", r, ok, err)
		}
		if _, ok, _ := g.RuleFor(ctx, configsvc.Service("orders")); ok {
			t.Fatal("a policy applies to orders")
		}
		if err := g.DeletePolicy(ctx, "strict"); err != nil {
			t.Fatal(err)
		}
		if err := g.DeletePolicy(ctx, "strict"); !errors.Is(err, configsvc.ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
	})
}

// bigChangeset is a changeset of the largest size a publish allows,
// spread over two files.
func bigChangeset(base int64) configsvc.Changeset {
	half := configsvc.MaxChangesetSize / 2
	a := bytes.Repeat([]byte("a\"\n"), half/3)
	b := bytes.Repeat([]byte("é"), half/2)
	return configsvc.Changeset{Base: base, Message: "big", Changes: []configsvc.Change{{File: "a.txt", Content: a}, {File: "b.txt", Content: b}, {File: "gone.txt", Delete: true}}}
}

func TestChangeRequestLifecycle(t *testing.T) {
	ctx := context.Background()
	eachStore(t, func(t *testing.T, rs configsvc.RecordStore) {
		clock := testkit.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
		g := approval.New(rs, clock.Now)
		if _, _, err := g.PutPolicy(ctx, approval.Policy{Name: "pay", Pattern: "pay-*", Approvals: 1, DeclineBlocks: true, Expiry: "48h"}, "root"); err != nil {
			t.Fatal(err)
		}
		ref := configsvc.Service("pay-api")
		rule, _, _ := g.RuleFor(ctx, ref)
		cs := bigChangeset(4)
		cr, err := g.Submit(ctx, approval.Submission{Ref: ref, Operation: approval.OpPublish, Changeset: cs, Rule: rule, Author: alice})
		if err != nil {
			t.Fatal(err)
		}
		if cr.Chunks < 2 || cr.State != approval.StateOpen || cr.Expires != clock.Now().Add(48*time.Hour) {
			t.Fatalf("submitted %+v: want several chunks, open, expiring in 48h", cr)
		}
		t.Run("ContentRoundTrip", func(t *testing.T) {
			got, err := g.Changeset(ctx, cr)
			if err != nil {
				t.Fatal(err)
			}
			if got.Base != 4 || got.Author != "alice" || len(got.Changes) != 3 || !bytes.Equal(got.Changes[0].Content, cs.Changes[0].Content) ||
				!bytes.Equal(got.Changes[1].Content, cs.Changes[1].Content) || !got.Changes[2].Delete {
				t.Fatalf("content of %d bytes did not round-trip", configsvc.MaxChangesetSize)
			}
		})
		t.Run("SelfApprovalRefused", func(t *testing.T) {
			_, err := g.Review(ctx, ref, cr.ID, alice, approval.EventApproved, "lgtm")
			var r *approval.Refusal
			if !errors.As(err, &r) || !strings.Contains(r.Reason, "author") {
				t.Fatalf("self-approval: %v", err)
			}
		})
		t.Run("IneligibleRefused", func(t *testing.T) {
			_, err := g.Review(ctx, ref, cr.ID, carol, approval.EventApproved, "")
			var r *approval.Refusal
			if !errors.As(err, &r) {
				t.Fatalf("viewer approval: %v", err)
			}
		})
		t.Run("DeclineBlocksThenApproval", func(t *testing.T) {
			got, err := g.Review(ctx, ref, cr.ID, bob, approval.EventDeclined, "port is wrong")
			if err != nil || got.Declines != 1 || approval.Ready(got) == nil {
				t.Fatalf("decline: %+v %v", got, err)
			}
			got, err = g.Review(ctx, ref, cr.ID, bob, approval.EventApproved, "fixed, ok")
			if err != nil || got.Declines != 0 || got.Approvals != 1 || approval.Ready(got) != nil {
				t.Fatalf("approval after decline: %+v %v, ready %v", got, err, approval.Ready(got))
			}
		})
		t.Run("RebaseResetsVerdicts", func(t *testing.T) {
			if _, err := g.Rebase(ctx, ref, cr.ID, bob, cs, rule); err == nil {
				t.Fatal("a reviewer rebased")
			}
			next := cs
			next.Base = 5
			got, err := g.Rebase(ctx, ref, cr.ID, alice, next, rule)
			if err != nil || got.Base != 5 || got.Gen != 2 || got.Approvals != 0 {
				t.Fatalf("rebase: %+v %v", got, err)
			}
			got, thread, err := g.Get(ctx, ref, cr.ID)
			if err != nil || got.Approvals != 0 || len(thread) != 4 || thread[3].Kind != approval.EventRebased {
				t.Fatalf("after rebase %+v, thread %+v, %v", got, thread, err)
			}
			if c, err := g.Changeset(ctx, got); err != nil || c.Base != 5 || len(c.Changes) != 3 {
				t.Fatalf("content after rebase: %v", err)
			}
			cr = got
		})
		t.Run("ApplyAndList", func(t *testing.T) {
			got, err := g.Review(ctx, ref, cr.ID, bob, approval.EventApproved, "")
			if err != nil || approval.Ready(got) != nil {
				t.Fatal(err, approval.Ready(got))
			}
			if _, err := g.MarkApplied(ctx, got, 6, alice, ""); err != nil {
				t.Fatal(err)
			}
			open, _ := g.List(ctx, ref, false)
			all, _ := g.List(ctx, ref, true)
			if len(open) != 0 || len(all) != 1 || all[0].State != approval.StateApplied || all[0].AppliedRevision != 6 {
				t.Fatalf("open %+v, all %+v", open, all)
			}
			if _, err := g.Review(ctx, ref, cr.ID, bob, approval.EventApproved, ""); !errors.Is(err, configsvc.ErrConflict) {
				t.Fatalf("review of an applied change: %v", err)
			}
			n, err := g.Notice(ctx, ref)
			if err != nil || n.ID != cr.ID || n.Event != approval.EventApplied {
				t.Fatalf("notice %+v %v", n, err)
			}
		})
		t.Run("ExpiryAndSweep", func(t *testing.T) {
			other, err := g.Submit(ctx, approval.Submission{Ref: ref, Operation: approval.OpPublish, Changeset: bigChangeset(6), Rule: rule, Author: alice})
			if err != nil {
				t.Fatal(err)
			}
			clock.Advance(49 * time.Hour)
			got, _, _ := g.Get(ctx, ref, other.ID)
			if got.State != approval.StateExpired || approval.Ready(got) == nil {
				t.Fatalf("past its expiry: %+v", got)
			}
			if n, err := g.Sweep(ctx); err != nil || n != 0 {
				t.Fatalf("first sweep deleted %d, %v", n, err)
			}
			clock.Advance(approval.ClosedRetention + time.Hour)
			if n, err := g.Sweep(ctx); err != nil || n != 2 {
				t.Fatalf("second sweep deleted %d, %v", n, err)
			}
			for _, c := range []string{approval.ChangesCollection, approval.DataCollection(cr.ID), approval.EventCollection(cr.ID),
				approval.DataCollection(other.ID), approval.EventCollection(other.ID)} {
				if recs, err := rs.List(ctx, c); err != nil || len(recs) != 0 {
					t.Errorf("%s holds %d records after the sweep", c, len(recs))
				}
			}
		})
	})
}

// TestFaultInterruptedSubmitSwept leaves a change request half written, as
// a server crashing during Submit does, and checks it is never shown and
// Sweep deletes every record of it.
func TestFaultInterruptedSubmitSwept(t *testing.T) {
	ctx := context.Background()
	eachStore(t, func(t *testing.T, rs configsvc.RecordStore) {
		clock := testkit.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
		failing := &failAfter{RecordStore: rs, collection: approval.ChangeDataCollection, n: 1}
		g := approval.New(failing, clock.Now)
		ref := configsvc.Service("pay-api")
		_, err := g.Submit(ctx, approval.Submission{Ref: ref, Operation: approval.OpPublish, Changeset: bigChangeset(1), Rule: approval.Rule{Approvals: 1}, Author: alice})
		if err == nil {
			t.Fatal("Submit succeeded with its second chunk refused")
		}
		g = approval.New(rs, clock.Now)
		if l, _ := g.List(ctx, configsvc.Ref{}, true); len(l) != 0 {
			t.Fatalf("a half-written change request is listed: %+v", l)
		}
		clock.Advance(2 * time.Minute)
		if n, err := g.Sweep(ctx); err != nil || n != 1 {
			t.Fatalf("Sweep = %d, %v", n, err)
		}
		for _, c := range approval.DataCollections() {
			if recs, _ := rs.List(ctx, c); len(recs) != 0 {
				t.Errorf("%s holds %d records after the sweep", c, len(recs))
			}
		}
		for _, c := range []string{approval.ChangesCollection} {
			if recs, _ := rs.List(ctx, c); len(recs) != 0 {
				t.Errorf("%s holds %d records after the sweep", c, len(recs))
			}
		}
	})
}

// failAfter refuses Puts to one collection after n of them.
type failAfter struct {
	configsvc.RecordStore
	collection string
	n          int
}

func (f *failAfter) Put(ctx context.Context, c, id string, data []byte) error {
	if strings.HasPrefix(c, f.collection) {
		if f.n == 0 {
			return fmt.Errorf("injected: %w", configsvc.ErrUnavailable)
		}
		f.n--
	}
	return f.RecordStore.Put(ctx, c, id, data)
}

func TestEmergencies(t *testing.T) {
	ctx := context.Background()
	eachStore(t, func(t *testing.T, rs configsvc.RecordStore) {
		g := approval.New(rs, nil)
		if err := approval.CheckReason(" "); !errors.Is(err, configsvc.ErrInvalid) {
			t.Fatalf("blank reason: %v", err)
		}
		e, err := g.RecordEmergency(ctx, approval.Emergency{Actor: "root", ActorID: admin.TokenID, Kind: "service", Name: "pay-api", Operation: "publish", Revision: 3, Reason: "outage", Policies: []string{"pay"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.ReviewEmergency(ctx, e.ID, admin, "self"); err == nil {
			t.Fatal("the actor reviewed their own emergency")
		}
		if _, err := g.ReviewEmergency(ctx, e.ID, carol, ""); err == nil {
			t.Fatal("a viewer reviewed an emergency")
		}
		got, err := g.ReviewEmergency(ctx, e.ID, bob, "checked")
		if err != nil || !got.Reviewed || got.ReviewedBy != "bob" {
			t.Fatalf("review: %+v %v", got, err)
		}
		if open, _ := g.Emergencies(ctx, false); len(open) != 0 {
			t.Fatalf("reviewed emergency still listed: %+v", open)
		}
		if all, _ := g.Emergencies(ctx, true); len(all) != 1 {
			t.Fatalf("all: %+v", all)
		}
		if _, err := g.ReviewEmergency(ctx, e.ID, bob, ""); !errors.Is(err, configsvc.ErrConflict) {
			t.Fatalf("second review: %v", err)
		}
	})
}

// TestChangeRequestsPastOneCollectionsLimit: a store bounds the records of
// one collection (configsvc.Limits.RecordsPerCollection, 4,096 by
// default), while the governance allows 1,000 open change requests of up
// to 900 KiB (about 15 content chunks each) and 200 events per thread. The
// content chunks and the events are spread over 256 collections by the
// change request's id, so they are bounded per change request, not by
// what all of them hold together. Here the limit is 12: four change
// requests of 4 chunks and 4 events each (16 of each) all submit and
// record their reviews, and every record is gone after the sweep.
func TestChangeRequestsPastOneCollectionsLimit(t *testing.T) {
	ctx := context.Background()
	eachStoreWith(t, configsvc.Limits{RecordsPerCollection: 12}, func(t *testing.T, rs configsvc.RecordStore) {
		clock := testkit.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
		g := approval.New(rs, clock.Now)
		ref := configsvc.Service("pay-api")
		content := bytes.Repeat([]byte("x"), 170_000) // 4 chunks once encoded
		var ids []string
		for i := range 4 {
			cr, err := g.Submit(ctx, approval.Submission{Ref: ref, Operation: approval.OpPublish, Rule: approval.Rule{Approvals: 1}, Author: alice,
				Changeset: configsvc.Changeset{Base: 1, Message: fmt.Sprint("change ", i), Changes: []configsvc.Change{{File: "a.txt", Content: content}}}})
			if err != nil {
				t.Fatalf("change request %d: %v", i+1, err)
			}
			if cr.Chunks != 4 {
				t.Fatalf("change request %d has %d chunks; the test wants 4", i+1, cr.Chunks)
			}
			for range 3 {
				if _, err := g.Review(ctx, ref, cr.ID, bob, approval.EventApproved, ""); err != nil {
					t.Fatalf("review of change request %d: %v", i+1, err)
				}
			}
			ids = append(ids, cr.ID)
		}
		for _, id := range ids {
			cr, thread, err := g.Get(ctx, ref, id)
			if err != nil || len(thread) != 4 || cr.Approvals != 1 {
				t.Fatalf("change request %s: %d events, %d approvals, %v; want 4 and 1", id, len(thread), cr.Approvals, err)
			}
			if cs, err := g.Changeset(ctx, cr); err != nil || !bytes.Equal(cs.Changes[0].Content, content) {
				t.Fatalf("content of change request %s: %v", id, err)
			}
		}
		clock.Advance(approval.DefaultExpiry + approval.ClosedRetention + time.Hour)
		if _, err := g.Sweep(ctx); err != nil { // expires them
			t.Fatal(err)
		}
		clock.Advance(approval.ClosedRetention + time.Hour)
		if n, err := g.Sweep(ctx); err != nil || n != 4 {
			t.Fatalf("sweep deleted %d, %v; want 4", n, err)
		}
		for _, id := range ids {
			for _, c := range []string{approval.ChangesCollection, approval.DataCollection(id), approval.EventCollection(id)} {
				if recs, err := rs.List(ctx, c); err != nil || len(recs) != 0 {
					t.Errorf("%s holds %d records after the sweep (%v)", c, len(recs), err)
				}
			}
		}
	})
}
