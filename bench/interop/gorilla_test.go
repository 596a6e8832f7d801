package interop

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/loop"
)

// dialGorilla connects a gorilla/websocket client and closes its TCP
// connection at cleanup (after the test's own close, if any).
func dialGorilla(t *testing.T, ts *testServer, d *websocket.Dialer) (*websocket.Conn, *http.Response) {
	t.Helper()
	if d == nil {
		d = &websocket.Dialer{}
	}
	if d.HandshakeTimeout == 0 {
		d.HandshakeTimeout = 5 * time.Second
	}
	conn, resp, err := d.Dial(ts.url, nil)
	if err != nil {
		status := ""
		if resp != nil {
			status = resp.Status
		}
		t.Fatalf("gorilla Dial(%s): %v (response %q)", ts.url, err, status)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, resp
}

// gorillaClose runs a client-initiated close handshake with code and
// reason and checks that the server answers it with the same code.
func gorillaClose(t *testing.T, conn *websocket.Conn, code int, reason string) {
	t.Helper()
	msg := websocket.FormatCloseMessage(code, reason)
	if err := conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(5*time.Second)); err != nil {
		t.Fatalf("client: write close: %v", err)
	}
	conn.SetReadDeadline(time.Now().Add(waitTimeout))
	for {
		_, p, err := conn.ReadMessage()
		if err == nil {
			t.Errorf("client: got a %d-byte message after sending close", len(p))
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("client: read after close = %v; want the server's close frame", err)
		}
		if ce.Code != code {
			t.Errorf("client: server answered close %d with %d %q; want %d", code, ce.Code, ce.Text, code)
		}
		return
	}
}

func gorillaType(op codec.OpCode) int {
	if op == codec.OpText {
		return websocket.TextMessage
	}
	return websocket.BinaryMessage
}

func TestGorillaRoundTrip(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, loop.Options{})
	for _, tc := range []struct {
		name string
		op   codec.OpCode
		// writeBuf is the client's write buffer: gorilla cuts a message
		// into frames of about this size, so small buffers make the
		// server assemble fragmented messages.
		writeBuf int
	}{
		{name: "text", op: codec.OpText},
		{name: "binary", op: codec.OpBinary},
		{name: "text_fragmented", op: codec.OpText, writeBuf: 1000},
		{name: "binary_fragmented", op: codec.OpBinary, writeBuf: 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, _ := dialGorilla(t, ts, &websocket.Dialer{WriteBufferSize: tc.writeBuf})
			ts.h.nextOpen(t)
			for i, n := range sizes {
				want := binaryPayload(n, uint64(i))
				if tc.op == codec.OpText {
					want = textPayload(n)
				}
				conn.SetWriteDeadline(time.Now().Add(waitTimeout))
				if err := conn.WriteMessage(gorillaType(tc.op), want); err != nil {
					t.Fatalf("size %d: write: %v", n, err)
				}
				conn.SetReadDeadline(time.Now().Add(waitTimeout))
				typ, got, err := conn.ReadMessage()
				if err != nil {
					t.Fatalf("size %d: read echo: %v", n, err)
				}
				if typ != gorillaType(tc.op) {
					t.Errorf("size %d: echo type %d; want %d", n, typ, gorillaType(tc.op))
				}
				if !bytes.Equal(got, want) {
					t.Errorf("size %d: echo of %d bytes differs from the %d sent (first difference at %d)",
						n, len(got), len(want), firstDiff(got, want))
				}
			}
			gorillaClose(t, conn, websocket.CloseNormalClosure, "")
			expectClose(t, ts.h.nextClose(t), 1000, "", true)
		})
	}
}

// TestGorillaPipelined writes 1,000 messages before reading any echo and
// checks that every echo comes back in order, with its type and bytes.
func TestGorillaPipelined(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, loop.Options{})
	conn, _ := dialGorilla(t, ts, nil)
	ts.h.nextOpen(t)

	const count = 1000
	msg := func(i int) (int, []byte) {
		p := fmt.Appendf(nil, "msg %04d ", i)
		p = append(p, bytes.Repeat([]byte{byte('a' + i%26)}, i*37%300)...)
		if i%2 == 1 {
			return websocket.BinaryMessage, p
		}
		return websocket.TextMessage, p
	}
	conn.SetWriteDeadline(time.Now().Add(waitTimeout))
	for i := range count {
		typ, p := msg(i)
		if err := conn.WriteMessage(typ, p); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	conn.SetReadDeadline(time.Now().Add(waitTimeout))
	for i := range count {
		typ, got, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("read echo %d: %v", i, err)
		}
		wtyp, want := msg(i)
		if typ != wtyp || !bytes.Equal(got, want) {
			t.Fatalf("echo %d = type %d %.20q (%d bytes); want type %d %.20q (%d bytes)",
				i, typ, got, len(got), wtyp, want, len(want))
		}
	}
	gorillaClose(t, conn, websocket.CloseNormalClosure, "done")
	expectClose(t, ts.h.nextClose(t), 1000, "done", true)
	if n := ts.h.writeErrs.Load(); n != 0 {
		t.Errorf("server: %d echo writes failed", n)
	}
}

