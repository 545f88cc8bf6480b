package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

func instance(svc, id string) configsvc.Instance {
	now := time.Now().UTC().Truncate(time.Second)
	return configsvc.Instance{
		Service: svc, ID: id, Addr: "127.0.0.1:" + fmt.Sprint(8000+len(id)),
		Labels: map[string]string{"zone": "a"}, Status: configsvc.StatusStarting,
		Started: now, Updated: now,
	}
}

func mustRegister(ctx context.Context, t *testing.T, st configsvc.Store, inst configsvc.Instance) configsvc.Lease {
	t.Helper()
	l, err := st.Register(ctx, inst)
	if err != nil {
		t.Fatalf("Register(%s/%s): %v", inst.Service, inst.ID, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// sameInstance compares the fields an instance round-trips through a store.
func sameInstance(a, b configsvc.Instance) bool {
	return a.Service == b.Service && a.ID == b.ID && a.Addr == b.Addr && maps.Equal(a.Labels, b.Labels) &&
		a.Revision == b.Revision && a.Status == b.Status && a.Rejected == b.Rejected && a.Error == b.Error &&
		a.FromCache == b.FromCache && a.Started.Equal(b.Started) && a.Updated.Equal(b.Updated) &&
		a.AppliedAt.Equal(b.AppliedAt) && maps.Equal(a.Grays, b.Grays)
}

func wantInstances(ctx context.Context, t *testing.T, st configsvc.Store, svc string, want ...configsvc.Instance) {
	t.Helper()
	got, err := st.Instances(ctx, svc)
	if err != nil {
		t.Fatalf("Instances(%s): %v", svc, err)
	}
	if !slices.EqualFunc(got, want, sameInstance) {
		t.Fatalf("Instances(%s) = %+v, want %+v", svc, got, want)
	}
}

func ids(list []configsvc.Instance) []string {
	out := make([]string, len(list))
	for i, in := range list {
		out[i] = in.ID
	}
	return out
}

func (s *suite) testInstances(t *testing.T) {
	t.Run("RegisterUpdateClose", func(t *testing.T) {
		st, ctx := s.open(t)
		mustCreate(ctx, t, st, configsvc.Service("orders"))
		wantInstances(ctx, t, st, "orders")
		b := instance("orders", "orders-b")
		a := instance("orders", "orders-a")
		lb := mustRegister(ctx, t, st, b)
		la := mustRegister(ctx, t, st, a)
		wantInstances(ctx, t, st, "orders", a, b)

		a.Revision, a.Status, a.Updated = 3, configsvc.StatusApplied, a.Updated.Add(time.Second)
		a.AppliedAt = a.Updated
		if err := la.Update(ctx, a); err != nil {
			t.Fatalf("Update: %v", err)
		}
		wantInstances(ctx, t, st, "orders", a, b)
		b.Status, b.Rejected, b.Error = configsvc.StatusRejected, 4, "db.yaml: bad port"
		if err := lb.Update(ctx, b); err != nil {
			t.Fatalf("Update: %v", err)
		}
		wantInstances(ctx, t, st, "orders", a, b)

		other := a
		other.ID = "orders-c"
		wantErr(t, "Update to another id", la.Update(ctx, other), configsvc.ErrInvalid)
		wantInstances(ctx, t, st, "orders", a, b)

		if err := la.Close(); err != nil {
			t.Fatalf("Lease.Close: %v", err)
		}
		wantInstances(ctx, t, st, "orders", b)
		wantErr(t, "Update after Lease.Close", la.Update(ctx, a), configsvc.ErrClosed)
		wantInstances(ctx, t, st, "orders", b)
		if err := la.Close(); err != nil {
			t.Fatalf("second Lease.Close: %v", err)
		}
		wantInstances(ctx, t, st, "orders", b)
	})

	// A fault: the store kept the caller's maps (bbolt cloned Labels but
	// not Grays), so a caller changing its copy after Update changed the
	// live instance without an Update, and raced with every reader.
	t.Run("FaultCallerChangesItsInstanceAfterUpdate", func(t *testing.T) {
		st, ctx := s.open(t)
		mustCreate(ctx, t, st, configsvc.Service("orders"))
		in := instance("orders", "orders-1")
		in.Grays = map[string]configsvc.GrayStatus{"g-0123456789ab": {Status: configsvc.GrayApplied, Version: 1}}
		l := mustRegister(ctx, t, st, in)
		want := in.Clone()
		in.Labels["zone"] = "changed"
		in.Grays["g-0123456789ab"] = configsvc.GrayStatus{Status: configsvc.GrayRejected, Reason: "changed", Version: 9}
		wantInstances(ctx, t, st, "orders", want)

		upd := want.Clone()
		upd.Status, upd.Revision = configsvc.StatusApplied, 2
		upd.Grays["g-0123456789cd"] = configsvc.GrayStatus{Status: configsvc.GrayApplied, Version: 1}
		upd.Rewritten = &configsvc.HistoryRewrite{Ref: "service/orders", From: 3, To: 2}
		if err := l.Update(ctx, upd); err != nil {
			t.Fatalf("Update: %v", err)
		}
		want = upd.Clone()
		upd.Labels["zone"] = "changed"
		upd.Grays["g-0123456789cd"] = configsvc.GrayStatus{Status: configsvc.GrayRejected, Reason: "changed", Version: 9}
		upd.Rewritten.To = 1
		wantInstances(ctx, t, st, "orders", want)
		got, err := st.Instances(ctx, "orders")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Rewritten == nil || got[0].Rewritten.To != 2 {
			t.Fatalf("Instances = %+v, want Rewritten.To 2 as updated", got)
		}
		// What a reader got is its own too.
		got[0].Grays["g-0123456789cd"] = configsvc.GrayStatus{Status: configsvc.GrayRejected, Version: 7}
		wantInstances(ctx, t, st, "orders", want)
	})

	t.Run("DuplicateLiveID", func(t *testing.T) {
		st, ctx := s.open(t)
		mustCreate(ctx, t, st, configsvc.Service("orders"))
		inst := instance("orders", "orders-1")
		l := mustRegister(ctx, t, st, inst)
		other := inst
		other.Addr = "127.0.0.1:9999"
		_, err := st.Register(ctx, other)
		wantErr(t, "Register of a live id", err, configsvc.ErrConflict)
		wantInstances(ctx, t, st, "orders", inst)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		mustRegister(ctx, t, st, other)
		wantInstances(ctx, t, st, "orders", other)
	})

	t.Run("Invalid", func(t *testing.T) {
		st, ctx := s.open(t)
		mustCreate(ctx, t, st, configsvc.Service("orders"))
		for _, tc := range []struct {
			name string
			inst configsvc.Instance
		}{
			{"BadID", instance("orders", "../x")},
			{"EmptyID", instance("orders", "")},
			{"BadService", instance("Orders", "o-1")},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := st.Register(ctx, tc.inst)
				wantErr(t, "Register", err, configsvc.ErrInvalid)
			})
		}
		wantInstances(ctx, t, st, "orders")
	})

	t.Run("PerService", func(t *testing.T) {
		st, ctx := s.open(t)
		mustCreate(ctx, t, st, configsvc.Service("orders"))
		mustCreate(ctx, t, st, configsvc.Service("payments"))
		o := instance("orders", "i-1")
		p := instance("payments", "i-1")
		mustRegister(ctx, t, st, o)
		mustRegister(ctx, t, st, p)
		wantInstances(ctx, t, st, "orders", o)
		wantInstances(ctx, t, st, "payments", p)
	})

	t.Run("MissingService", func(t *testing.T) {
		st, ctx := s.open(t)
		_, err := st.Register(ctx, instance("ghost", "i-1"))
		wantErr(t, "Register for a missing service", err, configsvc.ErrNotFound)
		_, err = st.Instances(ctx, "ghost")
		wantErr(t, "Instances of a missing service", err, configsvc.ErrNotFound)
		s.wantInstancesErr(t, st.WatchInstances(ctx, "ghost"), configsvc.ErrNotFound)
	})

	t.Run("DeleteServiceDropsInstances", func(t *testing.T) {
		st, ctx := s.open(t)
		mustCreate(ctx, t, st, configsvc.Service("orders"))
		l := mustRegister(ctx, t, st, instance("orders", "i-1"))
		watch := st.WatchInstances(ctx, "orders")
		s.waitInstances(t, watch, "i-1")
		if err := st.Delete(ctx, configsvc.Service("orders")); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		got, err := st.Instances(ctx, "orders")
		if err != nil && !errors.Is(err, configsvc.ErrNotFound) {
			t.Fatalf("Instances of a deleted service: %v", err)
		}
		if len(got) != 0 {
			t.Fatalf("Instances of a deleted service = %v, want none", ids(got))
		}
		if err := l.Close(); err != nil {
			t.Fatalf("Lease.Close after its service was deleted: %v", err)
		}
		s.wantInstancesErr(t, watch, configsvc.ErrNotFound)
	})

	t.Run("AddrTooLong", func(t *testing.T) {
		st, ctx := s.open(t)
		mustCreate(ctx, t, st, configsvc.Service("orders"))
		long := instance("orders", "i-1")
		// A DNS name of 253 bytes (the most DNS allows) and a 4-digit port:
		// well-formed, and 2 bytes over MaxInstanceAddrLen.
		l63 := strings.Repeat("a", 63)
		long.Addr = l63 + "." + l63 + "." + l63 + "." + strings.Repeat("b", 61) + ":8080"
		_, err := st.Register(ctx, long)
		wantErr(t, "Register with an address over MaxInstanceAddrLen", err, configsvc.ErrInvalid)
		ok := instance("orders", "i-1")
		l := mustRegister(ctx, t, st, ok)
		wantErr(t, "Update with an address over MaxInstanceAddrLen", l.Update(ctx, long), configsvc.ErrInvalid)
		wantInstances(ctx, t, st, "orders", ok)
	})

	t.Run("UpdateAfterServiceRecreated", func(t *testing.T) {
		// A registration belongs to the service it was made in: once that
		// service is deleted, its lease is over, even when a service of the
		// same name is created again.
		st, ctx := s.open(t)
		ref := configsvc.Service("orders")
		mustCreate(ctx, t, st, ref)
		inst := instance("orders", "i-1")
		l := mustRegister(ctx, t, st, inst)
		if err := st.Delete(ctx, ref); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		mustCreate(ctx, t, st, ref)
		inst.Revision, inst.Status = 1, configsvc.StatusApplied
		wantErr(t, "Lease.Update after its service was deleted and created again", l.Update(ctx, inst), configsvc.ErrNotFound)
		wantInstances(ctx, t, st, "orders")
		wantErr(t, "a second Lease.Update", l.Update(ctx, inst), configsvc.ErrNotFound)
		wantInstances(ctx, t, st, "orders")
		if err := l.Close(); err != nil {
			t.Fatalf("Lease.Close of the ended lease: %v", err)
		}
		mustRegister(ctx, t, st, inst) // a new registration in the new service
		wantInstances(ctx, t, st, "orders", inst)
	})

	t.Run("TimesInUTC", func(t *testing.T) {
		// A client may send its local time; the store keeps and returns UTC.
		st, ctx := s.open(t)
		mustCreate(ctx, t, st, configsvc.Service("orders"))
		zone := time.FixedZone("IST", 5*3600+1800)
		inst := instance("orders", "i-1")
		inst.Started, inst.Updated = inst.Started.In(zone), inst.Updated.In(zone)
		inst.AppliedAt = inst.Started.Add(time.Second).In(zone)
		l := mustRegister(ctx, t, st, inst)
		check := func(what string) {
			t.Helper()
			list, err := st.Instances(ctx, "orders")
			if err != nil || len(list) != 1 {
				t.Fatalf("%s: Instances = %v, %v", what, list, err)
			}
			got := list[0]
			if got.Started.Location() != time.UTC || got.Updated.Location() != time.UTC || got.AppliedAt.Location() != time.UTC ||
				!got.Started.Equal(inst.Started) || !got.Updated.Equal(inst.Updated) || !got.AppliedAt.Equal(inst.AppliedAt) {
				t.Fatalf("%s: started %v, updated %v, applied at %v; want %v, %v and %v in UTC", what,
					got.Started, got.Updated, got.AppliedAt, inst.Started.UTC(), inst.Updated.UTC(), inst.AppliedAt.UTC())
			}
		}
		check("after Register")
		inst.Updated = inst.Updated.Add(time.Second).In(time.FixedZone("PST", -8*3600))
		if err := l.Update(ctx, inst); err != nil {
			t.Fatal(err)
		}
		check("after Update")
	})

	t.Run("RemoveInstance", func(t *testing.T) {
		// An administrator removes a record whoever registered it; a lease
		// that is alive after all lists it again at its next Update.
		st, ctx := s.open(t)
		mustCreate(ctx, t, st, configsvc.Service("orders"))
		ch := st.WatchInstances(ctx, "orders")
		s.waitInstances(t, ch)
		a, b := instance("orders", "orders-a"), instance("orders", "orders-b")
		la := mustRegister(ctx, t, st, a)
		mustRegister(ctx, t, st, b)
		s.waitInstances(t, ch, "orders-a", "orders-b")
		if err := st.RemoveInstance(ctx, "orders", "orders-a"); err != nil {
			t.Fatalf("RemoveInstance: %v", err)
		}
		s.waitInstances(t, ch, "orders-b")
		wantInstances(ctx, t, st, "orders", b)
		wantErr(t, "RemoveInstance of a removed instance", st.RemoveInstance(ctx, "orders", "orders-a"), configsvc.ErrNotFound)
		wantErr(t, "RemoveInstance of an unknown id", st.RemoveInstance(ctx, "orders", "orders-x"), configsvc.ErrNotFound)
		wantErr(t, "RemoveInstance in a missing service", st.RemoveInstance(ctx, "nope", "orders-a"), configsvc.ErrNotFound)
		wantErr(t, "RemoveInstance of a bad id", st.RemoveInstance(ctx, "orders", "../x"), configsvc.ErrInvalid)
		wantErr(t, "RemoveInstance in a bad service name", st.RemoveInstance(ctx, "Bad_Name", "orders-a"), configsvc.ErrInvalid)
		a.Revision, a.Status = 2, configsvc.StatusApplied
		if err := la.Update(ctx, a); err != nil {
			t.Fatalf("Update after RemoveInstance: %v", err)
		}
		s.waitInstances(t, ch, "orders-a", "orders-b")
		wantInstances(ctx, t, st, "orders", a, b)
		if err := la.Close(); err != nil {
			t.Fatal(err)
		}
		s.waitInstances(t, ch, "orders-b")
	})

	t.Run("Watch", func(t *testing.T) {
		st, ctx := s.open(t)
		mustCreate(ctx, t, st, configsvc.Service("orders"))
		a := instance("orders", "a")
		mustRegister(ctx, t, st, a)
		wctx, cancel := context.WithCancel(ctx)
		ch := st.WatchInstances(wctx, "orders")
		s.waitInstances(t, ch, "a")
		lb := mustRegister(ctx, t, st, instance("orders", "b"))
		s.waitInstances(t, ch, "a", "b")
		if err := lb.Close(); err != nil {
			t.Fatal(err)
		}
		s.waitInstances(t, ch, "a")
		cancel()
		timer := time.NewTimer(s.opts.Timeout)
		defer timer.Stop()
		for {
			select {
			case _, ok := <-ch:
				if !ok {
					return
				}
			case <-timer.C:
				t.Fatalf("WatchInstances channel not closed within %v of cancel", s.opts.Timeout)
			}
		}
	})
}

// waitInstances reads instance lists until one has exactly the ids want, in
// order. Intermediate lists may be skipped (only the newest list matters).
func (s *suite) waitInstances(t *testing.T, ch <-chan configsvc.InstancesEvent, want ...string) {
	t.Helper()
	timer := time.NewTimer(s.opts.Timeout)
	defer timer.Stop()
	var last []string
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("WatchInstances closed while waiting for %v (last %v)", want, last)
			}
			if ev.Err != nil {
				continue
			}
			last = ids(ev.Instances)
			if slices.Equal(last, want) || (len(want) == 0 && len(last) == 0) {
				return
			}
		case <-timer.C:
			t.Fatalf("WatchInstances: no list %v within %v (last %v)", want, s.opts.Timeout, last)
		}
	}
}

// wantInstancesErr reads instance lists until an event with an error
// matching target (transient ErrUnavailable events are skipped), then
// expects the channel to close.
func (s *suite) wantInstancesErr(t *testing.T, ch <-chan configsvc.InstancesEvent, target error) {
	t.Helper()
	timer := time.NewTimer(s.opts.Timeout)
	defer timer.Stop()
	gotErr := false
	for {
		select {
		case ev, ok := <-ch:
			switch {
			case !ok && gotErr:
				return
			case !ok:
				t.Fatalf("WatchInstances closed without an error matching %q", target)
			case gotErr || ev.Err == nil || errors.Is(ev.Err, configsvc.ErrUnavailable):
			case errors.Is(ev.Err, target):
				gotErr = true
			default:
				t.Fatalf("WatchInstances error %v, want one matching %q", ev.Err, target)
			}
		case <-timer.C:
			t.Fatalf("WatchInstances: no error matching %q and close within %v", target, s.opts.Timeout)
		}
	}
}
