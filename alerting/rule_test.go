package alerting

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// testCatalog knows the description's metrics: cpu.usage, a gauge without
// labels, and the two per-source counts of the port-scan rule.
type testCatalog struct{}

func (testCatalog) Metric(name string) (MetricKind, []string, bool) {
	switch name {
	case "cpu.usage":
		return Gauge, nil, true
	case "network.connection_count", "network.unique_dest_port_count":
		return Count, []string{"src_ip"}, true
	}
	return 0, nil, false
}

// The description's two rule examples, verbatim (the bodies of its curl -d).
const (
	descHighCPU = `{
"name": "High CPU Usage",
"metric": "cpu.usage",
"comparator": "gt",
"threshold": 90.0,
"severity": "warning"
}`
	descPortScan = `{
"name": "Potential Port Scan",
"description": "Detects potential port scanning activity",
"conditions": [
{
"metric": "network.connection_count",
"filter": "src_ip = $src_ip",
"comparator": "gt",
"threshold": 100,
"time_range": "60s"
},
{
"metric": "network.unique_dest_port_count",
"filter": "src_ip = $src_ip",
"comparator": "gt",
"threshold": 20,
"time_range": "60s"
}
],
"condition_logic": "AND",
"severity": "critical",
"throttle_sec": 300,
"notifications": [
{
"type": "email",
"recipients": ["security@example.com"]
},
{
"type": "webhook",
"url": "https://example.com/security-alerts"
}
]
}`
	// The port-scan rule as a YAML file would hold it.
	yamlPortScan = `name: Potential Port Scan
description: Detects potential port scanning activity
conditions:
  - metric: network.connection_count
    filter: src_ip = $src_ip
    comparator: gt
    threshold: 100
    time_range: 60s
  - metric: network.unique_dest_port_count
    filter: "src_ip = $src_ip"
    comparator: gt
    threshold: 20
    time_range: 60s
condition_logic: AND
severity: critical
throttle_sec: 300
notifications:
  - type: email
    recipients: [security@example.com]
  - type: webhook
    url: https://example.com/security-alerts
`
)

// The rules as the description's text says them, written out by hand.
var (
	wantHighCPU = Rule{Name: "High CPU Usage", Severity: "warning",
		Conditions: []Condition{{Metric: "cpu.usage", Comparator: "gt", Threshold: 90}}}
	wantPortScan = Rule{Name: "Potential Port Scan", Description: "Detects potential port scanning activity",
		Conditions: []Condition{
			{Metric: "network.connection_count", Filter: "src_ip = $src_ip", Comparator: "gt", Threshold: 100, TimeRange: "60s"},
			{Metric: "network.unique_dest_port_count", Filter: "src_ip = $src_ip", Comparator: "gt", Threshold: 20, TimeRange: "60s"},
		},
		ConditionLogic: "AND", Severity: "critical", ThrottleSec: 300,
		Notifications: []Channel{{Type: "email", Recipients: []string{"security@example.com"}},
			{Type: "webhook", URL: "https://example.com/security-alerts"}}}
)

