// Package alerting holds NetSentry's alert rules, their evaluation and the
// notifiers. It imports no package of this module: what it needs from the
// sensor (which metrics exist, their kinds and label keys) it asks through
// interfaces it defines itself (Catalog).
//
// Rules (rule.go, rules_store.go). A rule is the description's JSON, in its
// short form (name, metric, comparator, threshold, severity) or its full
// form (conditions[] of metric, filter, comparator, threshold, time_range;
// condition_logic AND|OR; throttle_sec; notifications[]). ParseRule decodes
// one rule from JSON or YAML (JSON when the first byte that is not white
// space is '{'), strictly: unknown fields, wrong types and a missing
// threshold are errors, all listed at once with their field path. Decoding
// turns the short form into one condition (conditions[0]) and clears the
// short-form fields, so a rule has one shape everywhere after it.
// Compile checks a decoded rule against a Catalog and lists every problem at
// once, each naming its field. The bounds it enforces:
//
//   - name: required, at most MaxRuleNameLen bytes, no control characters;
//     severity: info, warning or critical;
//   - 1 to MaxRuleConditions conditions; condition_logic AND (default) or OR;
//   - comparator: gt gte lt lte eq ne or > >= < <= == !=;
//   - threshold: a finite number;
//   - time_range: a Go duration from MinRuleWindow (1s) to MaxRuleWindow
//     (24h); left out it is 0 (the instant value) for a Gauge and
//     DefaultCountWindow (1m) for a Count, since a count needs a window;
//   - filter: clauses `key = value`, `key != value`, `key = $var` joined by
//     AND, values bare or quoted ("..." with Go escapes, or '...'); a key
//     at most once with = and once with != per condition, and only the label
//     keys the catalog gives for the metric; a $var binds one key per condition, and every condition of a
//     rule binds the same set of variables (that set is the rule's group key:
//     one alert instance per distinct value, and the conditions join on it);
//   - throttle_sec: 0 to MaxRuleThrottleSec (one week);
//   - notifications: email with at least one valid address in recipients;
//     webhook and prometheus-alertmanager with an absolute http(s) url; a
//     secret only on a webhook. None: the configured default channels.
//
// What a window means for a Gauge (the last value, or an aggregate over the
// window) is the evaluator's to say (eval.go); Compile only checks bounds.
//
// The rule set (Rules) lives in one directory, one file per rule: LoadRules
// reads every *.json, *.yaml and *.yml file (hidden files and others are
// ignored); a rule's ID is its file name without the extension (a file
// "portscan.yaml" is rule "portscan"; an "id" inside must agree), and a bad
// file is reported with its path and the problems, while the others load.
// Rules created or replaced over the API are written as <id>.json (IDs of new
// rules are 16 random hex digits), atomically: a temporary hidden file in the
// same directory, fsync, rename over the old file, fsync of the directory; a
// rule that came from a .yaml file and is replaced is written as <id>.json
// and its .yaml file removed after the rename (a crash between the two
// leaves both; the next load keeps the .json and reports the other as a
// duplicate). Files are written 0600: a webhook secret may be in them.
//
// Reload reads the directory again (Watch does it every
// DefaultReloadInterval): files added, changed (by size or modification
// time, then content) or removed change the set; a file that no longer
// loads is reported once, with its path and problems, and the rule it held
// stays as it was.
//
// Threading: Rules is safe for concurrent use. Changes are serialised and
// written to disk before they show in List, Get and Compiled. OnChange
// calls its callback at once with the current set, then after changes with
// the new set: one call at a time, on the goroutine that made the change,
// never an older set after a newer one (when two changes race, the older
// set may be skipped; the last call always has the newest set). Callbacks
// may read the rules but must not change them or call OnChange. Compiled
// values are shared: read them, never write.
package alerting
