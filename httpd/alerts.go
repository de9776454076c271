package httpd

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"

	"github.com/netsentry/netsentry/alerting"
)

// AlertRules is the alert rule set the API manages (*alerting.Rules).
// Errors of Create and Replace that wrap alerting.ErrInvalid are answered
// 422 with their problems (an *alerting.RuleError lists them), errors that
// wrap alerting.ErrNotFound 404.
type AlertRules interface {
	List() []alerting.Rule
	Get(id string) (alerting.Rule, bool)
	Create(rule alerting.Rule) (alerting.Rule, error)
	Replace(id string, rule alerting.Rule) (alerting.Rule, error)
	Delete(id string) error
}

// AlertState is the evaluator's view of the alerts: those firing now and
// the state changes of a time range.
type AlertState interface {
	Active() []alerting.Alert
	History(start, end time.Time) []alerting.Alert
}

// DefaultAlertHistory is the range of /api/v1/alerts/history without
// ?start=: the day before ?end= (default now).
const DefaultAlertHistory = 24 * time.Hour

const alertingOff = "alerting is not enabled"

// alertRoutes registers the alerting endpoints: reads with the read
// token, changes with the admin token.
func (s *Server) alertRoutes(r *router.Router) {
	s.handle(r, "GET", "/api/v1/alerts", authRead, s.alertList)
	s.handle(r, "POST", "/api/v1/alerts", authWrite, s.alertCreate)
	s.handle(r, "GET", "/api/v1/alerts/active", authRead, s.alertActive)
	s.handle(r, "GET", "/api/v1/alerts/history", authRead, s.alertHistory)
	s.handle(r, "GET", "/api/v1/alerts/{id}", authRead, s.alertGet)
	s.handle(r, "PUT", "/api/v1/alerts/{id}", authWrite, s.alertReplace)
	s.handle(r, "DELETE", "/api/v1/alerts/{id}", authWrite, s.alertDelete)
}

func (s *Server) alertList(ctx *fasthttp.RequestCtx) {
	if !s.alertsReady(ctx) {
		return
	}
	rules := s.opt.Alerts.List()
	if rules == nil {
		rules = []alerting.Rule{}
	}
	for i := range rules {
		rules[i] = redactRule(rules[i])
	}
	ctx.Response.Header.Set("Cache-Control", "no-store")
	writeJSON(ctx, map[string]any{"timestamp": time.Now().UTC().Format(tsFormat), "rules": rules})
}

// alertsReady answers the request itself, and returns false, when it has
// query parameters (the rule endpoints take none) or alerting is off.
func (s *Server) alertsReady(ctx *fasthttp.RequestCtx) bool {
	if _, msg := parseQuery(ctx); msg != "" {
		writeProblem(ctx, fasthttp.StatusBadRequest, msg)
		return false
	}
	if s.opt.Alerts == nil {
		writeProblem(ctx, fasthttp.StatusServiceUnavailable, alertingOff)
		return false
	}
	return true
}

func (s *Server) alertGet(ctx *fasthttp.RequestCtx) {
	if !s.alertsReady(ctx) {
		return
	}
	id, _ := ctx.UserValue("id").(string)
	r, ok := s.opt.Alerts.Get(id)
	if !ok {
		writeProblem(ctx, fasthttp.StatusNotFound, fmt.Sprintf("no alert rule %q; GET /api/v1/alerts lists them", id))
		return
	}
	ctx.Response.Header.Set("Cache-Control", "no-store")
	writeJSON(ctx, redactRule(r))
}

// redactRule returns r with its webhook secrets shown as Redacted (a copy:
// r's channels belong to the rule set); a PUT that sends one back keeps
// the secret in force (keepRuleSecrets).
func redactRule(r alerting.Rule) alerting.Rule {
	if !slices.ContainsFunc(r.Notifications, func(c alerting.Channel) bool { return c.Secret != "" }) {
		return r
	}
	r.Notifications = slices.Clone(r.Notifications)
	for i := range r.Notifications {
		if r.Notifications[i].Secret != "" {
			r.Notifications[i].Secret = Redacted
		}
	}
	return r
}

// keepRuleSecrets puts back, in a replacement rule, the secret in force of
// each channel sent back redacted: the old rule's channel at the same place
// with the same type and URL. It returns false when a redacted secret has
// no such channel (the client must send the secret itself).
func keepRuleSecrets(r *alerting.Rule, old alerting.Rule) bool {
	for i := range r.Notifications {
		if r.Notifications[i].Secret != Redacted {
			continue
		}
		if i >= len(old.Notifications) || old.Notifications[i].Type != r.Notifications[i].Type || old.Notifications[i].URL != r.Notifications[i].URL {
			return false
		}
		r.Notifications[i].Secret = old.Notifications[i].Secret
	}
	return true
}