func TestDescriptionExamples(t *testing.T) {
	for _, c := range []struct {
		name, text string
		want       Rule
		comp       Compiled
	}{
		{"high cpu", descHighCPU, wantHighCPU, Compiled{Logic: "AND",
			Conds: []CompiledCond{{Metric: "cpu.usage", Kind: Gauge, Cmp: GT, Threshold: 90}}}},
		{"port scan", descPortScan, wantPortScan, Compiled{Logic: "AND", GroupVars: []string{"src_ip"}, Throttle: 300 * time.Second,
			Conds: []CompiledCond{
				{Metric: "network.connection_count", Kind: Count, Cmp: GT, Threshold: 100, Window: time.Minute, Vars: map[string]string{"src_ip": "src_ip"}},
				{Metric: "network.unique_dest_port_count", Kind: Count, Cmp: GT, Threshold: 20, Window: time.Minute, Vars: map[string]string{"src_ip": "src_ip"}},
			}}},
		{"port scan yaml", yamlPortScan, wantPortScan, Compiled{Logic: "AND", GroupVars: []string{"src_ip"}, Throttle: 300 * time.Second,
			Conds: []CompiledCond{
				{Metric: "network.connection_count", Kind: Count, Cmp: GT, Threshold: 100, Window: time.Minute, Vars: map[string]string{"src_ip": "src_ip"}},
				{Metric: "network.unique_dest_port_count", Kind: Count, Cmp: GT, Threshold: 20, Window: time.Minute, Vars: map[string]string{"src_ip": "src_ip"}},
			}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := ParseRule([]byte(c.text))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(r, c.want) {
				t.Fatalf("parsed\n%+v\nwant\n%+v", r, c.want)
			}
			comp, err := Compile(r, testCatalog{})
			if err != nil {
				t.Fatal(err)
			}
			c.comp.Rule = c.want
			if !reflect.DeepEqual(*comp, c.comp) {
				t.Fatalf("compiled\n%+v\nwant\n%+v", *comp, c.comp)
			}
		})
	}
	// Compile normalises a short-form Rule built in Go the same way.
	ninety := 90.0
	comp, err := Compile(Rule{Name: "High CPU Usage", Metric: "cpu.usage", Comparator: ">", Threshold: &ninety, Severity: "warning"}, testCatalog{})
	if err != nil || len(comp.Conds) != 1 || comp.Conds[0].Cmp != GT || comp.Rule.Metric != "" || comp.Rule.Conditions[0].Comparator != ">" {
		t.Fatalf("short form in Go: %+v %v", comp, err)
	}
}