// TestGorillaPing sends pings and expects pongs with the same payload,
// each before the echo of a message sent after the ping.
func TestGorillaPing(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, loop.Options{})
	conn, _ := dialGorilla(t, ts, nil)
	ts.h.nextOpen(t)

	pongs := make(chan string, 16)
	conn.SetPongHandler(func(p string) error {
		pongs <- p
		return nil
	})
	for _, ping := range []string{"", "gorilla-ping", strings.Repeat("p", 125)} {
		if err := conn.WriteControl(websocket.PingMessage, []byte(ping), time.Now().Add(5*time.Second)); err != nil {
			t.Fatalf("write ping: %v", err)
		}
		// The pong handler runs inside ReadMessage: read the echo of a
		// message sent after the ping.
		if err := conn.WriteMessage(websocket.TextMessage, []byte("after ping")); err != nil {
			t.Fatalf("write: %v", err)
		}
		conn.SetReadDeadline(time.Now().Add(waitTimeout))
		if _, p, err := conn.ReadMessage(); err != nil || string(p) != "after ping" {
			t.Fatalf("read echo = %q, %v; want \"after ping\"", p, err)
		}
		select {
		case got := <-pongs:
			if got != ping {
				t.Errorf("pong payload = %q; want the ping's %q", got, ping)
			}
		default:
			t.Errorf("ping %q: no pong before the echo of the next message", ping)
		}
	}
	gorillaClose(t, conn, websocket.CloseNormalClosure, "")
	ts.h.nextClose(t)
	select {
	case p := <-pongs:
		t.Errorf("unsolicited pong %q", p)
	default:
	}
}

func TestGorillaSubprotocol(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, loop.Options{Protocols: []string{"chat", "superchat"}})
	for _, tc := range []struct {
		name  string
		offer []string
		want  string
	}{
		{name: "one", offer: []string{"superchat"}, want: "superchat"},
		{name: "first_listed_offer_wins", offer: []string{"v2.chat", "chat", "superchat"}, want: "chat"},
		{name: "none_shared", offer: []string{"mqtt"}, want: ""},
		{name: "none_offered", want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, resp := dialGorilla(t, ts, &websocket.Dialer{Subprotocols: tc.offer})
			sc := ts.h.nextOpen(t)
			if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != tc.want {
				t.Errorf("response Sec-WebSocket-Protocol = %q; want %q", got, tc.want)
			}
			if got := conn.Subprotocol(); got != tc.want {
				t.Errorf("client Subprotocol() = %q; want %q", got, tc.want)
			}
			if got := sc.Subprotocol(); got != tc.want {
				t.Errorf("server Conn.Subprotocol() = %q; want %q", got, tc.want)
			}
			gorillaClose(t, conn, websocket.CloseNormalClosure, "bye")
			expectClose(t, ts.h.nextClose(t), 1000, "bye", true)
		})
	}
}

func TestGorillaClientClose(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, loop.Options{})
	conn, _ := dialGorilla(t, ts, nil)
	ts.h.nextOpen(t)
	if ts.Conns() != 1 {
		t.Errorf("server Conns() = %d after one upgrade; want 1", ts.Conns())
	}
	gorillaClose(t, conn, websocket.CloseNormalClosure, "client done")
	expectClose(t, ts.h.nextClose(t), 1000, "client done", true)
	// After the close handshake the server closes the TCP connection.
	conn.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, err := conn.UnderlyingConn().Read(make([]byte, 1)); err == nil {
		t.Errorf("client: TCP connection still delivers data after the close handshake")
	}
	waitFor(t, "server Conns() == 0", func() bool { return ts.Conns() == 0 })
}

