package configsvc

import "errors"

// Sentinel errors returned (wrapped with context) by every Store and by the
// helpers in this package. Callers test for them with errors.Is. Exactly one
// table, in httpapi, maps them to HTTP status codes.
var (
	// ErrNotFound: the service, group, file, revision, instance or record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the operation conflicts with the current state: a publish whose base
	// revision is no longer the head, a name that already exists, a group still in use.
	ErrConflict = errors.New("conflict")
	// ErrInvalid: bad input: a name outside the allowed alphabet, content that does not
	// parse for its format, an empty changeset. The wrapping error names the field.
	ErrInvalid = errors.New("invalid")
	// ErrTooLarge: a file or changeset over its limit. A *LimitError names the limit.
	ErrTooLarge = errors.New("too large")
	// ErrUnavailable: the backing store cannot be reached within the call's deadline.
	// The call may or may not have taken effect only where the method says so.
	ErrUnavailable = errors.New("store unavailable")
	// ErrCompacted: the requested revision was removed by history retention.
	ErrCompacted = errors.New("revision compacted")
	// ErrClosed: the store or client was closed.
	ErrClosed = errors.New("closed")
	// ErrLocked: the bbolt file is held by another process.
	ErrLocked = errors.New("store locked by another process")
	// ErrRewritten: the store's history is not the one the caller followed:
	// its generation changed (a restore or import, then a generation bump),
	// or a revision number the caller holds now carries another publish id
	// (numbers issued again). The caller reloads a Snapshot and takes it as
	// a new state, even at a lower revision. See Identity.
	ErrRewritten = errors.New("history rewritten")
	// ErrTooMany: a count over its limit (open event streams or console
	// sessions of one token, instances of a service or registered by one
	// token, services, links, records of a collection). A *CountError names
	// the limit. HTTP 429.
	ErrTooMany = errors.New("too many")
	// ErrOutcomeUnknown: a write was sent, but whether it took effect could
	// not be learnt within the call's deadline (the connection was lost
	// after sending and the store could not be read back). It may or may
	// not have been applied: read the state to find out before writing
	// again. It is not ErrUnavailable, which means nothing was written, so
	// that no caller retries it blindly. HTTP 503 with the code
	// outcome_unknown.
	ErrOutcomeUnknown = errors.New("outcome unknown")
)

// LimitError reports input over one of Sluice's size limits. It matches
// ErrTooLarge with errors.Is.
type LimitError struct {
	What  string // what was measured, e.g. `file "db.yaml"` or "changeset"
	Size  int64  // its size, in Unit
	Limit int64  // the limit, in Unit
	// Unit is what Size and Limit count, e.g. "files"; empty means bytes.
	Unit string
}

// Error says what was over which limit, in its unit.
func (e *LimitError) Error() string {
	unit := e.Unit
	if unit == "" {
		unit = "bytes"
	}
	return e.What + " is " + itoa(e.Size) + " " + unit + ", over the limit of " + itoa(e.Limit) + " " + unit
}

// Is reports whether target is ErrTooLarge.
func (e *LimitError) Is(target error) bool { return target == ErrTooLarge }

// CountError reports a count over one of Sluice's limits on how many of
// something one token or service may hold at once. It matches ErrTooMany
// with errors.Is.
type CountError struct {
	What  string // what was counted, e.g. "open event streams of token ab12…"
	Count int64  // how many there are, the one refused not included
	Limit int64  // the limit
	// Setting names where the limit is configured, e.g. "--max-streams-per-token";
	// empty when it is fixed.
	Setting string
}

// Error says what reached which limit, and where the limit is set.
func (e *CountError) Error() string {
	s := e.What + ": " + itoa(e.Count) + ", the limit is " + itoa(e.Limit)
	if e.Setting != "" {
		s += " (" + e.Setting + ")"
	}
	return s
}

// Is reports whether target is ErrTooMany.
func (e *CountError) Is(target error) bool { return target == ErrTooMany }

