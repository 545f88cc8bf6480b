package storetest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/configsvc"
)

func (s *suite) testRecords(t *testing.T) {
	t.Run("PutGetDeleteList", func(t *testing.T) {
		st, ctx := s.open(t)
		rs := st.Records()
		_, err := rs.Get(ctx, "tokens", "abc")
		wantErr(t, "Get of a missing record", err, configsvc.ErrNotFound)
		wantErr(t, "Delete of a missing record", rs.Delete(ctx, "tokens", "abc"), configsvc.ErrNotFound)
		if list, err := rs.List(ctx, "tokens"); err != nil || len(list) != 0 {
			t.Fatalf("List of an empty collection = %v, %v", list, err)
		}
		for _, id := range []string{"c3", "a1", "b2"} {
			if err := rs.Put(ctx, "tokens", id, []byte(`{"id":"`+id+`"}`)); err != nil {
				t.Fatalf("Put(%s): %v", id, err)
			}
		}
		if err := rs.Put(ctx, "pins", "a1", []byte("pin")); err != nil {
			t.Fatal(err)
		}
		if err := rs.Put(ctx, "tokens", "b2", []byte("replaced")); err != nil {
			t.Fatal(err)
		}
		got, err := rs.Get(ctx, "tokens", "b2")
		if err != nil || string(got) != "replaced" {
			t.Fatalf("Get(b2) = %q, %v; want replaced", got, err)
		}
		list, err := rs.List(ctx, "tokens")
		if err != nil {
			t.Fatal(err)
		}
		want := []configsvc.Record{{ID: "a1", Data: []byte(`{"id":"a1"}`)}, {ID: "b2", Data: []byte("replaced")}, {ID: "c3", Data: []byte(`{"id":"c3"}`)}}
		if !slices.EqualFunc(list, want, func(a, b configsvc.Record) bool { return a.ID == b.ID && bytes.Equal(a.Data, b.Data) }) {
			t.Fatalf("List(tokens) = %q, want %q", list, want)
		}
		if err := rs.Delete(ctx, "tokens", "a1"); err != nil {
			t.Fatal(err)
		}
		_, err = rs.Get(ctx, "tokens", "a1")
		wantErr(t, "Get after Delete", err, configsvc.ErrNotFound)
		if got, err := rs.Get(ctx, "pins", "a1"); err != nil || string(got) != "pin" {
			t.Fatalf("Get(pins/a1) = %q, %v: collections must be independent", got, err)
		}
	})

	t.Run("Refused", func(t *testing.T) {
		st, ctx := s.open(t)
		rs := st.Records()
		for _, tc := range []struct {
			name       string
			collection string
			id         string
			data       []byte
			target     error
		}{
			{"BadCollection", "../x", "a", []byte("x"), configsvc.ErrInvalid},
			{"BadID", "tokens", "a/b", []byte("x"), configsvc.ErrInvalid},
			{"EmptyID", "tokens", "", []byte("x"), configsvc.ErrInvalid},
			{"TooLarge", "tokens", "big", bytes.Repeat([]byte("x"), configsvc.MaxRecordSize+1), configsvc.ErrTooLarge},
		} {
			t.Run(tc.name, func(t *testing.T) {
				wantErr(t, "Put", rs.Put(ctx, tc.collection, tc.id, tc.data), tc.target)
			})
		}
		if list, err := rs.List(ctx, "tokens"); err != nil || len(list) != 0 {
			t.Fatalf("List after refused puts = %v, %v", list, err)
		}
		if err := rs.Put(ctx, "tokens", "max", bytes.Repeat([]byte("x"), configsvc.MaxRecordSize)); err != nil {
			t.Fatalf("Put of exactly 64 KiB: %v", err)
		}
	})

	t.Run("AppendScan", func(t *testing.T) {
		st, ctx := s.open(t)
		rs := st.Records()
		if list, err := rs.Scan(ctx, "audit", 0, 10); err != nil || len(list) != 0 {
			t.Fatalf("Scan of an empty collection = %v, %v", list, err)
		}
		for i := int64(1); i <= 7; i++ {
			seq, err := rs.Append(ctx, "audit", []byte(fmt.Sprint("entry ", i)), 0)
			if err != nil || seq != i {
				t.Fatalf("Append #%d = %d, %v; want sequence %d", i, seq, err, i)
			}
		}
		for _, tc := range []struct {
			name   string
			before int64
			limit  int
			want   []int64
		}{
			{"newest", 0, 3, []int64{7, 6, 5}},
			{"before", 5, 3, []int64{4, 3, 2}},
			{"tail", 3, 10, []int64{2, 1}},
			{"all", 0, 100, []int64{7, 6, 5, 4, 3, 2, 1}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				list, err := rs.Scan(ctx, "audit", tc.before, tc.limit)
				if err != nil {
					t.Fatal(err)
				}
				got := make([]int64, len(list))
				for i, r := range list {
					n, err := strconv.ParseInt(r.ID, 10, 64)
					if err != nil {
						t.Fatalf("Scan record id %q is not a decimal sequence number", r.ID)
					}
					if string(r.Data) != fmt.Sprint("entry ", n) {
						t.Fatalf("Scan record %d = %q", n, r.Data)
					}
					got[i] = n
				}
				if !slices.Equal(got, tc.want) {
					t.Fatalf("Scan(before %d, limit %d) = %v, want %v", tc.before, tc.limit, got, tc.want)
				}
			})
		}
	})

	t.Run("ScanLimitOutOfRange", func(t *testing.T) {
		st, ctx := s.open(t)
		rs := st.Records()
		if _, err := rs.Append(ctx, "audit", []byte("x"), 0); err != nil {
			t.Fatal(err)
		}
		for _, limit := range []int{-1, 1001} {
			_, err := rs.Scan(ctx, "audit", 0, limit)
			wantErr(t, fmt.Sprintf("Scan(limit %d)", limit), err, configsvc.ErrInvalid)
		}
	})

	t.Run("AppendKeep", func(t *testing.T) {
		st, ctx := s.open(t)
		rs := st.Records()
		const keep = 4
		for i := int64(1); i <= 10; i++ {
			if _, err := rs.Append(ctx, "audit", []byte(fmt.Sprint(i)), keep); err != nil {
				t.Fatal(err)
			}
		}
		list, err := rs.Scan(ctx, "audit", 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range list {
			got = append(got, r.ID)
		}
		if !slices.Equal(got, []string{"10", "9", "8", "7"}) {
			t.Fatalf("after 10 appends keeping %d, Scan = %v, want [10 9 8 7]", keep, got)
		}
		seq, err := rs.Append(ctx, "audit", []byte("11"), keep)
		if err != nil || seq != 11 {
			t.Fatalf("Append after pruning = %d, %v; want 11 (sequences never reused)", seq, err)
		}
	})

	t.Run("RecordsAndLogsApart", func(t *testing.T) {
		// A record collection and an append-only log of the same name are
		// two things: neither sees the other's entries.
		st, ctx := s.open(t)
		rs := st.Records()
		const name = "shared"
		seqLike := "0000000000000000001" // what a log entry's id could look like
		if err := rs.Put(ctx, name, seqLike, []byte("record")); err != nil {
			t.Fatal(err)
		}
		if err := rs.Put(ctx, name, "plain", []byte("record 2")); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 3; i++ {
			if n, err := rs.Append(ctx, name, []byte(fmt.Sprint("entry ", i)), 0); err != nil || n != int64(i) {
				t.Fatalf("Append #%d = %d, %v; want sequence %d (records do not take log numbers)", i, n, err, i)
			}
		}
		list, err := rs.List(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range list {
			got = append(got, r.ID+"="+string(r.Data))
		}
		if want := []string{seqLike + "=record", "plain=record 2"}; !slices.Equal(got, want) {
			t.Fatalf("List(%s) = %v, want only the records %v", name, got, want)
		}
		entries, err := rs.Scan(ctx, name, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		for _, r := range entries {
			got = append(got, r.ID+"="+string(r.Data))
		}
		if want := []string{"3=entry 3", "2=entry 2", "1=entry 1"}; !slices.Equal(got, want) {
			t.Fatalf("Scan(%s) = %v, want only the log %v", name, got, want)
		}
		if err := rs.Delete(ctx, name, seqLike); err != nil {
			t.Fatal(err)
		}
		if entries, err := rs.Scan(ctx, name, 0, 100); err != nil || len(entries) != 3 {
			t.Fatalf("Scan after deleting a record = %d entries, %v; want 3", len(entries), err)
		}
	})

	t.Run("KeepLowered", func(t *testing.T) {
		// Lowering keep takes effect at the next Append, however many
		// entries it leaves behind: a Scan never returns more than the
		// newest keep.
		st, ctx := s.open(t)
		rs := st.Records()
		const before, keep = 600, 10
		for i := 1; i <= before; i++ {
			if _, err := rs.Append(ctx, "audit", []byte(fmt.Sprint(i)), 0); err != nil {
				t.Fatal(err)
			}
		}
		for round := 1; round <= 3; round++ {
			n, err := rs.Append(ctx, "audit", []byte(fmt.Sprint(before+round)), keep)
			if err != nil {
				t.Fatal(err)
			}
			list, err := rs.Scan(ctx, "audit", 0, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if len(list) != keep || list[0].ID != fmt.Sprint(n) || list[keep-1].ID != fmt.Sprint(n-keep+1) {
				var ids []string
				for _, r := range list {
					ids = append(ids, r.ID)
				}
				if len(ids) > 12 {
					ids = append(ids[:12], "…")
				}
				t.Fatalf("after append %d with keep %d: Scan returned %d entries %v; want %d..%d", n, keep, len(list), ids, n, n-keep+1)
			}
			if older, err := rs.Scan(ctx, "audit", n-keep+1, 1000); err != nil || len(older) != 0 {
				t.Fatalf("Scan below the kept entries = %d entries, %v; want none", len(older), err)
			}
		}
	})

	t.Run("ConcurrentAppend", func(t *testing.T) {
		st, ctx := s.open(t)
		appendConcurrently(ctx, t, []configsvc.RecordStore{st.Records()}, 10, 5, func(w, i int) []byte {
			return []byte(fmt.Sprintf("w%d-%d", w, i))
		})
	})
}

// appendConcurrently runs writers goroutines, writer w appending each
// entries data(w, i) to "audit" through stores[w%len(stores)], and fails
// unless the sequence numbers handed out are 1..writers*each, each once.
func appendConcurrently(ctx context.Context, t *testing.T, stores []configsvc.RecordStore, writers, each int, data func(w, i int) []byte) {
	t.Helper()
	var (
		mu   sync.Mutex
		seqs []int64
		wg   sync.WaitGroup
	)
	errs := make(chan error, writers*each)
	for w := range writers {
		rs := stores[w%len(stores)]
		wg.Go(func() {
			for i := range each {
				seq, err := rs.Append(ctx, "audit", data(w, i), 0)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				seqs = append(seqs, seq)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Append: %v", err)
	}
	slices.Sort(seqs)
	for i, seq := range seqs {
		if seq != int64(i+1) {
			t.Fatalf("concurrent appends got sequences %v, want 1..%d each once", seqs, writers*each)
		}
	}
}