// alertBody decodes the request body as one alert rule (JSON); it answers
// the problem itself: 415 for another media type, 400 for a body that is
// not a rule's JSON object (syntax, unknown fields, wrong types), every
// problem listed.
func alertBody(ctx *fasthttp.RequestCtx) (alerting.Rule, bool) {
	if !isJSON(ctx) {
		writeProblem(ctx, fasthttp.StatusUnsupportedMediaType, "send the rule as application/json")
		return alerting.Rule{}, false
	}
	body := bytes.TrimSpace(ctx.PostBody())
	if len(body) == 0 || body[0] != '{' {
		writeProblem(ctx, fasthttp.StatusBadRequest, "the body must be one JSON object: an alert rule; nothing was changed")
		return alerting.Rule{}, false
	}
	r, err := alerting.ParseRule(body)
	if err != nil {
		writeRuleProblem(ctx, fasthttp.StatusBadRequest, err)
		return alerting.Rule{}, false
	}
	return r, true
}

// writeRuleProblem answers status with every problem of the rule.
func writeRuleProblem(ctx *fasthttp.RequestCtx, status int, err error) {
	var re *alerting.RuleError
	var list []string
	if errors.As(err, &re) {
		list = re.Problems
	} else {
		list = []string{err.Error()}
	}
	writeProblem(ctx, status, "invalid alert rule; nothing was changed: "+strings.Join(list, "; "), list...)
}

// ruleChangeError answers an error of Create, Replace or Delete.
func (s *Server) ruleChangeError(ctx *fasthttp.RequestCtx, what, id string, err error) {
	switch {
	case errors.Is(err, alerting.ErrNotFound):
		writeProblem(ctx, fasthttp.StatusNotFound, fmt.Sprintf("no alert rule %q; GET /api/v1/alerts lists them", id))
	case errors.Is(err, alerting.ErrInvalid):
		writeRuleProblem(ctx, fasthttp.StatusUnprocessableEntity, err)
	default:
		s.log.Error("api: "+what+" alert rule", "id", id, "err", err)
		writeProblem(ctx, fasthttp.StatusInternalServerError, what+" failed, nothing was changed; the sensor's log says why")
	}
}

func (s *Server) alertCreate(ctx *fasthttp.RequestCtx) {
	if !s.alertsReady(ctx) {
		return
	}
	r, ok := alertBody(ctx)
	if !ok {
		return
	}
	if slices.ContainsFunc(r.Notifications, func(c alerting.Channel) bool { return c.Secret == Redacted }) {
		msg := "a channel's secret is \"" + Redacted + "\", which GET shows in place of a secret; send the secret itself"
		writeProblem(ctx, fasthttp.StatusUnprocessableEntity, "invalid alert rule; nothing was changed: "+msg, msg)
		return
	}
	got, err := s.opt.Alerts.Create(r)
	if err != nil {
		s.ruleChangeError(ctx, "create", "", err)
		return
	}
	s.log.Info("api: alert rule created", "id", got.ID, "name", got.Name, "client", ctx.RemoteAddr().String())
	writeJSON(ctx, redactRule(got))
	if ctx.Response.StatusCode() == fasthttp.StatusOK {
		ctx.Response.Header.Set("Location", "/api/v1/alerts/"+url.PathEscape(got.ID))
		ctx.SetStatusCode(fasthttp.StatusCreated)
	}
}

func (s *Server) alertReplace(ctx *fasthttp.RequestCtx) {
	if !s.alertsReady(ctx) {
		return
	}
	id, _ := ctx.UserValue("id").(string)
	old, ok := s.opt.Alerts.Get(id)
	if !ok {
		writeProblem(ctx, fasthttp.StatusNotFound, fmt.Sprintf("no alert rule %q; GET /api/v1/alerts lists them", id))
		return
	}
	r, ok := alertBody(ctx)
	if !ok {
		return
	}
	if !keepRuleSecrets(&r, old) {
		msg := "a channel's secret is \"" + Redacted + "\" but the rule in force has no webhook with that URL at that place; send the secret itself"
		writeProblem(ctx, fasthttp.StatusUnprocessableEntity, "invalid alert rule; nothing was changed: "+msg, msg)
		return
	}
	got, err := s.opt.Alerts.Replace(id, r)
	if err != nil {
		s.ruleChangeError(ctx, "replace", id, err)
		return
	}
	s.log.Info("api: alert rule replaced", "id", got.ID, "name", got.Name, "client", ctx.RemoteAddr().String())
	writeJSON(ctx, redactRule(got))
}

