package alerting

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/mail"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Rule is the description's rule JSON, short form (Metric, Comparator, Threshold) or full form
// (Conditions, ConditionLogic, ThrottleSec, Notifications). Decoding normalises the short form
// into one Condition.
type Rule struct {
	ID             string      `json:"id"`
	Name           string      `json:"name"`
	Description    string      `json:"description,omitempty"`
	Metric         string      `json:"metric,omitempty"`
	Comparator     string      `json:"comparator,omitempty"`
	Threshold      *float64    `json:"threshold,omitempty"`
	Conditions     []Condition `json:"conditions,omitempty"`
	ConditionLogic string      `json:"condition_logic,omitempty"` // AND (default) | OR
	Severity       string      `json:"severity"`                  // info | warning | critical
	ThrottleSec    int         `json:"throttle_sec,omitempty"`
	Notifications  []Channel   `json:"notifications,omitempty"`
}

// Condition is one comparison of a metric over a window.
type Condition struct {
	Metric     string  `json:"metric"`
	Filter     string  `json:"filter,omitempty"` // "key = value", "key != value", "key = $var", joined by AND
	Comparator string  `json:"comparator"`
	Threshold  float64 `json:"threshold"`
	TimeRange  string  `json:"time_range,omitempty"` // Go duration; "" = instant
}

// Catalog says which metrics exist and how to evaluate them (the daemon implements it).
// It must be safe for concurrent use.
type Catalog interface {
	// Metric returns the metric's kind and the label keys a filter may use; ok false: unknown.
	Metric(name string) (kind MetricKind, keys []string, ok bool)
}

// MetricKind says how a metric is evaluated over a window.
type MetricKind uint8

const (
	Gauge MetricKind = iota + 1 // a level (cpu.usage): what its window means is the evaluator's (eval.go)
	Count                       // events counted over the window (network.connection_count per src_ip)
)

// Compiled is a validated rule ready for the evaluator.
type Compiled struct {
	Rule      Rule
	Logic     string // AND | OR
	Conds     []CompiledCond
	GroupVars []string // $variables, sorted, without the '$': the group key's labels
	Throttle  time.Duration
}

// CompiledCond is one validated condition. The maps are nil when empty.
type CompiledCond struct {
	Metric    string
	Kind      MetricKind
	Cmp       Comparator
	Threshold float64
	Window    time.Duration     // 0: the instant value (gauges only)
	Equal     map[string]string // key = value
	NotEqual  map[string]string // key != value
	Vars      map[string]string // label key -> $var name, without the '$'
}

// Bounds that Compile enforces (see doc.go).
const (
	MinRuleWindow      = time.Second
	MaxRuleWindow      = 24 * time.Hour
	DefaultCountWindow = time.Minute // a Count condition without time_range
	MaxRuleThrottleSec = 7 * 24 * 3600
	MaxRuleConditions  = 32
	MaxRuleNameLen     = 200
	MaxRuleTextLen     = 4096 // description, filter, url, secret, each recipient
	MaxRuleChannels    = 16
)

// ErrInvalid is wrapped by every error about a rule's content (a *RuleError);
// ErrNotFound by changes to an ID that is not in the set.
var (
	ErrInvalid  = errors.New("invalid rule")
	ErrNotFound = errors.New("no such rule")
)

// RuleError lists every problem found in one rule, each prefixed by its
// field path ("conditions[0].metric: ..."). errors.Is(err, ErrInvalid).
type RuleError struct {
	Problems []string
}

func (e *RuleError) Error() string { return "invalid rule: " + strings.Join(e.Problems, "; ") }

// Is makes errors.Is(e, ErrInvalid) true.
func (e *RuleError) Is(target error) bool { return target == ErrInvalid }

const comparatorWant = "want gt, gte, lt, lte, eq, ne (or > >= < <= == !=)"

