package httpd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fasthttp/router"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/valyala/fasthttp"
)

// Limits of the Prometheus query API.
const (
	// DefaultQueryTimeout is the longest a query runs (Options.QueryTimeout
	// when 0); a request's ?timeout= can only shorten it.
	DefaultQueryTimeout = 30 * time.Second
	// MaxQueryTimeout caps Options.QueryTimeout.
	MaxQueryTimeout = 2 * time.Minute
	// MaxPointsPerSeries is the most points a range query may return per
	// series ((end-start)/step), as Prometheus's own limit.
	MaxPointsPerSeries = 11000
	// MaxQuerySamples is the most samples a query may hold in memory at once
	// (the engine's MaxSamples); more is an execution error (422).
	MaxQuerySamples = 5_000_000
	// LookbackDelta is how far back an instant selector looks for a sample,
	// as Prometheus's default.
	LookbackDelta = 5 * time.Minute
	// MaxSubquerySteps bounds the steps the subqueries of one query
	// evaluate together ((the query's span + the subquery's ranges) / its
	// step, summed): the engine looks at its deadline too seldom inside a
	// fine subquery over few series (rate(x[1h:1ms]) ran 13 s past a 0.5 s
	// timeout), so such a query is refused (400) before it starts.
	MaxSubquerySteps = 500_000
	// MaxConcurrentQueries is how many queries evaluate at once; more wait
	// (within their timeout).
	MaxConcurrentQueries = 4
	// promVersion is the Prometheus release whose engine evaluates the
	// queries (module v0.316.0), for /api/v1/status/buildinfo.
	promVersion = "3.16.0"
)

var errNoStore = errors.New("no store: storage is not enabled")

// Prometheus API error types (errorType of an error body).
const (
	errBadData     = "bad_data"
	errExec        = "execution"
	errTimeout     = "timeout"
	errCanceled    = "canceled"
	errInternal    = "internal"
	errUnavailable = "unavailable"
)

// Prometheus's bounds of open time ranges.
var (
	minTime = time.Unix(math.MinInt64/1000+62135596801, 0).UTC()
	maxTime = time.Unix(math.MaxInt64/1000-62135596801, 999999999).UTC()
)

// promAPI holds the engine of the Prometheus query API.
type promAPI struct {
	q       storage.Queryable
	engine  *promql.Engine
	timeout time.Duration
	slots   chan struct{}
	parser  parser.Parser
}

func newPromAPI(q storage.Queryable, timeout time.Duration) *promAPI {
	if timeout <= 0 {
		timeout = DefaultQueryTimeout
	}
	timeout = min(timeout, MaxQueryTimeout)
	p := &promAPI{q: q, timeout: timeout, slots: make(chan struct{}, MaxConcurrentQueries),
		parser: parser.NewParser(parser.Options{})}
	p.engine = promql.NewEngine(promql.EngineOpts{
		MaxSamples:               MaxQuerySamples,
		Timeout:                  timeout,
		LookbackDelta:            LookbackDelta,
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
		NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
		Parser:                   p.parser,
	})
	return p
}

// promRoutes registers the Prometheus HTTP API: reads, with the read
// token, GET or POST (a urlencoded form) as Prometheus takes them.
func (s *Server) promRoutes(r *router.Router) {
	for _, m := range []string{"GET", "POST"} {
		s.handle(r, m, "/api/v1/query", authRead, s.promQuery)
		s.handle(r, m, "/api/v1/query_range", authRead, s.promQueryRange)
		s.handle(r, m, "/api/v1/series", authRead, s.promSeries)
		s.handle(r, m, "/api/v1/labels", authRead, s.promLabels)
		s.handle(r, m, "/api/v1/label/{name}/values", authRead, s.promLabelValues)
		s.handle(r, m, "/api/v1/query_exemplars", authRead, s.promExemplars)
	}
	s.handle(r, "GET", "/api/v1/status/buildinfo", authRead, s.promBuildInfo)
	s.handle(r, "GET", "/api/v1/metadata", authRead, s.promMetadata)
}

