package archive

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

// Format is the archive format version this package writes and reads.
const Format = 1

// magic is the first line of every archive, with the format version.
const magic = "sluice-archive 1\n"

// Limits on what a reader accepts, whatever the archive says.
const (
	// MaxLineBytes bounds one line of an archive: room for the largest
	// revision or gray (configsvc.MaxChangesetSize of content, base64) or
	// the manifest of a base with configsvc.MaxFilesPerService files.
	MaxLineBytes = 4 << 20
	// MaxBaseBytes bounds the total content of one base (the files of a
	// service at its oldest retained revision), which Import holds in
	// memory to write it in one step: 8 times
	// configsvc.DefaultMaxServiceBytes.
	MaxBaseBytes = 8 * configsvc.DefaultMaxServiceBytes
)

// ErrCorrupt is wrapped by every error about an archive that cannot be
// read: a bad magic line, a checksum that does not match, a record out of
// place or over a limit, a truncated archive. It also matches
// configsvc.ErrInvalid.
var ErrCorrupt = fmt.Errorf("archive corrupt: %w", configsvc.ErrInvalid)

// Record types (the "type" field).
const (
	typeHeader   = "header"
	typeRef      = "ref"
	typeBase     = "base"
	typeFile     = "file"
	typeRevision = "revision"
	typeGray     = "gray"
	typeLink     = "link"
	typeRecord   = "record"
	typeLog      = "log"
	typeEntry    = "entry"
	typeEnd      = "end"
)

// Counts says how much an archive holds.
type Counts struct {
	Services   int `json:"services"`
	Groups     int `json:"groups"`
	Revisions  int `json:"revisions"`
	Grays      int `json:"grays"`
	Links      int `json:"links"`
	Records    int `json:"records"`
	LogEntries int `json:"log_entries"`
}

// record is one line of an archive; which fields are set depends on Type
// (see the package documentation).
type record struct {
	Type       string                     `json:"type"`
	Format     int                        `json:"format,omitempty"`
	ID         string                     `json:"id,omitempty"`
	Created    *time.Time                 `json:"created,omitempty"`
	Generation *configsvc.StoreGeneration `json:"generation,omitempty"`
	Ref        string                     `json:"ref,omitempty"`
	Head       int64                      `json:"head,omitempty"`
	Revision   *configsvc.Revision        `json:"revision,omitempty"`
	Files      []configsvc.FileMeta       `json:"files,omitempty"`
	Name       string                     `json:"name,omitempty"`
	Content    []byte                     `json:"content,omitempty"`
	Gray       *configsvc.Gray            `json:"gray,omitempty"`
	Service    string                     `json:"service,omitempty"`
	Group      string                     `json:"group,omitempty"`
	Collection string                     `json:"collection,omitempty"`
	Data       []byte                     `json:"data,omitempty"`
	Seq        int64                      `json:"seq,omitempty"`
	Count      int64                      `json:"count,omitempty"`
	Counts     *Counts                    `json:"counts,omitempty"`
}

// writer writes records with their chained checksums. Not safe for
// concurrent use.
type writer struct {
	w    *bufio.Writer
	prev [sha256.Size]byte
	buf  []byte
}

func newWriter(w io.Writer) (*writer, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	if _, err := bw.WriteString(magic); err != nil {
		return nil, err
	}
	return &writer{w: bw, prev: sha256.Sum256([]byte(magic))}, nil
}

func (w *writer) write(r *record) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("archive: encode %s record: %w", r.Type, err)
	}
	h := sha256.New()
	h.Write(w.prev[:])
	h.Write(data)
	h.Sum(w.prev[:0])
	w.buf = hex.AppendEncode(w.buf[:0], w.prev[:])
	w.buf = append(w.buf, ' ')
	w.buf = append(w.buf, data...)
	w.buf = append(w.buf, '\n')
	_, err = w.w.Write(w.buf)
	return err
}

func (w *writer) flush() error { return w.w.Flush() }

// reader reads records, checking each line's length and checksum before
// decoding it. Not safe for concurrent use.
type reader struct {
	r    *bufio.Reader
	line int // the line last read, 1-based
	prev [sha256.Size]byte
	buf  []byte
	end  bool // the end record was read
}

func newReader(r io.Reader) (*reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	first, err := br.ReadSlice('\n')
	if err != nil && !errors.Is(err, bufio.ErrBufferFull) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("archive: read line 1: %w", err)
	}
	if string(first) != magic {
		return nil, fmt.Errorf("archive line 1: not a Sluice archive of format %d (the first line must be %q): %w", Format, magic[:len(magic)-1], ErrCorrupt)
	}
	return &reader{r: br, line: 1, prev: sha256.Sum256([]byte(magic))}, nil
}

// next returns the next record; io.EOF after the end record. A line over
// MaxLineBytes, a checksum that does not match, or an archive that ends
// before its end record is an error wrapping ErrCorrupt that names the
// line.
func (r *reader) next() (*record, error) {
	r.buf = r.buf[:0]
	r.line++
	for {
		chunk, err := r.r.ReadSlice('\n')
		if len(r.buf)+len(chunk) > MaxLineBytes {
			return nil, fmt.Errorf("archive line %d: longer than the limit of %d bytes (MaxLineBytes): %w", r.line, MaxLineBytes, ErrCorrupt)
		}
		r.buf = append(r.buf, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			if len(r.buf) == 0 && r.end {
				return nil, io.EOF
			}
			if len(r.buf) == 0 {
				return nil, fmt.Errorf("archive line %d: the archive ends without its end record (truncated): %w", r.line, ErrCorrupt)
			}
			return nil, fmt.Errorf("archive line %d: the archive ends inside a line (truncated): %w", r.line, ErrCorrupt)
		}
		if err != nil {
			return nil, fmt.Errorf("archive: read line %d: %w", r.line, err)
		}
		break
	}
	if r.end {
		return nil, fmt.Errorf("archive line %d: data after the end record: %w", r.line, ErrCorrupt)
	}
	line := r.buf[:len(r.buf)-1]
	const sumLen = 2 * sha256.Size
	if len(line) < sumLen+2 || line[sumLen] != ' ' {
		return nil, fmt.Errorf("archive line %d: not a checksum and a record: %w", r.line, ErrCorrupt)
	}
	var want [sha256.Size]byte
	if _, err := hex.Decode(want[:], line[:sumLen]); err != nil {
		return nil, fmt.Errorf("archive line %d: checksum is not hex: %w", r.line, ErrCorrupt)
	}
	data := line[sumLen+1:]
	h := sha256.New()
	h.Write(r.prev[:])
	h.Write(data)
	var got [sha256.Size]byte
	h.Sum(got[:0])
	if got != want {
		return nil, fmt.Errorf("archive line %d: checksum mismatch (the line, or one before it, was changed, dropped or reordered): %w", r.line, ErrCorrupt)
	}
	r.prev = got
	rec := new(record)
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(rec); err != nil {
		return nil, fmt.Errorf("archive line %d: decode record: %v: %w", r.line, err, ErrCorrupt)
	}
	if rec.Type == typeEnd {
		r.end = true
	}
	return rec, nil
}

// errAt returns an error about line of the archive wrapping ErrCorrupt
// and err (a *configsvc.FieldError or *configsvc.LimitError naming the
// field and the limit, or a message).
func errAt(line int, what string, err error) error {
	if err == nil {
		return fmt.Errorf("archive line %d: %s: %w", line, what, ErrCorrupt)
	}
	return fmt.Errorf("archive line %d: %s: %w: %w", line, what, ErrCorrupt, err)
}