func TestGorillaServerClose(t *testing.T) {
	t.Parallel()
	h := newRecorder(t)
	h.onMessage = func(c *loop.Conn, op codec.OpCode, p []byte) {
		if string(p) == "close me" { // Close from the event loop
			_ = c.Close(4001, "as you wish")
			return
		}
		_ = c.WriteMessage(op, p)
	}
	ts := startServer(t, h, loop.Options{})
	for _, tc := range []struct {
		name   string
		close  func(sc *loop.Conn, cc *websocket.Conn)
		code   int
		reason string
	}{
		{
			name: "from_goroutine", code: 4000, reason: "bye",
			close: func(sc *loop.Conn, _ *websocket.Conn) {
				if err := sc.Close(4000, "bye"); err != nil {
					t.Errorf("server Close: %v", err)
				}
			},
		},
		{
			name: "from_handler", code: 4001, reason: "as you wish",
			close: func(_ *loop.Conn, cc *websocket.Conn) {
				if err := cc.WriteMessage(websocket.TextMessage, []byte("close me")); err != nil {
					t.Errorf("client write: %v", err)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, _ := dialGorilla(t, ts, nil)
			sc := ts.h.nextOpen(t)
			// Data queued before Close goes out before the close frame.
			if err := sc.WriteMessage(codec.OpText, []byte("before close")); err != nil {
				t.Fatalf("server WriteMessage: %v", err)
			}
			tc.close(sc, conn)
			conn.SetReadDeadline(time.Now().Add(waitTimeout))
			if _, p, err := conn.ReadMessage(); err != nil || string(p) != "before close" {
				t.Errorf("client: first read = %q, %v; want \"before close\"", p, err)
			}
			_, _, err := conn.ReadMessage() // gorilla answers the close frame itself
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != tc.code || ce.Text != tc.reason {
				t.Errorf("client: read = %v; want close %d %q", err, tc.code, tc.reason)
			}
			expectClose(t, ts.h.nextClose(t), codec.StatusCode(tc.code), tc.reason, false)
			if err := sc.WriteMessage(codec.OpText, []byte("too late")); err == nil {
				t.Errorf("server WriteMessage after close succeeded; want an error")
			}
		})
	}
}

// TestGorillaTooBig sends messages over WithMaxMessageSize, whole and in
// fragments each under the limit, and expects close 1009.
func TestGorillaTooBig(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, loop.Options{MaxMessageSize: 1024})
	for _, tc := range []struct {
		name     string
		writeBuf int
	}{
		{name: "one_frame", writeBuf: 4096},
		{name: "fragments", writeBuf: 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, _ := dialGorilla(t, ts, &websocket.Dialer{WriteBufferSize: tc.writeBuf})
			ts.h.nextOpen(t)
			ok := binaryPayload(1024, 7) // exactly the limit: accepted
			if err := conn.WriteMessage(websocket.BinaryMessage, ok); err != nil {
				t.Fatalf("write: %v", err)
			}
			conn.SetReadDeadline(time.Now().Add(waitTimeout))
			if _, p, err := conn.ReadMessage(); err != nil || !bytes.Equal(p, ok) {
				t.Fatalf("echo of a 1024-byte message = %d bytes, %v; want it echoed", len(p), err)
			}
			if err := conn.WriteMessage(websocket.BinaryMessage, binaryPayload(2048, 8)); err != nil {
				t.Fatalf("write: %v", err)
			}
			_, _, err := conn.ReadMessage()
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.CloseMessageTooBig {
				t.Errorf("client: read after a 2048-byte message = %v; want close 1009", err)
			}
			ev := ts.h.nextClose(t)
			if ev.err.Code != 1009 || ev.err.Remote {
				t.Errorf("server OnClose = %+v; want code 1009, not Remote", *ev.err)
			}
		})
	}
}

func TestGorillaBroadcast(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, loop.Options{})
	var conns []*websocket.Conn
	for range 3 {
		c, _ := dialGorilla(t, ts, nil)
		ts.h.nextOpen(t)
		conns = append(conns, c)
	}
	waitFor(t, "server Conns() == 3", func() bool { return ts.Conns() == 3 })

	big := binaryPayload(200<<10, 42) // several server frames
	if err := ts.Broadcast(codec.OpText, []byte("hello, all")); err != nil {
		t.Fatalf("Broadcast: %v", err)
	}
	if err := ts.Broadcast(codec.OpBinary, big); err != nil {
		t.Fatalf("Broadcast: %v", err)
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(waitTimeout))
		typ, p, err := c.ReadMessage()
		if err != nil || typ != websocket.TextMessage || string(p) != "hello, all" {
			t.Errorf("client %d: first message = type %d %q, %v; want text \"hello, all\"", i, typ, p, err)
		}
		typ, p, err = c.ReadMessage()
		if err != nil || typ != websocket.BinaryMessage || !bytes.Equal(p, big) {
			t.Errorf("client %d: second message = type %d, %d bytes, %v; want binary %d bytes", i, typ, len(p), err, len(big))
		}
	}
	for _, c := range conns {
		gorillaClose(t, c, websocket.CloseNormalClosure, "")
		ts.h.nextClose(t)
	}
	waitFor(t, "server Conns() == 0", func() bool { return ts.Conns() == 0 })
	// Broadcast to nobody is fine.
	if err := ts.Broadcast(codec.OpText, []byte("anyone?")); err != nil {
		t.Errorf("Broadcast with no connections: %v", err)
	}
}
