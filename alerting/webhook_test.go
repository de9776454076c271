package alerting

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// webhookTop and webhookAlertKeys are the fields of Alertmanager's webhook payload version 4
// (its docs' "webhook_config" JSON and notify/webhook's Message), as the issue lists them.
var (
	webhookTop       = []string{"alerts", "commonAnnotations", "commonLabels", "externalURL", "groupKey", "groupLabels", "receiver", "status", "version"}
	webhookAlertKeys = []string{"annotations", "endsAt", "fingerprint", "generatorURL", "labels", "startsAt", "status"}
)

func ntKeys(m map[string]any) []string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	sort.Strings(k)
	return k
}

// ntOpensslHMAC computes the signature with openssl, an implementation independent of Go's.
func ntOpensslHMAC(t *testing.T, key string, body []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "body.json")
	if err := os.WriteFile(p, body, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("openssl", "dgst", "-sha256", "-hmac", key, "-r", p).Output()
	if err != nil {
		t.Fatalf("openssl dgst: %v", err)
	}
	hexsum, _, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	return "sha256=" + hexsum
}

type hookRequest struct {
	body []byte
	hdr  http.Header
	path string
}

func ntHookServer(t *testing.T) (*httptest.Server, chan hookRequest) {
	ch := make(chan hookRequest, 8)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ch <- hookRequest{body: b, hdr: r.Header.Clone(), path: r.URL.Path}
	}))
	t.Cleanup(srv.Close)
	return srv, ch
}

func ntRecv(t *testing.T, ch chan hookRequest) hookRequest {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("webhook receiver got nothing in 5s")
	}
	return hookRequest{}
}

func TestWebhookPayload(t *testing.T) {
	srv, ch := ntHookServer(t)
	d := NewDispatcher(NotifyOptions{Timeout: 2 * time.Second, ExternalURL: "http://sensor.example:8080/"})
	ntClose(t, d)

	a1 := ntAlert("Potential Port Scan", "src_ip=10.0.0.5", "firing")
	a2 := ntAlert("Potential Port Scan", "src_ip=10.0.0.9", "resolved")
	a2.Annotations = map[string]string{"summary": "other"}
	a2.Fingerprint = "fedcba9876543210"
	const secret = "s3cr3t key"
	d.Send(Notification{Channel: Channel{Type: "webhook", URL: srv.URL + "/hook", Secret: secret},
		Rule: "Potential Port Scan", Alerts: []Alert{a1, a2}})
	r := ntRecv(t, ch)

	if r.path != "/hook" || r.hdr.Get("Content-Type") != "application/json" {
		t.Errorf("path %q content-type %q", r.path, r.hdr.Get("Content-Type"))
	}
	if got, want := r.hdr.Get("X-NetSentry-Signature"), ntOpensslHMAC(t, secret, r.body); got != want {
		t.Errorf("signature %q, openssl says %q", got, want)
	}

	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	if got := ntKeys(m); !reflect.DeepEqual(got, webhookTop) {
		t.Errorf("top-level fields %v, want %v", got, webhookTop)
	}
	for k, want := range map[string]any{
		"version":           "4",
		"groupKey":          `{}:{alertname="Potential Port Scan"}`,
		"status":            "firing", // one alert still fires
		"receiver":          "netsentry",
		"externalURL":       "http://sensor.example:8080/",
		"groupLabels":       map[string]any{"alertname": "Potential Port Scan"},
		"commonLabels":      map[string]any{"alertname": "Potential Port Scan", "severity": "critical"},
		"commonAnnotations": map[string]any{},
	} {
		if !reflect.DeepEqual(m[k], want) {
			t.Errorf("%s = %#v, want %#v", k, m[k], want)
		}
	}
	alerts, _ := m["alerts"].([]any)
	if len(alerts) != 2 {
		t.Fatalf("alerts %#v", m["alerts"])
	}
	want := []map[string]any{{
		"status":       "firing",
		"labels":       map[string]any{"alertname": "Potential Port Scan", "severity": "critical", "src_ip": "10.0.0.5"},
		"annotations":  map[string]any{"summary": "Potential Port Scan on src_ip=10.0.0.5"},
		"startsAt":     "2026-12-03T14:00:00Z",
		"endsAt":       "0001-01-01T00:00:00Z", // Alertmanager's value for a firing alert
		"generatorURL": "http://sensor.example:8080/api/v1/alerts/r1",
		"fingerprint":  "0123456789abcdef",
	}, {
		"status":       "resolved",
		"labels":       map[string]any{"alertname": "Potential Port Scan", "severity": "critical", "src_ip": "10.0.0.9"},
		"annotations":  map[string]any{"summary": "other"},
		"startsAt":     "2026-12-03T14:00:00Z",
		"endsAt":       "2026-12-03T14:01:00Z",
		"generatorURL": "http://sensor.example:8080/api/v1/alerts/r1",
		"fingerprint":  "fedcba9876543210",
	}}
	for i, a := range alerts {
		am, _ := a.(map[string]any)
		if got := ntKeys(am); !reflect.DeepEqual(got, webhookAlertKeys) {
			t.Errorf("alerts[%d] fields %v, want %v", i, got, webhookAlertKeys)
		}
		for k, v := range want[i] {
			if !reflect.DeepEqual(am[k], v) {
				t.Errorf("alerts[%d].%s = %#v, want %#v", i, k, am[k], v)
			}
		}
	}
}

// TestWebhookResolvedNoSecret: all resolved is status "resolved", and no secret means no header.
func TestWebhookResolvedNoSecret(t *testing.T) {
	srv, ch := ntHookServer(t)
	d := NewDispatcher(NotifyOptions{Timeout: 2 * time.Second})
	ntClose(t, d)
	d.Send(Notification{Channel: Channel{Type: "webhook", URL: srv.URL}, Rule: "cpu high",
		Alerts: []Alert{ntAlert("cpu high", "", "resolved")}})
	r := ntRecv(t, ch)
	if _, ok := r.hdr["X-Netsentry-Signature"]; ok {
		t.Errorf("signature header without a secret: %v", r.hdr)
	}
	var m WebhookMessage
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatal(err)
	}
	if m.Status != "resolved" || m.Alerts[0].Status != "resolved" || m.ExternalURL != "" || m.Alerts[0].GeneratorURL != "" {
		t.Errorf("payload %s", r.body)
	}
}

// TestSignKnownVector: RFC 4231 test case 2 ("Jefe", "what do ya want for nothing?").
func TestSignKnownVector(t *testing.T) {
	got := SignWebhook("Jefe", []byte("what do ya want for nothing?"))
	if want := "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"; got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

func TestPostJSONBadURL(t *testing.T) {
	retry, err := notifyPostJSON(context.Background(), http.DefaultClient, "", nil, nil)
	if err == nil || retry {
		t.Errorf("empty url: retry %v err %v", retry, err)
	}
}
