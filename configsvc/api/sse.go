package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

// The events of GET …/watch (revisions) and GET
// /v1/services/{svc}/instances/watch (instances), written with WriteEvent
// and read with a Decoder. Each data is one line of JSON.
const (
	// EventRevision carries a Revision with the content of its changes;
	// its id is the revision number, which a reconnecting client sends back
	// as Last-Event-ID or since.
	EventRevision = "revision"
	// EventLinks carries LinksData: a service's new set of linked groups.
	EventLinks = "links"
	// EventGrays carries GraysData: the active grays of the service or
	// group (its head's summaries), sent when the stream opens and after
	// every change of the set, a selector or a gray's version.
	EventGrays = "grays"
	// EventInstances carries InstancesData: the full live instance list.
	EventInstances = "instances"
	// EventPins carries PinsData: every pin the caller may see, sent when
	// the stream opens and after every change.
	EventPins = "pins"
	// EventChange carries a ChangeNotice: news of a change request of the
	// stream's service or group (submitted, approved, declined, rebased,
	// applied, expired), on a revision stream opened with ?changes=true.
	// It has no id: it does not move the stream's resume point. News is
	// looked for every few seconds; of several events in between, the
	// newest is sent.
	EventChange = "change"
	// EventError carries an ErrorBody (code and message). Codes compacted,
	// rewritten and not_found end a revision stream (the client reloads a
	// snapshot; after rewritten it takes it whatever its revision); the
	// others (unavailable) only inform. It is not named "error": a
	// browser's EventSource fires "error" for its own connection failures,
	// so a stream's error under that name would reach onerror mixed with
	// them.
	EventError = "stream-error"
)

// legacyEventError is the name servers before "stream-error" gave
// EventError; clients still read it, so that a newer client understands an
// older server.
const legacyEventError = "error"

// The comments a server writes on a stream: CommentOpen as soon as it is
// accepted, CommentPing every heartbeat (15 s by default), so that clients
// and proxies see a live connection.
const (
	CommentOpen = "ok"
	CommentPing = "ping"
)

// How a client resumes a revision stream: the query parameter SinceParam,
// or the header LastEventIDHeader holding the id of the last event
// applied; GenerationParam and PublishIDParam, when given, are the
// identity of that revision as the client holds it (configsvc.Expect): a
// server whose history differs ends the stream with a stream-error event
// of code rewritten.
const (
	SinceParam        = "since"
	LastEventIDHeader = "Last-Event-ID"
	GenerationParam   = "generation"
	PublishIDParam    = "publish_id"
)

// maxIdentityLen bounds GenerationParam and PublishIDParam.
const maxIdentityLen = 64

// MaxSince is the largest revision a watch accepts in since.
const MaxSince = 1 << 62

// WatchFrom returns the revision a revision stream resumes after, as the
// request names it: the Last-Event-ID header, else the query parameter
// since; field is the one it came from, and given is false when the request
// names neither (the server then starts at its head). A malformed value is
// a *configsvc.FieldError naming it.
//
// Last-Event-ID wins because a browser's EventSource reconnects to the URL
// it was opened with, since included, adding the id of the last event it
// received: the header is the newer of the two. Letting since win would
// replay every revision after it on each reconnect.
func WatchFrom(r *http.Request) (from int64, field string, given bool, err error) {
	if id := r.Header.Get(LastEventIDHeader); id != "" {
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil || n < 0 || n > MaxSince {
			return 0, LastEventIDHeader, true, &configsvc.FieldError{Field: LastEventIDHeader, Value: id, Msg: "must be a revision number"}
		}
		return n, LastEventIDHeader, true, nil
	}
	if raw, ok := r.URL.Query()[SinceParam]; ok {
		v, err := strconv.ParseInt(raw[0], 10, 64)
		if err != nil || v < 0 || v > MaxSince {
			return 0, SinceParam, true, &configsvc.FieldError{Field: SinceParam, Value: raw[0], Msg: fmt.Sprintf("must be an integer from 0 to %d", int64(MaxSince))}
		}
		return v, SinceParam, true, nil
	}
	return 0, "", false, nil
}

// WatchExpect returns the identity a revision stream's request gives for
// the revision it resumes after (GenerationParam, PublishIDParam; empty
// when absent). A value that is not 1 to 64 lowercase hex digits is a
// *configsvc.FieldError naming the parameter.
func WatchExpect(r *http.Request) (configsvc.Identity, error) {
	q := r.URL.Query()
	var id configsvc.Identity
	for _, p := range []struct {
		name string
		dst  *string
	}{{GenerationParam, &id.Generation}, {PublishIDParam, &id.PublishID}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		if !isHexID(v) {
			return configsvc.Identity{}, &configsvc.FieldError{Field: p.name, Value: v, Msg: "must be 1 to 64 lowercase hex digits"}
		}
		*p.dst = v
	}
	return id, nil
}

func isHexID(s string) bool {
	if len(s) > maxIdentityLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f') {
			return false
		}
	}
	return true
}

// WriteEvent writes one server-sent event to w in a single Write: an "id"
// line when id is not empty, the "event" line, data as one line of JSON,
// and the blank line that ends it. The caller flushes.
func WriteEvent(w io.Writer, id, name string, data any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return err
	}
	buf := make([]byte, 0, len(b)+len(id)+len(name)+24)
	if id != "" {
		buf = append(buf, "id: "...)
		buf = append(buf, id...)
		buf = append(buf, '\n')
	}
	buf = append(buf, "event: "...)
	buf = append(buf, name...)
	buf = append(buf, "\ndata: "...)
	buf = append(buf, b...)
	buf = append(buf, "\n\n"...)
	_, err = w.Write(buf)
	return err
}

