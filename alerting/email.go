package alerting

import (
	"context"
	"errors"
	"fmt"
	"net/textproto"
	"strconv"
	"strings"
	"text/template"
	"time"

	mail "github.com/wneessen/go-mail"
)

// Email templates, one pair per status. They see an emailData.
const (
	emailSubjectFiring = `[FIRING:{{len .Firing}}] {{.Rule}}{{if .Severity}} ({{.Severity}}){{end}}` +
		`{{range $i, $a := .Firing}}{{if eq $i 0}}:{{else}},{{end}} {{if $a.GroupKey}}{{$a.GroupKey}}{{else}}(ungrouped){{end}}{{end}}`
	emailSubjectResolved = `[RESOLVED:{{len .Alerts}}] {{.Rule}}{{if .Severity}} ({{.Severity}}){{end}}` +
		`{{range $i, $a := .Alerts}}{{if eq $i 0}}:{{else}},{{end}} {{if $a.GroupKey}}{{$a.GroupKey}}{{else}}(ungrouped){{end}}{{end}}`
	emailBodyFiring = `Alert rule "{{.Rule}}"{{if .Severity}} ({{.Severity}}){{end}} is FIRING for {{len .Firing}} group(s).
{{range .Firing}}
Group:    {{if .GroupKey}}{{.GroupKey}}{{else}}(ungrouped){{end}}
Since:    {{.StartsAt}}
{{- range .Values}}
Value:    {{.Metric}} = {{.Value}}
{{- end}}
{{- range .Annotations}}
{{.Key}}: {{.Value}}
{{- end}}
{{end}}
{{- if .Resolved}}
Resolved meanwhile:
{{range .Resolved}}
Group:    {{if .GroupKey}}{{.GroupKey}}{{else}}(ungrouped){{end}}
Since:    {{.StartsAt}}
Ended:    {{.EndsAt}}
{{end}}
{{- end}}
Sent by NetSentry at {{.Now}}.
`
	emailBodyResolved = `Alert rule "{{.Rule}}"{{if .Severity}} ({{.Severity}}){{end}} is RESOLVED for {{len .Resolved}} group(s).
{{range .Resolved}}
Group:    {{if .GroupKey}}{{.GroupKey}}{{else}}(ungrouped){{end}}
Since:    {{.StartsAt}}
Ended:    {{.EndsAt}}
{{- range .Values}}
Value:    {{.Metric}} = {{.Value}}
{{- end}}
{{- range .Annotations}}
{{.Key}}: {{.Value}}
{{- end}}
{{end}}
Sent by NetSentry at {{.Now}}.
`
)

var emailTemplates = struct {
	subjectFiring, subjectResolved, bodyFiring, bodyResolved *template.Template
}{
	template.Must(template.New("subject_firing").Parse(emailSubjectFiring)),
	template.Must(template.New("subject_resolved").Parse(emailSubjectResolved)),
	template.Must(template.New("body_firing").Parse(emailBodyFiring)),
	template.Must(template.New("body_resolved").Parse(emailBodyResolved)),
}

type emailData struct {
	Rule, Severity, Status string
	Alerts                 []emailAlert // this variant's: all but the resolved ones of a firing mail
	Firing, Resolved       []emailAlert
	Now                    string
}

type emailAlert struct {
	GroupKey         string
	StartsAt, EndsAt string // RFC 3339, UTC
	Values           []emailValue
	Annotations      []emailKV
}

type emailValue struct {
	Metric string
	Value  string
}

type emailKV struct{ Key, Value string }

func notifyTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func newEmailData(n Notification, now time.Time) emailData {
	d := emailData{Rule: n.Rule, Status: notifyStatus(n.Alerts), Now: notifyTime(now)}
	for _, a := range n.Alerts {
		if d.Rule == "" {
			d.Rule = a.Rule
		}
		if d.Severity == "" {
			d.Severity = a.Severity
		}
		ea := emailAlert{GroupKey: a.GroupKey, StartsAt: notifyTime(a.StartsAt), EndsAt: notifyTime(a.EndsAt)}
		for _, k := range notifySortedKeys(a.Values) {
			ea.Values = append(ea.Values, emailValue{k, strconv.FormatFloat(a.Values[k], 'g', -1, 64)})
		}
		for _, k := range notifySortedKeys(a.Annotations) {
			ea.Annotations = append(ea.Annotations, emailKV{k, a.Annotations[k]})
		}
		if a.Status == "resolved" {
			d.Resolved = append(d.Resolved, ea)
		} else {
			d.Firing = append(d.Firing, ea)
		}
	}
	d.Alerts = d.Firing
	if d.Status == "resolved" {
		d.Alerts = d.Resolved
	}
	return d
}

