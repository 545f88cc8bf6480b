package zkstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/sluicehq/sluice/configsvc"
)

// maxAppendPrune bounds the old entries one Append deletes.
const maxAppendPrune = 500

// Records returns the store's record collections: records/{collection}/{id}
// nodes for Put/Get/Delete/List, and for Append/Scan the log
// logs/{collection}: a counter in the log node, incremented with a version
// check in the same transaction that creates the entry (so sequence
// numbers are 1, 2, 3 … without gaps, shared by every writer). A record
// collection and a log of the same name are apart, as in every store. The
// returned value is safe for concurrent use and valid until the Store is
// closed.
func (s *Store) Records() configsvc.RecordStore { return records{s} }

type records struct{ s *Store }

// counterDoc is the content of a log node.
type counterDoc struct {
	Next int64 `json:"next"` // the newest sequence number; 0 before the first Append
	// Low is the oldest entry kept: Scan reads nothing below it. Entries
	// from Pruned up to Low may still exist until later Appends delete
	// them, a bounded number each.
	Low    int64  `json:"low"`
	Pruned int64  `json:"pruned,omitempty"` // every entry below it is deleted; 0: Low (written before Pruned existed)
	Last   string `json:"last"`             // the append id of the newest entry
}

func (r records) path(collection, id string) string {
	return r.s.recordsPath(collection) + "/" + id
}

func validCollection(collection string) error {
	if err := configsvc.ValidateFileName(collection); err != nil {
		fe := err.(*configsvc.FieldError)
		return &configsvc.FieldError{Field: "collection", Value: fe.Value, Msg: fe.Msg}
	}
	return nil
}

func validRecordName(collection, id string) error {
	if err := validCollection(collection); err != nil {
		return err
	}
	if err := configsvc.ValidateFileName(id); err != nil {
		fe := err.(*configsvc.FieldError)
		return &configsvc.FieldError{Field: "id", Value: fe.Value, Msg: fe.Msg}
	}
	return nil
}

// checkRecord checks a record's collection, id and size.
func checkRecord(collection, id string, data []byte) error {
	if err := validRecordName(collection, id); err != nil {
		return err
	}
	if len(data) > configsvc.MaxRecordSize {
		return &configsvc.LimitError{What: "record", Size: int64(len(data)), Limit: configsvc.MaxRecordSize}
	}
	return nil
}

// Put creates or replaces a record. ErrTooLarge over 64 KiB; ErrInvalid
// for a bad collection or id; ErrTooMany when creating one in a full
// collection.
func (r records) Put(ctx context.Context, collection, id string, data []byte) error {
	return r.write(ctx, "put", collection, id, data, true)
}

// Get returns a record's data; ErrNotFound if absent.
func (r records) Get(ctx context.Context, collection, id string) ([]byte, error) {
	what := fmt.Sprintf("zkstore: get record %s/%s", collection, id)
	if err := validRecordName(collection, id); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	ctx, cancel := r.s.opCtx(ctx)
	defer cancel()
	data, _, err := r.s.get(ctx, r.path(collection, id))
	if err != nil {
		return nil, mapErr(what, err)
	}
	if data == nil {
		data = []byte{}
	}
	return data, nil
}

// Delete removes a record; ErrNotFound if absent.
func (r records) Delete(ctx context.Context, collection, id string) error {
	what := fmt.Sprintf("zkstore: delete record %s/%s", collection, id)
	if err := validRecordName(collection, id); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	ctx, cancel := r.s.opCtx(ctx)
	defer cancel()
	p := r.path(collection, id)
	return mapErr(what, r.s.do(ctx, func(c *zk.Conn) error { return c.Delete(p, -1) }))
}

// List returns every record of a collection, sorted by id, read with
// pipelined requests. An unknown collection is empty.
func (r records) List(ctx context.Context, collection string) ([]configsvc.Record, error) {
	what := "zkstore: list records " + collection
	if err := validCollection(collection); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	s := r.s
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	ids, err := s.children(ctx, s.recordsPath(collection))
	if errors.Is(err, zk.ErrNoNode) {
		return []configsvc.Record{}, nil
	}
	if err != nil {
		return nil, mapErr(what, err)
	}
	sort.Strings(ids)
	paths := make([]string, len(ids))
	for i, id := range ids {
		paths[i] = r.path(collection, id)
	}
	res, err := s.getMany(ctx, paths)
	if err != nil {
		return nil, mapErr(what, err)
	}
	out := make([]configsvc.Record, 0, len(ids))
	for i, g := range res {
		if g.err != nil {
			continue // deleted meanwhile
		}
		if g.data == nil {
			g.data = []byte{}
		}
		out = append(out, configsvc.Record{ID: ids[i], Data: g.data})
	}
	return out, nil
}

