package interop

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/loop"
)

// sizes are the message sizes every client round-trips: the header length
// boundaries (125/126/127, 65535/65536) and a message of several frames.
var sizes = []int{0, 1, 125, 126, 127, 65535, 65536, 512 << 10}

// waitTimeout bounds every wait for a server-side event.
const waitTimeout = 10 * time.Second

// closeEvent is one Handler.OnClose call.
type closeEvent struct {
	conn *loop.Conn
	err  *loop.CloseError
}

// recorder is the server's Handler: it echoes every message with its
// opcode (unless onMessage is set) and records opens and closes.
type recorder struct {
	t         *testing.T
	onMessage func(c *loop.Conn, op codec.OpCode, p []byte)

	opens     atomic.Int64
	closes    atomic.Int64
	opened    chan *loop.Conn
	closed    chan closeEvent
	writeErrs atomic.Int64

	mu        sync.Mutex
	badCloses []string // OnClose errors that were not a *loop.CloseError
}

func newRecorder(t *testing.T) *recorder {
	return &recorder{
		t:      t,
		opened: make(chan *loop.Conn, 64),
		closed: make(chan closeEvent, 64),
	}
}

func (r *recorder) OnOpen(c *loop.Conn) {
	r.opens.Add(1)
	select {
	case r.opened <- c:
	default:
	}
}

func (r *recorder) OnMessage(c *loop.Conn, op codec.OpCode, p []byte) {
	if r.onMessage != nil {
		r.onMessage(c, op, p)
		return
	}
	if err := c.WriteMessage(op, p); err != nil {
		r.writeErrs.Add(1)
	}
}

func (r *recorder) OnClose(c *loop.Conn, err error) {
	r.closes.Add(1)
	var ce *loop.CloseError
	if !errors.As(err, &ce) {
		r.mu.Lock()
		r.badCloses = append(r.badCloses, fmtErr(err))
		r.mu.Unlock()
		return
	}
	select {
	case r.closed <- closeEvent{c, ce}:
	default:
	}
}

func fmtErr(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// nextOpen waits for the next OnOpen.
func (r *recorder) nextOpen(t *testing.T) *loop.Conn {
	t.Helper()
	select {
	case c := <-r.opened:
		return c
	case <-time.After(waitTimeout):
		t.Fatalf("server: no OnOpen within %v", waitTimeout)
		return nil
	}
}

// closePrompt bounds the time from the client's side of a finished close
// handshake to the server's OnClose. It is below the server's default
// CloseTimeout (3 s), so a server that ignores the peer's close frame and
// waits for the timeout fails. RFC 6455 §7.1.1: after sending and receiving
// a Close message, an endpoint MUST close the underlying TCP connection.
const closePrompt = 2 * time.Second

// nextClose waits for the next OnClose. Every caller has completed the
// closing handshake on the client side (or the client has gone), so the
// server must report it within closePrompt.
func (r *recorder) nextClose(t *testing.T) closeEvent {
	t.Helper()
	start := time.Now()
	select {
	case ev := <-r.closed:
		if d := time.Since(start); d > closePrompt {
			t.Errorf("server: OnClose (%d %q) came %v after the client finished the close handshake; want within %v",
				ev.err.Code, ev.err.Reason, d.Round(time.Millisecond), closePrompt)
		}
		return ev
	case <-time.After(waitTimeout):
		t.Fatalf("server: no OnClose within %v (opens=%d closes=%d)", waitTimeout, r.opens.Load(), r.closes.Load())
		return closeEvent{}
	}
}

// testServer is a running wsgate echo server on 127.0.0.1.
type testServer struct {
	*loop.Server
	h    *recorder
	addr string
	url  string
}

var (
	portMu    sync.Mutex
	usedPorts = map[int]bool{}
)

// freePort returns a 127.0.0.1 port that was free a moment ago and that no
// other test of this process has been given. The server binds with
// SO_REUSEPORT, so it cannot take ":0" itself, and two servers of this
// process must never share a port.
func freePort(t *testing.T) int {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("pick a port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !usedPorts[port] {
			usedPorts[port] = true
			return port
		}
	}
	t.Fatal("pick a port: no unused port found")
	return 0
}

// startServer starts an echo server with h (a fresh recorder if nil) and
// registers its shutdown, which also checks that every connection the
// server opened was closed exactly once and that the count is back to 0.
// Register client cleanups after this call so they run first.
func startServer(t *testing.T, h *recorder, o loop.Options) *testServer {
	t.Helper()
	if h == nil {
		h = newRecorder(t)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	o.NumLoops, o.Logger = 2, logger
	if o.InflateRatio == 0 {
		// These tests send synthetic, highly repetitive payloads (a
		// 70,000-byte run of one character compresses ~1000×): they test
		// the wire format and negotiation, not the ratio policy, which
		// loop's TestInflateRatio covers.
		o.InflateRatio = -1
	}
	var (
		srv  *loop.Server
		addr string
		err  error
	)
	for range 3 {
		srv, err = loop.NewServer(h, o)
		if err != nil {
			t.Fatalf("NewServer: %v", err)
		}
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
		if err = srv.Start(addr); err == nil {
			break
		}
		t.Logf("Start(%s): %v; trying another port", addr, err)
	}
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	ts := &testServer{Server: srv, h: h, addr: addr, url: "ws://" + addr + "/"}
	t.Cleanup(func() {
		// Every client has been closed by now: the server must agree.
		waitFor(t, "server Conns() back to 0", func() bool { return srv.Conns() == 0 })
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if o, c := h.opens.Load(), h.closes.Load(); o != c {
			t.Errorf("server: %d OnOpen but %d OnClose", o, c)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, e := range h.badCloses {
			t.Errorf("server: OnClose got %q, want a *loop.CloseError", e)
		}
	})
	return ts
}

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Errorf("timed out after %v waiting for %s", waitTimeout, what)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// expectClose checks a server-side OnClose.
func expectClose(t *testing.T, ev closeEvent, code codec.StatusCode, reason string, remote bool) {
	t.Helper()
	ce := ev.err
	if ce.Code != code || ce.Reason != reason || ce.Remote != remote {
		t.Errorf("server OnClose = {Code:%d Reason:%q Remote:%v Err:%v}; want {Code:%d Reason:%q Remote:%v}",
			ce.Code, ce.Reason, ce.Remote, ce.Err, code, reason, remote)
	}
}

// binaryPayload returns n deterministic pseudo-random bytes.
func binaryPayload(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	return p
}

// textPayload returns valid UTF-8 of exactly n bytes mixing 1- to 4-byte
// characters, so multi-byte characters straddle frame and read boundaries.
func textPayload(n int) []byte {
	runes := []rune{'a', 'é', '€', '😀', 'z', ' ', 'ß', '中', '\n'}
	p := make([]byte, 0, n)
	for i := 0; ; i++ {
		r := runes[(i*7+n)%len(runes)]
		if len(p)+utf8.RuneLen(r) > n {
			break
		}
		p = utf8.AppendRune(p, r)
	}
	for len(p) < n {
		p = append(p, 'x')
	}
	return p
}

// firstDiff returns the index of the first byte where a and b differ.
func firstDiff(a, b []byte) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}