// RenderEmail returns the subject and plain-text body of n's mail: the rule, each alert's
// group key, values and times. A notification with any firing alert uses the firing variant
// (its subject counts and names the firing groups, as Alertmanager's [FIRING:n]; its body lists
// alerts that resolved meanwhile at its end), else the resolved one.
func RenderEmail(n Notification, now time.Time) (subject, body string, err error) {
	d := newEmailData(n, now)
	st, bt := emailTemplates.subjectFiring, emailTemplates.bodyFiring
	if d.Status == "resolved" {
		st, bt = emailTemplates.subjectResolved, emailTemplates.bodyResolved
	}
	var s, b strings.Builder
	if err := st.Execute(&s, d); err != nil {
		return "", "", fmt.Errorf("render subject: %w", err)
	}
	if err := bt.Execute(&b, d); err != nil {
		return "", "", fmt.Errorf("render body: %w", err)
	}
	// A subject is one line: a group key with a newline must not start a header.
	subject = strings.Join(strings.Fields(s.String()), " ")
	return subject, b.String(), nil
}

type emailNotifier struct {
	smtp       SMTPConfig
	recipients []string
}

func smtpPolicy(p string) (mail.TLSPolicy, error) {
	switch strings.ToLower(p) {
	case "", SMTPTLSMandatory:
		return mail.TLSMandatory, nil
	case SMTPTLSOpportunistic:
		return mail.TLSOpportunistic, nil
	case SMTPTLSNone:
		return mail.NoTLS, nil
	}
	return 0, fmt.Errorf("smtp tls %q: want mandatory, opportunistic or none", p)
}

func (e *emailNotifier) notify(ctx context.Context, n Notification) (bool, error) {
	if e.smtp.Host == "" {
		return false, errors.New("send mail: smtp host not configured")
	}
	if len(e.recipients) == 0 {
		return false, errors.New("send mail: channel has no recipients")
	}
	subject, body, err := RenderEmail(n, time.Now())
	if err != nil {
		return false, err
	}
	m := mail.NewMsg()
	if err := m.From(e.smtp.From); err != nil {
		return false, fmt.Errorf("set from %q: %w", e.smtp.From, err)
	}
	if err := m.To(e.recipients...); err != nil {
		return false, fmt.Errorf("set recipients: %w", err)
	}
	m.Subject(subject)
	m.SetBodyString(mail.TypeTextPlain, body)

	policy, err := smtpPolicy(e.smtp.TLS)
	if err != nil {
		return false, err
	}
	port := e.smtp.Port
	if port == 0 {
		port = 587
	}
	opts := []mail.Option{mail.WithPort(port), mail.WithTLSPolicy(policy)}
	if dl, ok := ctx.Deadline(); ok {
		opts = append(opts, mail.WithTimeout(time.Until(dl)))
	}
	if e.smtp.TLSConfig != nil {
		tc := e.smtp.TLSConfig.Clone()
		if tc.ServerName == "" {
			tc.ServerName = e.smtp.Host
		}
		opts = append(opts, mail.WithTLSConfig(tc))
	}
	if e.smtp.Username != "" {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover),
			mail.WithUsername(e.smtp.Username), mail.WithPassword(e.smtp.Password))
	}
	c, err := mail.NewClient(e.smtp.Host, opts...)
	if err != nil {
		return false, fmt.Errorf("make smtp client: %w", err)
	}
	if err := c.DialAndSendWithContext(ctx, m); err != nil {
		return mailRetryable(err), fmt.Errorf("send mail via %s:%d: %w", e.smtp.Host, port, err)
	}
	return false, nil
}

// mailRetryable: a permanent SMTP reply (5xx) is not worth retrying; a temporary one (4xx),
// a connection or TLS failure, or a timeout is.
func mailRetryable(err error) bool {
	var se *mail.SendError
	if errors.As(err, &se) {
		if se.IsTemp() {
			return true
		}
		if code := se.ErrorCode(); code >= 500 && code < 600 {
			return false
		}
	}
	var te *textproto.Error // e.g. AUTH refused: 535
	if errors.As(err, &te) {
		return te.Code < 500 || te.Code >= 600
	}
	return true
}