// ParseComparator parses gt gte lt lte eq ne and > >= < <= == !=.
func ParseComparator(s string) (Comparator, bool) {
	switch s {
	case "gt", ">":
		return GT, true
	case "gte", ">=":
		return GTE, true
	case "lt", "<":
		return LT, true
	case "lte", "<=":
		return LTE, true
	case "eq", "==":
		return EQ, true
	case "ne", "!=":
		return NE, true
	}
	return 0, false
}

// String returns the comparator's word (gt, gte, ...).
func (c Comparator) String() string {
	switch c {
	case GT:
		return "gt"
	case GTE:
		return "gte"
	case LT:
		return "lt"
	case LTE:
		return "lte"
	case EQ:
		return "eq"
	case NE:
		return "ne"
	}
	return "Comparator(" + strconv.Itoa(int(c)) + ")"
}

var (
	ruleKeys      = []string{"id", "name", "description", "metric", "comparator", "threshold", "conditions", "condition_logic", "severity", "throttle_sec", "notifications"}
	conditionKeys = []string{"metric", "filter", "comparator", "threshold", "time_range"}
	channelKeys   = []string{"type", "recipients", "url", "secret"}
)

// ParseRule decodes one rule from JSON or YAML (by content), strictly (unknown fields are errors),
// and Compile validates it against the catalog; every problem is listed at once, each naming the
// field (e.g. "conditions[1].comparator: \"bigger\": want gt, gte, lt, lte, eq, ne (or > >= < <= == !=)").
//
// The input is JSON when its first byte that is not white space is '{',
// YAML otherwise (one document). Null values count as left out. The
// errors ParseRule returns are about the shape (syntax, unknown fields,
// types, a missing threshold, both forms at once), all at once, as a
// *RuleError; the meaning is Compile's.
func ParseRule(data []byte) (Rule, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	var tree any
	isJSON := len(trimmed) > 0 && trimmed[0] == '{'
	if isJSON {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.UseNumber()
		if err := dec.Decode(&tree); err != nil {
			return Rule{}, &RuleError{Problems: []string{ruleJSONProblem(err)}}
		}
		if _, err := dec.Token(); err != io.EOF {
			return Rule{}, &RuleError{Problems: []string{"data after the rule's JSON object"}}
		}
	} else {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		if err := dec.Decode(&tree); err != nil {
			if err == io.EOF {
				return Rule{}, &RuleError{Problems: []string{"empty document: want one rule (a JSON object or a YAML mapping)"}}
			}
			return Rule{}, &RuleError{Problems: []string{"not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}}
		}
		var extra any
		if err := dec.Decode(&extra); err != io.EOF {
			return Rule{}, &RuleError{Problems: []string{"one rule per document: a second YAML document follows"}}
		}
	}
	p := &ruleParser{json: isJSON}
	r := p.rule(tree)
	p.problems = append(p.problems, normaliseShortForm(&r)...)
	if len(p.problems) > 0 {
		return Rule{}, &RuleError{Problems: p.problems}
	}
	return r, nil
}

// ruleJSONProblem says what is wrong with a rule's JSON text.
func ruleJSONProblem(err error) string {
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("not valid JSON at byte %d: %s", syn.Offset, err.Error())
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "not valid JSON: it ends early"
	}
	return "not valid JSON: " + err.Error()
}

// normaliseShortForm turns the short form (Metric, Comparator, Threshold)
// into one condition and clears it; it returns the problems that keep it
// from doing so.
func normaliseShortForm(r *Rule) []string {
	short := r.Metric != "" || r.Comparator != "" || r.Threshold != nil
	if !short {
		return nil
	}
	if len(r.Conditions) > 0 {
		f := "metric"
		if r.Metric == "" {
			f = "comparator"
			if r.Comparator == "" {
				f = "threshold"
			}
		}
		return []string{f + ": give either the short form (metric, comparator, threshold) or conditions, not both"}
	}
	if r.Threshold == nil {
		return []string{"threshold: missing (the short form is metric, comparator, threshold)"}
	}
	r.Conditions = []Condition{{Metric: r.Metric, Comparator: r.Comparator, Threshold: *r.Threshold}}
	r.Metric, r.Comparator, r.Threshold = "", "", nil
	return nil
}

// ruleParser turns a decoded JSON or YAML tree into a Rule, collecting
// every problem with its path.
type ruleParser struct {
	json     bool // numbers are json.Number
	problems []string
}

func (p *ruleParser) addf(format string, a ...any) {
	p.problems = append(p.problems, fmt.Sprintf(format, a...))
}

func rulePath(at, key string) string {
	if at == "" {
		return key
	}
	return at + "." + key
}

func ruleKindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number, int, int64, uint64, float64:
		return "a number"
	case []any:
		return "a list"
	case map[string]any, map[any]any:
		return "an object"
	}
	return fmt.Sprintf("a %T", v)
}

