package configs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong with a configuration.
type Problem struct {
	File string // file the problem is in; "" when found by Validate alone
	Line int    // 1-based line in File; 0 when not known
	Key  string // dotted key path, e.g. "alerts.notification_channels[0].url"; "" for the file as a whole
	Msg  string // what is wrong and what to do, starting with the key where there is one
}

// String formats p as "file:line: msg", leaving out what is not known.
func (p Problem) String() string {
	switch {
	case p.File != "" && p.Line > 0:
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
	case p.File != "":
		return p.File + ": " + p.Msg
	}
	return p.Msg
}

// Errors is the error returned by Parse, Load, LoadChecked and Validate: every
// problem found, in the order of the file for decoding problems and of the
// keys for Validate's.
type Errors struct {
	Problems []Problem
}

// Error lists the problems, one a line.
func (e *Errors) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

const (
	// maxProblems stops decoding a file that is not a configuration at all.
	maxProblems = 100
	// maxValues bounds the values decoded from one file, counting a value
	// again each time an alias repeats it, so that a few lines of nested
	// aliases cannot make decoding run for hours.
	maxValues = 1 << 17
)

var durationType = reflect.TypeFor[Duration]()

// decoder walks a yaml.Node tree against the Config struct, setting the
// fields the file names and noting every problem.
type decoder struct {
	file     string
	problems []Problem
	lines    map[string]int // key path -> line it is set on
	budget   int            // values left to decode, see maxValues
	stopped  bool
	merging  []*yaml.Node // mappings being merged with "<<", to refuse loops
}

// decode lays the YAML document data over *c. It returns the line each key
// path is set on, and an *Errors if there were problems; *c then holds
// whatever could be decoded.
func decode(c *Config, data []byte, name string) (map[string]int, error) {
	d := &decoder{file: name, lines: make(map[string]int), budget: maxValues}
	doc, err := parseYAML(data)
	if err != nil {
		d.problems = append(d.problems, d.syntaxProblem(err))
		return d.lines, &Errors{Problems: d.problems}
	}
	if doc == nil || len(doc.Content) == 0 {
		return d.lines, nil // empty file: the defaults
	}
	root := doc.Content[0]
	switch {
	case isNull(root):
		return d.lines, nil // a lone "~" or "---": the defaults
	case root.Kind != yaml.MappingNode:
		d.problem(root.Line, "", "want a mapping of settings such as `log_level: info`, got "+describe(root))
	default:
		d.mapping(root, reflect.ValueOf(c).Elem(), "")
	}
	if len(d.problems) > 0 {
		return d.lines, &Errors{Problems: d.problems}
	}
	return d.lines, nil
}

// parseYAML parses the one YAML document in data into a node tree; it
// returns nil for data without a document.
func parseYAML(data []byte) (doc *yaml.Node, err error) {
	// A configuration check must not crash on a bad file, even where the
	// yaml library would (our own code is not covered by this).
	defer func() {
		if r := recover(); r != nil {
			doc, err = nil, fmt.Errorf("yaml: cannot parse: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var n yaml.Node
	if err := dec.Decode(&n); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, err
	default:
		return nil, fmt.Errorf("yaml: line %d: a second YAML document; a configuration file holds one (remove the \"---\")", next.Line)
	}
	return &n, nil
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (d *decoder) syntaxProblem(err error) Problem {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Problem{File: d.file, Line: line, Msg: m[2]}
	}
	return Problem{File: d.file, Msg: strings.TrimPrefix(msg, "yaml: ")}
}

func (d *decoder) problem(line int, key, msg string) {
	if d.stopped {
		return
	}
	if len(d.problems) == maxProblems {
		d.problems = append(d.problems, Problem{File: d.file, Line: line,
			Msg: fmt.Sprintf("more than %d problems; fix these first", maxProblems)})
		d.stopped = true
		return
	}
	d.problems = append(d.problems, Problem{File: d.file, Line: line, Key: key, Msg: msg})
}

// mapping decodes the mapping n into the struct v, whose key path is key.
func (d *decoder) mapping(n *yaml.Node, v reflect.Value, key string) {
	// Merged mappings ("<<: *anchor") first, so that n's own keys win.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if isMergeKey(n.Content[i]) {
			d.merge(n.Content[i+1], v, key)
		}
	}
	seen := make(map[string]int) // key -> line
	for i := 0; i+1 < len(n.Content) && !d.stopped; i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if isMergeKey(k) {
			continue
		}
		r := resolve(k)
		if r == nil || r.Kind != yaml.ScalarNode {
			d.problem(k.Line, key, prefix(key)+"want a key name, got "+describe(k))
			continue
		}
		name, path := r.Value, joinKey(key, r.Value)
		if first, dup := seen[name]; dup {
			d.problem(k.Line, path, fmt.Sprintf("duplicate key %q (first set on line %d); keep one", path, first))
			continue
		}
		seen[name] = k.Line
		f, ok := fieldIndex(v.Type(), name)
		if !ok {
			d.problem(k.Line, path, fmt.Sprintf("unknown key %q%s", path, suggest(v.Type(), name)))
			continue
		}
		d.value(val, v.Field(f), path)
		d.lines[path] = k.Line // a section's own line, not its first key's
	}
}

