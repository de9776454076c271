package httpd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/netsentry/netsentry/configs"
	"github.com/netsentry/netsentry/geo"
)

type captureJSON struct {
	Running    bool     `json:"running"`
	Interfaces []string `json:"interfaces"`
	Since      *string  `json:"since"`
	Queues     int      `json:"queues"`
	Fanout     string   `json:"fanout"`
}

func captureOut(st CaptureStatus) captureJSON {
	out := captureJSON{Running: st.Running, Interfaces: st.Interfaces, Queues: st.Queues, Fanout: st.Fanout}
	if out.Interfaces == nil {
		out.Interfaces = []string{}
	}
	if !st.Since.IsZero() {
		s := st.Since.UTC().Format(tsFormat)
		out.Since = &s
	}
	return out
}

func (s *Server) captureGet(ctx *fasthttp.RequestCtx) {
	if _, msg := parseQuery(ctx); msg != "" {
		writeProblem(ctx, fasthttp.StatusBadRequest, msg)
		return
	}
	writeJSON(ctx, captureOut(s.opt.Sensor.Capture()))
}

// captureRequest is the body of POST /api/v1/capture.
type captureRequest struct {
	Action    string  `json:"action"`
	Interface *string `json:"interface"`
}

// decodeJSONBody decodes the request body strictly into v: a JSON object,
// no unknown fields, nothing after it. It answers the problem itself.
func decodeJSONBody(ctx *fasthttp.RequestCtx, v any) bool {
	if !isJSON(ctx) {
		writeProblem(ctx, fasthttp.StatusUnsupportedMediaType, "send the body as application/json")
		return false
	}
	body := bytes.TrimSpace(ctx.PostBody())
	if len(body) == 0 || body[0] != '{' {
		writeProblem(ctx, fasthttp.StatusBadRequest, "the body must be a JSON object")
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeProblem(ctx, fasthttp.StatusBadRequest, "bad JSON body: "+jsonProblem(err))
		return false
	}
	if dec.More() {
		writeProblem(ctx, fasthttp.StatusBadRequest, "bad JSON body: data after the object")
		return false
	}
	return true
}

// jsonProblem says what is wrong with a JSON body in words of its own
// rather than the decoder's error text.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("not valid JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("%s: want a %s, got a JSON %s", typ.Field, typ.Type, typ.Value)
		}
		return fmt.Sprintf("want a %s, got a JSON %s", typ.Type, typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "the JSON ends early"
	}
	// The decoder's own words for an unknown field: json: unknown field "x".
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return "unknown field " + f
	}
	return "not a JSON object of the documented fields"
}

func isJSON(ctx *fasthttp.RequestCtx) bool {
	ct := ctx.Request.Header.ContentType()
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = bytes.TrimSpace(ct)
	return bytes.EqualFold(ct, []byte("application/json"))
}

func (s *Server) capturePost(ctx *fasthttp.RequestCtx) {
	if _, msg := parseQuery(ctx); msg != "" {
		writeProblem(ctx, fasthttp.StatusBadRequest, msg)
		return
	}
	var req captureRequest
	if !decodeJSONBody(ctx, &req) {
		return
	}
	var (
		st  CaptureStatus
		err error
	)
	switch req.Action {
	case "start":
		var ifaces []string
		if req.Interface != nil {
			c := configs.Default()
			c.CaptureInterface = *req.Interface
			c.NetworkAnalysis.CaptureInterfaces = nil
			if verr := c.Validate(); verr != nil {
				for _, p := range verr.(*configs.Errors).Problems {
					if p.Key == "capture_interface" {
						writeProblem(ctx, fasthttp.StatusBadRequest, "interface: "+p.Msg)
						return
					}
				}
			}
			ifaces = []string{*req.Interface}
		}
		st, err = s.opt.Sensor.StartCapture(ifaces)
	case "stop":
		if req.Interface != nil {
			writeProblem(ctx, fasthttp.StatusBadRequest, "stop takes no interface: it stops the whole capture")
			return
		}
		st, err = s.opt.Sensor.StopCapture()
	default:
		writeProblem(ctx, fasthttp.StatusBadRequest, fmt.Sprintf("action %q: want start or stop", req.Action))
		return
	}
	switch {
	case errors.Is(err, ErrConflict):
		writeProblem(ctx, fasthttp.StatusConflict, err.Error())
		return
	case errors.Is(err, ErrInvalid):
		writeProblem(ctx, fasthttp.StatusUnprocessableEntity, err.Error())
		return
	case err != nil:
		s.log.Error("api: capture "+req.Action, "err", err)
		writeProblem(ctx, fasthttp.StatusInternalServerError, "capture "+req.Action+" failed; the sensor's log says why")
		return
	}
	s.log.Info("api: capture "+req.Action, "interfaces", st.Interfaces, "client", ctx.RemoteAddr().String())
	for _, c := range []*snapCache{s.hostsC, s.light} {
		c.cur.Store(nil)
	}
	s.tops.reset()
	writeJSON(ctx, captureOut(st))
}

