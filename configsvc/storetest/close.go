package storetest

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/configsvc"
)

// testClose closes a store in use: its watches end, every call fails with
// ErrClosed, and (unless SkipLeakCheck) no goroutine it started remains.
func (s *suite) testClose(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	st, ctx := s.open(t)
	ref := configsvc.Service("orders")
	mustCreate(ctx, t, st, ref)
	mustPublish(ctx, t, st, ref, 0, put("a.txt", "1"))
	watch := st.Watch(ctx, ref, 0)
	s.wantRevisions(t, watch, 1, 1, nil)
	instances := st.WatchInstances(ctx, "orders")
	lease, err := st.Register(ctx, instance("orders", "i-1"))
	if err != nil {
		t.Fatal(err)
	}

	closed := make(chan error, 1)
	go func() { closed <- st.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(s.opts.Timeout):
		t.Fatalf("Close did not return within %v", s.opts.Timeout)
	}

	t.Run("WatchesEnd", func(t *testing.T) {
		s.wantClosed(t, watch)
		timer := time.NewTimer(s.opts.Timeout)
		defer timer.Stop()
		for {
			select {
			case _, ok := <-instances:
				if !ok {
					return
				}
			case <-timer.C:
				t.Fatalf("WatchInstances channel open %v after Close", s.opts.Timeout)
			}
		}
	})

	t.Run("CallsFailClosed", func(t *testing.T) {
		rs := st.Records()
		for _, tc := range []struct {
			name string
			call func(ctx context.Context) error
		}{
			{"Create", func(ctx context.Context) error { return st.Create(ctx, configsvc.Service("new")) }},
			{"Delete", func(ctx context.Context) error { return st.Delete(ctx, ref) }},
			{"List", func(ctx context.Context) error { _, err := st.List(ctx, configsvc.KindService); return err }},
			{"Head", func(ctx context.Context) error { _, err := st.Head(ctx, ref); return err }},
			{"Publish", func(ctx context.Context) error {
				_, err := st.Publish(ctx, ref, configsvc.Changeset{Base: 1, Changes: []configsvc.Change{put("a.txt", "2")}})
				return err
			}},
			{"File", func(ctx context.Context) error { _, _, err := st.File(ctx, ref, "a.txt", 0); return err }},
			{"Snapshot", func(ctx context.Context) error { _, err := st.Snapshot(ctx, ref, 0); return err }},
			{"Revisions", func(ctx context.Context) error { _, err := st.Revisions(ctx, ref, 0, 0); return err }},
			{"Revision", func(ctx context.Context) error { _, err := st.Revision(ctx, ref, 1); return err }},
			{"CreateGray", func(ctx context.Context) error {
				_, err := st.CreateGray(ctx, ref, configsvc.Gray{BaseRevision: 1, Changes: []configsvc.Change{put("a.txt", "g")}})
				return err
			}},
			{"UpdateGray", func(ctx context.Context) error {
				_, err := st.UpdateGray(ctx, ref, configsvc.NewGrayID(), 1, func(*configsvc.Gray) error { return nil })
				return err
			}},
			{"EndGray", func(ctx context.Context) error {
				_, _, err := st.EndGray(ctx, ref, configsvc.NewGrayID(), 1, configsvc.GrayEnd{State: configsvc.GrayAbandoned})
				return err
			}},
			{"Gray", func(ctx context.Context) error { _, err := st.Gray(ctx, ref, configsvc.NewGrayID()); return err }},
			{"Grays", func(ctx context.Context) error { _, err := st.Grays(ctx, ref); return err }},
			{"Link", func(ctx context.Context) error { return st.Link(ctx, "orders", "g") }},
			{"Unlink", func(ctx context.Context) error { return st.Unlink(ctx, "orders", "g") }},
			{"Users", func(ctx context.Context) error { _, err := st.Users(ctx, "g"); return err }},
			{"Register", func(ctx context.Context) error { _, err := st.Register(ctx, instance("orders", "i-2")); return err }},
			{"Instances", func(ctx context.Context) error { _, err := st.Instances(ctx, "orders"); return err }},
			{"Ping", func(ctx context.Context) error { return st.Ping(ctx) }},
			{"RecordsPut", func(ctx context.Context) error { return rs.Put(ctx, "tokens", "a", []byte("x")) }},
			{"RecordsGet", func(ctx context.Context) error { _, err := rs.Get(ctx, "tokens", "a"); return err }},
			{"RecordsAppend", func(ctx context.Context) error { _, err := rs.Append(ctx, "audit", []byte("x"), 0); return err }},
			{"RecordsScan", func(ctx context.Context) error { _, err := rs.Scan(ctx, "audit", 0, 10); return err }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				cctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
				defer cancel()
				wantErr(t, tc.name+" after Close", tc.call(cctx), configsvc.ErrClosed)
			})
		}
		t.Run("Watch", func(t *testing.T) {
			s.wantClosed(t, st.Watch(ctx, ref, 0))
		})
	})

	t.Run("LeaseCloseAfterStoreClose", func(t *testing.T) {
		done := make(chan struct{})
		go func() {
			lease.Close()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(s.opts.Timeout):
			t.Fatalf("Lease.Close after the store closed did not return within %v", s.opts.Timeout)
		}
	})

	t.Run("NoGoroutineLeft", func(t *testing.T) {
		if s.opts.SkipLeakCheck {
			t.Skip("storetest: Options.SkipLeakCheck set")
		}
		goleak.VerifyNone(t, ignore)
	})
}