func seqID(n int64) string { return fmt.Sprintf("%019d", n) }

// entryMagic starts every log entry the store writes, followed by the
// entry's append id (appendIDLen hex digits) and then the caller's bytes.
// The id lets an Append whose reply was lost tell its own entry from
// someone else's identical one. Entries written before ids existed (in
// logs kept under records/) are the caller's bytes alone.
const (
	entryMagic  = "\x00sluice-log-entry\x00"
	appendIDLen = 24
)

func encodeEntry(aid string, data []byte) []byte {
	out := make([]byte, 0, len(entryMagic)+len(aid)+len(data))
	out = append(out, entryMagic...)
	out = append(out, aid...)
	return append(out, data...)
}

// decodeEntry returns an entry's append id ("" for an entry without one)
// and the caller's bytes.
func decodeEntry(raw []byte) (aid string, data []byte) {
	if len(raw) >= len(entryMagic)+appendIDLen && string(raw[:len(entryMagic)]) == entryMagic {
		return string(raw[len(entryMagic) : len(entryMagic)+appendIDLen]), raw[len(entryMagic)+appendIDLen:]
	}
	return "", raw
}

// logPath returns the node of collection's log: logs/{collection}, or for
// a log written before logs/ existed (its counter is in the records node)
// records/{collection}, where that log then stays. The answer is kept.
func (r records) logPath(ctx context.Context, collection string) (string, error) {
	s := r.s
	if p, ok := s.logHomes.Load(collection); ok {
		return p.(string), nil
	}
	home := s.logsPath(collection)
	ok, err := call(ctx, s, func(c *zk.Conn) (bool, error) { ok, _, err := c.Exists(home); return ok, err })
	if err != nil {
		return "", err
	}
	if !ok {
		raw, _, err := s.get(ctx, s.recordsPath(collection))
		switch {
		case err == nil && isCounter(raw):
			home = s.recordsPath(collection)
		case err != nil && !errors.Is(err, zk.ErrNoNode):
			return "", err
		}
	}
	s.logHomes.Store(collection, home)
	return home, nil
}

func isCounter(raw []byte) bool {
	if len(raw) == 0 {
		return false
	}
	var c counterDoc
	return json.Unmarshal(raw, &c) == nil && c.Next > 0
}

// createLog creates the log node p (and logs/ when missing).
func (s *Store) createLog(ctx context.Context, p string) error {
	err := s.createIfMissing(ctx, p, s.acl)
	if errors.Is(err, zk.ErrNoNode) {
		if err := s.createIfMissing(ctx, path.Dir(p), s.acl); err != nil {
			return err
		}
		err = s.createIfMissing(ctx, p, s.acl)
	}
	return err
}