// object checks that v is a mapping with only the keys known; it returns
// nil (and records the problem) when v is not a mapping.
func (p *ruleParser) object(v any, at string, known []string) map[string]any {
	what := at
	if what == "" {
		what = "the rule"
	}
	var m map[string]any
	switch v := v.(type) {
	case map[string]any:
		m = v
	case map[any]any:
		p.addf("%s: want an object with string keys", what)
		return nil
	default:
		p.addf("%s: want an object, got %s", what, ruleKindOf(v))
		return nil
	}
	var unknown []string
	for k := range m {
		if !slices.Contains(known, k) {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		p.addf("%s: unknown field (want %s)", rulePath(at, strconv.Quote(k)), strings.Join(known, ", "))
	}
	return m
}

func (p *ruleParser) str(m map[string]any, at, key string) string {
	switch v := m[key].(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		p.addf("%s: want a string, got %s", rulePath(at, key), ruleKindOf(v))
		return ""
	}
}

func (p *ruleParser) num(m map[string]any, at, key string) *float64 {
	var f float64
	switch v := m[key].(type) {
	case nil:
		return nil
	case json.Number:
		var err error
		if f, err = strconv.ParseFloat(string(v), 64); err != nil {
			p.addf("%s: %s: out of range", rulePath(at, key), v)
			return nil
		}
	case int:
		f = float64(v)
	case int64:
		f = float64(v)
	case uint64:
		f = float64(v)
	case float64:
		f = v
	default:
		p.addf("%s: want a number, got %s", rulePath(at, key), ruleKindOf(v))
		return nil
	}
	return &f
}

func (p *ruleParser) integer(m map[string]any, at, key string) int {
	const lim = 1 << 53
	bad := func() int {
		p.addf("%s: %v: want an integer", rulePath(at, key), m[key])
		return 0
	}
	switch v := m[key].(type) {
	case nil:
		return 0
	case json.Number:
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil || n > lim || n < -lim {
			return bad()
		}
		return int(n)
	case int:
		if v > lim || v < -lim {
			return bad()
		}
		return v
	case int64:
		if v > lim || v < -lim {
			return bad()
		}
		return int(v)
	case uint64:
		if v > lim {
			return bad()
		}
		return int(v)
	case float64:
		if v != math.Trunc(v) || v > lim || v < -lim {
			return bad()
		}
		return int(v)
	default:
		p.addf("%s: want an integer, got %s", rulePath(at, key), ruleKindOf(v))
		return 0
	}
}

func (p *ruleParser) list(m map[string]any, at, key string) []any {
	switch v := m[key].(type) {
	case nil:
		return nil
	case []any:
		return v
	default:
		p.addf("%s: want a list, got %s", rulePath(at, key), ruleKindOf(v))
		return nil
	}
}

func (p *ruleParser) rule(v any) Rule {
	var r Rule
	m := p.object(v, "", ruleKeys)
	if m == nil {
		return r
	}
	r.ID = p.str(m, "", "id")
	r.Name = p.str(m, "", "name")
	r.Description = p.str(m, "", "description")
	r.Metric = p.str(m, "", "metric")
	r.Comparator = p.str(m, "", "comparator")
	r.Threshold = p.num(m, "", "threshold")
	for i, c := range p.list(m, "", "conditions") {
		r.Conditions = append(r.Conditions, p.condition(c, fmt.Sprintf("conditions[%d]", i)))
	}
	r.ConditionLogic = p.str(m, "", "condition_logic")
	r.Severity = p.str(m, "", "severity")
	r.ThrottleSec = p.integer(m, "", "throttle_sec")
	for i, c := range p.list(m, "", "notifications") {
		r.Notifications = append(r.Notifications, p.channel(c, fmt.Sprintf("notifications[%d]", i)))
	}
	return r
}

func (p *ruleParser) condition(v any, at string) Condition {
	var c Condition
	m := p.object(v, at, conditionKeys)
	if m == nil {
		return c
	}
	c.Metric = p.str(m, at, "metric")
	c.Filter = p.str(m, at, "filter")
	c.Comparator = p.str(m, at, "comparator")
	if t := p.num(m, at, "threshold"); t != nil {
		c.Threshold = *t
	} else if _, ok := m["threshold"]; !ok || m["threshold"] == nil {
		p.addf("%s: missing", rulePath(at, "threshold"))
	}
	c.TimeRange = p.str(m, at, "time_range")
	return c
}

func (p *ruleParser) channel(v any, at string) Channel {
	var c Channel
	m := p.object(v, at, channelKeys)
	if m == nil {
		return c
	}
	c.Type = p.str(m, at, "type")
	for i, r := range p.list(m, at, "recipients") {
		s, ok := r.(string)
		if !ok {
			p.addf("%s[%d]: want a string, got %s", rulePath(at, "recipients"), i, ruleKindOf(r))
			continue
		}
		c.Recipients = append(c.Recipients, s)
	}
	c.URL = p.str(m, at, "url")
	c.Secret = p.str(m, at, "secret")
	return c
}

// Compile validates r against cat (which must not be nil) and returns the
// rule ready for the evaluator; a short-form rule is normalised first. On
// error it returns a *RuleError with every problem, each naming its field.
func Compile(r Rule, cat Catalog) (*Compiled, error) {
	r = cloneRule(r)
	shortProblems := normaliseShortForm(&r)
	problems := slices.Clone(shortProblems)
	addf := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	c := &Compiled{Rule: r}

	if r.ID != "" && !ValidRuleID(r.ID) {
		addf("id: %q: want 1 to 64 letters, digits, '-' or '_' (not active or history)", r.ID)
	}
	switch {
	case r.Name == "":
		addf("name: missing")
	case len(r.Name) > MaxRuleNameLen:
		addf("name: longer than %d bytes", MaxRuleNameLen)
	case !utf8.ValidString(r.Name) || strings.IndexFunc(r.Name, unicode.IsControl) >= 0:
		addf("name: %q: want UTF-8 text without control characters", r.Name)
	}
	if msg := ruleCheckText(r.Description); msg != "" {
		addf("description: %s", msg)
	}
	switch r.Severity {
	case "info", "warning", "critical":
	case "":
		addf("severity: missing: want info, warning or critical")
	default:
		addf("severity: %q: want info, warning or critical", r.Severity)
	}
	switch strings.ToUpper(r.ConditionLogic) {
	case "", "AND":
		c.Logic = "AND"
	case "OR":
		c.Logic = "OR"
	default:
		addf("condition_logic: %q: want AND or OR", r.ConditionLogic)
	}
	if r.ThrottleSec < 0 || r.ThrottleSec > MaxRuleThrottleSec {
		addf("throttle_sec: %d: want 0 to %d (seconds)", r.ThrottleSec, MaxRuleThrottleSec)
	} else {
		c.Throttle = time.Duration(r.ThrottleSec) * time.Second
	}

	switch {
	case len(r.Conditions) == 0 && len(shortProblems) == 0:
		addf("conditions: missing: a rule needs at least one condition (or metric, comparator and threshold)")
	case len(r.Conditions) > MaxRuleConditions:
		addf("conditions: %d conditions: want at most %d", len(r.Conditions), MaxRuleConditions)
	}
	// varSets[i] is the sorted variable set of condition i; nil when its
	// filter did not parse (then it is left out of the join check).
	varSets := make([][]string, len(r.Conditions))
	varOK := make([]bool, len(r.Conditions))
	for i, cond := range r.Conditions {
		at := fmt.Sprintf("conditions[%d]", i)
		cc := CompiledCond{Metric: cond.Metric, Threshold: cond.Threshold}
		var keys []string
		known := false
		if cond.Metric == "" {
			addf("%s.metric: missing", at)
		} else if kind, k, ok := cat.Metric(cond.Metric); !ok {
			addf("%s.metric: %q: unknown metric (GET /api/v1/metrics lists them)", at, cond.Metric)
		} else {
			cc.Kind, keys, known = kind, k, true
		}
		if cond.Comparator == "" {
			addf("%s.comparator: missing: %s", at, comparatorWant)
		} else if cmp, ok := ParseComparator(cond.Comparator); !ok {
			addf("%s.comparator: %q: %s", at, cond.Comparator, comparatorWant)
		} else {
			cc.Cmp = cmp
		}
		if math.IsNaN(cond.Threshold) || math.IsInf(cond.Threshold, 0) {
			addf("%s.threshold: %v: want a finite number", at, cond.Threshold)
		}
		if cond.TimeRange != "" {
			d, err := time.ParseDuration(cond.TimeRange)
			switch {
			case err != nil:
				addf("%s.time_range: %q: want a Go duration such as \"60s\" or \"5m\"", at, cond.TimeRange)
			case d < MinRuleWindow || d > MaxRuleWindow:
				addf("%s.time_range: %q: want from 1s to 24h", at, cond.TimeRange)
			default:
				cc.Window = d
			}
		} else if known && cc.Kind == Count {
			cc.Window = DefaultCountWindow
		}
		clauses, msg := parseRuleFilter(cond.Filter)
		if m := ruleCheckText(cond.Filter); m != "" {
			msg = m
		}
		if msg != "" {
			addf("%s.filter: %q: %s", at, cond.Filter, msg)
		} else {
			varOK[i] = true
			for _, cl := range clauses {
				if known && !slices.Contains(keys, cl.key) {
					has := "none"
					if len(keys) > 0 {
						has = strings.Join(keys, ", ")
					}
					addf("%s.filter: key %q: metric %s has no such label (it has %s)", at, cl.key, cond.Metric, has)
					varOK[i] = false // its variables are not known: no join check
					continue
				}
				switch {
				case cl.isVar:
					if cc.Vars == nil {
						cc.Vars = map[string]string{}
					}
					cc.Vars[cl.key] = cl.value
					varSets[i] = append(varSets[i], cl.value)
				case cl.op == "=":
					if cc.Equal == nil {
						cc.Equal = map[string]string{}
					}
					cc.Equal[cl.key] = cl.value
				default:
					if cc.NotEqual == nil {
						cc.NotEqual = map[string]string{}
					}
					cc.NotEqual[cl.key] = cl.value
				}
			}
			sort.Strings(varSets[i])
		}
		c.Conds = append(c.Conds, cc)
	}
	// Every condition binds the same variables: they are the group key the
	// conditions join on.
	ref := -1
	for i := range r.Conditions {
		if !varOK[i] {
			continue
		}
		if ref < 0 {
			ref = i
			c.GroupVars = varSets[i]
			continue
		}
		if !slices.Equal(varSets[i], varSets[ref]) {
			addf("conditions[%d].filter: binds %s, conditions[%d] binds %s: every condition of a rule must bind the same $variables (they are its group key)",
				i, ruleVarList(varSets[i]), ref, ruleVarList(varSets[ref]))
		}
	}

	if len(r.Notifications) > MaxRuleChannels {
		addf("notifications: %d channels: want at most %d", len(r.Notifications), MaxRuleChannels)
	}
	for i, ch := range r.Notifications {
		problems = append(problems, ruleCheckChannel(ch, fmt.Sprintf("notifications[%d]", i))...)
	}
	if len(problems) > 0 {
		return nil, &RuleError{Problems: problems}
	}
	return c, nil
}

func ruleVarList(vars []string) string {
	if len(vars) == 0 {
		return "no variable"
	}
	return "$" + strings.Join(vars, ", $")
}

// ruleCheckText checks free text (description, secret, ...): "" when good.
func ruleCheckText(s string) string {
	switch {
	case len(s) > MaxRuleTextLen:
		return fmt.Sprintf("longer than %d bytes", MaxRuleTextLen)
	case !utf8.ValidString(s):
		return "not valid UTF-8"
	}
	return ""
}

func ruleCheckChannel(ch Channel, at string) []string {
	var problems []string
	addf := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	checkURL := func() {
		if ch.URL == "" {
			addf("%s.url: missing: a %s channel needs an http or https URL", at, ch.Type)
			return
		}
		u, err := url.Parse(ch.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" ||
			len(ch.URL) > MaxRuleTextLen || !utf8.ValidString(ch.URL) {
			addf("%s.url: %q: want an absolute http or https URL", at, ch.URL)
		}
	}
	switch ch.Type {
	case "email":
		if len(ch.Recipients) == 0 {
			addf("%s.recipients: missing: an email channel needs at least one address", at)
		}
		for j, a := range ch.Recipients {
			if addr, err := mail.ParseAddress(a); err != nil || len(a) > MaxRuleTextLen || addr.Address == "" {
				addf("%s.recipients[%d]: %q: not a mail address", at, j, a)
			}
		}
		if ch.URL != "" {
			addf("%s.url: an email channel takes no url", at)
		}
	case "webhook", "prometheus-alertmanager":
		checkURL()
		if len(ch.Recipients) > 0 {
			addf("%s.recipients: a %s channel takes no recipients", at, ch.Type)
		}
	case "":
		addf("%s.type: missing: want email, webhook or prometheus-alertmanager", at)
	default:
		addf("%s.type: %q: want email, webhook or prometheus-alertmanager", at, ch.Type)
	}
	if ch.Secret != "" && ch.Type != "webhook" {
		addf("%s.secret: only a webhook channel takes a secret", at)
	}
	if msg := ruleCheckText(ch.Secret); msg != "" {
		addf("%s.secret: %s", at, msg)
	}
	return problems
}

// ValidRuleID reports whether id can name a rule (and its file): 1 to 64
// ASCII letters, digits, '-' or '_', and not "active" or "history" (the
// API's /api/v1/alerts/active and /history).
func ValidRuleID(id string) bool {
	if id == "" || len(id) > 64 || id == "active" || id == "history" {
		return false
	}
	for i := 0; i < len(id); i++ {
		b := id[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_') {
			return false
		}
	}
	return true
}

// filterClause is one clause of a condition's filter.
type filterClause struct {
	key, op, value string // op "=" or "!="; value is the variable name when isVar
	isVar          bool
}

func isRuleIdentStart(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b == '_'
}

func isRuleIdent(b byte) bool {
	return isRuleIdentStart(b) || b >= '0' && b <= '9'
}

// parseRuleFilter parses `key = value`, `key != value`, `key = $var`
// clauses joined by AND (any case). Keys are identifiers that may hold dots
// and dashes; values are bare words (up to white space), "double quoted"
// (Go escapes) or 'single quoted' (no escapes); a variable is $ and an
// identifier. A key takes at most one = clause (a value or a variable) and
// one != clause (src_ip = $src_ip AND src_ip != 10.0.0.1: every source but
// one). It returns the problem as a message, "" when good.
func parseRuleFilter(s string) ([]filterClause, string) {
	var out []filterClause
	i := 0
	space := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
	}
	space()
	if i == len(s) {
		return nil, ""
	}
	seenKey := map[string]bool{}
	seenVar := map[string]string{}
	for n := 1; ; n++ {
		start := i
		if i < len(s) && isRuleIdentStart(s[i]) {
			for i < len(s) && (isRuleIdent(s[i]) || s[i] == '.' || s[i] == '-') {
				i++
			}
		}
		if i == start {
			return nil, fmt.Sprintf("clause %d: want a label key", n)
		}
		cl := filterClause{key: s[start:i]}
		space()
		switch {
		case strings.HasPrefix(s[i:], "!="):
			cl.op, i = "!=", i+2
		case strings.HasPrefix(s[i:], "="):
			cl.op, i = "=", i+1
		default:
			return nil, fmt.Sprintf("clause %d: want = or != after %s", n, cl.key)
		}
		space()
		if i == len(s) {
			return nil, fmt.Sprintf("clause %d: want a value after %s", n, cl.op)
		}
		switch s[i] {
		case '"':
			j := i + 1
			for j < len(s) && s[j] != '"' {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(s) {
				return nil, fmt.Sprintf("clause %d: the quoted value does not end", n)
			}
			v, err := strconv.Unquote(s[i : j+1])
			if err != nil {
				return nil, fmt.Sprintf("clause %d: bad quoted value %s", n, s[i:j+1])
			}
			cl.value, i = v, j+1
		case '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Sprintf("clause %d: the quoted value does not end", n)
			}
			cl.value, i = s[i+1:i+1+j], i+j+2
		case '$':
			j := i + 1
			if j < len(s) && isRuleIdentStart(s[j]) {
				for j < len(s) && isRuleIdent(s[j]) {
					j++
				}
			}
			if j == i+1 {
				return nil, fmt.Sprintf("clause %d: want a variable name after $ (quote a value that starts with $)", n)
			}
			cl.value, cl.isVar, i = s[i+1:j], true, j
			if cl.op != "=" {
				return nil, fmt.Sprintf("clause %d: a $variable needs =, not !=", n)
			}
			if k, ok := seenVar[cl.value]; ok {
				return nil, fmt.Sprintf("clause %d: $%s is already bound to %s", n, cl.value, k)
			}
			seenVar[cl.value] = cl.key
		default:
			j := i
			for j < len(s) && s[j] != ' ' && s[j] != '\t' {
				j++
			}
			cl.value, i = s[i:j], j
			if strings.ContainsAny(cl.value, "\"'") {
				return nil, fmt.Sprintf("clause %d: value %s: quote the whole value", n, cl.value)
			}
		}
		if seenKey[cl.key+cl.op] {
			return nil, fmt.Sprintf("clause %d: key %s given twice with %s", n, cl.key, cl.op)
		}
		seenKey[cl.key+cl.op] = true
		out = append(out, cl)
		afterValue := i
		space()
		if i == len(s) {
			return out, ""
		}
		if i == afterValue || len(s)-i < 3 || !strings.EqualFold(s[i:i+3], "AND") || (i+3 < len(s) && s[i+3] != ' ' && s[i+3] != '\t') {
			return nil, fmt.Sprintf("clause %d: want AND or the end after the value", n)
		}
		i += 3
		space()
		if i == len(s) {
			return nil, fmt.Sprintf("clause %d: nothing after AND", n)
		}
	}
}

// cloneRule returns a deep copy of r.
func cloneRule(r Rule) Rule {
	if r.Threshold != nil {
		t := *r.Threshold
		r.Threshold = &t
	}
	r.Conditions = slices.Clone(r.Conditions)
	if r.Notifications != nil {
		chs := make([]Channel, len(r.Notifications))
		for i, ch := range r.Notifications {
			ch.Recipients = slices.Clone(ch.Recipients)
			chs[i] = ch
		}
		r.Notifications = chs
	}
	return r
}
