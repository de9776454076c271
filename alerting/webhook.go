package alerting

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader carries "sha256=<hex HMAC-SHA256 of the body keyed with Channel.Secret>" on
// webhook requests of a channel that has a secret.
const SignatureHeader = "X-NetSentry-Signature"

// WebhookMessage is the webhook body: Alertmanager's webhook payload, version 4.
type WebhookMessage struct {
	Version           string            `json:"version"` // "4"
	GroupKey          string            `json:"groupKey"`
	Status            string            `json:"status"` // firing | resolved
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []WebhookAlert    `json:"alerts"`
}

// WebhookAlert is one alert of a WebhookMessage.
type WebhookAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"` // 0001-01-01T00:00:00Z while firing, as Alertmanager sends
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// webhookReceiver is the payload's receiver name.
const webhookReceiver = "netsentry"

// NewWebhookMessage builds the version 4 payload of n. groupLabels is {alertname: rule} and
// groupKey is Alertmanager's form for it, `{}:{alertname="<rule>"}`.
func NewWebhookMessage(n Notification, externalURL string) WebhookMessage {
	rule := n.Rule
	if rule == "" && len(n.Alerts) > 0 {
		rule = n.Alerts[0].Rule
	}
	m := WebhookMessage{
		Version:     "4",
		GroupKey:    "{}:{alertname=" + strconv.Quote(rule) + "}",
		Status:      notifyStatus(n.Alerts),
		Receiver:    webhookReceiver,
		GroupLabels: map[string]string{"alertname": rule},
		ExternalURL: externalURL,
		Alerts:      make([]WebhookAlert, 0, len(n.Alerts)),
	}
	for _, a := range n.Alerts {
		status := a.Status
		if status != "resolved" {
			status = "firing"
		}
		ann := a.Annotations
		if ann == nil {
			ann = map[string]string{}
		}
		m.Alerts = append(m.Alerts, WebhookAlert{
			Status:       status,
			Labels:       notifyLabels(a, rule),
			Annotations:  ann,
			StartsAt:     a.StartsAt.UTC(),
			EndsAt:       a.EndsAt.UTC(),
			GeneratorURL: notifyGeneratorURL(externalURL, a),
			Fingerprint:  a.Fingerprint,
		})
	}
	m.CommonLabels = notifyCommon(n.Alerts, func(a Alert) map[string]string { return notifyLabels(a, rule) })
	m.CommonAnnotations = notifyCommon(n.Alerts, func(a Alert) map[string]string { return a.Annotations })
	return m
}

// SignWebhook returns the SignatureHeader value for body keyed with secret.
func SignWebhook(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

type webhookNotifier struct {
	client      *http.Client
	url, secret string
	externalURL string
}

func (w *webhookNotifier) notify(ctx context.Context, n Notification) (bool, error) {
	body, err := json.Marshal(NewWebhookMessage(n, w.externalURL))
	if err != nil {
		return false, fmt.Errorf("encode webhook payload: %w", err)
	}
	hdr := http.Header{}
	if w.secret != "" {
		hdr[SignatureHeader] = []string{SignWebhook(w.secret, body)} // as spelled; header names are case-insensitive
	}
	return notifyPostJSON(ctx, w.client, w.url, body, hdr)
}

// notifyPostJSON posts body and classifies the answer: 2xx is success; 5xx, 429 and transport
// errors (refused, reset, timeout) are worth a retry; anything else is not.
func notifyPostJSON(ctx context.Context, client *http.Client, url string, body []byte, hdr http.Header) (bool, error) {
	if url == "" {
		return false, errNoURL
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("make request: %w", err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "netsentry")
	resp, err := client.Do(req)
	if err != nil {
		return true, fmt.Errorf("post %s: %w", redactTarget(url), unwrapURLError(err))
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		return false, nil
	}
	return retryableStatus(resp.StatusCode), fmt.Errorf("post %s: %w", redactTarget(url),
		&errStatus{code: resp.StatusCode, body: strings.TrimSpace(string(snippet))})
}

// unwrapURLError drops *url.Error's wrapping (it repeats the URL, which may hold credentials).
func unwrapURLError(err error) error {
	type unwrapper interface{ Unwrap() error }
	if u, ok := err.(unwrapper); ok && strings.HasPrefix(err.Error(), "Post ") {
		if inner := u.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}

// notifySortedKeys returns m's keys sorted.
func notifySortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
