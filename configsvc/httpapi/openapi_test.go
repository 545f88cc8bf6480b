package httpapi

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"math"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc/api"
)

// spec is the parsed OpenAPI document with a small JSON-schema validator
// for the subset the document uses: $ref, type, properties, required,
// additionalProperties, items, enum, format date-time. Objects are closed:
// a property the schema does not name is an error unless
// additionalProperties allows it, so the document cannot fall behind the
// handlers.
type spec struct {
	doc map[string]any
}

func loadSpec(t *testing.T) *spec {
	t.Helper()
	b, err := OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if doc["openapi"] != "3.0.3" {
		t.Fatalf("openapi version %v", doc["openapi"])
	}
	return &spec{doc: doc}
}

func (s *spec) resolve(v any) any {
	for i := 0; i < 10; i++ {
		m, ok := v.(map[string]any)
		if !ok {
			return v
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return v
		}
		var cur any = s.doc
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			cur = cur.(map[string]any)[part]
		}
		v = cur
	}
	return v
}

// operations returns "METHOD /path/{param}" for every operation.
func (s *spec) operations() []string {
	var out []string
	for path, item := range s.doc["paths"].(map[string]any) {
		for method := range item.(map[string]any) {
			out = append(out, strings.ToUpper(method)+" "+path)
		}
	}
	sort.Strings(out)
	return out
}

// response returns the spec's response object for an operation and status.
func (s *spec) response(op string, status int) (map[string]any, error) {
	method, path, _ := strings.Cut(op, " ")
	item, ok := s.doc["paths"].(map[string]any)[path].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("no path %s in the spec", path)
	}
	o, ok := item[strings.ToLower(method)].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("no %s %s in the spec", method, path)
	}
	r, ok := o["responses"].(map[string]any)[strconv.Itoa(status)]
	if !ok {
		return nil, fmt.Errorf("%s does not declare status %d", op, status)
	}
	return s.resolve(r).(map[string]any), nil
}

// checkResponse validates a real response against the spec: the status is
// declared, and a JSON body matches its schema.
func (s *spec) checkResponse(op string, status int, contentType string, body []byte) error {
	r, err := s.response(op, status)
	if err != nil {
		return err
	}
	content, _ := r["content"].(map[string]any)
	if len(content) == 0 {
		if len(body) != 0 {
			return fmt.Errorf("%s %d: the spec declares no body, got %q", op, status, body)
		}
		return nil
	}
	mt, _, _ := strings.Cut(contentType, ";")
	media, ok := content[mt].(map[string]any)
	if !ok {
		return fmt.Errorf("%s %d: content type %q not declared", op, status, contentType)
	}
	if mt != "application/json" || strings.HasSuffix(op, "/files/{file}") {
		return nil // raw content
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("%s %d: body is not JSON: %v", op, status, err)
	}
	return s.validate(media["schema"], v, "$")
}

