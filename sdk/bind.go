package sdk

import (
	"bytes"
	"fmt"
	"maps"
	"sync/atomic"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/format"
)

// Binding is a typed, live view of one config file. Load is safe for
// concurrent use, lock-free and allocation-free: the decoded value is an
// immutable snapshot swapped atomically when a new revision is accepted.
type Binding[T any] struct {
	file string
	v    atomic.Pointer[T]
	err  atomic.Pointer[errBox]
}

type errBox struct{ err error }

// binder is the untyped face of a Binding the client drives.
type binder interface {
	// decode parses content; commit installs the value.
	decode(content []byte) (commit func(), err error)
	setErr(err error)
}

// Validator is implemented by config types that check their own values.
// Bind calls Validate on every decoded value (through a pointer, so either
// receiver kind works) and rejects the revision when it returns an error.
type Validator interface {
	Validate() error
}

// Bind returns a live typed binding of file (e.g. "db.yaml", or
// "redis-common/redis.yaml" for a linked group's file). The content is
// decoded by the file's extension with format.Decode (JSON, YAML, TOML,
// properties through `properties` struct tags, .env, text into string or
// []byte); when *T implements Validator, the value must pass Validate.
//
// A later revision of the file that fails to decode or validate is rejected:
// Load keeps returning the last good value, Err reports why, the instance
// registration records the rejection, and File keeps the last good content.
//
// When the file is missing or its current content is rejected at the time
// of Bind (say, the process restarts after a bad publish), the binding
// starts from the last good content kept in the cache, when there is one
// and it decodes (File then returns that content too); otherwise Load
// returns the zero value. Err says why in both cases. Bindings live as
// long as the client; Bind on a closed client returns a binding whose Err
// wraps configsvc.ErrClosed.
func Bind[T any](c *Client, file string) *Binding[T] {
	b := &Binding[T]{file: file}
	b.v.Store(new(T))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		b.setErr(fmt.Errorf("sdk: bind %s: %w", file, configsvc.ErrClosed))
		return b
	}
	v := c.view.Load()
	g, _ := splitKey(file)
	rev := v.revision
	if g != "" {
		rev = v.groups[g]
	}
	content, ok := v.files[file]
	gray := c.grayOfLocked(file) // the gray whose content file has, if any
	var err error
	if !ok {
		err = fmt.Errorf("sdk: bind %s: no such file at revision %d: %w", file, rev, configsvc.ErrNotFound)
	} else {
		var commit func()
		if commit, err = c.decodeLocked(b, file, content); err == nil {
			commit()
		} else if gray != "" {
			err = fmt.Errorf("sdk: bind %s of gray %s: %w", file, gray, err)
		} else {
			err = fmt.Errorf("sdk: bind %s at revision %d: %w", file, rev, err)
		}
	}
	if err != nil {
		b.setErr(err)
		if ok {
			c.rejects[file] = rejection{revision: rev, err: err, gray: gray}
			c.cfg.Metrics.RevisionRejected(file, rev)
		}
		if fb, has := c.fallback[file]; has && !bytes.Equal(fb, content) && len(c.bindings[file]) == 0 {
			if commit, ferr := c.decodeLocked(b, file, fb); ferr == nil {
				commit()
				// The cached content becomes the file's good content, so
				// File agrees with Load and the cache keeps it for the
				// next restart.
				nv := &view{revision: v.revision, groups: v.groups, files: maps.Clone(v.files), grays: v.grays}
				nv.files[file] = fb
				c.view.Store(nv)
				if c.cache != nil {
					c.persistLocked(nv, false)
				}
				c.log.Warn("sdk: using the last good content from the cache", "file", file, "err", err)
			}
		}
		c.log.Error("sdk: binding has no valid value at the current revision", "file", file, "err", err)
		if c.reg != nil {
			c.reg.set(c.instanceLocked)
		}
	}
	c.bindings[file] = append(c.bindings[file], b)
	return b
}

// Load returns the current good value. It never blocks and never allocates
// (T is copied; reference fields such as maps and slices are shared with
// other readers and must not be modified).
func (b *Binding[T]) Load() T { return *b.v.Load() }

// Pointer returns the current good value by pointer, without copying it.
// The value is shared and must not be modified.
func (b *Binding[T]) Pointer() *T { return b.v.Load() }

// Err returns why the newest revision of the file was rejected (or why the
// binding has no value), or nil when the newest revision was applied.
func (b *Binding[T]) Err() error {
	if e := b.err.Load(); e != nil {
		return e.err
	}
	return nil
}

// File returns the bound file's name.
func (b *Binding[T]) File() string { return b.file }

func (b *Binding[T]) decode(content []byte) (func(), error) {
	v := new(T)
	if err := format.Decode(b.file, content, v); err != nil {
		return nil, err
	}
	if val, ok := any(v).(Validator); ok {
		if err := val.Validate(); err != nil {
			return nil, fmt.Errorf("validate: %w", err)
		}
	}
	return func() { b.v.Store(v) }, nil
}

func (b *Binding[T]) setErr(err error) {
	if err == nil {
		b.err.Store(nil)
		return
	}
	b.err.Store(&errBox{err: err})
}
