package boltstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/lifecycle"
)

// Options configures Open. The zero value is a working default.
type Options struct {
	// Retention is how many revisions of each service and group are kept;
	// older ones are compacted as new ones are published (reads refuse them
	// at once) and dropped from the file in batches of Retention/8 (1 to
	// 16). 0 means configsvc.DefaultRetention (500); at most
	// configsvc.MaxRetention.
	Retention int
	// LockTimeout bounds the wait for the file lock when another process
	// holds the file; Open then fails with configsvc.ErrLocked. 0 means 1s.
	LockTimeout time.Duration
	// Limits bounds the services, links, instances and records the store
	// holds; the zero value of each field is its configsvc constant, which
	// is also the largest allowed (see configsvc.Limits).
	Limits configsvc.Limits
	// Logger receives operational messages. nil discards them.
	Logger *slog.Logger
	// Now is the clock revision times come from. nil means time.Now.
	Now func() time.Time
}

// Store is a configsvc.Store on one bbolt file. It is safe for concurrent
// use. Close it to release the file lock; Close ends every watch and lease
// and waits for the goroutines the store started.
//
// Every call checks its ctx before it starts; a bbolt transaction, once
// begun, runs to completion (they take microseconds to milliseconds, the
// latter for a publish's fsync). Writes are serialised by bbolt.
type Store struct {
	db        *bolt.DB
	path      string
	retention int
	limits    configsvc.Limits
	log       *slog.Logger
	now       func() time.Time

	bg lifecycle.Group // watchers; stopped by Close

	heads *headMemo // decoded heads, for publishes

	mu        sync.Mutex
	signals   map[string]chan struct{} // per ref key: closed and removed on change
	instances map[string]map[string]liveInstance
	closeOnce sync.Once
}

var _ configsvc.Store = (*Store)(nil)

// Bucket and key names.
var (
	bucketServices = []byte("services")
	bucketGroups   = []byte("groups")
	bucketRecords  = []byte("records")
	bucketLogs     = []byte("logs")
	bucketMeta     = []byte("meta")

	keyHead  = []byte("head")
	keyRevs  = []byte("revs")
	keyMans  = []byte("mans")  // format 1 only: manifests of revisions published then
	keyBlobs = []byte("blobs") // format 1 only: contents written then
	keyLinks = []byte("links")
	keyUsers = []byte("users")

	keyFormat = []byte("format")
)

// formatVersion is stored in meta/format; Open refuses files of another
// version rather than misreading them. Version 1 kept each revision's
// manifest and file contents in buckets of their own (mans, blobs);
// version 2 keeps them beside the revision record in revs (manKey,
// blobKey), so that a publish dirties the end of one tree instead of three.
// Open upgrades a version 1 file to 2 in place: what it holds stays where
// it is and is read there, so nothing is rewritten.
const formatVersion = "2"

// Open opens (creating when missing, with parent directories 0700 and the
// file 0600) the bbolt file at path. It fails with an error wrapping
// configsvc.ErrLocked when another process holds the file for longer than
// opts.LockTimeout. Instances registered by a previous process are gone: they
// are held in memory only.
func Open(path string, opts Options) (*Store, error) {
	if opts.Retention < 0 || opts.Retention > configsvc.MaxRetention {
		return nil, fmt.Errorf("boltstore: open %s: retention %d must be 0 (the default) to %d: %w", path, opts.Retention, configsvc.MaxRetention, configsvc.ErrInvalid)
	}
	if opts.Retention == 0 {
		opts.Retention = configsvc.DefaultRetention
	}
	limits, err := opts.Limits.Resolve()
	if err != nil {
		return nil, fmt.Errorf("boltstore: open %s: options.%w", path, err)
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("boltstore: open %s: held by another process for over %v: %w", path, opts.LockTimeout, configsvc.ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := initFile(tx); err != nil {
			return err
		}
		return ensureGeneration(tx.Bucket(bucketMeta), opts.Now)
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	s := &Store{
		db:        db,
		path:      path,
		retention: opts.Retention,
		limits:    limits,
		log:       opts.Logger,
		now:       opts.Now,
		heads:     newHeadMemo(),
		signals:   map[string]chan struct{}{},
		instances: map[string]map[string]liveInstance{},
	}
	s.log.Debug("boltstore opened", "path", path, "retention", opts.Retention)
	return s, nil
}

// initFile checks the file format of a file being opened, upgrades a
// version 1 file (nothing moves: see formatVersion), marks a new file with
// the current version and creates the top-level buckets it lacks.
func initFile(tx *bolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	switch v := meta.Get(keyFormat); {
	case v == nil, string(v) == "1":
		if err := meta.Put(keyFormat, []byte(formatVersion)); err != nil {
			return err
		}
	case string(v) != formatVersion:
		return fmt.Errorf("file format %q, this build reads %q: %w", v, formatVersion, configsvc.ErrInvalid)
	}
	for _, b := range [][]byte{bucketServices, bucketGroups, bucketRecords, bucketLogs} {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	return nil
}

// Path returns the file the store was opened on.
func (s *Store) Path() string { return s.path }

// Close ends every watch, drops every instance registration, waits for the
// store's goroutines and closes the file. Calls after Close fail with
// configsvc.ErrClosed; a second Close returns nil.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.bg.Stop()
		s.mu.Lock()
		s.instances = map[string]map[string]liveInstance{}
		s.mu.Unlock()
		s.bg.Wait()
		if cerr := s.db.Close(); cerr != nil {
			err = fmt.Errorf("boltstore: close %s: %w", s.path, cerr)
		}
	})
	return err
}

