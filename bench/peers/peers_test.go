package peers_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	debugsrv "github.com/wsgate/wsgate/pprof"
)

// servers lists every binary that must obey the peer contract (see
// internal/peer) with the package it is built from.
// servers are built from this directory, except wsgate, built in its own
// module (the root's go.mod has the gateway's requirements, bench's not).
var servers = []struct {
	name string
	dir  string // where go build runs
	pkg  string
}{
	{name: "gws", pkg: "./gws"},
	{name: "nbio", pkg: "./nbio"},
	{name: "gorilla", pkg: "./gorilla"},
	{name: "gobwas-gnet", pkg: "./gobwas-gnet"},
	{name: "wsgate", dir: "../..", pkg: "./cmd/wsgate"},
}

// sizes are the echoed message sizes: empty, the largest 7-bit length, the
// smallest 16-bit length, and one above 64 KiB (64-bit length).
var sizes = []int{0, 125, 126, 70000}

// dropsEmpty lists the servers that never deliver an empty, uncompressed
// data message to the application, so there is nothing to echo. The echo
// test skips size 0 for them; every other size and check still applies.
var dropsEmpty = map[string]string{
	// nbhttp/websocket/conn.go, (*Conn).Parse: the message buffer is only
	// allocated for a non-empty payload, and handleMessage (and the
	// data-frame handler) only run when it is non-nil.
	"nbio": "nbio v1.6.12 drops empty text and binary messages without calling OnMessage",
}

// waitTimeout bounds every wait on a server.
const waitTimeout = 10 * time.Second

func TestContract(t *testing.T) {
	dir := t.TempDir()
	bins := buildAll(t, dir)

	for _, s := range servers {
		bin := bins[s.name]
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			t.Run("echo", func(t *testing.T) {
				t.Parallel()
				testEcho(t, s.name, bin)
			})
			t.Run("broadcast", func(t *testing.T) {
				t.Parallel()
				testBroadcast(t, bin)
			})
			t.Run("deflate", func(t *testing.T) {
				t.Parallel()
				testDeflate(t, s.name, bin)
			})
			t.Run("deflate-takeover", func(t *testing.T) {
				t.Parallel()
				testTakeover(t, s.name, bin)
			})
		})
	}
}

