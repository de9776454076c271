package httpd

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/fasthttp/router"
	"github.com/prometheus/prometheus/storage"
	"github.com/valyala/fasthttp"

	"github.com/netsentry/netsentry/geo"
	"github.com/netsentry/netsentry/web"
)

// Limits of the server.
const (
	MaxBodyBytes = 1 << 20 // request bodies larger than this get 413
	MaxLimit     = 1000    // largest ?limit=
	ReadTimeout  = 10 * time.Second
	WriteTimeout = 10 * time.Second
	IdleTimeout  = 60 * time.Second
	MaxStreams   = 32 // concurrent /api/v1/stream clients
	// MaxStreamsPerClient is the most event streams one client address may
	// hold open; more get 429.
	MaxStreamsPerClient = 4
	// StreamWriteTimeout is how long an event stream may stay blocked on a
	// client that does not read (its socket buffer full) before it is
	// dropped.
	StreamWriteTimeout = 5 * time.Second
	// StreamSendBuffer is the socket send buffer of an event stream: small,
	// so that a client that stops reading is found out within seconds.
	StreamSendBuffer = 64 << 10
	// MaxHeaderBytes bounds the request line and the header fields
	// together; a longer request line gets 414, longer headers 431.
	MaxHeaderBytes = 8 << 10
	DefaultTTL     = 500 * time.Millisecond
	snapshotWait   = 3 * time.Second // longest a request waits for the workers
	streamInterval = time.Second
)

// Options configure a Server.
type Options struct {
	// Listen is the address the API listens on, host:port; empty: the API
	// has no listener of its own (WebListen serves it).
	Listen string
	// WebListen is the address the web dashboard listens on, host:port:
	// the embedded pages, and the API under the same token rules, so that
	// the pages talk to their own origin. Empty: no dashboard.
	WebListen string
	// Token is the admin bearer token: it allows every request. Empty:
	// none, every request is allowed (on a loopback address only).
	Token string
	// ReadToken is the read-only bearer token: it allows GET requests only;
	// a write with it gets 403. Empty: none. It needs Token.
	ReadToken string
	// Version and GoVersion label netsentry_build_info.
	Version, GoVersion string
	Sensor             Sensor
	Config             ConfigStore
	// Host is the host samplers; nil when there are none (the host parts of
	// the API answer 503).
	Host HostMetrics
	// Protocols is the bounded set of application-protocol names used as
	// metric labels; other names are counted as "other".
	Protocols []string
	Logger    *slog.Logger
	// CacheTTL is how long a snapshot is shared by requests; 0: DefaultTTL.
	CacheTTL time.Duration
	// Geo adds where each connection's endpoints and each host are
	// (source_geo, dest_geo, geo); nil: geolocation is off.
	Geo *geo.DB
	// ReadTimeout is how long a client may take to send a request (408
	// after it); 0: ReadTimeout.
	ReadTimeout time.Duration
	// StreamInterval is the time between two rounds of events on
	// /api/v1/stream; 0: one second.
	StreamInterval time.Duration
	// StreamWriteTimeout is how long an event stream may stay blocked on a
	// client that does not read; 0: StreamWriteTimeout.
	StreamWriteTimeout time.Duration
	// Alerts is the alert rule set of /api/v1/alerts, AlertState the
	// evaluator's alerts of /api/v1/alerts/active and /history; nil: those
	// endpoints answer 503 "alerting is not enabled".
	Alerts     AlertRules
	AlertState AlertState
	// AlertMetrics are alerting's counters in /metrics; nil: none.
	AlertMetrics AlertMetrics
	// Remote is the remote storage writer's counters in /metrics
	// (netsentry_remote_*); nil: none.
	Remote RemoteMetrics
	// Export is the flow collectors' counters (netsentry_ipfix_*) in
	// /metrics; nil: none.
	Export ExportMetrics
	// StoreMetrics are the local store's counters in /metrics; nil: none.
	StoreMetrics StoreMetrics
	// Query is the stored history for the Prometheus query API and
	// /api/v1/metrics/{name}/history (store.NewQueryable); nil: they
	// answer 503.
	Query storage.Queryable
	// QueryTimeout is the longest a query runs; 0: DefaultQueryTimeout; at
	// most MaxQueryTimeout.
	QueryTimeout time.Duration
	// Flows is the flow history of /api/v1/network/flows; nil: it answers
	// 503.
	Flows Flows
}

