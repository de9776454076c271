package alerting

import "time"

// This file is EVAL's copy of the shared types of /work/alert-contract.md, for
// EVAL's own compilation and tests; the coordinator deletes it at merge
// (alerting/types.go, written by RULES, holds the originals).

// ---- alerting/types.go (RULES owns it) ----

// Comparator is a rule's comparison; Parse accepts gt gte lt lte eq ne and > >= < <= == !=.
type Comparator uint8

const (
	GT Comparator = iota + 1
	GTE
	LT
	LTE
	EQ
	NE
)

// Compare reports whether v <comparator> threshold.
func (c Comparator) Compare(v, threshold float64) bool {
	switch c {
	case GT:
		return v > threshold
	case GTE:
		return v >= threshold
	case LT:
		return v < threshold
	case LTE:
		return v <= threshold
	case EQ:
		return v == threshold
	case NE:
		return v != threshold
	}
	return false
}

// Channel is one notification target, as the description writes it.
type Channel struct {
	Type       string   `json:"type" yaml:"type"`                                 // email | webhook | prometheus-alertmanager
	Recipients []string `json:"recipients,omitempty" yaml:"recipients,omitempty"` // email
	URL        string   `json:"url,omitempty" yaml:"url,omitempty"`               // webhook, alertmanager
	Secret     string   `json:"secret,omitempty" yaml:"secret,omitempty"`         // webhook: HMAC-SHA256 key
}

// Alert is one alert instance's state change that notifiers deliver.
type Alert struct {
	Rule        string // rule name
	RuleID      string
	Severity    string
	GroupKey    string             // e.g. "src_ip=10.0.0.5"; "" for an ungrouped rule
	Labels      map[string]string  // alertname, severity, and the group variables (src_ip=...)
	Annotations map[string]string  // description, summary with values
	Values      map[string]float64 // metric -> value that crossed
	StartsAt    time.Time
	EndsAt      time.Time // zero while firing
	Status      string    // "firing" | "resolved"
	Fingerprint string    // stable hash of the labels, hex
}

// Notification is one message for one channel: alerts of one rule grouped (correlation).
type Notification struct {
	Channel Channel
	Rule    string
	Alerts  []Alert
}

// ---- end of the shared block ----

// copy of RULES' types: the coordinator keeps one at merge

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

// copy of RULES' types: the coordinator keeps one at merge
type Condition struct {
	Metric     string  `json:"metric"`
	Filter     string  `json:"filter,omitempty"` // "key = value", "key != value", "key = $var", joined by AND
	Comparator string  `json:"comparator"`
	Threshold  float64 `json:"threshold"`
	TimeRange  string  `json:"time_range,omitempty"` // Go duration; "" = instant
}

// copy of RULES' types: the coordinator keeps one at merge
type MetricKind uint8

// copy of RULES' types: the coordinator keeps one at merge
const (
	Gauge MetricKind = iota + 1 // a level (cpu.usage): compared at the end of the window, or its max over it: document which
	Count                       // events counted over the window (network.connection_count per src_ip)
)

// Compiled is a validated rule ready for the evaluator.
// copy of RULES' types: the coordinator keeps one at merge
type Compiled struct {
	Rule      Rule
	Logic     string // AND | OR
	Conds     []CompiledCond
	GroupVars []string // $variables, sorted: the group key's labels
	Throttle  time.Duration
}

// copy of RULES' types: the coordinator keeps one at merge
type CompiledCond struct {
	Metric    string
	Kind      MetricKind
	Cmp       Comparator
	Threshold float64
	Window    time.Duration
	Equal     map[string]string // key = value
	NotEqual  map[string]string // key != value
	Vars      map[string]string // label key -> $var name
}