// buildAll builds every server into dir, concurrently.
func buildAll(t *testing.T, dir string) map[string]string {
	t.Helper()
	bins := make(map[string]string, len(servers))
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		bin := filepath.Join(dir, s.name)
		bins[s.name] = bin
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command("go", "build", "-o", bin, s.pkg)
			cmd.Dir = s.dir
			out, err := cmd.CombinedOutput()
			if err != nil {
				errs[i] = fmt.Errorf("go build %s: %v\n%s", s.pkg, err, out)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return bins
}

// testEcho checks text and binary echo at the length boundaries, /stats,
// the answer to a close frame, and exit status 0 on SIGTERM.
func testEcho(t *testing.T, name, bin string) {
	p := start(t, bin)
	p.waitReady(t)

	c := p.dial(t, false)
	for _, n := range sizes {
		if why, ok := dropsEmpty[name]; ok && n == 0 {
			t.Logf("not sending empty messages: %s", why)
			continue
		}
		for _, mt := range []int{websocket.TextMessage, websocket.BinaryMessage} {
			roundTrip(t, c, mt, payload(n))
		}
	}

	// /stats counts open upgraded connections.
	c2 := p.dial(t, false)
	c3 := p.dial(t, false)
	p.waitConns(t, 3)
	st := p.stats(t, true)
	if st.PID != p.cmd.Process.Pid {
		t.Errorf("/stats pid = %d; want %d", st.PID, p.cmd.Process.Pid)
	}
	if st.HeapInuse == 0 || st.HeapSys == 0 || st.RSSBytes <= 0 || st.Goroutines <= 0 || st.NumGC == 0 {
		t.Errorf("/stats?gc=1 = %+v; want heap, rss, goroutines and num_gc > 0", st)
	}

	// A close frame is answered with a close frame, and the count drops.
	closeHandshake(t, c3)
	p.waitConns(t, 2)
	_ = c2.Close()
	p.waitConns(t, 1)

	p.terminate(t)
}

// testBroadcast checks that "BCAST <rest>" reaches two clients, the sender
// included, and that other messages are still echoed.
func testBroadcast(t *testing.T, bin string) {
	p := start(t, bin, "-broadcast")
	p.waitReady(t)

	a := p.dial(t, false)
	b := p.dial(t, false)
	p.waitConns(t, 2)

	roundTrip(t, a, websocket.TextMessage, []byte("not a broadcast"))
	roundTrip(t, b, websocket.BinaryMessage, []byte("BCAST binary is echoed"))

	if err := a.WriteMessage(websocket.TextMessage, []byte("BCAST hello all")); err != nil {
		t.Fatalf("write BCAST: %v", err)
	}
	for name, c := range map[string]*websocket.Conn{"sender": a, "other": b} {
		mt, got := read(t, c)
		if mt != websocket.TextMessage || string(got) != "hello all" {
			t.Errorf("%s got (%d, %q); want (text, %q)", name, mt, got, "hello all")
		}
	}
	p.terminate(t)
}

// testDeflate checks that -deflate negotiates permessage-deflate and still
// echoes, or that gobwas-gnet refuses it.
func testDeflate(t *testing.T, name, bin string) {
	args := []string{"-deflate"}
	if name == "wsgate" {
		// The "compressible " run below inflates ~300× its size, past
		// wsgate's default bound (64×) on what a message may inflate to.
		args = append(args, "-inflate-ratio=-1")
	}
	p := start(t, bin, args...)
	if name == "gobwas-gnet" {
		err := p.wait(t)
		if err == nil || !strings.Contains(p.stderr.String(), "deflate unsupported") {
			t.Fatalf("-deflate: exit %v, stderr %q; want a failure saying %q", err, p.stderr.String(), "deflate unsupported")
		}
		return
	}
	p.waitReady(t)

	d := websocket.Dialer{HandshakeTimeout: waitTimeout, EnableCompression: true}
	c, resp, err := d.Dial(p.url(), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.Contains(ext, "permessage-deflate") {
		t.Fatalf("Sec-WebSocket-Extensions = %q; want permessage-deflate", ext)
	}
	for _, n := range sizes {
		roundTrip(t, c, websocket.TextMessage, bytes.Repeat([]byte("compressible "), n/13+1)[:n])
		roundTrip(t, c, websocket.BinaryMessage, payload(n))
	}
	p.terminate(t)
}

// keepsContext lists the servers whose -deflate-takeover keeps the server's
// compression context; the others must decline it.
var keepsContext = map[string]bool{"gws": true, "wsgate": true}

// testTakeover offers permessage-deflate without server_no_context_takeover
// to a server run with -deflate -deflate-takeover and checks its answer:
// takeover kept by the servers in keepsContext, declined with
// server_no_context_takeover (RFC 7692 §7.1.1.1) by the others.
func testTakeover(t *testing.T, name, bin string) {
	p := start(t, bin, "-deflate", "-deflate-takeover")
	if name == "gobwas-gnet" {
		if err := p.wait(t); err == nil || !strings.Contains(p.stderr.String(), "deflate unsupported") {
			t.Fatalf("-deflate: exit %v, stderr %q; want a failure saying %q", err, p.stderr.String(), "deflate unsupported")
		}
		return
	}
	p.waitReady(t)
	nc, err := net.DialTimeout("tcp", p.addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(waitTimeout))
	req := "GET / HTTP/1.1\r\nHost: " + p.addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
		"Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n\r\n"
	if _, err := nc.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatal(err)
	}
	ext := resp.Header.Get("Sec-WebSocket-Extensions")
	if resp.StatusCode != http.StatusSwitchingProtocols || !strings.HasPrefix(ext, "permessage-deflate") {
		t.Fatalf("status %d, Sec-WebSocket-Extensions %q; want 101 with permessage-deflate", resp.StatusCode, ext)
	}
	if declined := strings.Contains(ext, "server_no_context_takeover"); declined == keepsContext[name] {
		t.Errorf("Sec-WebSocket-Extensions %q; want takeover kept: %v", ext, keepsContext[name])
	}
	t.Logf("%s answers %q", name, ext)
	p.terminate(t)
}

// payload returns n bytes of printable ASCII, valid as text.
func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + (i*7+i/26)%26)
	}
	return b
}