func (s *Server) alertDelete(ctx *fasthttp.RequestCtx) {
	if !s.alertsReady(ctx) {
		return
	}
	id, _ := ctx.UserValue("id").(string)
	if err := s.opt.Alerts.Delete(id); err != nil {
		s.ruleChangeError(ctx, "delete", id, err)
		return
	}
	s.log.Info("api: alert rule deleted", "id", id, "client", ctx.RemoteAddr().String())
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

// alertJSON is one alert in /api/v1/alerts/active and /history.
type alertJSON struct {
	Rule        string             `json:"rule"`
	RuleID      string             `json:"rule_id"`
	Severity    string             `json:"severity"`
	Status      string             `json:"status"`
	GroupKey    string             `json:"group_key"`
	Labels      map[string]string  `json:"labels"`
	Annotations map[string]string  `json:"annotations"`
	Values      map[string]float64 `json:"values"`
	StartsAt    string             `json:"starts_at"`
	EndsAt      *string            `json:"ends_at"`
	Fingerprint string             `json:"fingerprint"`
}

func alertsOut(as []alerting.Alert) []alertJSON {
	out := make([]alertJSON, 0, len(as))
	for _, a := range as {
		j := alertJSON{Rule: a.Rule, RuleID: a.RuleID, Severity: a.Severity, Status: a.Status, GroupKey: a.GroupKey,
			Labels: a.Labels, Annotations: a.Annotations, Values: map[string]float64{}, Fingerprint: a.Fingerprint,
			StartsAt: a.StartsAt.UTC().Format(tsFormat)}
		if j.Labels == nil {
			j.Labels = map[string]string{}
		}
		if j.Annotations == nil {
			j.Annotations = map[string]string{}
		}
		for k, v := range a.Values {
			if !math.IsNaN(v) && !math.IsInf(v, 0) { // JSON has no NaN or infinity
				j.Values[k] = v
			}
		}
		if !a.EndsAt.IsZero() {
			e := a.EndsAt.UTC().Format(tsFormat)
			j.EndsAt = &e
		}
		out = append(out, j)
	}
	return out
}

func (s *Server) alertActive(ctx *fasthttp.RequestCtx) {
	if _, msg := parseQuery(ctx); msg != "" {
		writeProblem(ctx, fasthttp.StatusBadRequest, msg)
		return
	}
	if s.opt.AlertState == nil {
		writeProblem(ctx, fasthttp.StatusServiceUnavailable, alertingOff)
		return
	}
	ctx.Response.Header.Set("Cache-Control", "no-store")
	writeJSON(ctx, map[string]any{"timestamp": time.Now().UTC().Format(tsFormat), "alerts": alertsOut(s.opt.AlertState.Active())})
}

// parseAlertTime reads an RFC 3339 time or unix seconds (a fraction
// allowed).
func parseAlertTime(v string) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, true
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > 1e11 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(math.Round(frac*1e9))), true
}

func (s *Server) alertHistory(ctx *fasthttp.RequestCtx) {
	q, msg := parseQuery(ctx, "start", "end")
	if msg != "" {
		writeProblem(ctx, fasthttp.StatusBadRequest, msg)
		return
	}
	end := time.Now()
	if q.has("end") {
		t, ok := parseAlertTime(q.get("end"))
		if !ok {
			writeProblem(ctx, fasthttp.StatusBadRequest, fmt.Sprintf("end %q: want an RFC 3339 time or unix seconds", q.get("end")))
			return
		}
		end = t
	}
	start := end.Add(-DefaultAlertHistory)
	if q.has("start") {
		t, ok := parseAlertTime(q.get("start"))
		if !ok {
			writeProblem(ctx, fasthttp.StatusBadRequest, fmt.Sprintf("start %q: want an RFC 3339 time or unix seconds", q.get("start")))
			return
		}
		start = t
	}
	if start.After(end) {
		writeProblem(ctx, fasthttp.StatusBadRequest, "start is after end")
		return
	}
	if s.opt.AlertState == nil {
		writeProblem(ctx, fasthttp.StatusServiceUnavailable, alertingOff)
		return
	}
	ctx.Response.Header.Set("Cache-Control", "no-store")
	writeJSON(ctx, map[string]any{"timestamp": time.Now().UTC().Format(tsFormat),
		"start": start.UTC().Format(tsFormat), "end": end.UTC().Format(tsFormat),
		"alerts": alertsOut(s.opt.AlertState.History(start, end))})
}
