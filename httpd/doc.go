// Package httpd serves NetSentry's REST API (/api/v1), its Prometheus
// metrics (/metrics), /healthz and the OpenAPI document, on fasthttp.
//
// It knows the capture engine, the host samplers and the configuration only
// through the small interfaces of source.go (Sensor, HostMetrics,
// ConfigStore), which package main adapts; so the API reads snapshots that
// the packet workers made between batches and never touches a live flow
// table. The alerting endpoints (/api/v1/alerts) reach the rule set and
// the evaluator through AlertRules and AlertState (alerts.go); nil: 503.
//
// Threading: fasthttp serves each connection on its own goroutine. Snapshots
// are cached for Options.CacheTTL and shared by every request (one refresh
// at a time, stale data served while it runs), so many clients cost the
// workers one snapshot per TTL. Rendered responses are cached per snapshot
// and query. The tokens (admin and read-only) can be changed at any time
// (SetTokens). Event streams are written by fasthttp on a goroutine of their
// own; a client that does not read is dropped after StreamWriteTimeout.
//
// The Prometheus query API (promapi.go) evaluates PromQL with one
// promql.Engine over Options.Query (store.NewQueryable), at most
// MaxConcurrentQueries at once, each within its timeout (QueryTimeout,
// shortened by ?timeout=, ended early by Close); the metric history runs
// through the same engine, the flow history reads Options.Flows.
//
// Lifetimes: a Server lives from New to Close; Close stops the event
// streams, then shuts the listener down and waits for open requests.
package httpd
