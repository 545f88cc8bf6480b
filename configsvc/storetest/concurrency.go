package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/configsvc"
)

// testConcurrency races publishers against each other: per base revision
// exactly one wins and every other gets ErrConflict, revision numbers have no
// gaps or duplicates, and the head holds the last winner's content.
func (s *suite) testConcurrency(t *testing.T) {
	t.Run("SameBase", func(t *testing.T) {
		const writers, rounds = 50, 5
		st, ctx := s.open(t)
		ref := configsvc.Service("orders")
		mustCreate(ctx, t, st, ref)
		winners := make([]string, rounds+1)
		for round := 1; round <= rounds; round++ {
			base := int64(round - 1)
			start := make(chan struct{})
			type result struct {
				content string
				rev     configsvc.Revision
				err     error
			}
			results := make([]result, writers)
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					content := fmt.Sprintf("round %d writer %d", round, w)
					<-start
					rev, err := st.Publish(ctx, ref, configsvc.Changeset{
						Base: base, Author: fmt.Sprint("writer-", w), Message: content,
						Changes: []configsvc.Change{put("a.txt", content)},
					})
					results[w] = result{content, rev, err}
				})
			}
			close(start)
			wg.Wait()
			won := 0
			for w, r := range results {
				switch {
				case r.err == nil:
					won++
					winners[round] = r.content
					if r.rev.Number != base+1 {
						t.Fatalf("round %d: writer %d won with revision %d, want %d", round, w, r.rev.Number, base+1)
					}
				case !errors.Is(r.err, configsvc.ErrConflict):
					t.Fatalf("round %d: writer %d lost with %v, want an error matching %q", round, w, r.err, configsvc.ErrConflict)
				}
			}
			if won != 1 {
				t.Fatalf("round %d: %d publishes from base %d succeeded, want exactly 1", round, won, base)
			}
		}

		h := mustHead(ctx, t, st, ref)
		if h.Revision != rounds {
			t.Fatalf("Head.Revision = %d after %d rounds, want %d", h.Revision, rounds, rounds)
		}
		wantSnapshot(ctx, t, st, ref, 0, files("a.txt", winners[rounds]))
		revs, err := st.Revisions(ctx, ref, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(revs) != rounds {
			t.Fatalf("Revisions lists %d revisions, want %d", len(revs), rounds)
		}
		for i, r := range revs {
			n := int64(rounds - i)
			if r.Number != n {
				t.Fatalf("Revisions[%d] = %d, want %d: gap or duplicate", i, r.Number, n)
			}
			if r.Message != winners[n] {
				t.Fatalf("revision %d message %q, want the winner's %q", n, r.Message, winners[n])
			}
			wantSnapshot(ctx, t, st, ref, n, files("a.txt", winners[n]))
		}
	})

	t.Run("LinkRacesPublish", func(t *testing.T) {
		// A link changes the head a publish builds on: both succeed, and a
		// watcher sees every revision and the final link set.
		const rounds = 5
		st, ctx := s.open(t)
		ref := configsvc.Service("orders")
		mustCreate(ctx, t, st, ref)
		var groups []string
		for i := range rounds {
			g := fmt.Sprint("group-", i)
			groups = append(groups, g)
			mustCreate(ctx, t, st, configsvc.Group(g))
		}
		ch := st.Watch(ctx, ref, 0)
		for round := range rounds {
			start := make(chan struct{})
			var linkErr, pubErr error
			var wg sync.WaitGroup
			wg.Go(func() { <-start; linkErr = st.Link(ctx, "orders", groups[round]) })
			wg.Go(func() {
				<-start
				_, pubErr = st.Publish(ctx, ref, configsvc.Changeset{Base: int64(round), Author: "tester",
					Message: fmt.Sprintf("revision %d", round+1), Changes: []configsvc.Change{put("a.txt", fmt.Sprint(round+1))}})
			})
			close(start)
			wg.Wait()
			if linkErr != nil || pubErr != nil {
				t.Fatalf("round %d: Link = %v, Publish = %v; want both to succeed", round, linkErr, pubErr)
			}
		}
		h := mustHead(ctx, t, st, ref)
		if h.Revision != rounds || !slices.Equal(h.Links, groups) {
			t.Fatalf("head after the races: revision %d, links %v; want %d and %v", h.Revision, h.Links, rounds, groups)
		}
		wantSnapshot(ctx, t, st, ref, 0, files("a.txt", fmt.Sprint(rounds)))
		for _, g := range groups {
			users, err := st.Users(ctx, g)
			if err != nil || !slices.Equal(users, []string{"orders"}) {
				t.Fatalf("Users(%s) = %v, %v; want [orders]", g, users, err)
			}
		}
		s.wantRevisions(t, ch, 1, rounds, nil)
	})

	t.Run("ParallelRefs", func(t *testing.T) {
		const refs, each = 5, 8
		st, ctx := s.open(t)
		for i := range refs {
			mustCreate(ctx, t, st, configsvc.Service(fmt.Sprint("svc-", i)))
		}
		errs := make(chan error, refs)
		var wg sync.WaitGroup
		for i := range refs {
			wg.Go(func() {
				ref := configsvc.Service(fmt.Sprint("svc-", i))
				for n := range int64(each) {
					_, err := st.Publish(ctx, ref, configsvc.Changeset{Base: n, Changes: []configsvc.Change{put("a.txt", fmt.Sprint(n+1))}})
					if err != nil {
						errs <- fmt.Errorf("publish %s base %d: %w", ref, n, err)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for i := range refs {
			ref := configsvc.Service(fmt.Sprint("svc-", i))
			if h := mustHead(ctx, t, st, ref); h.Revision != each {
				t.Fatalf("Head(%s).Revision = %d, want %d", ref, h.Revision, each)
			}
			wantSnapshot(ctx, t, st, ref, 0, files("a.txt", fmt.Sprint(each)))
		}
	})
}