// Append adds data under the next sequence number and returns it. Only the
// newest keep entries are retained (0 means 100000): entries below them
// are hidden from Scan at once, in the same transaction, and deleted at
// most 500 per call. Each entry carries a random append id; when the
// connection fails after the transaction was sent, Append re-reads the
// counter and reports success only if the entry with its own id landed, so
// a retry never appends twice and never takes another writer's identical
// entry for its own.
func (r records) Append(ctx context.Context, collection string, data []byte, keep int) (int64, error) {
	what := "zkstore: append to " + collection
	if err := validCollection(collection); err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	if len(data) > configsvc.MaxRecordSize {
		return 0, fmt.Errorf("%s: %w", what, &configsvc.LimitError{What: "record", Size: int64(len(data)), Limit: configsvc.MaxRecordSize})
	}
	if keep < 0 {
		return 0, fmt.Errorf("%s: %w", what, &configsvc.FieldError{Field: "keep", Value: strconv.Itoa(keep), Msg: "must be 0 (default) or more"})
	}
	if keep == 0 {
		keep = configsvc.DefaultAppendKeep
	}
	s := r.s
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	coll, err := r.logPath(ctx, collection)
	if err != nil {
		return 0, mapErr(what, err)
	}
	entry := func(n int64) string { return coll + "/" + seqID(n) }
	var idb [appendIDLen / 2]byte
	_, _ = rand.Read(idb[:])
	aid := hex.EncodeToString(idb[:])
	raw := encodeEntry(aid, data)
	var tried int64 // the sequence number of an attempt whose outcome is unknown
	verify := false // check that old entries exist before deleting them
	for attempt := 0; attempt < 100; attempt++ {
		doc, stat, err := s.get(ctx, coll)
		if errors.Is(err, zk.ErrNoNode) {
			if err := s.createLog(ctx, coll); err != nil {
				return 0, mapErr(what, err)
			}
			continue
		}
		if err != nil {
			return 0, mapErr(what, err)
		}
		c := counterDoc{Low: 1}
		if len(doc) > 0 {
			d, err := decode[counterDoc]("counter", doc)
			if err != nil {
				return 0, mapErr(what, err)
			}
			c = *d
		}
		c.Low = max(c.Low, 1)
		if c.Pruned == 0 {
			c.Pruned = c.Low
		}
		if tried > 0 && c.Next >= tried {
			if c.Last == aid {
				return c.Next, nil
			}
			got, _, err := s.get(ctx, entry(tried))
			if id, _ := decodeEntry(got); err == nil && id == aid {
				return tried, nil // ours, with later appends on top
			}
			tried = 0
		}
		n := c.Next + 1
		low := max(c.Low, n-int64(keep)+1)
		ops := []any{nil, &zk.CreateRequest{Path: entry(n), Data: raw, Acl: s.acl}}
		pruned := c.Pruned
		for ; pruned < low && pruned-c.Pruned < maxAppendPrune; pruned++ {
			p := entry(pruned)
			if verify {
				ok, err := call(ctx, s, func(c *zk.Conn) (bool, error) { ok, _, err := c.Exists(p); return ok, err })
				if err != nil {
					return 0, mapErr(what, err)
				}
				if !ok {
					continue
				}
			}
			ops = append(ops, &zk.DeleteRequest{Path: p, Version: -1})
		}
		ops[0] = &zk.SetDataRequest{Path: coll, Data: mustJSON(counterDoc{Next: n, Low: low, Pruned: pruned, Last: aid}), Version: stat.Version}
		_, err = s.multi(ctx, ops...)
		switch {
		case err == nil:
			return n, nil
		case errors.Is(err, zk.ErrBadVersion), errors.Is(err, zk.ErrNodeExists):
			continue // another writer appended: take the next number
		case errors.Is(err, zk.ErrNoNode):
			verify = true // an old entry was deleted by hand
			continue
		case uncertain(err) && ctx.Err() == nil:
			tried = n
			_ = s.bg.Sleep(ctx, 50*time.Millisecond)
			continue
		default:
			return 0, mapErr(what, err)
		}
	}
	return 0, fmt.Errorf("%s: too much contention: %w", what, configsvc.ErrConflict)
}

// Scan returns up to limit entries (0 means 100, at most 1000) with
// sequence < before (0 = newest), newest first, down to the oldest kept;
// ID is the decimal sequence number. An unknown collection is empty.
func (r records) Scan(ctx context.Context, collection string, before int64, limit int) ([]configsvc.Record, error) {
	what := "zkstore: scan " + collection
	if err := validCollection(collection); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if limit < 0 || limit > configsvc.MaxPageSize {
		return nil, fmt.Errorf("%s: %w", what, &configsvc.FieldError{Field: "limit", Value: strconv.Itoa(limit), Msg: "must be 1 to 1000 (0 means 100)"})
	}
	if before < 0 {
		return nil, fmt.Errorf("%s: %w", what, &configsvc.FieldError{Field: "before", Value: strconv.FormatInt(before, 10), Msg: "must be 0 (newest) or more"})
	}
	if limit == 0 {
		limit = configsvc.DefaultScanPage
	}
	s := r.s
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	coll, err := r.logPath(ctx, collection)
	if err != nil {
		return nil, mapErr(what, err)
	}
	raw, _, err := s.get(ctx, coll)
	if errors.Is(err, zk.ErrNoNode) || (err == nil && len(raw) == 0) {
		return []configsvc.Record{}, nil
	}
	if err != nil {
		return nil, mapErr(what, err)
	}
	c, err := decode[counterDoc]("counter", raw)
	if err != nil {
		return nil, mapErr(what, err)
	}
	top := c.Next
	if before > 0 && before-1 < top {
		top = before - 1
	}
	out := []configsvc.Record{}
	for n := top; n >= max(c.Low, 1) && len(out) < limit; {
		var nums []int64
		var paths []string
		for ; n >= max(c.Low, 1) && len(nums) < limit-len(out); n-- {
			nums = append(nums, n)
			paths = append(paths, coll+"/"+seqID(n))
		}
		res, err := s.getMany(ctx, paths)
		if err != nil {
			return nil, mapErr(what, err)
		}
		for i, g := range res {
			if g.err != nil {
				continue // pruned or deleted
			}
			_, data := decodeEntry(g.data)
			if data == nil {
				data = []byte{}
			}
			out = append(out, configsvc.Record{ID: strconv.FormatInt(nums[i], 10), Data: data})
		}
	}
	return out, nil
}