// Ping reports whether the store is open.
func (s *Store) Ping(ctx context.Context) error {
	return s.check(ctx, "ping")
}

// check returns an error when the store is closed or ctx is done.
func (s *Store) check(ctx context.Context, what string) error {
	if s.bg.Stopped() {
		return fmt.Errorf("boltstore: %s: %w", what, configsvc.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("boltstore: %s: %w", what, err)
	}
	return nil
}

// wrap adds the operation to err, translating bbolt's "database not open"
// (a Close raced the call) into ErrClosed.
func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		err = configsvc.ErrClosed
	}
	return fmt.Errorf("boltstore: %s: %w", what, err)
}

func (s *Store) view(ctx context.Context, what string, fn func(tx *bolt.Tx) error) error {
	if err := s.check(ctx, what); err != nil {
		return err
	}
	return wrap(what, s.db.View(fn))
}

func (s *Store) update(ctx context.Context, what string, fn func(tx *bolt.Tx) error) error {
	if err := s.check(ctx, what); err != nil {
		return err
	}
	return wrap(what, s.db.Update(fn))
}

// signal returns the channel that is closed at the next change of key.
func (s *Store) signal(key string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.signals[key]
	if !ok {
		ch = make(chan struct{})
		s.signals[key] = ch
	}
	return ch
}

// await waits until sig is closed (true), or until ctx ends or the store
// closes (false).
func (s *Store) await(ctx context.Context, sig <-chan struct{}) bool {
	select {
	case <-sig:
		return true
	case <-ctx.Done():
		return false
	case <-s.bg.Done():
		return false
	}
}

// notify wakes the watchers of key.
func (s *Store) notify(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch, ok := s.signals[key]; ok {
		close(ch)
		delete(s.signals, key)
	}
}

// u64 encodes n as a big-endian key, so that keys sort by number.
func u64(n int64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	return b[:]
}

func fromU64(b []byte) int64 { return int64(binary.BigEndian.Uint64(b)) }

// The revs bucket holds, per revision n, keys that sort together, so a
// publish writes them to the same page: the revision record u64(n), the
// contents it wrote u64(n) "/" file (no file name has a "/"), and the
// manifest u64(n) "m".

// manKey is the key of the manifest at revision n.
func manKey(n int64) []byte { return append(u64(n), 'm') }

// blobKey is the key of file's content as written by revision n.
func blobKey(n int64, file string) []byte {
	return append(append(u64(n), '/'), file...)
}

// isRevKey tells a revision record's key from the others in revs.
func isRevKey(k []byte) bool { return len(k) == 8 }

// legacyBlobKey is blobKey in the blobs bucket of format 1.
func legacyBlobKey(n int64, file string) []byte {
	return append(u64(n), file...)
}

// getBlob returns the stored content of file as written by revision n of
// ref bucket b (not a copy), or nil.
func getBlob(b *bolt.Bucket, n int64, file string) []byte {
	if data := b.Bucket(keyRevs).Get(blobKey(n, file)); data != nil {
		return data
	}
	if blobs := b.Bucket(keyBlobs); blobs != nil {
		return blobs.Get(legacyBlobKey(n, file))
	}
	return nil
}

// deleteBlob removes the content of file as written by revision n.
func deleteBlob(b *bolt.Bucket, n int64, file string) error {
	if err := b.Bucket(keyRevs).Delete(blobKey(n, file)); err != nil {
		return err
	}
	if blobs := b.Bucket(keyBlobs); blobs != nil {
		return blobs.Delete(legacyBlobKey(n, file))
	}
	return nil
}

// clone copies b out of a transaction's memory.
func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}
