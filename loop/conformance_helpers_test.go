//go:build !windows

package loop_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/loop"
)

// This file is the raw-socket client of the conformance suite: it builds
// client frames by hand (independently of package codec, so a codec bug
// cannot hide itself) and checks every server frame against the rules a
// server must follow (RFC 6455 §5).

// Opcodes, as the wire carries them.
const (
	opCont   byte = 0x0
	opText   byte = 0x1
	opBinary byte = 0x2
	opClose  byte = 0x8
	opPing   byte = 0x9
	opPong   byte = 0xA
)

// wait bounds every expectation: a reaction that has not come within it is
// a failure.
const wait = 5 * time.Second

// ---- building client frames ----

var maskSeq atomic.Uint32

// nextMask returns a masking key that is never all zero and changes from
// frame to frame, so a server that forgets to unmask (or unmasks with the
// wrong phase) echoes garbage.
func nextMask() [4]byte {
	n := maskSeq.Add(1)
	return [4]byte{0x37 ^ byte(n), 0xfa, 0x21 + byte(n>>8), 0x3d ^ byte(n>>3)}
}

// Length encodings for rawFrame.
const (
	encMin = iota // the shortest encoding, as RFC 6455 §5.2 requires
	enc16         // force the 16-bit extended length
	enc64         // force the 64-bit extended length
)

// rawFrame builds a frame whose first byte is b0 (FIN, RSV, opcode) with
// payload, its length in encoding enc, masked unless unmasked is set.
func rawFrame(b0 byte, payload []byte, enc int, unmasked bool) []byte {
	b := appendHeader(nil, b0, uint64(len(payload)), enc, unmasked)
	start := len(b)
	b = append(b, payload...)
	if !unmasked {
		key := b[start-4 : start]
		for i := range payload {
			b[start+i] ^= key[i&3]
		}
	}
	return b
}

// appendHeader appends a frame header announcing n payload bytes, with a
// masking key unless unmasked.
func appendHeader(b []byte, b0 byte, n uint64, enc int, unmasked bool) []byte {
	var mbit byte = 0x80
	if unmasked {
		mbit = 0
	}
	b = append(b, b0)
	switch {
	case enc == enc64 || enc == encMin && n > 0xffff:
		b = append(b, mbit|127)
		b = binary.BigEndian.AppendUint64(b, n)
	case enc == enc16 || enc == encMin && n > 125:
		b = append(b, mbit|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, mbit|byte(n))
	}
	if !unmasked {
		k := nextMask()
		b = append(b, k[:]...)
	}
	return b
}

// header builds only the header of a masked frame announcing n bytes: the
// payload is never sent (oversize and fail-fast cases).
func header(b0 byte, n uint64) []byte { return appendHeader(nil, b0, n, encMin, false) }

// partial builds a masked frame announcing n payload bytes and returns its
// header and the first len(prefix) payload bytes, masked with the phase
// they have in the whole frame.
func partial(b0 byte, n uint64, prefix []byte) []byte {
	b := appendHeader(nil, b0, n, encMin, false)
	key := b[len(b)-4:]
	start := len(b)
	b = append(b, prefix...)
	for i := range prefix {
		b[start+i] ^= key[i&3]
	}
	return b
}

func fin(op byte) byte { return 0x80 | op }

func frame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	return rawFrame(b0, payload, encMin, false)
}