// TestBadRules: every problem is listed, each naming its field, in the
// exact words.
func TestBadRules(t *testing.T) {
	for _, c := range []struct {
		name, text string
		want       []string
	}{
		{"unknown metric", `{"name":"x","severity":"info","conditions":[{"metric":"foo.bar","comparator":"gt","threshold":1}]}`,
			[]string{`conditions[0].metric: "foo.bar": unknown metric (GET /api/v1/metrics lists them)`}},
		{"short form unknown metric", `{"name":"x","severity":"info","metric":"cpu.usag","comparator":"gt","threshold":1}`,
			[]string{`conditions[0].metric: "cpu.usag": unknown metric (GET /api/v1/metrics lists them)`}},
		{"bad comparator", `{"name":"x","severity":"info","conditions":[{"metric":"cpu.usage","comparator":"gt","threshold":1},{"metric":"cpu.usage","comparator":"bigger","threshold":1}]}`,
			[]string{`conditions[1].comparator: "bigger": want gt, gte, lt, lte, eq, ne (or > >= < <= == !=)`}},
		{"missing comparator", `{"name":"x","severity":"info","conditions":[{"metric":"cpu.usage","threshold":1}]}`,
			[]string{`conditions[0].comparator: missing: want gt, gte, lt, lte, eq, ne (or > >= < <= == !=)`}},
		{"negative window", `{"name":"x","severity":"info","conditions":[{"metric":"network.connection_count","comparator":"gt","threshold":1,"time_range":"-60s"}]}`,
			[]string{`conditions[0].time_range: "-60s": want from 1s to 24h`}},
		{"absurd window", `{"name":"x","severity":"info","conditions":[{"metric":"network.connection_count","comparator":"gt","threshold":1,"time_range":"25h"}]}`,
			[]string{`conditions[0].time_range: "25h": want from 1s to 24h`}},
		{"tiny window", `{"name":"x","severity":"info","conditions":[{"metric":"network.connection_count","comparator":"gt","threshold":1,"time_range":"500ms"}]}`,
			[]string{`conditions[0].time_range: "500ms": want from 1s to 24h`}},
		{"not a duration", `{"name":"x","severity":"info","conditions":[{"metric":"cpu.usage","comparator":"gt","threshold":1,"time_range":"60"}]}`,
			[]string{`conditions[0].time_range: "60": want a Go duration such as "60s" or "5m"`}},
		{"filter on unknown key", `{"name":"x","severity":"info","conditions":[{"metric":"network.connection_count","filter":"dst_ip = 10.0.0.1","comparator":"gt","threshold":1}]}`,
			[]string{`conditions[0].filter: key "dst_ip": metric network.connection_count has no such label (it has src_ip)`}},
		{"filter on unlabelled metric", `{"name":"x","severity":"info","conditions":[{"metric":"cpu.usage","filter":"host = a","comparator":"gt","threshold":1}]}`,
			[]string{`conditions[0].filter: key "host": metric cpu.usage has no such label (it has none)`}},
		{"variable not joinable", `{"name":"x","severity":"info","conditions":[{"metric":"network.connection_count","filter":"src_ip = $src_ip","comparator":"gt","threshold":1},{"metric":"network.unique_dest_port_count","comparator":"gt","threshold":1}]}`,
			[]string{`conditions[1].filter: binds no variable, conditions[0] binds $src_ip: every condition of a rule must bind the same $variables (they are its group key)`}},
		{"bad filter", `{"name":"x","severity":"info","conditions":[{"metric":"network.connection_count","filter":"src_ip = ","comparator":"gt","threshold":1}]}`,
			[]string{`conditions[0].filter: "src_ip = ": clause 1: want a value after =`}},
		{"missing name and severity", `{"metric":"cpu.usage","comparator":"gt","threshold":1}`,
			[]string{`name: missing`, `severity: missing: want info, warning or critical`}},
		{"bad severity", `{"name":"x","severity":"high","metric":"cpu.usage","comparator":"gt","threshold":1}`,
			[]string{`severity: "high": want info, warning or critical`}},
		{"negative throttle", `{"name":"x","severity":"info","metric":"cpu.usage","comparator":"gt","threshold":1,"throttle_sec":-5}`,
			[]string{`throttle_sec: -5: want 0 to 604800 (seconds)`}},
		{"bad logic", `{"name":"x","severity":"info","metric":"cpu.usage","comparator":"gt","threshold":1,"condition_logic":"XOR"}`,
			[]string{`condition_logic: "XOR": want AND or OR`}},
		{"email without recipients", `{"name":"x","severity":"info","metric":"cpu.usage","comparator":"gt","threshold":1,"notifications":[{"type":"email"}]}`,
			[]string{`notifications[0].recipients: missing: an email channel needs at least one address`}},
		{"bad recipient", `{"name":"x","severity":"info","metric":"cpu.usage","comparator":"gt","threshold":1,"notifications":[{"type":"email","recipients":["a@b.example","nobody"]}]}`,
			[]string{`notifications[0].recipients[1]: "nobody": not a mail address`}},
		{"webhook without url", `{"name":"x","severity":"info","metric":"cpu.usage","comparator":"gt","threshold":1,"notifications":[{"type":"webhook"}]}`,
			[]string{`notifications[0].url: missing: a webhook channel needs an http or https URL`}},
		{"alertmanager bad url", `{"name":"x","severity":"info","metric":"cpu.usage","comparator":"gt","threshold":1,"notifications":[{"type":"prometheus-alertmanager","url":"ftp://am:9093/api/v2/alerts"},{"type":"webhook","url":"/hook"}]}`,
			[]string{`notifications[0].url: "ftp://am:9093/api/v2/alerts": want an absolute http or https URL`,
				`notifications[1].url: "/hook": want an absolute http or https URL`}},
		{"unknown channel", `{"name":"x","severity":"info","metric":"cpu.usage","comparator":"gt","threshold":1,"notifications":[{"type":"sms","secret":"s"}]}`,
			[]string{`notifications[0].type: "sms": want email, webhook or prometheus-alertmanager`, `notifications[0].secret: only a webhook channel takes a secret`}},
		{"no condition", `{"name":"x","severity":"info"}`,
			[]string{`conditions: missing: a rule needs at least one condition (or metric, comparator and threshold)`}},
		{"all at once", `{"name":"","severity":"loud","throttle_sec":-1,"conditions":[{"metric":"foo.bar","comparator":"bigger","threshold":1,"time_range":"0s"},{"metric":"network.connection_count","filter":"port = 1","comparator":"gt","threshold":1}]}`,
			[]string{`name: missing`, `severity: "loud": want info, warning or critical`, `throttle_sec: -1: want 0 to 604800 (seconds)`,
				`conditions[0].metric: "foo.bar": unknown metric (GET /api/v1/metrics lists them)`,
				`conditions[0].comparator: "bigger": want gt, gte, lt, lte, eq, ne (or > >= < <= == !=)`,
				`conditions[0].time_range: "0s": want from 1s to 24h`,
				`conditions[1].filter: key "port": metric network.connection_count has no such label (it has src_ip)`}},
		// Shape problems: ParseRule's.
		{"unknown fields", `{"name":"x","severity":"info","metirc":"cpu.usage","conditions":[{"metric":"cpu.usage","comparator":"gt","treshold":1}]}`,
			[]string{`"metirc": unknown field (want id, name, description, metric, comparator, threshold, conditions, condition_logic, severity, throttle_sec, notifications)`,
				`conditions[0]."treshold": unknown field (want metric, filter, comparator, threshold, time_range)`,
				`conditions[0].threshold: missing`}},
		{"wrong types", `{"name":1,"severity":"info","throttle_sec":1.5,"conditions":[{"metric":"cpu.usage","comparator":"gt","threshold":"90"}],"notifications":[{"type":"email","recipients":"a@b.example"}]}`,
			[]string{`name: want a string, got a number`, `conditions[0].threshold: want a number, got a string`,
				`throttle_sec: 1.5: want an integer`, `notifications[0].recipients: want a list, got a string`}},
		{"both forms", `{"name":"x","severity":"info","metric":"cpu.usage","conditions":[{"metric":"cpu.usage","comparator":"gt","threshold":1}]}`,
			[]string{`metric: give either the short form (metric, comparator, threshold) or conditions, not both`}},
		{"short form without threshold", `{"name":"x","severity":"info","metric":"cpu.usage","comparator":"gt"}`,
			[]string{`threshold: missing (the short form is metric, comparator, threshold)`}},
		{"malformed JSON", `{"name":"x",}`, []string{`not valid JSON at byte 13: invalid character '}' looking for beginning of object key string`}},
		{"trailing data", `{"name":"x"} {}`, []string{`data after the rule's JSON object`}},
		{"malformed YAML", "name: [x\n", []string{`not valid YAML: line 1: did not find expected ',' or ']'`}},
		{"YAML list", "- a\n", []string{`the rule: want an object, got a list`}},
		{"YAML unknown field", "name: x\nseverity: info\nmetric: cpu.usage\ncomparator: gt\nthreshold: 1\nowner: me\n",
			[]string{`"owner": unknown field (want id, name, description, metric, comparator, threshold, conditions, condition_logic, severity, throttle_sec, notifications)`}},
		{"two YAML documents", "name: x\n---\nname: y\n", []string{`one rule per document: a second YAML document follows`}},
		{"empty", "", []string{`empty document: want one rule (a JSON object or a YAML mapping)`}},
		{"YAML infinity", "name: x\nseverity: info\nmetric: cpu.usage\ncomparator: gt\nthreshold: .inf\n",
			[]string{`conditions[0].threshold: +Inf: want a finite number`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := ParseRule([]byte(c.text))
			if err == nil {
				_, err = Compile(r, testCatalog{})
			}
			var re *RuleError
			if !errors.As(err, &re) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v, want a *RuleError", err)
			}
			if !slices.Equal(re.Problems, c.want) {
				t.Fatalf("problems\n%s\nwant\n%s", strings.Join(re.Problems, "\n"), strings.Join(c.want, "\n"))
			}
		})
	}
}