func read(t *testing.T, c *websocket.Conn) (int, []byte) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
	mt, got, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return mt, got
}

func roundTrip(t *testing.T, c *websocket.Conn, mt int, p []byte) {
	t.Helper()
	if err := c.WriteMessage(mt, p); err != nil {
		t.Fatalf("write %d bytes: %v", len(p), err)
	}
	_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
	gotType, got, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("echo of %d bytes (type %d): %v", len(p), mt, err)
	}
	if gotType != mt || !bytes.Equal(got, p) {
		t.Fatalf("echo of %d bytes (type %d): got %d bytes (type %d)", len(p), mt, len(got), gotType)
	}
}

// closeHandshake sends a close frame (1000) and expects the server's close
// frame back with the same code.
func closeHandshake(t *testing.T, c *websocket.Conn) {
	t.Helper()
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye")
	if err := c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(waitTimeout)); err != nil {
		t.Fatalf("write close: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
	_, _, err := c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseNormalClosure {
		t.Fatalf("after sending close 1000, read = %v; want the server's close frame with 1000", err)
	}
	_ = c.Close()
}

// proc is one server process.
type proc struct {
	cmd    *exec.Cmd
	addr   string // WebSocket listener
	admin  string // /stats listener
	stderr *syncBuffer
	done   chan struct{} // closed when the process has exited
	err    error         // exit status, valid after done
}

func start(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{
		addr:   freeAddr(t),
		admin:  freeAddr(t),
		stderr: new(syncBuffer),
		done:   make(chan struct{}),
	}
	args = append([]string{"-addr", p.addr, "-admin", p.admin}, args...)
	if filepath.Base(bin) == "wsgate" {
		args = append([]string{"echo"}, args...) // the peers' contract is the echo server's
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout = p.stderr
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(bin), p.stderr.String())
		}
	})
	return p
}

func (p *proc) url() string { return "ws://" + p.addr + "/" }

// waitReady waits until /stats answers and the WebSocket port accepts,
// and checks that the listen address was logged.
func (p *proc) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		select {
		case <-p.done:
			t.Fatalf("server exited before it was ready: %v", p.err)
		default:
		}
		if p.ready() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready after %v", waitTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(p.stderr.String(), p.addr) {
		t.Errorf("stderr does not log the listen address %s:\n%s", p.addr, p.stderr.String())
	}
}

func (p *proc) ready() bool {
	resp, err := http.Get("http://" + p.admin + "/stats")
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	c, err := net.DialTimeout("tcp", p.addr, time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

func (p *proc) dial(t *testing.T, compress bool) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: waitTimeout, EnableCompression: compress}
	c, _, err := d.Dial(p.url(), nil)
	if err != nil {
		t.Fatalf("dial %s: %v", p.url(), err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// stats fetches /stats (with ?gc=1 if gc) and decodes it strictly.
func (p *proc) stats(t *testing.T, gc bool) debugsrv.Stats {
	t.Helper()
	u := "http://" + p.admin + "/stats"
	if gc {
		u += "?gc=1"
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", u, resp.Status)
	}
	var st debugsrv.Stats
	dec := json.NewDecoder(resp.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		t.Fatalf("decode /stats: %v", err)
	}
	return st
}

// waitConns waits until /stats reports n open connections; servers may
// count a connection just after the client has seen the 101.
func (p *proc) waitConns(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		st := p.stats(t, false)
		if st.Conns == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/stats conns = %d after %v; want %d", st.Conns, waitTimeout, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// terminate sends SIGTERM and expects exit status 0.
func (p *proc) terminate(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	if err := p.wait(t); err != nil {
		t.Fatalf("after SIGTERM: %v; want exit status 0", err)
	}
}

// wait waits for the process to exit and returns its exit status.
func (p *proc) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(waitTimeout):
		t.Fatalf("process still running after %v", waitTimeout)
		return nil
	}
}

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// syncBuffer is a bytes.Buffer safe for the writes of exec and the reads of
// the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