// apiError is an error of the Prometheus API.
type apiError struct {
	typ string
	err error
}

func (e *apiError) status() int {
	switch e.typ {
	case errBadData:
		return fasthttp.StatusBadRequest
	case errExec:
		return fasthttp.StatusUnprocessableEntity
	case errTimeout, errCanceled, errUnavailable:
		return fasthttp.StatusServiceUnavailable
	}
	return fasthttp.StatusInternalServerError
}

func badData(format string, args ...any) *apiError {
	return &apiError{errBadData, fmt.Errorf(format, args...)}
}

// promError answers a Prometheus error body.
func promError(ctx *fasthttp.RequestCtx, e *apiError) {
	b, err := json.Marshal(struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
	}{"error", e.typ, e.err.Error()})
	if err != nil {
		panic("BUG: marshal error body: " + err.Error())
	}
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetContentType("application/json")
	ctx.SetStatusCode(e.status())
	ctx.SetBody(b)
}

// promSuccess answers {"status":"success","data":<data>} with the
// annotations as warnings and infos.
func promSuccess(ctx *fasthttp.RequestCtx, data []byte, annos annotations.Annotations) {
	b := make([]byte, 0, len(data)+64)
	b = append(b, `{"status":"success","data":`...)
	b = append(b, data...)
	if len(annos) > 0 {
		warns, infos := annos.AsStrings("", 10, 10)
		if len(warns) > 0 {
			b = append(b, `,"warnings":`...)
			b = appendStrings(b, warns)
		}
		if len(infos) > 0 {
			b = append(b, `,"infos":`...)
			b = appendStrings(b, infos)
		}
	}
	b = append(b, '}')
	ctx.Response.Header.Set("Cache-Control", "no-store")
	writeJSONBytes(ctx, b)
}

// promParams are the form values of a request: the query string, and a
// urlencoded POST body.
type promParams struct {
	vals map[string][]string
}

// promArgs reads the parameters, accepting only the names in allowed; a
// name other than match[] may come once.
func promArgs(ctx *fasthttp.RequestCtx, allowed ...string) (promParams, *apiError) {
	p := promParams{vals: map[string][]string{}}
	var bad *apiError
	add := func(k, v []byte) {
		if bad != nil {
			return
		}
		name := string(k)
		switch {
		case !slices.Contains(allowed, name):
			bad = badData("unknown parameter %q; this endpoint takes %s", trimTo(name, 100), strings.Join(allowed, ", "))
		case name != "match[]" && len(p.vals[name]) > 0:
			bad = badData("parameter %q given twice", name)
		default:
			p.vals[name] = append(p.vals[name], string(v))
		}
	}
	for k, v := range ctx.QueryArgs().All() {
		add(k, v)
	}
	if ctx.IsPost() {
		ct := string(ctx.Request.Header.ContentType())
		if ct != "" && !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
			return p, badData("unsupported Content-Type %q; send application/x-www-form-urlencoded", trimTo(ct, 100))
		}
		for k, v := range ctx.PostArgs().All() {
			add(k, v)
		}
	}
	return p, bad
}

func (p promParams) get(name string) string {
	if v := p.vals[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (p promParams) has(name string) bool { return len(p.vals[name]) > 0 }

func trimTo(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// parsePromTime reads a time as Prometheus does: Unix seconds (a float,
// rounded to the millisecond) or RFC 3339; and Prometheus's own bounds of
// open ranges.
func parsePromTime(s string) (time.Time, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) || f > 9.2e15 || f < -9.2e15 {
			return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", trimTo(s, 100))
		}
		sec, frac := math.Modf(f)
		frac = math.Round(frac*1000) / 1000
		return time.Unix(int64(sec), int64(frac*float64(time.Second))).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	switch s {
	case minTime.Format(time.RFC3339Nano):
		return minTime, nil
	case maxTime.Format(time.RFC3339Nano):
		return maxTime, nil
	}
	return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", trimTo(s, 100))
}

// parsePromDuration reads a duration as Prometheus does: seconds (a float)
// or a Prometheus duration (5m, 1h30m).
func parsePromDuration(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		ns := f * float64(time.Second)
		if math.IsNaN(ns) || ns >= float64(math.MaxInt64) || ns < float64(math.MinInt64) {
			return 0, fmt.Errorf("cannot parse %q to a valid duration. It overflows int64", trimTo(s, 100))
		}
		return time.Duration(ns), nil
	}
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d), nil
	}
	return 0, fmt.Errorf("cannot parse %q to a valid duration", trimTo(s, 100))
}