func TestFilterGrammar(t *testing.T) {
	for _, c := range []struct {
		filter string
		want   []filterClause
		err    string
	}{
		{"", nil, ""},
		{"src_ip = $src_ip", []filterClause{{key: "src_ip", op: "=", value: "src_ip", isVar: true}}, ""},
		{"src_ip=10.0.0.1 AND proto != tcp", []filterClause{{"src_ip", "=", "10.0.0.1", false}, {"proto", "!=", "tcp", false}}, ""},
		{`a = "x AND y" and b = 'q"r' AND c = "\t$"`, []filterClause{{"a", "=", "x AND y", false}, {"b", "=", `q"r`, false}, {"c", "=", "\t$", false}}, ""},
		{"a.b-c = $v1", []filterClause{{"a.b-c", "=", "v1", true}}, ""},
		{"a != $v", nil, "clause 1: a $variable needs =, not !="},
		{"a = $v AND b = $v", nil, "clause 2: $v is already bound to a"},
		{"a = 1 AND a = 2", nil, "clause 2: key a given twice with ="},
		{"a = $v AND a = 2", nil, "clause 2: key a given twice with ="},
		{"a != 1 AND a != 2", nil, "clause 2: key a given twice with !="},
		{"src_ip = $src_ip AND src_ip != 10.0.0.1", []filterClause{{"src_ip", "=", "src_ip", true}, {"src_ip", "!=", "10.0.0.1", false}}, ""},
		{"a = 1 OR b = 2", nil, "clause 1: want AND or the end after the value"},
		{"a = 1 AND", nil, "clause 1: nothing after AND"},
		{"a = 1 ANDb = 2", nil, "clause 1: want AND or the end after the value"},
		{"= 1", nil, "clause 1: want a label key"},
		{"a > 1", nil, "clause 1: want = or != after a"},
		{"a = $", nil, "clause 1: want a variable name after $ (quote a value that starts with $)"},
		{`a = "x`, nil, "clause 1: the quoted value does not end"},
		{`a = x"y`, nil, `clause 1: value x"y: quote the whole value`},
		{`a = "x"b`, nil, "clause 1: want AND or the end after the value"},
	} {
		got, err := parseRuleFilter(c.filter)
		if err != c.err || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: %+v %q, want %+v %q", c.filter, got, err, c.want, c.err)
		}
	}
}

