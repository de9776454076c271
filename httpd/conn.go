package httpd

import (
	"bytes"
	"errors"
	"net"
	"os"
	"strconv"
	"sync/atomic"

	"github.com/valyala/fasthttp"
)

// headListener hands out headConns.
type headListener struct{ net.Listener }

func (l headListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &headConn{Conn: c}, nil
}

// headConn is a client connection that remembers how many bytes it read
// since the last line feed, so that a request head too large for the read
// buffer can be told apart: fasthttp reports both a long request line and
// long header fields as one error (a full buffer), and its buffer then
// holds the last MaxHeaderBytes bytes read. No line feed among them: the
// request line alone is too long (414); else the header fields (431).
//
// It also remembers whether a write timed out, which is how an event
// stream learns that its client stopped reading (fasthttp writes the
// stream on a goroutine of its own).
type headConn struct {
	net.Conn
	sinceLF      int // read on the connection's serving goroutine only
	writeTimeout atomic.Bool
}

func (c *headConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if i := bytes.LastIndexByte(p[:n], '\n'); i >= 0 {
		c.sinceLF = n - 1 - i
	} else {
		c.sinceLF += n
	}
	return n, err
}

func (c *headConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil && isTimeout(err) {
		c.writeTimeout.Store(true)
	}
	return n, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// requestError answers a request fasthttp could not read, with the
// standard status and a fixed text: no Go error text, no socket address.
func (s *Server) requestError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	status, detail := fasthttp.StatusBadRequest, "malformed HTTP request"
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		status, detail = fasthttp.StatusRequestEntityTooLarge, "request body larger than "+strconv.Itoa(MaxBodyBytes)+" bytes"
	case errors.As(err, &small):
		status, detail = fasthttp.StatusRequestHeaderFieldsTooLarge,
			"request line and header fields longer than "+strconv.Itoa(MaxHeaderBytes)+" bytes together"
		if hc, ok := ctx.Conn().(*headConn); ok && hc.sinceLF >= MaxHeaderBytes {
			status, detail = fasthttp.StatusRequestURITooLong, "request line longer than "+strconv.Itoa(MaxHeaderBytes)+" bytes"
		}
	case isTimeout(err):
		status, detail = fasthttp.StatusRequestTimeout, "request not received in full within "+s.opt.ReadTimeout.String()
	case errors.Is(err, fasthttp.ErrUnsupportedTransferEncoding):
		status, detail = fasthttp.StatusNotImplemented, "unsupported Transfer-Encoding; send Content-Length or chunked"
	}
	s.log.Debug("api: unreadable request", "status", status, "client", ctx.RemoteAddr().String(), "err", err)
	writeProblem(ctx, status, detail) // fasthttp closes the connection after it
}
