package archive

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ErrDiffer is returned by Compare for archives that hold different
// content.
var ErrDiffer = errors.New("archives differ")

// Compare reads two archives and returns nil when they hold the same
// content: the same services, groups, revisions (numbers, authors,
// times, messages, publish ids and content), grays, links, records and
// log entries, in the same order. What says when and where an archive
// was made is ignored: the header (id, creation time, the source's
// generation), the checksums and the log entries' sequence numbers (a
// log imported into a store is numbered from that store's next one). So
// exporting two stores and comparing the archives checks that an
// import or a migration carried everything over. An error wrapping
// ErrDiffer names the first line that differs; one wrapping ErrCorrupt
// an archive that cannot be read. Reading is streamed and bounded as for
// Import.
func Compare(a, b io.Reader) error {
	ra, err := newReader(a)
	if err != nil {
		return fmt.Errorf("first archive: %w", err)
	}
	rb, err := newReader(b)
	if err != nil {
		return fmt.Errorf("second archive: %w", err)
	}
	for {
		x, errA := ra.next()
		y, errB := rb.next()
		if errA != nil && !errors.Is(errA, io.EOF) {
			return fmt.Errorf("first archive: %w", errA)
		}
		if errB != nil && !errors.Is(errB, io.EOF) {
			return fmt.Errorf("second archive: %w", errB)
		}
		if errA != nil || errB != nil {
			if errA == nil || errB == nil {
				return fmt.Errorf("line %d: one archive ends before the other: %w", ra.line, ErrDiffer)
			}
			return nil
		}
		if x.Type == typeHeader && y.Type == typeHeader {
			continue
		}
		jx, jy := normalized(x), normalized(y)
		if !bytes.Equal(jx, jy) {
			return fmt.Errorf("line %d: %s record %s differs from %s: %w", ra.line, x.Type, clip(jx), clip(jy), ErrDiffer)
		}
	}
}

// normalized returns rec's JSON without what Compare ignores.
func normalized(rec *record) []byte {
	r := *rec
	r.Seq = 0
	data, _ := json.Marshal(&r) // decoded from JSON: it encodes again
	return data
}

// clip shortens a record for an error message.
func clip(b []byte) string {
	const n = 200
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