// tokens are the bearer tokens in force; replaced whole.
type tokens struct{ admin, read string }

// Server is the API server.
type Server struct {
	opt      Options
	log      *slog.Logger
	tokens   atomic.Pointer[tokens]
	srv      *fasthttp.Server
	ln       net.Listener
	webSrv   *fasthttp.Server // nil without Options.WebListen
	webLn    net.Listener
	webErr   chan error
	web      map[string]*webAsset
	tops     *topCache  // open flows: the workers' top-N per query
	hostsC   *snapCache // hosts
	light    *snapCache // counters and protocols
	scanC    *snapCache // scan signals
	set      *metrics.Set
	routes   []*route
	streams  streamSlots
	done     chan struct{}
	closeOne sync.Once
	serveErr chan error
	hostname string
	protoSet map[string]bool
	prom     *promAPI // nil without Options.Query
}

// New checks opt and prepares a server; Start listens.
func New(opt Options) (*Server, error) {
	if opt.Sensor == nil || opt.Config == nil {
		return nil, errors.New("new api server: no sensor or config store")
	}
	if opt.Listen == "" && opt.WebListen == "" {
		return nil, errors.New("new api server: no listen address")
	}
	for _, addr := range []string{opt.Listen, opt.WebListen} {
		if addr == "" {
			continue
		}
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("new api server: listen address %q: %w", addr, err)
		}
		if err := checkTokens(host, opt.Token, opt.ReadToken); err != nil {
			return nil, fmt.Errorf("new api server: %w", err)
		}
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.CacheTTL <= 0 {
		opt.CacheTTL = DefaultTTL
	}
	if opt.ReadTimeout <= 0 {
		opt.ReadTimeout = ReadTimeout
	}
	if opt.StreamInterval <= 0 {
		opt.StreamInterval = streamInterval
	}
	if opt.StreamWriteTimeout <= 0 {
		opt.StreamWriteTimeout = StreamWriteTimeout
	}
	s := &Server{opt: opt, log: opt.Logger, done: make(chan struct{}), serveErr: make(chan error, 1),
		webErr: make(chan error, 1), set: metrics.NewSet(), protoSet: map[string]bool{}}
	s.hostname, _ = osHostname()
	for _, p := range opt.Protocols {
		s.protoSet[p] = true
	}
	s.tokens.Store(&tokens{admin: opt.Token, read: opt.ReadToken})
	s.streams.perClient = map[netip.Addr]int{}
	s.tops = newTopCache(opt.Sensor, opt.CacheTTL)
	s.hostsC = newSnapCache(opt.Sensor, Parts{Hosts: true}, opt.CacheTTL)
	s.light = newSnapCache(opt.Sensor, Parts{Protocols: true}, opt.CacheTTL)
	s.scanC = newSnapCache(opt.Sensor, Parts{Scan: true}, opt.CacheTTL)
	s.set.RegisterMetricsWriter(s.writeMetrics)
	r := router.New()
	r.SaveMatchedRoutePath = true
	r.RedirectTrailingSlash = false
	s.handle(r, "GET", "/healthz", authNone, s.healthz)
	s.handle(r, "GET", "/metrics", authRead, s.prometheus)
	s.handle(r, "GET", "/api/v1/openapi.json", authNone, s.openapi)
	s.handle(r, "GET", "/api/v1/metrics", authRead, s.metricsDoc)
	s.handle(r, "GET", "/api/v1/metrics/{name}", authRead, s.metricOne)
	s.handle(r, "GET", "/api/v1/network/connections", authRead, s.connections)
	s.handle(r, "GET", "/api/v1/network/hosts", authRead, s.hosts)
	s.handle(r, "GET", "/api/v1/network/protocols", authRead, s.protocols)
	s.handle(r, "GET", "/api/v1/network/stats", authRead, s.stats)
	s.handle(r, "GET", "/api/v1/network/scanners", authRead, s.scanners)
	s.handle(r, "GET", "/api/v1/capture", authRead, s.captureGet)
	s.handle(r, "POST", "/api/v1/capture", authWrite, s.capturePost)
	s.handle(r, "GET", "/api/v1/config", authRead, s.configGet)
	s.handle(r, "PUT", "/api/v1/config", authWrite, s.configPut)
	s.handle(r, "GET", "/api/v1/stream", authRead, s.stream)
	s.alertRoutes(r)
	if opt.Query != nil {
		s.prom = newPromAPI(opt.Query, opt.QueryTimeout)
	}
	s.handle(r, "GET", "/api/v1/metrics/{name}/history", authRead, s.metricHistory)
	s.handle(r, "GET", "/api/v1/network/flows", authRead, s.flowsHistory)
	s.promRoutes(r)
	notFound := s.newRoute("", "other")
	r.NotFound = func(ctx *fasthttp.RequestCtx) {
		writeProblem(ctx, fasthttp.StatusNotFound, "no such endpoint; see /api/v1/openapi.json")
		notFound.count(ctx)
	}
	r.MethodNotAllowed = func(ctx *fasthttp.RequestCtx) {
		writeProblem(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed on this endpoint")
		notFound.count(ctx)
	}
	r.PanicHandler = func(ctx *fasthttp.RequestCtx, v any) {
		s.log.Error("api handler panicked", "path", string(ctx.Path()), "panic", v)
		writeProblem(ctx, fasthttp.StatusInternalServerError, "internal error")
	}
	s.srv = s.fastServer(r.Handler)
	if opt.WebListen != "" {
		var err error
		if s.web, err = loadWebAssets(web.Assets); err != nil {
			return nil, fmt.Errorf("new api server: %w", err)
		}
		s.webSrv = s.fastServer(s.webHandler(r.Handler))
	}
	return s, nil
}

// writeBufferBytes is a connection's write buffer while it answers: a
// page of 100 connections (about 30 KB of JSON) goes out with its header
// in one write(2). fasthttp's default of 4 KiB wrote the header and the
// start of the body, then the rest: two system calls and two segments
// per answer, most of the API's CPU under wrk. Buffers are pooled and
// held only while a response is written.
const writeBufferBytes = 64 << 10

// fastServer is a fasthttp server with the API's limits, serving h.
func (s *Server) fastServer(h fasthttp.RequestHandler) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:                       h,
		Name:                          "netsentry",
		ReadTimeout:                   s.opt.ReadTimeout,
		ReadBufferSize:                MaxHeaderBytes,
		WriteBufferSize:               writeBufferBytes,
		WriteTimeout:                  WriteTimeout,
		IdleTimeout:                   IdleTimeout,
		MaxRequestBodySize:            MaxBodyBytes,
		DisablePreParseMultipartForm:  true,
		NoDefaultServerHeader:         false,
		NoDefaultContentType:          true,
		DisableHeaderNamesNormalizing: false,
		ErrorHandler:                  s.requestError,
		Logger:                        slogPrinter{s.log},
	}
}