// timeParam reads parameter name; def when it is absent.
func (p promParams) timeParam(name string, def time.Time) (time.Time, *apiError) {
	if !p.has(name) {
		return def, nil
	}
	t, err := parsePromTime(p.get(name))
	if err != nil {
		return time.Time{}, badData("invalid parameter %q: %w", name, err)
	}
	return t, nil
}

// context returns the query's context: the request's timeout (capped by
// the server's) and the server's closing.
func (a *promAPI) context(p promParams, done <-chan struct{}) (context.Context, context.CancelFunc, *apiError) {
	timeout := a.timeout
	if p.has("timeout") {
		d, err := parsePromDuration(p.get("timeout"))
		if err != nil {
			return nil, nil, badData("invalid parameter %q: %w", "timeout", err)
		}
		if d <= 0 {
			return nil, nil, badData("invalid parameter %q: timeout must be positive, got %s", "timeout", d)
		}
		timeout = min(timeout, d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	go func() {
		select {
		case <-done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel, nil
}

// acquire takes an evaluation slot, waiting within ctx.
func (a *promAPI) acquire(ctx context.Context) *apiError {
	select {
	case a.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return &apiError{errTimeout, fmt.Errorf("query timed out waiting for an evaluation slot: %w", ctx.Err())}
	}
}

func (a *promAPI) release() { <-a.slots }

// queryOpts reads lookback_delta.
func queryOpts(p promParams) (promql.QueryOpts, *apiError) {
	lb := time.Duration(0)
	if p.has("lookback_delta") {
		d, err := parsePromDuration(p.get("lookback_delta"))
		if err != nil {
			return nil, badData("error parsing lookback delta duration: %w", err)
		}
		if d < 0 {
			return nil, badData("invalid parameter %q: lookback_delta must not be negative", "lookback_delta")
		}
		lb = d
	}
	return promql.NewPrometheusQueryOpts(false, lb, nil), nil
}

// limitParam reads ?limit= (0: none).
func limitParam(p promParams) (int, *apiError) {
	if !p.has("limit") {
		return 0, nil
	}
	n, err := strconv.Atoi(p.get("limit"))
	if err != nil || n < 0 {
		return 0, badData("invalid parameter %q: limit must be a non-negative integer", "limit")
	}
	return n, nil
}

// execError classifies an error of the engine as Prometheus does.
func execError(err error) *apiError {
	var eqc promql.ErrQueryCanceled
	var eqt promql.ErrQueryTimeout
	var es promql.ErrStorage
	switch {
	case errors.As(err, &eqt), errors.Is(err, context.DeadlineExceeded):
		return &apiError{errTimeout, err}
	case errors.As(err, &eqc), errors.Is(err, context.Canceled):
		return &apiError{errCanceled, err}
	case errors.As(err, &es):
		return &apiError{errInternal, err}
	}
	return &apiError{errExec, err}
}

// newQueryError classifies an error of NewInstantQuery/NewRangeQuery: a
// parse error or a bad option is bad data.
func newQueryError(err error) *apiError {
	var pe parser.ParseErrors
	var pe1 *parser.ParseErr
	if errors.As(err, &pe) || errors.As(err, &pe1) {
		return &apiError{errBadData, fmt.Errorf("invalid parameter %q: %w", "query", err)}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return execError(err)
	}
	return &apiError{errBadData, err}
}

var queryParams = []string{"query", "time", "timeout", "limit", "lookback_delta", "stats"}

var rangeParams = []string{"query", "start", "end", "step", "timeout", "limit", "lookback_delta", "stats"}

func (s *Server) promQuery(ctx *fasthttp.RequestCtx) {
	s.promQueryCommon(ctx, false)
}

func (s *Server) promQueryRange(ctx *fasthttp.RequestCtx) {
	s.promQueryCommon(ctx, true)
}

func (s *Server) promQueryCommon(ctx *fasthttp.RequestCtx, isRange bool) {
	a := s.prom
	if a == nil {
		promError(ctx, &apiError{errUnavailable, errNoStore})
		return
	}
	allowed := queryParams
	if isRange {
		allowed = rangeParams
	}
	p, e := promArgs(ctx, allowed...)
	if e != nil {
		promError(ctx, e)
		return
	}
	limit, e := limitParam(p)
	if e != nil {
		promError(ctx, e)
		return
	}
	if !p.has("query") {
		promError(ctx, badData("invalid parameter %q: no query given", "query"))
		return
	}
	var start, end time.Time
	var step time.Duration
	if isRange {
		if !p.has("start") || !p.has("end") || !p.has("step") {
			promError(ctx, badData("query_range needs start, end and step"))
			return
		}
		if start, e = p.timeParam("start", time.Time{}); e != nil {
			promError(ctx, e)
			return
		}
		if end, e = p.timeParam("end", time.Time{}); e != nil {
			promError(ctx, e)
			return
		}
		if end.Before(start) {
			promError(ctx, badData("invalid parameter %q: end timestamp must not be before start time", "end"))
			return
		}
		d, err := parsePromDuration(p.get("step"))
		if err != nil {
			promError(ctx, badData("invalid parameter %q: %w", "step", err))
			return
		}
		if d <= 0 {
			promError(ctx, badData("invalid parameter %q: zero or negative query resolution step widths are not accepted. Try a positive integer", "step"))
			return
		}
		if end.Sub(start)/d > MaxPointsPerSeries {
			promError(ctx, badData("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"))
			return
		}
		step = d
	} else if start, e = p.timeParam("time", time.Now()); e != nil {
		promError(ctx, e)
		return
	}
	qctx, cancel, e := a.context(p, s.done)
	if e != nil {
		promError(ctx, e)
		return
	}
	defer cancel()
	opts, e := queryOpts(p)
	if e != nil {
		promError(ctx, e)
		return
	}
	span := time.Duration(0)
	if isRange {
		span = end.Sub(start)
	}
	if e := a.checkCost(p.get("query"), span); e != nil {
		promError(ctx, e)
		return
	}
	if e := a.acquire(qctx); e != nil {
		promError(ctx, e)
		return
	}
	defer a.release()
	var qry promql.Query
	var err error
	if isRange {
		qry, err = a.engine.NewRangeQuery(qctx, a.q, opts, p.get("query"), start, end, step)
	} else {
		qry, err = a.engine.NewInstantQuery(qctx, a.q, opts, p.get("query"), start)
	}
	if err != nil {
		promError(ctx, newQueryError(err))
		return
	}
	defer qry.Close()
	res := qry.Exec(qctx)
	if res.Err != nil {
		promError(ctx, execError(res.Err))
		return
	}
	data, err := appendResult(nil, res.Value, limit)
	if err != nil {
		promError(ctx, &apiError{errInternal, err})
		return
	}
	promSuccess(ctx, data, res.Warnings)
}

// checkCost refuses a query whose subqueries would evaluate more than
// MaxSubquerySteps steps over span (0 for an instant query). A query that
// does not parse passes: the engine says why.
func (a *promAPI) checkCost(query string, span time.Duration) *apiError {
	expr, err := a.parser.ParseExpr(query)
	if err != nil {
		return nil
	}
	var steps float64
	parser.Inspect(expr, func(n parser.Node, path []parser.Node) error {
		sq, ok := n.(*parser.SubqueryExpr)
		if !ok {
			return nil
		}
		cover := span + sq.Range
		for _, p := range path {
			if o, ok := p.(*parser.SubqueryExpr); ok && o != sq {
				cover += o.Range
			}
		}
		step := sq.Step
		if step <= 0 {
			step = time.Minute
		}
		steps += float64(cover) / float64(step)
		return nil
	})
	if steps > MaxSubquerySteps {
		return badData("the subqueries would evaluate %.0f steps, more than %d; use a coarser subquery step", steps, MaxSubquerySteps)
	}
	return nil
}

// appendResult renders a query's value as Prometheus's API does:
// {"resultType":...,"result":...}; limit > 0 keeps the first limit series.
func appendResult(b []byte, v parser.Value, limit int) ([]byte, error) {
	b = append(b, `{"resultType":"`...)
	b = append(b, v.Type()...)
	b = append(b, `","result":`...)
	switch v := v.(type) {
	case promql.Matrix:
		if limit > 0 && len(v) > limit {
			v = v[:limit]
		}
		b = append(b, '[')
		for i, sr := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"metric":`...)
			b = appendLabels(b, sr.Metric)
			if len(sr.Floats) > 0 {
				b = append(b, `,"values":[`...)
				for j, pt := range sr.Floats {
					if j > 0 {
						b = append(b, ',')
					}
					b = appendPoint(b, pt.T, pt.F)
				}
				b = append(b, ']')
			}
			if len(sr.Histograms) > 0 {
				return nil, errors.New("render result: histograms are not supported")
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	case promql.Vector:
		if limit > 0 && len(v) > limit {
			v = v[:limit]
		}
		b = append(b, '[')
		for i, smp := range v {
			if i > 0 {
				b = append(b, ',')
			}
			if smp.H != nil {
				return nil, errors.New("render result: histograms are not supported")
			}
			b = append(b, `{"metric":`...)
			b = appendLabels(b, smp.Metric)
			b = append(b, `,"value":`...)
			b = appendPoint(b, smp.T, smp.F)
			b = append(b, '}')
		}
		b = append(b, ']')
	case promql.Scalar:
		b = appendPoint(b, v.T, v.V)
	case promql.String:
		b = append(b, '[')
		b = appendTimestamp(b, v.T)
		b = append(b, ',')
		b = appendString(b, v.V)
		b = append(b, ']')
	default:
		return nil, fmt.Errorf("render result: unknown value type %s", v.Type())
	}
	return append(b, '}'), nil
}

// appendPoint appends [unix_seconds, "value"].
func appendPoint(b []byte, t int64, v float64) []byte {
	b = append(b, '[')
	b = appendTimestamp(b, t)
	b = append(b, `,"`...)
	b = appendPromFloat(b, v)
	return append(b, `"]`...)
}

// appendTimestamp appends milliseconds t as seconds with up to three
// decimals, as Prometheus writes them.
func appendTimestamp(b []byte, t int64) []byte {
	if t < 0 {
		b = append(b, '-')
		t = -t
	}
	b = strconv.AppendInt(b, t/1000, 10)
	if f := t % 1000; f != 0 {
		b = append(b, '.')
		if f < 100 {
			b = append(b, '0')
		}
		if f < 10 {
			b = append(b, '0')
		}
		b = strconv.AppendInt(b, f, 10)
	}
	return b
}

// appendPromFloat writes v as Prometheus does: shortest decimal, exponent
// form for very small or very large magnitudes, NaN, +Inf, -Inf.
func appendPromFloat(b []byte, v float64) []byte {
	format := byte('f')
	if a := math.Abs(v); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	return strconv.AppendFloat(b, v, format, -1, 64)
}

func appendLabels(b []byte, ls labels.Labels) []byte {
	b = append(b, '{')
	first := true
	ls.Range(func(l labels.Label) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, l.Name)
		b = append(b, ':')
		b = appendString(b, l.Value)
	})
	return append(b, '}')
}

func appendString(b []byte, s string) []byte {
	q, err := json.Marshal(s)
	if err != nil {
		panic("BUG: marshal string: " + err.Error())
	}
	return append(b, q...)
}

func appendStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

// matcherSets parses match[].
func (a *promAPI) matcherSets(p promParams) ([][]*labels.Matcher, *apiError) {
	var sets [][]*labels.Matcher
	for _, m := range p.vals["match[]"] {
		ms, err := a.parser.ParseMetricSelector(m)
		if err != nil {
			return nil, badData("invalid parameter %q: %w", "match[]", err)
		}
		empty := true
		for _, x := range ms {
			if !x.Matches("") {
				empty = false
			}
		}
		if empty {
			return nil, badData("match[] must contain at least one non-empty matcher")
		}
		sets = append(sets, ms)
	}
	return sets, nil
}

// metaArgs reads start, end (open when absent), limit and match[] of the
// series and label endpoints.
func (a *promAPI) metaArgs(ctx *fasthttp.RequestCtx) (p promParams, start, end time.Time, limit int, sets [][]*labels.Matcher, e *apiError) {
	if p, e = promArgs(ctx, "match[]", "start", "end", "limit"); e != nil {
		return
	}
	if start, e = p.timeParam("start", minTime); e != nil {
		return
	}
	if end, e = p.timeParam("end", maxTime); e != nil {
		return
	}
	if end.Before(start) {
		e = badData("invalid parameter %q: end timestamp must not be before start time", "end")
		return
	}
	if limit, e = limitParam(p); e != nil {
		return
	}
	sets, e = a.matcherSets(p)
	return
}

// querier opens a querier for [start, end] with the request's deadline.
func (s *Server) metaQuerier(start, end time.Time) (storage.Querier, context.Context, context.CancelFunc, *apiError) {
	ctx, cancel, _ := s.prom.context(promParams{}, s.done)
	q, err := s.prom.q.Querier(start.UnixMilli(), end.UnixMilli())
	if err != nil {
		cancel()
		return nil, nil, nil, &apiError{errExec, err}
	}
	return q, ctx, cancel, nil
}

func (s *Server) promSeries(ctx *fasthttp.RequestCtx) {
	if s.prom == nil {
		promError(ctx, &apiError{errUnavailable, errNoStore})
		return
	}
	_, start, end, limit, sets, e := s.prom.metaArgs(ctx)
	if e != nil {
		promError(ctx, e)
		return
	}
	if len(sets) == 0 {
		promError(ctx, badData("no match[] parameter provided"))
		return
	}
	q, qctx, cancel, e := s.metaQuerier(start, end)
	if e != nil {
		promError(ctx, e)
		return
	}
	defer cancel()
	defer q.Close()
	hints := &storage.SelectHints{Start: start.UnixMilli(), End: end.UnixMilli(), Func: "series"}
	var all []labels.Labels
	var annos annotations.Annotations
	for _, ms := range sets {
		ss := q.Select(qctx, true, hints, ms...)
		for ss.Next() {
			all = append(all, ss.At().Labels())
		}
		if err := ss.Err(); err != nil {
			promError(ctx, execError(err))
			return
		}
		annos.Merge(ss.Warnings())
	}
	slices.SortFunc(all, labels.Compare)
	all = slices.CompactFunc(all, labels.Equal)
	if limit > 0 && len(all) > limit {
		all = all[:limit]
		annos.Add(errors.New("results truncated due to limit"))
	}
	b := []byte{'['}
	for i, ls := range all {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendLabels(b, ls)
	}
	promSuccess(ctx, append(b, ']'), annos)
}

func (s *Server) promLabels(ctx *fasthttp.RequestCtx) {
	if s.prom == nil {
		promError(ctx, &apiError{errUnavailable, errNoStore})
		return
	}
	s.promMeta(ctx, func(qctx context.Context, q storage.Querier, ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
		return q.LabelNames(qctx, nil, ms...)
	})
}

func (s *Server) promLabelValues(ctx *fasthttp.RequestCtx) {
	if s.prom == nil {
		promError(ctx, &apiError{errUnavailable, errNoStore})
		return
	}
	name, _ := ctx.UserValue("name").(string)
	if strings.HasPrefix(name, "U__") {
		name = model.UnescapeName(name, model.ValueEncodingEscaping)
	}
	if !validLabelName(name) {
		promError(ctx, badData("invalid label name: %q", trimTo(name, 100)))
		return
	}
	s.promMeta(ctx, func(qctx context.Context, q storage.Querier, ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
		return q.LabelValues(qctx, name, nil, ms...)
	})
}

// promMeta answers /labels and /label/{name}/values: list runs for every
// match[] set (all series without one) over the request's time range, and
// the strings found are answered together.
func (s *Server) promMeta(ctx *fasthttp.RequestCtx, list func(context.Context, storage.Querier, []*labels.Matcher) ([]string, annotations.Annotations, error)) {
	_, start, end, limit, sets, e := s.prom.metaArgs(ctx)
	if e != nil {
		promError(ctx, e)
		return
	}
	q, qctx, cancel, e := s.metaQuerier(start, end)
	if e != nil {
		promError(ctx, e)
		return
	}
	defer cancel()
	defer q.Close()
	if len(sets) == 0 {
		sets = [][]*labels.Matcher{nil}
	}
	var out []string
	var annos annotations.Annotations
	for _, ms := range sets {
		v, w, err := list(qctx, q, ms)
		if err != nil {
			promError(ctx, execError(err))
			return
		}
		annos.Merge(w)
		out = append(out, v...)
	}
	s.promStrings(ctx, out, limit, annos)
}

// validLabelName: a non-empty UTF-8 name, as Prometheus 3 allows.
func validLabelName(n string) bool {
	return n != "" && model.UTF8Validation.IsValidLabelName(n)
}

func (s *Server) promStrings(ctx *fasthttp.RequestCtx, vals []string, limit int, annos annotations.Annotations) {
	slices.Sort(vals)
	vals = slices.Compact(vals)
	if vals == nil {
		vals = []string{}
	}
	if limit > 0 && len(vals) > limit {
		vals = vals[:limit]
		annos.Add(errors.New("results truncated due to limit"))
	}
	promSuccess(ctx, appendStrings(nil, vals), annos)
}

// promBuildInfo answers /api/v1/status/buildinfo: the Prometheus version
// whose engine evaluates the queries, so that clients (Grafana) pick the
// PromQL features it has.
func (s *Server) promBuildInfo(ctx *fasthttp.RequestCtx) {
	if _, e := promArgs(ctx); e != nil {
		promError(ctx, e)
		return
	}
	b, err := json.Marshal(map[string]string{"version": promVersion, "revision": "netsentry " + s.opt.Version,
		"branch": "", "buildUser": "", "buildDate": "", "goVersion": runtime.Version()})
	if err != nil {
		panic("BUG: marshal build info: " + err.Error())
	}
	promSuccess(ctx, b, nil)
}

// promMetadata answers /api/v1/metadata: the type and help of each family
// that /metrics writes.
func (s *Server) promMetadata(ctx *fasthttp.RequestCtx) {
	p, e := promArgs(ctx, "metric", "limit", "limit_per_metric")
	if e != nil {
		promError(ctx, e)
		return
	}
	limit, e := limitParam(p)
	if e != nil {
		promError(ctx, e)
		return
	}
	type meta struct {
		Type string `json:"type"`
		Help string `json:"help"`
		Unit string `json:"unit"`
	}
	out := map[string][]meta{}
	for _, f := range s.families() {
		if p.has("metric") && f.name != p.get("metric") {
			continue
		}
		if limit > 0 && len(out) >= limit {
			break
		}
		out[f.name] = []meta{{Type: f.typ, Help: f.help, Unit: ""}}
	}
	b, err := json.Marshal(out)
	if err != nil {
		panic("BUG: marshal metadata: " + err.Error())
	}
	promSuccess(ctx, b, nil)
}

// promExemplars answers /api/v1/query_exemplars: the store keeps none.
func (s *Server) promExemplars(ctx *fasthttp.RequestCtx) {
	if _, e := promArgs(ctx, "query", "start", "end"); e != nil {
		promError(ctx, e)
		return
	}
	promSuccess(ctx, []byte("[]"), nil)
}
