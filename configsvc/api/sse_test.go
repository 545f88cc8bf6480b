package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

// readAll decodes stream to the end, one byte per read when slow is set
// (so that every line end and CRLF pair is split across reads).
func readAll(t *testing.T, stream string, slow bool) ([]Event, *Decoder, error) {
	t.Helper()
	var r io.Reader = strings.NewReader(stream)
	if slow {
		r = iotest.OneByteReader(r)
	}
	d := NewDecoder(r)
	var out []Event
	for {
		ev, err := d.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return out, d, err
		}
		out = append(out, ev)
	}
}

func TestDecoder(t *testing.T) {
	ev := func(id, name, data string) Event { return Event{ID: id, Name: name, Data: []byte(data)} }
	comment := func(text string) Event { return Event{Comment: true, Data: []byte(text)} }
	tests := []struct {
		name   string
		stream string
		want   []Event
		lastID string
		retry  time.Duration
	}{
		{name: "one event", stream: "id: 3\nevent: revision\ndata: {\"revision\":3}\n\n",
			want: []Event{ev("3", "revision", `{"revision":3}`)}, lastID: "3"},
		{name: "multi-line data joined by LF", stream: "data: a\ndata: b\ndata:\ndata: c\n\n",
			want: []Event{ev("", "message", "a\nb\n\nc")}},
		{name: "comments", stream: ": ok\n\n:ping\n:\nevent: x\n: inside an event\ndata: 1\n\n",
			want: []Event{comment("ok"), comment("ping"), comment(""), comment("inside an event"), ev("", "x", "1")}},
		{name: "CRLF", stream: "id: 1\r\nevent: e\r\ndata: a\r\ndata: b\r\n\r\n",
			want: []Event{ev("1", "e", "a\nb")}, lastID: "1"},
		{name: "CR alone", stream: "event: e\rdata: a\r\rdata: b\r\r",
			want: []Event{ev("", "e", "a"), ev("", "message", "b")}},
		{name: "mixed line ends", stream: "data: a\r\n\ndata: b\r\rdata: c\n\r\n",
			want: []Event{ev("", "message", "a"), ev("", "message", "b"), ev("", "message", "c")}},
		{name: "id kept for the decoder, not for the next event", stream: "id: 7\ndata: a\n\nevent: links\ndata: b\n\n",
			want: []Event{ev("7", "message", "a"), ev("", "links", "b")}, lastID: "7"},
		{name: "empty id resets the last id", stream: "id: 7\ndata: a\n\nid\ndata: b\n\n",
			want: []Event{ev("7", "message", "a"), ev("", "message", "b")}, lastID: ""},
		{name: "id with NUL ignored", stream: "id: 5\ndata: a\n\nid: 6\x007\ndata: b\n\n",
			want: []Event{ev("5", "message", "a"), ev("", "message", "b")}, lastID: "5"},
		{name: "retry in milliseconds", stream: "retry: 2500\ndata: a\n\n",
			want: []Event{{Name: "message", Data: []byte("a"), Retry: 2500 * time.Millisecond}}, retry: 2500 * time.Millisecond},
		{name: "malformed retry ignored", stream: "retry: soon\nretry: -5\nretry: +5\nretry: 1.5\ndata: a\n\n",
			want: []Event{ev("", "message", "a")}},
		{name: "retry without an event still counts", stream: "retry: 40\n\n", retry: 40 * time.Millisecond},
		{name: "only one leading space is stripped", stream: "data:  two\ndata:none\n\n",
			want: []Event{ev("", "message", " two\nnone")}},
		{name: "a field without a colon has an empty value", stream: "data\ndata\n\nevent\ndata: x\n\n",
			want: []Event{ev("", "message", "\n"), ev("", "message", "x")}},
		{name: "unknown fields and lines ignored", stream: "foo: bar\nDATA: no\nevent : no\ndata: yes\n\n",
			want: []Event{ev("", "message", "yes")}},
		{name: "an event without data is not sent", stream: "event: revision\nid: 9\n\ndata: next\n\n",
			want: []Event{ev("", "message", "next")}, lastID: "9"},
		{name: "colon in the value kept", stream: "data: a: b\n\n", want: []Event{ev("", "message", "a: b")}},
		{name: "byte order mark stripped", stream: "\xef\xbb\xbfdata: a\n\n", want: []Event{ev("", "message", "a")}},
		{name: "partial event at the end dropped", stream: "data: a\n\ndata: b\n", want: []Event{ev("", "message", "a")}},
		{name: "partial line at the end dropped", stream: "data: a\n\ndata: b", want: []Event{ev("", "message", "a")}},
		{name: "empty stream", stream: ""},
	}
	for _, tc := range tests {
		for _, slow := range []bool{false, true} {
			name := tc.name
			if slow {
				name += "/one byte per read"
			}
			t.Run(name, func(t *testing.T) {
				got, d, err := readAll(t, tc.stream, slow)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(tc.want) {
					t.Fatalf("got %d events %+v, want %d %+v", len(got), got, len(tc.want), tc.want)
				}
				for i := range got {
					g, w := got[i], tc.want[i]
					if g.ID != w.ID || g.Name != w.Name || !bytes.Equal(g.Data, w.Data) || g.Retry != w.Retry || g.Comment != w.Comment {
						t.Errorf("event %d = %+v (data %q), want %+v (data %q)", i, g, g.Data, w, w.Data)
					}
				}
				if d.LastEventID() != tc.lastID {
					t.Errorf("LastEventID %q, want %q", d.LastEventID(), tc.lastID)
				}
				if d.Retry() != tc.retry {
					t.Errorf("Retry %v, want %v", d.Retry(), tc.retry)
				}
			})
		}
	}
}

