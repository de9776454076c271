package alerting

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// PostableAlert is one alert of Alertmanager's POST /api/v2/alerts body.
type PostableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     *time.Time        `json:"startsAt,omitempty"`
	EndsAt       *time.Time        `json:"endsAt,omitempty"` // absent while firing: Alertmanager adds resolve_timeout
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// NewPostableAlerts builds the /api/v2/alerts body of n. A firing alert has no endsAt, so
// Alertmanager resolves it after its resolve_timeout (default 5 m) unless it is sent again.
func NewPostableAlerts(n Notification, externalURL string) []PostableAlert {
	out := make([]PostableAlert, 0, len(n.Alerts))
	for _, a := range n.Alerts {
		p := PostableAlert{
			Labels:       notifyLabels(a, n.Rule),
			Annotations:  a.Annotations,
			GeneratorURL: notifyGeneratorURL(externalURL, a),
		}
		if !a.StartsAt.IsZero() {
			t := a.StartsAt.UTC()
			p.StartsAt = &t
		}
		if a.Status == "resolved" {
			t := a.EndsAt.UTC()
			if a.EndsAt.IsZero() {
				t = time.Now().UTC()
			}
			p.EndsAt = &t
		}
		out = append(out, p)
	}
	return out
}

// alertmanagerURL turns a channel URL into the v2 alerts endpoint: ".../api/v2/alerts" is
// kept, ".../api/v1/alerts" (the description's form; Alertmanager 0.27 removed v1) is rewritten
// to v2 (rewritten reports it), and any other URL is taken as the Alertmanager's base and gets
// "/api/v2/alerts" appended.
func alertmanagerURL(raw string) (u string, rewritten bool) {
	base, query, _ := strings.Cut(raw, "?")
	if query != "" {
		query = "?" + query
	}
	trimmed := strings.TrimRight(base, "/")
	switch {
	case strings.HasSuffix(trimmed, "/api/v2/alerts"):
		return trimmed + query, false
	case strings.HasSuffix(trimmed, "/api/v1/alerts"):
		return strings.TrimSuffix(trimmed, "/api/v1/alerts") + "/api/v2/alerts" + query, true
	}
	return trimmed + "/api/v2/alerts" + query, false
}

type alertmanagerNotifier struct {
	client      *http.Client
	url         string
	externalURL string
}

func newAlertmanagerNotifier(client *http.Client, raw, externalURL string, log *slog.Logger) *alertmanagerNotifier {
	u, rewritten := alertmanagerURL(raw)
	if rewritten { // once per channel: a Dispatcher makes a channel's notifier once
		log.Warn("notify: alertmanager url uses the removed /api/v1/alerts; posting to /api/v2/alerts",
			"url", redactTarget(raw), "using", redactTarget(u))
	}
	if raw == "" {
		u = ""
	}
	return &alertmanagerNotifier{client: client, url: u, externalURL: externalURL}
}

func (a *alertmanagerNotifier) notify(ctx context.Context, n Notification) (bool, error) {
	body, err := json.Marshal(NewPostableAlerts(n, a.externalURL))
	if err != nil {
		return false, fmt.Errorf("encode postable alerts: %w", err)
	}
	return notifyPostJSON(ctx, a.client, a.url, body, nil)
}