type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Printf(format string, args ...any) {
	p.l.Debug("api server: " + fmt.Sprintf(format, args...))
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// Start listens on Options.Listen and Options.WebListen (those set) and
// serves each on a goroutine of its own.
func (s *Server) Start() error {
	if s.opt.Listen != "" {
		ln, err := net.Listen("tcp", s.opt.Listen)
		if err != nil {
			return fmt.Errorf("start api server: %w", err)
		}
		s.ln = headListener{ln}
	}
	if s.webSrv != nil {
		ln, err := net.Listen("tcp", s.opt.WebListen)
		if err != nil {
			if s.ln != nil {
				s.ln.Close()
				s.ln = nil
			}
			return fmt.Errorf("start web dashboard: %w", err)
		}
		s.webLn = headListener{ln}
		go func() { s.webErr <- s.webSrv.Serve(s.webLn) }()
	}
	if s.ln != nil {
		go func() { s.serveErr <- s.srv.Serve(s.ln) }()
	}
	return nil
}

// Addr returns the address the API listens on (after Start); nil when it
// has no listener of its own.
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// WebAddr returns the address the dashboard listens on (after Start); nil
// without Options.WebListen.
func (s *Server) WebAddr() net.Addr {
	if s.webLn == nil {
		return nil
	}
	return s.webLn.Addr()
}

// Handler returns the server's request handler (for tests and benchmarks).
func (s *Server) Handler() fasthttp.RequestHandler { return s.srv.Handler }

// CheckTokens says whether SetTokens(admin, read) would be accepted: an
// empty admin token is refused while the server listens beyond loopback
// (the address it listens on now, whatever a new configuration says), and
// a read token needs an admin token.
func (s *Server) CheckTokens(admin, read string) error {
	for _, addr := range []string{s.opt.Listen, s.opt.WebListen} {
		if addr == "" {
			continue
		}
		host, _, _ := net.SplitHostPort(addr)
		if err := checkTokens(host, admin, read); err != nil {
			return fmt.Errorf("set api tokens: %w", err)
		}
	}
	return nil
}

// SetTokens replaces the admin and the read-only token at once, both
// together; on error (see CheckTokens) the tokens in force stay.
func (s *Server) SetTokens(admin, read string) error {
	if err := s.CheckTokens(admin, read); err != nil {
		return err
	}
	s.tokens.Store(&tokens{admin: admin, read: read})
	return nil
}

func checkTokens(host, admin, read string) error {
	if admin == "" && !isLoopback(host) {
		return fmt.Errorf("the API listens on %s, which is not a loopback address, and api_token is empty; refusing to open the API to the network without a token", host)
	}
	if admin == "" && read != "" {
		return errors.New("api_read_token is set but api_token is empty")
	}
	return nil
}

// Close ends the event streams, stops accepting and waits up to timeout for
// open requests.
func (s *Server) Close(timeout time.Duration) error {
	var err error
	s.closeOne.Do(func() {
		close(s.done)
		if s.prom != nil {
			s.prom.engine.Close()
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if s.webLn != nil {
			err = stopServing(ctx, "web dashboard", s.webSrv, s.webLn, s.webErr)
		}
		if s.ln != nil {
			if e := stopServing(ctx, "api server", s.srv, s.ln, s.serveErr); err == nil {
				err = e
			}
		}
	})
	return err
}

// stopServing shuts srv down, serving ln, and waits for its Serve to
// return its error on served (or ctx to end).
func stopServing(ctx context.Context, what string, srv *fasthttp.Server, ln net.Listener, served chan error) error {
	var err error
	if e := srv.ShutdownWithContext(ctx); e != nil {
		err = fmt.Errorf("stop %s: %w", what, e)
	}
	// A Close right after Start can run before Serve registered the
	// listener with fasthttp, whose Shutdown then closes nothing and Serve
	// would accept forever: close it here too (a second Close of a
	// listener only errs).
	ln.Close()
	select {
	case e := <-served:
		if e != nil && err == nil {
			err = fmt.Errorf("%s: %w", what, e)
		}
	case <-ctx.Done():
		if err == nil {
			err = fmt.Errorf("stop %s: still serving after the timeout", what)
		}
	}
	return err
}

type authLevel int

const (
	authNone  authLevel = iota // open to anyone who can connect
	authRead                   // the admin or the read token, when a token is set
	authWrite                  // the admin token, when one is set; mutating
)

// route is one registered endpoint with its request counters.
type route struct {
	method, path string
	mu           sync.Mutex
	counters     map[int]*metrics.Counter
	set          *metrics.Set
}

func (s *Server) newRoute(method, path string) *route {
	rt := &route{method: method, path: path, counters: map[int]*metrics.Counter{}, set: s.set}
	s.routes = append(s.routes, rt)
	return rt
}

func (rt *route) count(ctx *fasthttp.RequestCtx) {
	code := ctx.Response.StatusCode()
	rt.mu.Lock()
	c := rt.counters[code]
	if c == nil {
		method := rt.method
		if method == "" {
			method = "other"
		}
		c = rt.set.GetOrCreateCounter(`netsentry_api_requests_total{route="` + rt.path + `",method="` +
			method + `",code="` + strconv.Itoa(code) + `"}`)
		rt.counters[code] = c
	}
	rt.mu.Unlock()
	c.Inc()
}

func (s *Server) handle(r *router.Router, method, path string, auth authLevel, h fasthttp.RequestHandler) {
	rt := s.newRoute(method, path)
	r.Handle(method, path, func(ctx *fasthttp.RequestCtx) {
		if auth == authNone || s.authorize(ctx, auth) {
			h(ctx)
		}
		rt.count(ctx)
	})
}

// authorize checks the bearer token against level and answers the
// problem itself when it does not do (RFC 6750): no token or an unknown
// one 401, the read-only token on a write 403.
func (s *Server) authorize(ctx *fasthttp.RequestCtx, level authLevel) bool {
	tok := s.tokens.Load()
	if tok.admin == "" {
		return true
	}
	h := ctx.Request.Header.Peek("Authorization")
	const scheme = "bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(string(h[:len(scheme)]), scheme) {
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="netsentry"`)
		writeProblem(ctx, fasthttp.StatusUnauthorized, "this endpoint needs a bearer token (Authorization: Bearer <api_token>, or <api_read_token> for reading)")
		return false
	}
	sent := h[len(scheme):]
	isAdmin := subtle.ConstantTimeCompare(sent, []byte(tok.admin)) == 1
	isRead := tok.read != "" && subtle.ConstantTimeCompare(sent, []byte(tok.read)) == 1
	switch {
	case isAdmin, isRead && level == authRead:
		return true
	case isRead:
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="netsentry", error="insufficient_scope"`)
		writeProblem(ctx, fasthttp.StatusForbidden, "the read-only token (api_read_token) cannot change anything; send api_token")
		return false
	default:
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="netsentry", error="invalid_token"`)
		writeProblem(ctx, fasthttp.StatusUnauthorized, "wrong bearer token")
		return false
	}
}

// healthJSON is the body of /healthz.
type healthJSON struct {
	Status         string `json:"status"` // ok, unhealthy
	CaptureRunning bool   `json:"capture_running"`
	Reason         string `json:"reason,omitempty"`
}

// healthz answers 200 while the sensor is healthy, 503 with the reason
// when it is not (a packet worker stopped answering, the capture ended by
// itself); a capture stopped on request is healthy ("capture stopped").
func (s *Server) healthz(ctx *fasthttp.RequestCtx) {
	st := s.opt.Sensor.Capture()
	ok, reason := s.opt.Sensor.Health()
	out := healthJSON{Status: "ok", CaptureRunning: st.Running, Reason: reason}
	status := fasthttp.StatusOK
	switch {
	case !ok:
		out.Status, status = "unhealthy", fasthttp.StatusServiceUnavailable
	case !st.Running && reason == "":
		out.Reason = "capture stopped"
	}
	b, err := json.Marshal(out)
	if err != nil {
		panic("BUG: marshal health: " + err.Error())
	}
	ctx.Response.Header.Set("Cache-Control", "no-store")
	writeJSONBytes(ctx, b)
	ctx.SetStatusCode(status)
}