func TestComparator(t *testing.T) {
	for _, c := range []struct {
		words      []string
		cmp        Comparator
		lt, eq, gt bool // 1 vs 2, 2 vs 2, 3 vs 2
	}{
		{[]string{"gt", ">"}, GT, false, false, true},
		{[]string{"gte", ">="}, GTE, false, true, true},
		{[]string{"lt", "<"}, LT, true, false, false},
		{[]string{"lte", "<="}, LTE, true, true, false},
		{[]string{"eq", "=="}, EQ, false, true, false},
		{[]string{"ne", "!="}, NE, true, false, true},
	} {
		for _, w := range c.words {
			if got, ok := ParseComparator(w); !ok || got != c.cmp {
				t.Errorf("ParseComparator(%q) = %v %v", w, got, ok)
			}
		}
		if c.cmp.String() != c.words[0] {
			t.Errorf("%v.String() = %q", c.cmp, c.cmp.String())
		}
		if c.cmp.Compare(1, 2) != c.lt || c.cmp.Compare(2, 2) != c.eq || c.cmp.Compare(3, 2) != c.gt {
			t.Errorf("%v: wrong comparisons", c.cmp)
		}
		if c.cmp.Compare(math.NaN(), 2) != (c.cmp == NE) {
			t.Errorf("%v: NaN compares true", c.cmp)
		}
	}
	for _, w := range []string{"", "GT", "=", "bigger", "=>"} {
		if _, ok := ParseComparator(w); ok {
			t.Errorf("ParseComparator(%q) accepted", w)
		}
	}
}