// WriteComment writes the comment ": text" and a blank line to w.
func WriteComment(w io.Writer, text string) error {
	_, err := io.WriteString(w, ": "+text+"\n\n")
	return err
}

// DefaultMaxEventSize bounds one line and one event's data a Decoder reads
// (a revision event holds at most a 900 KiB changeset, JSON-escaped).
const DefaultMaxEventSize = 32 << 20

// Event is one server-sent event, or one comment, as a Decoder reads it.
type Event struct {
	// ID is the event's id field; empty when the event has none (the
	// Decoder's LastEventID keeps the last one seen).
	ID string
	// Name is the event field; "message" when the event has none.
	Name string
	// Data is the event's data fields joined by "\n".
	Data []byte
	// Retry is the reconnection time the event's retry field asks for; 0
	// when it has none.
	Retry time.Duration
	// Comment is set for a comment line (": ping"); Data then holds its
	// text without the colon and one leading space, and the other fields
	// are empty.
	Comment bool
}

// Decoder reads server-sent events (the WHATWG "text/event-stream"
// format): fields id, event, data and retry, comments, lines ended by LF,
// CRLF or CR, a leading byte order mark. Unknown fields and lines are
// ignored; an event without data is not returned; an event the stream ends
// in the middle of is dropped. It is not safe for concurrent use.
type Decoder struct {
	// MaxEventSize bounds one line and one event's data; over it, Next
	// returns a *configsvc.LimitError. Default: DefaultMaxEventSize.
	MaxEventSize int

	r       *bufio.Reader
	line    []byte
	skipLF  bool // the last line ended in CR: a following LF belongs to it
	started bool // the byte order mark check is done
	lastID  string
	retry   time.Duration

	// the event being read
	id, name string
	data     []byte // nil until a data field; each field's value + "\n"
	evRetry  time.Duration
}

// NewDecoder returns a Decoder reading r.
func NewDecoder(r io.Reader) *Decoder {
	return &Decoder{r: bufio.NewReaderSize(r, 64<<10)}
}

// LastEventID returns the last id field read, "" before any: what a client
// sends as Last-Event-ID when it reconnects.
func (d *Decoder) LastEventID() string { return d.lastID }

// Retry returns the last reconnection time a retry field asked for, 0
// before any.
func (d *Decoder) Retry() time.Duration { return d.retry }

// Next returns the next event or comment. At the end of the stream it
// returns io.EOF, dropping an event the stream ended in the middle of;
// other errors are the reader's, or a *configsvc.LimitError for a line or
// an event's data over MaxEventSize.
func (d *Decoder) Next() (Event, error) {
	for {
		line, err := d.readLine()
		if err != nil {
			return Event{}, err
		}
		if len(line) == 0 {
			if d.data == nil {
				d.id, d.name, d.evRetry = "", "", 0
				continue
			}
			ev := Event{ID: d.id, Name: d.name, Data: d.data[:len(d.data)-1], Retry: d.evRetry}
			if ev.Name == "" {
				ev.Name = "message"
			}
			d.id, d.name, d.data, d.evRetry = "", "", nil, 0
			return ev, nil
		}
		if line[0] == ':' {
			return Event{Comment: true, Data: bytes.Clone(bytes.TrimPrefix(line[1:], []byte(" ")))}, nil
		}
		field, value, found := bytes.Cut(line, []byte(":"))
		if found {
			value = bytes.TrimPrefix(value, []byte(" "))
		}
		switch string(field) {
		case "event":
			d.name = string(value)
		case "data":
			if len(d.data)+len(value)+1 > d.max() {
				return Event{}, &configsvc.LimitError{What: "server-sent event", Size: int64(len(d.data) + len(value) + 1), Limit: int64(d.max())}
			}
			if d.data == nil {
				d.data = make([]byte, 0, len(value)+1)
			}
			d.data = append(append(d.data, value...), '\n')
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				d.id = string(value)
				d.lastID = d.id
			}
		case "retry":
			if ms, err := strconv.ParseUint(string(value), 10, 31); err == nil {
				d.evRetry = time.Duration(ms) * time.Millisecond
				d.retry = d.evRetry
			}
		}
	}
}

func (d *Decoder) max() int {
	if d.MaxEventSize > 0 {
		return d.MaxEventSize
	}
	return DefaultMaxEventSize
}

// readLine returns the next line without its end (LF, CRLF or CR). The
// slice is valid until the next call.
func (d *Decoder) readLine() ([]byte, error) {
	d.line = d.line[:0]
	for {
		if _, err := d.r.Peek(1); err != nil {
			return nil, err
		}
		if !d.started {
			d.started = true
			if bom, _ := d.r.Peek(3); bytes.Equal(bom, []byte("\xef\xbb\xbf")) {
				_, _ = d.r.Discard(3)
				continue
			}
		}
		buf, _ := d.r.Peek(d.r.Buffered())
		if d.skipLF {
			d.skipLF = false
			if buf[0] == '\n' {
				_, _ = d.r.Discard(1)
				continue
			}
		}
		if i := bytes.IndexAny(buf, "\r\n"); i >= 0 {
			if len(d.line)+i > d.max() {
				return nil, &configsvc.LimitError{What: "server-sent event line", Size: int64(len(d.line) + i), Limit: int64(d.max())}
			}
			d.line = append(d.line, buf[:i]...)
			d.skipLF = buf[i] == '\r'
			_, _ = d.r.Discard(i + 1)
			return d.line, nil
		}
		if len(d.line)+len(buf) > d.max() {
			return nil, &configsvc.LimitError{What: "server-sent event line", Size: int64(len(d.line) + len(buf)), Limit: int64(d.max())}
		}
		d.line = append(d.line, buf...)
		_, _ = d.r.Discard(len(buf))
	}
}