// Create creates a record only if none has that id (a ZooKeeper create):
// ErrConflict if it exists; ErrTooMany when the collection holds
// MaxRecordsPerCollection records; ErrTooLarge over 64 KiB. A create whose
// reply was lost is checked by reading the record back: when it holds data
// it is taken as this call's (callers put a unique value in what they
// create, e.g. a claim with a random nonce, when that matters); when it
// cannot be read back in time, ErrOutcomeUnknown.
func (r records) Create(ctx context.Context, collection, id string, data []byte) error {
	return r.write(ctx, "create", collection, id, data, false)
}

// write is Put (replace) and Create: a set, falling back to a create (with
// the collection node created when missing), or a create only.
func (r records) write(ctx context.Context, verb, collection, id string, data []byte, replace bool) error {
	what := fmt.Sprintf("zkstore: %s record %s/%s", verb, collection, id)
	if err := checkRecord(collection, id, data); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	s := r.s
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	p := r.path(collection, id)
	unsure := false // an earlier create may have landed
	for attempt := 0; attempt < 10; attempt++ {
		if replace {
			err := s.do(ctx, func(c *zk.Conn) error { _, err := c.Set(p, data, -1); return err })
			if !errors.Is(err, zk.ErrNoNode) {
				return mapErr(what, err)
			}
		}
		if err := r.checkRoom(ctx, collection); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		err := s.do(ctx, func(c *zk.Conn) error { _, err := c.Create(p, data, 0, s.acl); return err })
		switch {
		case err == nil:
			return nil
		case errors.Is(err, zk.ErrNoNode):
			if err := s.createIfMissing(ctx, s.recordsPath(collection), s.acl); err != nil {
				return mapErr(what, err)
			}
		case errors.Is(err, zk.ErrNodeExists) && replace:
			// Created concurrently: set it on the next round.
		case errors.Is(err, zk.ErrNodeExists):
			if unsure {
				got, _, err := s.get(ctx, p)
				if err == nil && bytes.Equal(got, data) {
					return nil // our own create, whose reply was lost
				}
			}
			return fmt.Errorf("%s: exists: %w", what, configsvc.ErrConflict)
		case !replace && uncertain(err) && ctx.Err() == nil:
			unsure = true
			_ = s.bg.Sleep(ctx, 50*time.Millisecond)
		case !replace && (unsure || uncertain(err)):
			return fmt.Errorf("%s: it may have been created (%v): %w", what, mapErr("", err), configsvc.ErrOutcomeUnknown)
		default:
			return mapErr(what, err)
		}
	}
	if replace {
		return fmt.Errorf("%s: record kept changing: %w", what, configsvc.ErrConflict)
	}
	return fmt.Errorf("%s: could not create it: %w", what, configsvc.ErrUnavailable)
}

// checkRoom refuses a new record in a collection that holds
// MaxRecordsPerCollection records, counted from the collection node's
// stat just before (so writers creating at the same moment may pass the
// limit by their number; listings stay far below a packet all the same).
func (r records) checkRoom(ctx context.Context, collection string) error {
	st, err := call(ctx, r.s, func(c *zk.Conn) (*zk.Stat, error) {
		_, st, err := c.Exists(r.s.recordsPath(collection))
		return st, err
	})
	if err != nil {
		return mapErr("count records", err)
	}
	if st != nil && int(st.NumChildren) >= r.s.cfg.Limits.RecordsPerCollection {
		return &configsvc.CountError{What: "records in collection " + collection, Count: int64(st.NumChildren), Limit: int64(r.s.cfg.Limits.RecordsPerCollection)}
	}
	return nil
}