// Redacted stands for a set api_token, api_read_token,
// alerts.smtp.password, storage.remote_token, storage.remote_password or a
// notification channel's secret
// in GET /api/v1/config; a PUT that sends it back
// keeps that secret in force.
const Redacted = "<redacted>"

// configJSON returns c as a JSON object with the keys of netsentry.yaml,
// the tokens redacted.
func configJSON(c configs.Config) (map[string]any, error) {
	if c.APIToken != "" {
		c.APIToken = Redacted
	}
	if c.APIReadToken != "" {
		c.APIReadToken = Redacted
	}
	if c.Alerts.SMTP.Password != "" {
		c.Alerts.SMTP.Password = Redacted
	}
	if c.Storage.RemoteToken != "" {
		c.Storage.RemoteToken = Redacted
	}
	if c.Storage.RemotePassword != "" {
		c.Storage.RemotePassword = Redacted
	}
	if i := slices.IndexFunc(c.Alerts.NotificationChannels, func(ch configs.NotificationChannel) bool { return ch.Secret != "" }); i >= 0 {
		chs := slices.Clone(c.Alerts.NotificationChannels) // c shares the slice with the config in force
		for i := range chs {
			if chs[i].Secret != "" {
				chs[i].Secret = Redacted
			}
		}
		c.Alerts.NotificationChannels = chs
	}
	y, err := configs.Encode(c)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := yamlUnmarshal(y, &m); err != nil {
		return nil, fmt.Errorf("convert config: %w", err)
	}
	return m, nil
}

// keepChannelSecrets puts back the secret in force of each channel in chs
// whose secret came back redacted: the channel in force at the same place
// with the same type and URL. A redacted secret with no such channel stays
// "<redacted>" (a literal key, which the user sees in GET again).
func keepChannelSecrets(chs, cur []configs.NotificationChannel) {
	for i := range chs {
		if chs[i].Secret != Redacted {
			continue
		}
		if i < len(cur) && cur[i].Type == chs[i].Type && cur[i].URL == chs[i].URL {
			chs[i].Secret = cur[i].Secret
		}
	}
}

func (s *Server) configGet(ctx *fasthttp.RequestCtx) {
	if _, msg := parseQuery(ctx); msg != "" {
		writeProblem(ctx, fasthttp.StatusBadRequest, msg)
		return
	}
	m, err := configJSON(s.opt.Config.Config())
	if err != nil {
		s.log.Error("api: show config", "err", err)
		writeProblem(ctx, fasthttp.StatusInternalServerError, "cannot show the configuration; the sensor's log says why")
		return
	}
	writeJSON(ctx, m)
}