func FuzzParseRule(f *testing.F) {
	f.Add([]byte(descHighCPU))
	f.Add([]byte(descPortScan))
	f.Add([]byte(yamlPortScan))
	f.Add([]byte(`{"name":"x","severity":"info","conditions":[{"metric":"network.connection_count","filter":"src_ip != \"a b\" AND src_ip = $s","comparator":"<=","threshold":-0,"time_range":"1h"}],"condition_logic":"or"}`))
	f.Add([]byte("name: x\nseverity: info\nmetric: cpu.usage\ncomparator: ne\nthreshold: 1e3\nthrottle_sec: 60.0\n"))
	f.Add([]byte("name: \"\\xff\"\nseverity: info\nmetric: cpu.usage\ncomparator: ne\nthreshold: 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRule(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("parse error %v is not ErrInvalid", err)
			}
			return
		}
		if _, err := Compile(r, testCatalog{}); err != nil {
			return
		}
		// A rule that parses and compiles re-encodes, in JSON and in
		// YAML, to text that parses back to the same rule.
		j, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("encode %+v: %v", r, err)
		}
		back, err := ParseRule(j)
		if err != nil || !reflect.DeepEqual(back, r) {
			t.Fatalf("JSON round trip of %+v: %+v %v (%s)", r, back, err, j)
		}
		var m map[string]any
		if err := json.Unmarshal(j, &m); err != nil {
			t.Fatal(err)
		}
		y, err := yaml.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		back, err = ParseRule(y)
		if err != nil || !reflect.DeepEqual(back, r) {
			t.Fatalf("YAML round trip of %+v: %+v %v (%s)", r, back, err, y)
		}
	})
}

// FuzzRuleFilter: the filter parser never panics, and what it parses,
// written back with every value quoted, parses to the same clauses.
func FuzzRuleFilter(f *testing.F) {
	for _, s := range []string{"src_ip = $src_ip", `a = "x AND y" and b = 'q"r' AND c != "\t$"`, "a=1 AND b!=2", "a = $", `a = "\xff"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cls, msg := parseRuleFilter(s)
		if msg != "" {
			if cls != nil {
				t.Fatalf("%q: clauses and a problem", s)
			}
			return
		}
		var parts []string
		for _, c := range cls {
			v := strconv.Quote(c.value)
			if c.isVar {
				v = "$" + c.value
			}
			parts = append(parts, c.key+" "+c.op+" "+v)
		}
		back, msg := parseRuleFilter(strings.Join(parts, " AND "))
		if msg != "" || !reflect.DeepEqual(back, cls) {
			t.Fatalf("%q: %+v, written back %q: %+v %s", s, cls, strings.Join(parts, " AND "), back, msg)
		}
	})
}

// TestCompileFilter: the filter's clauses land in Equal, NotEqual and Vars;
// the conditions may bind one variable to different keys.
func TestCompileFilter(t *testing.T) {
	r := mustParse(t, `{"name":"x","severity":"info","condition_logic":"or","conditions":[
		{"metric":"network.connection_count","filter":"src_ip = $h AND src_ip != '10.0.0.1'","comparator":"gte","threshold":5},
		{"metric":"network.unique_dest_port_count","filter":"src_ip = $h","comparator":"<","threshold":2,"time_range":"5m"}]}`)
	c, err := Compile(r, testCatalog{})
	if err != nil {
		t.Fatal(err)
	}
	want := []CompiledCond{
		{Metric: "network.connection_count", Kind: Count, Cmp: GTE, Threshold: 5, Window: DefaultCountWindow,
			NotEqual: map[string]string{"src_ip": "10.0.0.1"}, Vars: map[string]string{"src_ip": "h"}},
		{Metric: "network.unique_dest_port_count", Kind: Count, Cmp: LT, Threshold: 2, Window: 5 * time.Minute,
			Vars: map[string]string{"src_ip": "h"}},
	}
	if !reflect.DeepEqual(c.Conds, want) || c.Logic != "OR" || !slices.Equal(c.GroupVars, []string{"h"}) || c.Throttle != 0 {
		t.Fatalf("compiled %+v", c)
	}
	c, err = Compile(mustParse(t, `{"name":"x","severity":"info","conditions":[{"metric":"network.connection_count","filter":"src_ip = 10.0.0.5","comparator":"gt","threshold":1}]}`), testCatalog{})
	if err != nil || !reflect.DeepEqual(c.Conds[0].Equal, map[string]string{"src_ip": "10.0.0.5"}) || c.GroupVars != nil {
		t.Fatalf("compiled %+v %v", c, err)
	}
}
