// Code copied from the issue-12 contract (alert-contract.md) for NOTIFY's own compilation; the
// coordinator deletes this file at merge and keeps alerting/types.go (RULES). Differences from the
// contract's block: this header, the package clause and import, Compare's stub body, and gofmt's alignment.

package alerting

import "time"

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
func (c Comparator) Compare(v, threshold float64) bool { panic("BUG: RULES implements Compare") }

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
