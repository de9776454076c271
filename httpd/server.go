package httpd

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"

	"github.com/netsentry/netsentry/geo"
)

// Limits of the server.
const (
	MaxBodyBytes   = 1 << 20 // request bodies larger than this get 413
	MaxLimit       = 1000    // largest ?limit=
	ReadTimeout    = 10 * time.Second
	WriteTimeout   = 10 * time.Second
	IdleTimeout    = 60 * time.Second
	MaxStreams     = 32 // concurrent /api/v1/stream clients
	DefaultTTL     = 500 * time.Millisecond
	snapshotWait   = 3 * time.Second // longest a request waits for the workers
	streamInterval = time.Second
)

// Options configure a Server.
type Options struct {
	// Listen is the address to listen on, host:port.
	Listen string
	// Token is the bearer token clients must send; empty: none (allowed on
	// a loopback address only).
	Token string
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
}

// Server is the API server.
type Server struct {
	opt      Options
	log      *slog.Logger
	token    atomic.Pointer[string]
	srv      *fasthttp.Server
	ln       net.Listener
	conns    *snapCache // open flows
	hostsC   *snapCache // hosts
	light    *snapCache // counters and protocols
	scanC    *snapCache // scan signals
	set      *metrics.Set
	routes   []*route
	streams  atomic.Int32
	done     chan struct{}
	closeOne sync.Once
	serveErr chan error
	hostname string
	protoSet map[string]bool
}

// New checks opt and prepares a server; Start listens.
func New(opt Options) (*Server, error) {
	if opt.Sensor == nil || opt.Config == nil {
		return nil, errors.New("new api server: no sensor or config store")
	}
	host, _, err := net.SplitHostPort(opt.Listen)
	if err != nil {
		return nil, fmt.Errorf("new api server: listen address %q: %w", opt.Listen, err)
	}
	if opt.Token == "" && !isLoopback(host) {
		return nil, fmt.Errorf("new api server: %s is not a loopback address and api_token is empty; refusing to open the API to the network without a token", host)
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.CacheTTL <= 0 {
		opt.CacheTTL = DefaultTTL
	}
	s := &Server{opt: opt, log: opt.Logger, done: make(chan struct{}), serveErr: make(chan error, 1),
		set: metrics.NewSet(), protoSet: map[string]bool{}}
	s.hostname, _ = osHostname()
	for _, p := range opt.Protocols {
		s.protoSet[p] = true
	}
	s.token.Store(&opt.Token)
	s.conns = newSnapCache(opt.Sensor, Parts{Flows: true}, opt.CacheTTL)
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
	s.srv = &fasthttp.Server{
		Handler:                       r.Handler,
		Name:                          "netsentry",
		ReadTimeout:                   ReadTimeout,
		WriteTimeout:                  WriteTimeout,
		IdleTimeout:                   IdleTimeout,
		MaxRequestBodySize:            MaxBodyBytes,
		DisablePreParseMultipartForm:  true,
		NoDefaultServerHeader:         false,
		NoDefaultContentType:          true,
		DisableHeaderNamesNormalizing: false,
		ErrorHandler: func(ctx *fasthttp.RequestCtx, err error) {
			status := fasthttp.StatusBadRequest
			if errors.Is(err, fasthttp.ErrBodyTooLarge) {
				status = fasthttp.StatusRequestEntityTooLarge
			}
			writeProblem(ctx, status, "cannot read request: "+err.Error())
		},
		Logger: slogPrinter{s.log},
	}
	return s, nil
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

// Start listens on Options.Listen and serves on a goroutine of its own.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.opt.Listen)
	if err != nil {
		return fmt.Errorf("start api server: %w", err)
	}
	s.ln = ln
	go func() { s.serveErr <- s.srv.Serve(ln) }()
	return nil
}

// Addr returns the address the server listens on (after Start).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Handler returns the server's request handler (for tests and benchmarks).
func (s *Server) Handler() fasthttp.RequestHandler { return s.srv.Handler }

// SetToken changes the bearer token at once. An empty token is refused
// when the server listens beyond loopback.
func (s *Server) SetToken(tok string) error {
	host, _, _ := net.SplitHostPort(s.opt.Listen)
	if tok == "" && !isLoopback(host) {
		return errors.New("set api token: empty token on a non-loopback address")
	}
	s.token.Store(&tok)
	return nil
}

// Close ends the event streams, stops accepting and waits up to timeout for
// open requests.
func (s *Server) Close(timeout time.Duration) error {
	var err error
	s.closeOne.Do(func() {
		close(s.done)
		if s.ln == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if e := s.srv.ShutdownWithContext(ctx); e != nil {
			err = fmt.Errorf("stop api server: %w", e)
		}
		if e := <-s.serveErr; e != nil && err == nil {
			err = fmt.Errorf("api server: %w", e)
		}
	})
	return err
}

type authLevel int

const (
	authNone  authLevel = iota // open to anyone who can connect
	authRead                   // token required when one is set
	authWrite                  // token required when one is set; mutating
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
		if auth != authNone && !s.authorized(ctx) {
			ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="netsentry"`)
			writeProblem(ctx, fasthttp.StatusUnauthorized, "missing or wrong bearer token (Authorization: Bearer <api_token>)")
		} else {
			h(ctx)
		}
		rt.count(ctx)
	})
}

func (s *Server) authorized(ctx *fasthttp.RequestCtx) bool {
	tok := *s.token.Load()
	if tok == "" {
		return true
	}
	h := ctx.Request.Header.Peek("Authorization")
	const prefix = "Bearer "
	if len(h) <= len(prefix) || string(h[:len(prefix)]) != prefix {
		return false
	}
	return subtle.ConstantTimeCompare(h[len(prefix):], []byte(tok)) == 1
}

func (s *Server) healthz(ctx *fasthttp.RequestCtx) {
	st := s.opt.Sensor.Capture()
	writeJSON(ctx, map[string]any{"status": "ok", "capture_running": st.Running})
}