func (s *spec) validate(schema, v any, at string) error {
	sc, _ := s.resolve(schema).(map[string]any)
	if len(sc) == 0 {
		return nil
	}
	if enum, ok := sc["enum"].([]any); ok {
		found := false
		for _, e := range enum {
			if e == v {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("%s: %v not in enum %v", at, v, enum)
		}
	}
	switch sc["type"] {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: want object, got %T", at, v)
		}
		props, _ := sc["properties"].(map[string]any)
		for _, r := range asSlice(sc["required"]) {
			if _, ok := m[r.(string)]; !ok {
				return fmt.Errorf("%s: missing required %q", at, r)
			}
		}
		for k, val := range m {
			if p, ok := props[k]; ok {
				if err := s.validate(p, val, at+"."+k); err != nil {
					return err
				}
				continue
			}
			switch ap := sc["additionalProperties"].(type) {
			case bool:
				if !ap {
					return fmt.Errorf("%s: property %q not allowed", at, k)
				}
			case map[string]any:
				if err := s.validate(ap, val, at+"."+k); err != nil {
					return err
				}
			case nil:
				if props != nil {
					return fmt.Errorf("%s: property %q is not in the spec", at, k)
				}
			}
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s: want array, got %T (%v)", at, v, v)
		}
		for i, e := range a {
			if err := s.validate(sc["items"], e, fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			return fmt.Errorf("%s: want string, got %T", at, v)
		}
		if sc["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, str); err != nil {
				return fmt.Errorf("%s: %q is not a date-time", at, str)
			}
		}
	case "integer":
		f, ok := v.(float64)
		if !ok || f != math.Trunc(f) {
			return fmt.Errorf("%s: want integer, got %v", at, v)
		}
	case "number":
		if _, ok := v.(float64); !ok {
			return fmt.Errorf("%s: want number, got %T", at, v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%s: want boolean, got %T", at, v)
		}
	}
	return nil
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// match returns the operation ("METHOD /template") serving a concrete
// request path, preferring static segments over parameters; "" if none.
func (s *spec) match(method, rawPath string) string {
	path, _, _ := strings.Cut(rawPath, "?")
	segs := strings.Split(path, "/")
	best, bestStatic := "", -1
	for tmpl, item := range s.doc["paths"].(map[string]any) {
		if _, ok := item.(map[string]any)[strings.ToLower(method)]; !ok {
			continue
		}
		ts := strings.Split(tmpl, "/")
		if len(ts) != len(segs) {
			continue
		}
		static, ok := 0, true
		for i := range ts {
			switch {
			case strings.HasPrefix(ts[i], "{"):
			case ts[i] == segs[i]:
				static++
			default:
				ok = false
			}
		}
		if ok && static > bestStatic {
			best, bestStatic = method+" "+tmpl, static
		}
	}
	return best
}

// ginToOpenAPI turns "/v1/services/:svc" into "/v1/services/{svc}".
func ginToOpenAPI(route string) string {
	parts := strings.Split(route, "/")
	for i, p := range parts {
		if strings.HasPrefix(p, ":") {
			parts[i] = "{" + p[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	s := loadSpec(t)
	e := newEnv(t)
	inSpec := map[string]bool{}
	for _, op := range s.operations() {
		inSpec[op] = true
	}
	inRouter := map[string]bool{}
	for _, r := range e.srv.Routes() {
		method, path, _ := strings.Cut(r, " ")
		op := method + " " + ginToOpenAPI(path)
		inRouter[op] = true
		if !inSpec[op] {
			t.Errorf("route %s has no operation in openapi.json", op)
		}
	}
	for op := range inSpec {
		if !inRouter[op] {
			t.Errorf("openapi.json describes %s, which no route serves", op)
		}
	}
	// Every path parameter of every operation is declared.
	for path, item := range s.doc["paths"].(map[string]any) {
		for method, o := range item.(map[string]any) {
			declared := map[string]bool{}
			for _, p := range asSlice(o.(map[string]any)["parameters"]) {
				pm := s.resolve(p).(map[string]any)
				if pm["in"] == "path" {
					declared[pm["name"].(string)] = true
				}
			}
			for _, seg := range strings.Split(path, "/") {
				if strings.HasPrefix(seg, "{") && !declared[strings.Trim(seg, "{}")] {
					t.Errorf("%s %s: path parameter %s not declared", method, path, seg)
				}
			}
		}
	}
	// The served document is the embedded one.
	var served map[string]any
	e.must(http.StatusOK, req{method: "GET", path: "/v1/openapi.json"}).json(t, &served)
	if served["openapi"] != "3.0.3" || len(served["paths"].(map[string]any)) != len(s.doc["paths"].(map[string]any)) {
		t.Fatal("served /v1/openapi.json differs from the embedded document")
	}
}

func TestOpenAPIValidatorCatchesDrift(t *testing.T) {
	s := loadSpec(t)
	tests := []struct {
		name string
		body string
	}{
		{"unknown property", `{"services":[],"extra":1}`},
		{"missing required", `{}`},
		{"wrong item type", `{"services":[1]}`},
		{"null list", `{"services":null}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.checkResponse("GET /v1/services", 200, "application/json", []byte(tc.body)); err == nil {
				t.Fatalf("%s accepted", tc.body)
			}
		})
	}
	if err := s.checkResponse("GET /v1/services", 200, "application/json", []byte(`{"services":["a"]}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.checkResponse("GET /v1/services", 418, "application/json", []byte(`{}`)); err == nil {
		t.Fatal("an undeclared status was accepted")
	}
}

// wireTypes are the api types the schemas of openapi.json describe, by
// schema name. Schemas reached from them through $ref (RouteState,
// InstanceState) or inline (a Diff's files) need no entry of their own.
var wireTypes = map[string]any{
	"DataKeyRequest": api.DataKeyRequest{}, "DataKey": api.DataKey{},
	"Status": api.Status{}, "Error": api.ErrorBody{}, "FileMeta": api.FileMeta{}, "Head": api.Head{},
	"Change": api.Change{}, "Revision": api.Revision{}, "RevisionList": api.RevisionList{},
	"PublishRequest": api.PublishRequest{}, "RollbackRequest": api.RollbackRequest{}, "Diff": api.Diff{},
	"Snapshot": api.Snapshot{}, "ServiceList": api.ServiceList{}, "GroupList": api.GroupList{}, "Users": api.Users{},
	"Links": api.Links{}, "LinksData": api.LinksData{}, "Instance": api.Instance{}, "InstanceList": api.InstanceList{},
	"InstancesData": api.InstancesData{}, "Grant": api.Grant{}, "Token": api.Token{}, "TokenList": api.TokenList{},
	"TokenRequest": api.TokenRequest{}, "Whoami": api.Whoami{}, "Session": api.Session{},
	"SessionRequest": api.SessionRequest{}, "Pin": api.Pin{}, "PinList": api.PinList{}, "PinRequest": api.PinRequest{},
	"AuditEntry": api.AuditEntry{}, "AuditList": api.AuditList{}, "LiveRoutes": api.LiveRoutes{},
	"ProxyState": api.ProxyState{}, "StaleProxy": api.StaleProxy{},
	"ServiceSummaryList": api.ServiceSummaryList{}, "GroupSummaryList": api.GroupSummaryList{},
	"SearchResults": api.SearchResults{}, "EffectiveConfig": api.EffectiveConfig{},
	"Violation": api.Violation{}, "Policy": api.Policy{}, "PolicyList": api.PolicyList{}, "ChangeRule": api.ChangeRule{},
	"ChangeFile": api.ChangeFile{}, "ChangeEvent": api.ChangeEvent{}, "ChangeNotice": api.ChangeNotice{},
	"ChangeRequest": api.ChangeRequest{}, "ChangeList": api.ChangeList{}, "ReviewRequest": api.ReviewRequest{},
	"RebaseRequest": api.RebaseRequest{}, "DryRun": api.DryRun{}, "DryRunTarget": api.DryRunTarget{},
	"RouteChange": api.RouteChange{}, "Emergency": api.Emergency{}, "EmergencyList": api.EmergencyList{},
	"Selector": api.Selector{}, "GraySummary": api.GraySummary{}, "GrayStatus": api.GrayStatus{},
	"CohortMember": api.CohortMember{}, "Rollout": api.Rollout{}, "RolloutStep": api.RolloutStep{}, "Gray": api.Gray{},
	"GrayView": api.GrayView{}, "GrayList": api.GrayList{}, "GrayRequest": api.GrayRequest{},
	"SelectorRequest": api.SelectorRequest{}, "PromoteRequest": api.PromoteRequest{}, "PromoteResult": api.PromoteResult{},
	"RolloutRequest": api.RolloutRequest{}, "GraysData": api.GraysData{}, "PinRecord": api.PinRecord{}, "PinsData": api.PinsData{},
}

// TestOpenAPIMatchesWireTypes checks the other end of the document: the
// JSON fields of every api type are the properties of its schema, both
// ways and in every nested object, every schema has its type, and every
// wire type of the api package is described. A field added to a type but
// not to the document (or the reverse) fails here.
func TestOpenAPIMatchesWireTypes(t *testing.T) {
	s := loadSpec(t)
	schemas := s.doc["components"].(map[string]any)["schemas"].(map[string]any)
	checked := map[string]bool{} // schema names compared
	reached := map[string]bool{} // api type names compared
	for name, v := range wireTypes {
		schema, ok := schemas[name]
		if !ok {
			t.Errorf("api type for %s has no schema of that name in openapi.json", name)
			continue
		}
		checked[name] = true
		s.compareFields(t.Errorf, name, reflect.TypeOf(v), schema, checked, reached)
	}
	for name := range schemas {
		if !checked[name] {
			t.Errorf("schema %s describes no api type (add it to wireTypes)", name)
		}
	}
	for _, name := range apiWireTypeNames(t) {
		if _, ok := wireTypes[name]; !ok && !reached[name] {
			t.Errorf("api.%s is a wire type no schema of openapi.json describes", name)
		}
	}
}

// TestOpenAPIWireTypeCheckCatchesDrift proves the comparison fails on a
// field the document lacks and on a property the type lacks.
func TestOpenAPIWireTypeCheckCatchesDrift(t *testing.T) {
	s := loadSpec(t)
	schema := s.doc["components"].(map[string]any)["schemas"].(map[string]any)["Users"]
	type extraField struct {
		Group    string   `json:"group"`
		Services []string `json:"services"`
		Extra    int      `json:"extra"`
	}
	type missingField struct {
		Group string `json:"group"`
	}
	for _, v := range []any{extraField{}, missingField{}} {
		var diffs []string
		report := func(format string, args ...any) { diffs = append(diffs, fmt.Sprintf(format, args...)) }
		s.compareFields(report, "Users", reflect.TypeOf(v), schema, map[string]bool{}, map[string]bool{})
		if len(diffs) != 1 {
			t.Errorf("%T against the Users schema: %q, want one difference", v, diffs)
		}
	}
}

var timeType = reflect.TypeOf(time.Time{})

// compareFields compares the JSON fields of typ with the properties of
// schema, then the objects nested in both, reporting each difference with
// errorf and recording the named schemas and api types it compared.
func (s *spec) compareFields(errorf func(string, ...any), at string, typ reflect.Type, schema any, checked, reached map[string]bool) {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	if typ.PkgPath() == reflect.TypeOf(api.Head{}).PkgPath() {
		reached[typ.Name()] = true
	}
	sc := s.resolveChecked(schema, checked)
	props, _ := sc["properties"].(map[string]any)
	fields := jsonFields(typ)
	for name := range fields {
		if _, ok := props[name]; !ok {
			errorf("%s: field %q of %s is not a property in openapi.json", at, name, typ)
		}
	}
	for name := range props {
		if _, ok := fields[name]; !ok {
			errorf("%s: property %q of openapi.json is not a field of %s", at, name, typ)
		}
	}
	for name, ft := range fields {
		p, ok := props[name]
		if !ok {
			continue
		}
		ps := s.resolveChecked(p, checked)
		for descend := true; descend; {
			switch ft.Kind() {
			case reflect.Pointer:
				ft = ft.Elem()
			case reflect.Slice, reflect.Array:
				ft, ps = ft.Elem(), s.resolveChecked(ps["items"], checked)
			case reflect.Map:
				ap, _ := ps["additionalProperties"].(map[string]any)
				ft, ps = ft.Elem(), s.resolveChecked(ap, checked)
			default:
				descend = false
			}
		}
		if ft.Kind() == reflect.Struct && ft != timeType {
			s.compareFields(errorf, at+"."+name, ft, ps, checked, reached)
		}
	}
}

// resolveChecked resolves a $ref like resolve and records the name of
// the schema it points to.
func (s *spec) resolveChecked(v any, checked map[string]bool) map[string]any {
	if m, ok := v.(map[string]any); ok {
		if ref, ok := m["$ref"].(string); ok {
			checked[strings.TrimPrefix(ref, "#/components/schemas/")] = true
		}
	}
	m, _ := s.resolve(v).(map[string]any)
	return m
}

// jsonFields returns the JSON names of typ's fields as encoding/json
// writes them (embedded structs without a name flattened, "-" left out).
func jsonFields(typ reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range typ.NumField() {
		f := typ.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if tag == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			et := f.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				for n, ft := range jsonFields(et) {
					out[n] = ft
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

// apiWireTypeNames returns the exported types of the api package that are
// wire types: aliases of domain types, and structs whose fields carry json
// tags.
func apiWireTypeNames(t *testing.T) []string {
	t.Helper()
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, "../api", func(fi fs.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, pkg := range pkgs {
		for _, f := range pkg.Files {
			for _, d := range f.Decls {
				gd, ok := d.(*ast.GenDecl)
				if !ok || gd.Tok != token.TYPE {
					continue
				}
				for _, sp := range gd.Specs {
					ts := sp.(*ast.TypeSpec)
					if !ts.Name.IsExported() {
						continue
					}
					if ts.Assign.IsValid() {
						names = append(names, ts.Name.Name)
						continue
					}
					st, ok := ts.Type.(*ast.StructType)
					if !ok {
						continue
					}
					for _, fld := range st.Fields.List {
						if fld.Tag != nil && strings.Contains(fld.Tag.Value, `json:"`) && !strings.Contains(fld.Tag.Value, `json:"-"`) {
							names = append(names, ts.Name.Name)
							break
						}
					}
				}
			}
		}
	}
	if len(names) < len(wireTypes) {
		t.Fatalf("found %d wire types in ../api, fewer than the %d schemas: the parse went wrong", len(names), len(wireTypes))
	}
	return names
}