// configPut replaces the whole configuration: the body is a configuration
// document in JSON (the keys of netsentry.yaml, as GET returns them); keys
// left out take their defaults, as in a configuration file. It is decoded
// and validated like --check-config; on any problem nothing changes.
func (s *Server) configPut(ctx *fasthttp.RequestCtx) {
	if _, msg := parseQuery(ctx); msg != "" {
		writeProblem(ctx, fasthttp.StatusBadRequest, msg)
		return
	}
	if !isJSON(ctx) {
		writeProblem(ctx, fasthttp.StatusUnsupportedMediaType, "send the configuration as application/json")
		return
	}
	body := bytes.TrimSpace(ctx.PostBody())
	if len(body) == 0 || body[0] != '{' || !json.Valid(body) {
		writeProblem(ctx, fasthttp.StatusBadRequest, "the body must be one JSON object: the whole configuration, as GET /api/v1/config returns it")
		return
	}
	// JSON is YAML: the strict configuration decoder reports unknown keys
	// and wrong types with their line, as for a file, and the checks of
	// meaning and of the geolocation databases run too, so that every
	// problem is listed at once. A token sent back redacted keeps the one
	// in force.
	c, warns, db, err := geo.CheckConfig(body, "request body", func(c *configs.Config) {
		if c.Alerts.SMTP.Password == Redacted {
			c.Alerts.SMTP.Password = s.opt.Config.Config().Alerts.SMTP.Password
		}
		if c.Storage.RemoteToken == Redacted {
			c.Storage.RemoteToken = s.opt.Config.Config().Storage.RemoteToken
		}
		if c.Storage.RemotePassword == Redacted {
			c.Storage.RemotePassword = s.opt.Config.Config().Storage.RemotePassword
		}
		keepChannelSecrets(c.Alerts.NotificationChannels, s.opt.Config.Config().Alerts.NotificationChannels)
		if c.APIToken == Redacted || c.APIReadToken == Redacted {
			cur := s.opt.Config.Config()
			if c.APIToken == Redacted {
				c.APIToken = cur.APIToken
			}
			if c.APIReadToken == Redacted {
				c.APIReadToken = cur.APIReadToken
			}
		}
	})
	db.Close() // opened to check it; the running sensor keeps its own until a restart
	warnList := make([]string, 0, len(warns))
	for _, w := range warns {
		warnList = append(warnList, w.String())
	}
	if err != nil {
		var errs *configs.Errors
		if errors.As(err, &errs) {
			list := make([]string, 0, len(errs.Problems))
			for _, p := range errs.Problems {
				list = append(list, p.String())
			}
			writeConfigProblem(ctx, list, warnList)
			return
		}
		writeProblem(ctx, fasthttp.StatusBadRequest, "invalid configuration; nothing was changed")
		return
	}
	// The tokens apply at once, on the address the server listens on now
	// (api_listen changes at a restart): a change this server cannot make
	// is refused whole, so that what GET shows is what is enforced.
	if err := s.CheckTokens(c.APIToken, c.APIReadToken); err != nil {
		writeProblem(ctx, fasthttp.StatusConflict, "nothing was changed: "+tokenProblem(err))
		return
	}
	res, err := s.opt.Config.Replace(c)
	switch {
	case errors.Is(err, ErrConflict):
		writeProblem(ctx, fasthttp.StatusConflict, err.Error())
		return
	case err != nil:
		s.log.Error("api: replace config", "err", err)
		writeProblem(ctx, fasthttp.StatusInternalServerError, "nothing was changed; the sensor's log says why")
		return
	}
	s.log.Info("api: configuration replaced", "applied", res.Applied, "restart_required", res.RestartRequired,
		"not_acted_on", res.NotActedOn, "client", ctx.RemoteAddr().String())
	for _, w := range warnList {
		s.log.Warn("api: config: " + w)
	}
	m, err := configJSON(s.opt.Config.Config())
	if err != nil {
		s.log.Error("api: show config", "err", err)
		writeProblem(ctx, fasthttp.StatusInternalServerError, "the configuration was replaced but cannot be shown; the sensor's log says why")
		return
	}
	if res.Applied == nil {
		res.Applied = []string{}
	}
	if res.RestartRequired == nil {
		res.RestartRequired = []string{}
	}
	if res.NotActedOn == nil {
		res.NotActedOn = []string{}
	}
	writeJSON(ctx, map[string]any{"timestamp": time.Now().UTC().Format(tsFormat), "config": m,
		"applied": res.Applied, "restart_required": res.RestartRequired, "not_acted_on": res.NotActedOn,
		"warnings": warnList})
}

// writeConfigProblem answers 400 for a configuration with problems: every
// problem in errors, and the warnings the configuration would have had.
func writeConfigProblem(ctx *fasthttp.RequestCtx, errs, warns []string) {
	p := problem{Type: "about:blank", Title: fasthttp.StatusMessage(fasthttp.StatusBadRequest), Status: fasthttp.StatusBadRequest,
		Detail: "invalid configuration; nothing was changed", Instance: string(ctx.Path()), Errors: errs, Warnings: warns}
	writeProblemBody(ctx, p)
}

// tokenProblem is the reason CheckTokens gave, without its "set api
// tokens: " prefix.
func tokenProblem(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	return msg
}