func TestDecoderLimits(t *testing.T) {
	tests := []struct {
		name, stream string
	}{
		{"long line", "data: " + strings.Repeat("x", 100) + "\n\n"},
		{"long line without end", "data: " + strings.Repeat("x", 100)},
		{"many data lines", strings.Repeat("data: 0123456789\n", 10) + "\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(strings.NewReader(tc.stream))
			d.MaxEventSize = 64
			_, err := d.Next()
			var le *configsvc.LimitError
			if !errors.As(err, &le) || !errors.Is(err, configsvc.ErrTooLarge) || le.Limit != 64 {
				t.Fatalf("err = %v, want a LimitError of 64 bytes", err)
			}
		})
	}
	// Within the limit, a line longer than the read buffer arrives whole.
	big := strings.Repeat("y", 200<<10)
	got, _, err := readAll(t, "data: "+big+"\n\n", false)
	if err != nil || len(got) != 1 || string(got[0].Data) != big {
		t.Fatalf("a 200 KiB data line: %d events, %v", len(got), err)
	}
}

// TestWriteEventRoundTrip: what the server writes is what the decoder reads.
func TestWriteEventRoundTrip(t *testing.T) {
	var b bytes.Buffer
	if err := WriteComment(&b, CommentOpen); err != nil {
		t.Fatal(err)
	}
	content := "line 1\nline 2\r\n\"quoted\" </script>"
	rev := Revision{Revision: 4, Author: "ann", Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Changes: []Change{PutChange("a.txt", []byte(content))}}
	if err := WriteEvent(&b, "4", EventRevision, rev); err != nil {
		t.Fatal(err)
	}
	if err := WriteEvent(&b, "", EventLinks, LinksData{Links: []string{"g"}}); err != nil {
		t.Fatal(err)
	}
	if strings.Count(b.String(), "\n\n") != 3 || strings.Contains(b.String(), "\r") {
		t.Fatalf("stream %q: want three blocks, data on one line each", b.String())
	}
	got, d, err := readAll(t, b.String(), false)
	if err != nil || len(got) != 3 {
		t.Fatalf("%d events, %v", len(got), err)
	}
	if !got[0].Comment || string(got[0].Data) != CommentOpen {
		t.Errorf("first = %+v, want the open comment", got[0])
	}
	if got[1].ID != "4" || got[1].Name != EventRevision || got[2].ID != "" || got[2].Name != EventLinks || d.LastEventID() != "4" {
		t.Errorf("events %+v %+v", got[1], got[2])
	}
	if want := "id: 4\nevent: revision\ndata: {"; !strings.Contains(b.String(), want) {
		t.Errorf("stream %q lacks %q", b.String(), want)
	}
	var back Revision
	if err := json.Unmarshal(got[1].Data, &back); err != nil || back.Revision != 4 || *back.Changes[0].Content != content || !back.Time.Equal(rev.Time) {
		t.Fatalf("revision back = %+v, %v", back, err)
	}
}

func TestWatchFrom(t *testing.T) {
	tests := []struct {
		name, query, lastID string
		want                int64
		wantField           string // where the revision came from
		given               bool
		field               string // the FieldError's field; "" for none
	}{
		{name: "neither"},
		{name: "since", query: "since=4", want: 4, wantField: SinceParam, given: true},
		{name: "since 0", query: "since=0", want: 0, wantField: SinceParam, given: true},
		{name: "Last-Event-ID", lastID: "7", want: 7, wantField: LastEventIDHeader, given: true},
		// An EventSource reconnects to the URL it was opened with (since=4)
		// and adds the id of the last event it got: the header is newer.
		{name: "Last-Event-ID wins over since", query: "since=4", lastID: "7", want: 7, wantField: LastEventIDHeader, given: true},
		{name: "Last-Event-ID wins over a lower since", query: "since=9", lastID: "7", want: 7, wantField: LastEventIDHeader, given: true},
		{name: "a bad Last-Event-ID is refused even with since", query: "since=4", lastID: "x", given: true, field: LastEventIDHeader},
		{name: "bad since", query: "since=x", given: true, field: "since"},
		{name: "negative since", query: "since=-1", given: true, field: "since"},
		{name: "since over the maximum", query: "since=4611686018427387905", given: true, field: "since"},
		{name: "bad Last-Event-ID", lastID: "seven", given: true, field: "Last-Event-ID"},
		{name: "Last-Event-ID over the maximum", lastID: "4611686018427387905", given: true, field: "Last-Event-ID"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/v1/services/orders/watch?"+tc.query, nil)
			if tc.lastID != "" {
				r.Header.Set(LastEventIDHeader, tc.lastID)
			}
			from, field, given, err := WatchFrom(r)
			var fe *configsvc.FieldError
			switch {
			case tc.field != "":
				if !errors.As(err, &fe) || fe.Field != tc.field || !errors.Is(err, configsvc.ErrInvalid) {
					t.Fatalf("err = %v, want a FieldError on %s", err, tc.field)
				}
			case err != nil:
				t.Fatal(err)
			case from != tc.want || given != tc.given || field != tc.wantField:
				t.Fatalf("WatchFrom = %d, %q, %v; want %d, %q, %v", from, field, given, tc.want, tc.wantField, tc.given)
			}
		})
	}
}