// ParseError reports config content that does not parse for its format. It
// matches ErrInvalid with errors.Is. Line and Column are 1-based; 0 when the
// parser did not say.
type ParseError struct {
	File   string
	Format Format
	Line   int
	Column int
	Msg    string
}

// Error reads "file:line:column: invalid format: message", leaving out
// the line and column the parser did not give.
func (e *ParseError) Error() string {
	s := e.File
	if e.Line > 0 {
		s += ":" + itoa(int64(e.Line))
		if e.Column > 0 {
			s += ":" + itoa(int64(e.Column))
		}
	}
	return s + ": invalid " + string(e.Format) + ": " + e.Msg
}

// Is reports whether target is ErrInvalid.
func (e *ParseError) Is(target error) bool { return target == ErrInvalid }

// FieldError reports a bad value in a named input field. It matches ErrInvalid.
type FieldError struct {
	Field string // e.g. "service", "file", "changes[2].file"
	Value string // the offending value, truncated; never a secret
	Msg   string // what is wrong, e.g. "must match [a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
	// File and Line locate the field in config content when a schema check
	// of that content refused it (routes.yaml, line 4), so that an editor
	// can mark the line; "" and 0 for a field of a request. Line is 1-based.
	File string
	Line int
}

// Error reads `field "value": what is wrong`.
func (e *FieldError) Error() string {
	return e.Field + " " + quote(e.Value) + ": " + e.Msg
}

// Is reports whether target is ErrInvalid.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// Violation is one way a file's content breaks its JSON Schema (the file
// F.schema.json beside F), or one schema file that is not a valid schema.
// It is the wire shape of a violation in the admin API too.
type Violation struct {
	// File is the config file whose content is refused (or the schema file
	// that does not compile).
	File string `json:"file"`
	// Pointer is the JSON Pointer (RFC 6901) of the refused value in the
	// file's data: "" for the whole document, "/db/port" for a key.
	Pointer string `json:"pointer"`
	// Line and Column locate the value in the file, 1-based; 0 where the
	// format gives no position (Column only for JSON and YAML).
	Line   int `json:"line,omitempty"`
	Column int `json:"column,omitempty"`
	// Keyword is the schema keyword that failed ("required", "type",
	// "maximum" …), or "$schema" for a schema file that is not a valid
	// schema, "$ref" for a reference that cannot be resolved.
	Keyword string `json:"keyword"`
	// Message says what is wrong, in words.
	Message string `json:"message"`
	// Schema is the schema file that refused the value.
	Schema string `json:"schema,omitempty"`
}

// String reads "file:line:column: pointer: message (keyword)", leaving out
// what is unknown.
func (v Violation) String() string {
	s := v.File
	if v.Line > 0 {
		s += ":" + itoa(int64(v.Line))
		if v.Column > 0 {
			s += ":" + itoa(int64(v.Column))
		}
	}
	ptr := v.Pointer
	if ptr == "" {
		ptr = "(document)"
	}
	return s + ": " + ptr + ": " + v.Message + " (" + v.Keyword + ")"
}

// SchemaError reports content that its JSON Schema refuses: every violation
// found, in file order, at most MaxViolations, and how many more were left
// out. It matches ErrInvalid with errors.Is; the admin API answers it 422
// with the first violation's fields and the whole list in its details.
type SchemaError struct {
	Violations []Violation
	// Omitted counts the violations beyond MaxViolations that were found
	// and left out.
	Omitted int
}

// Error reads the first violation, then how many more there are.
func (e *SchemaError) Error() string {
	if len(e.Violations) == 0 {
		return "schema validation failed"
	}
	s := e.Violations[0].String()
	if more := len(e.Violations) - 1 + e.Omitted; more > 0 {
		s += " (and " + itoa(int64(more)) + " more violation"
		if more > 1 {
			s += "s"
		}
		s += ")"
	}
	return s
}

// Is reports whether target is ErrInvalid.
func (e *SchemaError) Is(target error) bool { return target == ErrInvalid }
