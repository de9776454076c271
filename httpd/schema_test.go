package httpd_test

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/netsentry/netsentry/httpd"
)

// openAPI is the embedded OpenAPI document, decoded, with a checker for
// the subset of JSON Schema it uses: type (one or a list), properties,
// required, additionalProperties (false or a schema), items, enum,
// minimum, maximum and local $ref.
type openAPI struct {
	doc map[string]any
}

func loadOpenAPI(t testing.TB) *openAPI {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(httpd.OpenAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.1") {
		t.Fatalf("openapi.json: version %q, want 3.1.x", v)
	}
	return &openAPI{doc: doc}
}

func (o *openAPI) resolve(ref string) map[string]any {
	var cur any = o.doc
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	m, _ := cur.(map[string]any)
	return m
}

func (o *openAPI) deref(m map[string]any) map[string]any {
	for m != nil {
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		m = o.resolve(ref)
	}
	return m
}

// responseSchema returns the schema the document gives for a response.
func (o *openAPI) responseSchema(path, method string, status int, contentType string) (map[string]any, error) {
	paths := o.doc["paths"].(map[string]any)
	p, ok := paths[path].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("path %s is not in openapi.json", path)
	}
	op, ok := p[strings.ToLower(method)].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s %s is not in openapi.json", method, path)
	}
	resp := o.deref(op["responses"].(map[string]any)[fmt.Sprint(status)].(map[string]any))
	if resp == nil {
		return nil, fmt.Errorf("%s %s: status %d is not documented", method, path, status)
	}
	ct := strings.TrimSpace(strings.SplitN(contentType, ";", 2)[0])
	media, ok := resp["content"].(map[string]any)[ct].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s %s %d: content type %q is not documented", method, path, status, ct)
	}
	return o.deref(media["schema"].(map[string]any)), nil
}

// validate checks v (decoded JSON) against schema s; it returns every
// mismatch, each with its JSON path.
func (o *openAPI) validate(s map[string]any, v any, at string) []string {
	s = o.deref(s)
	if s == nil {
		return []string{at + ": schema reference does not resolve"}
	}
	var errs []string
	if t, ok := s["type"]; ok {
		var types []string
		switch t := t.(type) {
		case string:
			types = []string{t}
		case []any:
			for _, x := range t {
				types = append(types, x.(string))
			}
		}
		matched := false
		for _, ty := range types {
			if typeMatches(ty, v) {
				matched = true
			}
		}
		if !matched {
			return []string{fmt.Sprintf("%s: %v is not of type %v", at, short(v), types)}
		}
	}
	if enum, ok := s["enum"].([]any); ok {
		found := false
		for _, e := range enum {
			if e == v {
				found = true
			}
		}
		if !found {
			errs = append(errs, fmt.Sprintf("%s: %v is not one of %v", at, v, enum))
		}
	}
	if n, ok := v.(float64); ok {
		if min, ok := s["minimum"].(float64); ok && n < min {
			errs = append(errs, fmt.Sprintf("%s: %v < minimum %v", at, n, min))
		}
		if max, ok := s["maximum"].(float64); ok && n > max {
			errs = append(errs, fmt.Sprintf("%s: %v > maximum %v", at, n, max))
		}
	}
	switch v := v.(type) {
	case map[string]any:
		props, _ := s["properties"].(map[string]any)
		for _, r := range asStrings(s["required"]) {
			if _, ok := v[r]; !ok {
				errs = append(errs, fmt.Sprintf("%s: required member %q missing", at, r))
			}
		}
		for k, val := range v {
			if ps, ok := props[k].(map[string]any); ok {
				errs = append(errs, o.validate(ps, val, at+"."+k)...)
				continue
			}
			switch ap := s["additionalProperties"].(type) {
			case bool:
				if !ap {
					errs = append(errs, fmt.Sprintf("%s: member %q is not in the schema", at, k))
				}
			case map[string]any:
				errs = append(errs, o.validate(ap, val, at+"."+k)...)
			}
		}
	case []any:
		if items, ok := s["items"].(map[string]any); ok {
			for i, x := range v {
				errs = append(errs, o.validate(items, x, fmt.Sprintf("%s[%d]", at, i))...)
			}
		}
	}
	return errs
}

func typeMatches(t string, v any) bool {
	switch t {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "null":
		return v == nil
	case "number":
		_, ok := v.(float64)
		return ok
	case "integer":
		n, ok := v.(float64)
		return ok && n == math.Trunc(n)
	}
	return false
}

func asStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		out = append(out, x.(string))
	}
	return out
}

func short(v any) string {
	s := fmt.Sprint(v)
	if len(s) > 60 {
		s = s[:60] + "..."
	}
	return s
}

// TestSchemaChecker: the checker itself rejects what it should.
func TestSchemaChecker(t *testing.T) {
	o := loadOpenAPI(t)
	s := map[string]any{"$ref": "#/components/schemas/Connection"}
	good := map[string]any{"source_ip": "10.0.0.1", "source_port": 1.0, "dest_ip": "10.0.0.2", "dest_port": 80.0,
		"protocol": "TCP", "bytes_tx": 1.0, "bytes_rx": 2.0, "ip_bytes_tx": 1.0, "ip_bytes_rx": 1.0, "packets_tx": 1.0, "packets_rx": 1.0, "duration_sec": 0.5,
		"state": "ESTABLISHED", "conn_state": "S1", "application_protocol": "HTTP", "app": map[string]any{}}
	if errs := o.validate(s, good, "$"); len(errs) > 0 {
		t.Fatalf("good connection rejected: %v", errs)
	}
	for name, mutate := range map[string]func(m map[string]any){
		"missing":    func(m map[string]any) { delete(m, "state") },
		"extra":      func(m map[string]any) { m["vlan"] = 1.0 },
		"type":       func(m map[string]any) { m["bytes_tx"] = "1" },
		"fraction":   func(m map[string]any) { m["bytes_tx"] = 1.5 },
		"enum":       func(m map[string]any) { m["state"] = "OPEN" },
		"conn_state": func(m map[string]any) { m["conn_state"] = "S4" },
		"guess":      func(m map[string]any) { m["app"] = map[string]any{"guess": false} },
		"app member": func(m map[string]any) { m["app"] = map[string]any{"tls": "x"} },
		"range":      func(m map[string]any) { m["dest_port"] = 70000.0 },
		"negative":   func(m map[string]any) { m["packets_rx"] = -1.0 },
		"null value": func(m map[string]any) { m["protocol"] = nil },
	} {
		bad := map[string]any{}
		for k, v := range good {
			bad[k] = v
		}
		mutate(bad)
		if errs := o.validate(s, bad, "$"); len(errs) == 0 {
			t.Errorf("%s: bad connection accepted", name)
		}
	}
}