// merge lays the value of a "<<" key, a mapping or a list of mappings, over
// the struct v; of a list, earlier mappings win.
func (d *decoder) merge(n *yaml.Node, v reflect.Value, key string) {
	at, n := n, resolve(n)
	var maps []*yaml.Node
	switch {
	case n != nil && n.Kind == yaml.MappingNode:
		maps = []*yaml.Node{n}
	case n != nil && n.Kind == yaml.SequenceNode:
		for i := len(n.Content) - 1; i >= 0; i-- {
			maps = append(maps, n.Content[i])
		}
	default:
		d.problem(at.Line, key, prefix(key)+"<<: want a mapping or a list of mappings to merge, got "+describe(at))
		return
	}
	for _, m := range maps {
		r := resolve(m)
		switch {
		case r == nil || r.Kind != yaml.MappingNode:
			d.problem(m.Line, key, prefix(key)+"<<: want a mapping to merge, got "+describe(m))
		case slices.Contains(d.merging, r):
			d.problem(m.Line, key, prefix(key)+"<<: the merged mapping contains itself")
		case !d.spend(m):
		default:
			d.merging = append(d.merging, r)
			d.mapping(r, v, key)
			d.merging = d.merging[:len(d.merging)-1]
		}
	}
}

// spend takes one value off the budget; false means the budget is gone.
func (d *decoder) spend(at *yaml.Node) bool {
	if d.stopped {
		return false
	}
	d.budget--
	if d.budget < 0 {
		d.problem(at.Line, "", fmt.Sprintf("aliases expand to more than %d values; write the settings out", maxValues))
		d.stopped = true
		return false
	}
	return true
}

// value decodes n into v, whose key path is key.
func (d *decoder) value(n *yaml.Node, v reflect.Value, key string) {
	if !d.spend(n) {
		return
	}
	at := n // where the value is written: an alias, not its anchor
	d.lines[key] = at.Line
	if n = resolve(n); n == nil {
		d.problem(at.Line, key, key+": alias to nothing")
		return
	}
	var msg string
	switch {
	case v.Type() == durationType:
		var dur time.Duration
		if dur, msg = decodeDuration(n); msg == "" {
			v.Set(reflect.ValueOf(Duration{dur}))
		}
	case v.Kind() == reflect.Struct:
		switch {
		case isNull(n): // "storage:" with nothing under it keeps the defaults
		case n.Kind != yaml.MappingNode:
			msg = "want a mapping of keys, got " + describe(n)
		default:
			d.mapping(n, v, key)
		}
	case v.Kind() == reflect.Slice:
		switch {
		case isNull(n) || n.Kind == yaml.SequenceNode && len(n.Content) == 0:
			v.SetZero()
		case n.Kind != yaml.SequenceNode:
			msg = "want a list, got " + describe(n)
		default:
			s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
			for i, e := range n.Content {
				d.value(e, s.Index(i), fmt.Sprintf("%s[%d]", key, i))
			}
			v.Set(s)
		}
	case v.Kind() == reflect.String:
		var s string
		if s, msg = decodeString(n); msg == "" {
			v.SetString(s)
		}
	case v.Kind() == reflect.Int:
		var i int64
		if i, msg = decodeInt(n); msg == "" {
			if v.OverflowInt(i) {
				msg = fmt.Sprintf("%d is out of range", i)
			} else {
				v.SetInt(i)
			}
		}
	case v.Kind() == reflect.Bool:
		var b bool
		if b, msg = decodeBool(n); msg == "" {
			v.SetBool(b)
		}
	default:
		panic("BUG: configs: no decoder for field type " + v.Type().String())
	}
	if msg != "" {
		d.problem(at.Line, key, key+": "+msg)
	}
}