func textFrame(s string) []byte { return frame(true, opText, []byte(s)) }
func binFrame(p []byte) []byte  { return frame(true, opBinary, p) }
func pingFrame(p string) []byte { return frame(true, opPing, []byte(p)) }
func pongFrame(p string) []byte { return frame(true, opPong, []byte(p)) }
func closeRaw(p []byte) []byte  { return frame(true, opClose, p) }
func closePayload(code int, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

// closeFrame builds a close frame with code and reason, or with an empty
// payload when code < 0.
func closeFrame(code int, reason string) []byte {
	if code < 0 {
		return closeRaw(nil)
	}
	return closeRaw(closePayload(code, reason))
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// pattern returns n bytes that are not periodic with period 4, so an
// unmasking bug cannot cancel out.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

// ---- the upgrade request ----

// reqSpec describes an upgrade request; the zero value is a valid one.
type reqSpec struct {
	method  string   // default GET
	target  string   // default /chat
	proto   string   // default HTTP/1.1
	key     string   // default: a random 16-byte key
	omit    []string // header names to leave out
	replace []string // "Name: value" lines replacing the default line of that name
	extra   []string // "Name: value" lines added at the end
}

// build returns the request for a server listening on addr and the key it
// carries.
func (r reqSpec) build(addr, randomKey string) string {
	method, target, proto, key := r.method, r.target, r.proto, r.key
	if method == "" {
		method = "GET"
	}
	if target == "" {
		target = "/chat"
	}
	if proto == "" {
		proto = "HTTP/1.1"
	}
	if key == "" {
		key = randomKey
	}
	lines := []string{
		"Host: " + addr,
		"Upgrade: websocket",
		"Connection: Upgrade",
		"Sec-WebSocket-Key: " + key,
		"Sec-WebSocket-Version: 13",
	}
	var b strings.Builder
	b.WriteString(method + " " + target + " " + proto + "\r\n")
next:
	for _, l := range lines {
		name := l[:strings.IndexByte(l, ':')]
		for _, o := range r.omit {
			if strings.EqualFold(o, name) {
				continue next
			}
		}
		for _, rp := range r.replace {
			if strings.EqualFold(rp[:strings.IndexByte(rp, ':')], name) {
				l = rp
				break
			}
		}
		b.WriteString(l + "\r\n")
	}
	for _, l := range r.extra {
		b.WriteString(l + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

func newKey() string {
	var k [16]byte
	_, _ = rand.Read(k[:])
	return base64.StdEncoding.EncodeToString(k[:])
}

// acceptFor computes Sec-WebSocket-Accept (RFC 6455 §4.2.2 step 5.4).
func acceptFor(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// ---- the server under test ----

// closeRecord is one OnClose call.
type closeRecord struct {
	err error
	at  time.Time
}

// echoServer is a loop server whose handler echoes every message with
// its opcode and records every OnClose by the peer's address.
type echoServer struct {
	srv  *loop.Server
	addr string

	mu     sync.Mutex
	closes map[string]chan closeRecord
	calls  map[string]int
	bad    []string // handler contract violations seen
}

func (e *echoServer) closeChan(addr string) chan closeRecord {
	e.mu.Lock()
	defer e.mu.Unlock()
	ch := e.closes[addr]
	if ch == nil {
		ch = make(chan closeRecord, 4)
		e.closes[addr] = ch
	}
	return ch
}

func (e *echoServer) violation(format string, args ...any) {
	e.mu.Lock()
	e.bad = append(e.bad, fmt.Sprintf(format, args...))
	e.mu.Unlock()
}

func (e *echoServer) OnOpen(*loop.Conn) {}

func (e *echoServer) OnMessage(c *loop.Conn, op codec.OpCode, p []byte) {
	switch {
	case op != codec.OpText && op != codec.OpBinary:
		e.violation("OnMessage got opcode %v", op)
	case op == codec.OpText && !utf8.Valid(p):
		e.violation("OnMessage got a text message that is not UTF-8: %q", p)
	}
	_ = c.WriteMessage(op, p)
}

func (e *echoServer) OnClose(c *loop.Conn, err error) {
	addr := c.RemoteAddr().String()
	e.mu.Lock()
	e.calls[addr]++
	n := e.calls[addr]
	e.mu.Unlock()
	if n > 1 {
		e.violation("OnClose called %d times for %s", n, addr)
		return
	}
	e.closeChan(addr) <- closeRecord{err: err, at: time.Now()}
}

// freePort returns a port nobody listens on: bind 127.0.0.1:0 and let it
// go (the server binds with SO_REUSEPORT, so it cannot share our socket).
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// startEcho starts an echo server with o on a free port; it is shut
// down, and its handler's findings reported, when t ends.
func startEcho(t testing.TB, o loop.Options) *echoServer {
	t.Helper()
	e := startEchoNoCleanup(t, o)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := e.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return e
}

// startEchoNoCleanup is startEcho for a test that shuts the server down
// itself; the handler's findings are still reported.
func startEchoNoCleanup(t testing.TB, o loop.Options) *echoServer {
	t.Helper()
	e := &echoServer{closes: map[string]chan closeRecord{}, calls: map[string]int{}}
	if o.Logger == nil {
		o.Logger = quietLog
	}
	srv, err := loop.NewServer(e, o)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	var lastErr error
	for range 3 { // another test may have taken the port meanwhile
		e.addr = freePort(t)
		if lastErr = srv.Start(e.addr); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("Start: %v", lastErr)
	}
	e.srv = srv
	t.Cleanup(func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, b := range e.bad {
			t.Errorf("handler: %s", b)
		}
	})
	return e
}

// ---- the client ----

// client is one raw TCP connection to the server under test.
type client struct {
	t     testing.TB
	conn  *net.TCPConn
	r     *bufio.Reader
	bytes bool // write one byte at a time
	key   string
	addr  string // the server's
	last  time.Time
}

var localSeq atomic.Uint32

// localAddr returns a loopback source address no other connection of this
// run uses (127.0.0.0/8 is all loopback): the server's OnClose is matched
// to its client by the client's address, and a port alone can be reused
// at once by a later connection when the server closed first.
func localAddr() *net.TCPAddr {
	for {
		n := localSeq.Add(1)
		a, b, c := byte(n>>16), byte(n>>8), byte(n)
		if c != 0 && c != 255 {
			return &net.TCPAddr{IP: net.IPv4(127, 1+a, b, c)}
		}
	}
}

func dial(t testing.TB, addr string, byteMode bool) *client {
	t.Helper()
	d := net.Dialer{Timeout: wait, LocalAddr: localAddr()}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	tc := c.(*net.TCPConn)
	// No Nagle: in byte mode every Write is its own segment.
	_ = tc.SetNoDelay(true)
	cl := &client{t: t, conn: tc, r: bufio.NewReaderSize(tc, 64<<10), bytes: byteMode, key: newKey(), addr: addr, last: time.Now()}
	t.Cleanup(func() { _ = tc.Close() })
	return cl
}

// byteModeBulkAfter is where byte mode stops writing one byte at a time
// within one send step and writes the rest at once. Every header, control
// frame, close payload, upgrade request and the first 4 KiB of every data
// payload go byte by byte; the rest of a big payload (65535 bytes, 1 MiB)
// is bulk, because at ~150 µs per byte a 1 MiB payload would take minutes.
const byteModeBulkAfter = 4 << 10

// write sends p: in one Write, or in byte mode one byte per Write with a
// pause that lets the server read each byte on its own (up to bulkAfter
// bytes, then the rest at once; bulkAfter < 0 means no limit). With lax,
// a write error ends the step quietly (the server may close first).
func (c *client) write(p []byte, bulkAfter int, lax bool) {
	c.t.Helper()
	defer func() { c.last = time.Now() }()
	_ = c.conn.SetWriteDeadline(time.Now().Add(wait))
	fail := func(err error) {
		c.t.Helper()
		if !lax {
			c.t.Fatalf("write: %v", err)
		}
	}
	if !c.bytes {
		if _, err := c.conn.Write(p); err != nil {
			fail(err)
		}
		return
	}
	if bulkAfter == 0 {
		bulkAfter = byteModeBulkAfter
	}
	n := len(p)
	if bulkAfter > 0 {
		n = min(n, bulkAfter)
	}
	for i := 0; i < n; i++ {
		if _, err := c.conn.Write(p[i : i+1]); err != nil {
			fail(fmt.Errorf("byte %d of %d (%s later): %w", i, len(p), time.Since(c.last).Round(time.Microsecond), err))
			return
		}
		time.Sleep(time.Microsecond) // ≈100 µs: a separate read per byte
	}
	if n < len(p) {
		if _, err := c.conn.Write(p[n:]); err != nil {
			fail(err)
		}
	}
}

// serverFrame is a frame received from the server.
type serverFrame struct {
	fin     bool
	rsv     byte
	op      byte
	payload []byte
}

func (f serverFrame) String() string {
	p := f.payload
	s := ""
	if len(p) > 40 {
		s = fmt.Sprintf("…(%d bytes)", len(p))
		p = p[:40]
	}
	return fmt.Sprintf("{fin=%v rsv=%d op=%#x payload=%q%s}", f.fin, f.rsv, f.op, p, s)
}

// readFrame reads one frame within the deadline and checks the rules every
// server frame must follow: not masked (§5.1), RSV clear (no extension),
// a defined opcode, the length in its shortest encoding (§5.2), control
// frames unfragmented and at most 125 bytes (§5.5).
func (c *client) readFrame(deadline time.Time) (serverFrame, error) {
	_ = c.conn.SetReadDeadline(deadline)
	var h [2]byte
	if _, err := io.ReadFull(c.r, h[:]); err != nil {
		return serverFrame{}, err
	}
	f := serverFrame{fin: h[0]&0x80 != 0, rsv: h[0] >> 4 & 7, op: h[0] & 0xf}
	if h[1]&0x80 != 0 {
		return f, violation("server frame is masked (RFC 6455 §5.1): first bytes %x", h)
	}
	if f.rsv != 0 {
		return f, violation("server frame has RSV bits %03b without an extension: %x", f.rsv, h)
	}
	switch f.op {
	case opCont, opText, opBinary, opClose, opPing, opPong:
	default:
		return f, violation("server frame has reserved opcode %#x", f.op)
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(c.r, b[:]); err != nil {
			return f, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
		if n < 126 {
			return f, violation("server frame length %d not minimally encoded (16-bit)", n)
		}
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(c.r, b[:]); err != nil {
			return f, err
		}
		n = binary.BigEndian.Uint64(b[:])
		if n <= 0xffff || n>>63 != 0 {
			return f, violation("server frame length %d not minimally encoded (64-bit)", n)
		}
		if n > 64<<20 {
			return f, violation("server frame announces %d bytes", n)
		}
	}
	if f.op >= opClose && (!f.fin || n > 125) {
		return f, violation("server control frame %#x fin=%v length %d (RFC 6455 §5.5)", f.op, f.fin, n)
	}
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(c.r, f.payload); err != nil {
		return f, err
	}
	return f, nil
}

// frameViolation is a server frame that breaks a rule of RFC 6455.
type frameViolation struct{ msg string }

func (v *frameViolation) Error() string { return v.msg }

func violation(format string, args ...any) error {
	return &frameViolation{fmt.Sprintf(format, args...)}
}

func describeErr(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF):
		return "EOF (TCP closed)"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("timeout (nothing within %v)", wait)
	}
	return err.Error()
}

// response is a parsed HTTP response head.
type response struct {
	status int
	header map[string][]string // lower-case names
	body   []byte
}

func (r response) get(name string) string { return strings.Join(r.header[strings.ToLower(name)], ", ") }

// readResponse reads the status line, the header and (for a status other
// than 101) the body its Content-Length announces.
func (c *client) readResponse(deadline time.Time) (response, error) {
	_ = c.conn.SetReadDeadline(deadline)
	var r response
	line, err := c.r.ReadString('\n')
	if err != nil {
		return r, err
	}
	if !strings.HasPrefix(line, "HTTP/1.1 ") || len(line) < 14 || !strings.HasSuffix(line, "\r\n") {
		return r, fmt.Errorf("bad status line %q", line)
	}
	if r.status, err = strconv.Atoi(line[9:12]); err != nil || line[12] != ' ' {
		return r, fmt.Errorf("bad status line %q", line)
	}
	r.header = map[string][]string{}
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			return r, err
		}
		if !strings.HasSuffix(l, "\r\n") {
			return r, fmt.Errorf("header line without CRLF: %q", l)
		}
		l = l[:len(l)-2]
		if l == "" {
			break
		}
		i := strings.IndexByte(l, ':')
		if i <= 0 {
			return r, fmt.Errorf("bad header line %q", l)
		}
		name := strings.ToLower(l[:i])
		r.header[name] = append(r.header[name], strings.TrimSpace(l[i+1:]))
	}
	if r.status == 101 {
		return r, nil
	}
	if cl := r.get("Content-Length"); cl != "" {
		n, err := strconv.Atoi(cl)
		if err != nil || n < 0 || n > 1<<16 {
			return r, fmt.Errorf("bad Content-Length %q", cl)
		}
		r.body = make([]byte, n)
		if _, err := io.ReadFull(c.r, r.body); err != nil {
			return r, fmt.Errorf("body: %w", err)
		}
	}
	return r, nil
}

// hasToken reports whether the comma-separated list v holds tok
// (case-insensitive).
func hasToken(v, tok string) bool {
	for _, f := range strings.Split(v, ",") {
		if strings.EqualFold(strings.TrimSpace(f), tok) {
			return true
		}
	}
	return false
}

// checkAccept checks a 101 response against RFC 6455 §4.2.2 step 5.
func checkAccept(t testing.TB, r response, key string) {
	t.Helper()
	if r.status != 101 {
		t.Fatalf("status %d, want 101 (headers %v, body %q)", r.status, r.header, r.body)
	}
	if !strings.EqualFold(r.get("Upgrade"), "websocket") {
		t.Errorf("Upgrade = %q, want websocket", r.get("Upgrade"))
	}
	if !hasToken(r.get("Connection"), "Upgrade") {
		t.Errorf("Connection = %q, want the Upgrade token", r.get("Connection"))
	}
	if got, want := r.get("Sec-WebSocket-Accept"), acceptFor(key); got != want {
		t.Errorf("Sec-WebSocket-Accept = %q, want %q", got, want)
	}
	// No extension was offered, so none may be answered (RFC 6455 §9.1).
	if v := r.get("Sec-WebSocket-Extensions"); v != "" {
		t.Errorf("Sec-WebSocket-Extensions = %q, but none was offered", v)
	}
}

// handshake upgrades c with a default request sent in the client's mode.
func (c *client) handshake() {
	c.t.Helper()
	c.write([]byte(reqSpec{}.build(c.addr, c.key)), 0, false)
	r, err := c.readResponse(time.Now().Add(wait))
	if err != nil {
		c.t.Fatalf("upgrade response: %v", describeErr(err))
	}
	checkAccept(c.t, r, c.key)
}