func decodeDuration(n *yaml.Node) (time.Duration, string) {
	const want = `want a duration such as "90s" or "5m", got `
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		return 0, want + describe(n)
	}
	dur, err := time.ParseDuration(n.Value)
	if err != nil {
		return 0, want + describe(n)
	}
	return dur, ""
}

func decodeString(n *yaml.Node) (string, string) {
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case "!!null":
			return "", ""
		case "!!str", "!!int", "!!float", "!!bool", "!!timestamp":
			return n.Value, "" // as written: "0x10" stays "0x10"
		}
	}
	return "", "want a string, got " + describe(n)
}

func decodeInt(n *yaml.Node) (int64, string) {
	var i int64
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil {
		return 0, "want an integer, got " + describe(n)
	}
	return i, ""
}

func decodeBool(n *yaml.Node) (bool, string) {
	var b bool
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
		return false, "want true or false, got " + describe(n)
	}
	return b, ""
}

// resolve follows an alias to its anchored node; nil if it leads nowhere.
func resolve(n *yaml.Node) *yaml.Node {
	for range 8 { // an alias cannot be anchored, so one step is all YAML allows
		if n == nil || n.Kind != yaml.AliasNode {
			return n
		}
		n = n.Alias
	}
	return nil
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func isMergeKey(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!merge"
}

// describe names what a node holds, for "got ..." in messages.
func describe(n *yaml.Node) string {
	if r := resolve(n); r != nil {
		n = r
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing (leave the key out to keep its default)"
		}
		v := n.Value
		if r := []rune(v); len(r) > 40 {
			v = string(r[:40]) + "..."
		}
		switch n.ShortTag() {
		case "!!int", "!!float", "!!bool":
			return v
		}
		return strconv.Quote(v)
	}
	return "nothing"
}

func joinKey(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// prefix is "key: ", or "" for the top level.
func prefix(key string) string {
	if key == "" {
		return ""
	}
	return key + ": "
}

// yamlName is the key of struct field f.
func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

// fieldIndex finds the field of struct type t whose key is name.
func fieldIndex(t reflect.Type, name string) (int, bool) {
	for i := range t.NumField() {
		if yamlName(t.Field(i)) == name {
			return i, true
		}
	}
	return 0, false
}

// suggest proposes the key that an unknown key name in struct type t was
// probably meant to be: a misspelt sibling, or the same key in another
// section.
func suggest(t reflect.Type, name string) string {
	best, bestDist := "", 3 // at most two edits away
	for i := range t.NumField() {
		k := yamlName(t.Field(i))
		if dist := editDistance(name, k); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	if best != "" {
		return fmt.Sprintf("; did you mean %q?", best)
	}
	var found []string
	walkKeys(reflect.TypeFor[Config](), "", func(path string, _ reflect.Type) {
		if path == name || strings.HasSuffix(path, "."+name) {
			found = append(found, path)
		}
	})
	if len(found) > 0 {
		return fmt.Sprintf("; it belongs under another section: %q", found[0])
	}
	return ""
}

// walkKeys calls fn with the path and type of every key of the struct type
// t, parents before children; list elements show as "[]".
func walkKeys(t reflect.Type, parent string, fn func(path string, t reflect.Type)) {
	for i := range t.NumField() {
		f := t.Field(i)
		path := joinKey(parent, yamlName(f))
		fn(path, f.Type)
		ft := f.Type
		if ft.Kind() == reflect.Slice {
			ft = ft.Elem()
			path += "[]"
		}
		if ft.Kind() == reflect.Struct && ft != durationType {
			walkKeys(ft, path, fn)
		}
	}
}

// editDistance is the Levenshtein distance between short strings a and b.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
