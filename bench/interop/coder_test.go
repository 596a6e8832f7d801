package interop

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/loop"
)

// dialCoder connects a coder/websocket client whose read limit allows the
// largest test message, and drops its connection at cleanup.
func dialCoder(t *testing.T, ts *testServer, opts *websocket.DialOptions) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, ts.url, opts)
	if err != nil {
		status := ""
		if resp != nil {
			status = resp.Status
		}
		t.Fatalf("coder Dial(%s): %v (response %q)", ts.url, err, status)
	}
	conn.SetReadLimit(1 << 20)
	t.Cleanup(func() { conn.CloseNow() })
	return conn
}

func coderType(op codec.OpCode) websocket.MessageType {
	if op == codec.OpText {
		return websocket.MessageText
	}
	return websocket.MessageBinary
}

func TestCoderRoundTrip(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, loop.Options{})
	for _, op := range []codec.OpCode{codec.OpText, codec.OpBinary} {
		t.Run(coderType(op).String(), func(t *testing.T) {
			conn := dialCoder(t, ts, nil)
			ts.h.nextOpen(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for i, n := range sizes {
				want := binaryPayload(n, uint64(100+i))
				if op == codec.OpText {
					want = textPayload(n)
				}
				if err := conn.Write(ctx, coderType(op), want); err != nil {
					t.Fatalf("size %d: write: %v", n, err)
				}
				typ, got, err := conn.Read(ctx)
				if err != nil {
					t.Fatalf("size %d: read echo: %v", n, err)
				}
				if typ != coderType(op) {
					t.Errorf("size %d: echo type %v; want %v", n, typ, coderType(op))
				}
				if !bytes.Equal(got, want) {
					t.Errorf("size %d: echo of %d bytes differs from the %d sent (first difference at %d)",
						n, len(got), len(want), firstDiff(got, want))
				}
			}
			// Close returns nil only when the server answers with the same code.
			coderClose(t, ts, conn, "round trips done")
		})
	}
}

// coderClose closes conn with 1000 and reason (coder's Close returns nil
// only when the server answers with the same code) and checks the close
// the server's handler saw.
func coderClose(t *testing.T, ts *testServer, conn *websocket.Conn, reason string) {
	t.Helper()
	if err := conn.Close(websocket.StatusNormalClosure, reason); err != nil {
		t.Errorf("client Close(1000): %v", err)
	}
	expectClose(t, ts.h.nextClose(t), 1000, reason, true)
}

// TestCoderStreamedWrite sends one message through coder's Writer in
// several writes, which coder sends as a fragmented message.
func TestCoderStreamedWrite(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, loop.Options{})
	conn := dialCoder(t, ts, nil)
	ts.h.nextOpen(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	want := textPayload(300 << 10)
	w, err := conn.Writer(ctx, websocket.MessageText)
	if err != nil {
		t.Fatalf("Writer: %v", err)
	}
	for p := want; len(p) > 0; {
		n := min(len(p), 7777) // cuts multi-byte characters across frames
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatalf("write: %v", err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close writer: %v", err)
	}
	typ, got, err := conn.Read(ctx)
	if err != nil || typ != websocket.MessageText || !bytes.Equal(got, want) {
		t.Errorf("echo = %v, %d bytes, %v; want text of %d bytes (first difference at %d)",
			typ, len(got), err, len(want), firstDiff(got, want))
	}
	coderClose(t, ts, conn, "")
}

// TestCoderPing checks that conn.Ping returns: the server answers pings
// with pongs by itself.
func TestCoderPing(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, loop.Options{})
	conn := dialCoder(t, ts, nil)
	ts.h.nextOpen(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// coder processes pongs inside Read: keep a reader running.
	type msg struct {
		typ websocket.MessageType
		p   []byte
		err error
	}
	msgs := make(chan msg, 16)
	go func() {
		for {
			typ, p, err := conn.Read(ctx)
			msgs <- msg{typ, p, err}
			if err != nil {
				return
			}
		}
	}()
	for i := range 5 {
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		err := conn.Ping(pctx)
		pcancel()
		if err != nil {
			t.Fatalf("Ping %d: %v", i, err)
		}
	}
	if err := conn.Write(ctx, websocket.MessageText, []byte("after pings")); err != nil {
		t.Fatalf("write: %v", err)
	}
	select {
	case m := <-msgs:
		if m.err != nil || string(m.p) != "after pings" {
			t.Errorf("echo = %q, %v; want \"after pings\"", m.p, m.err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("no echo")
	}
	coderClose(t, ts, conn, "pinged")
}

// TestCoderServerClose checks server-initiated closes as coder sees them,
// 1000 and an application code.
func TestCoderServerClose(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, loop.Options{})
	for _, tc := range []struct {
		name   string
		code   codec.StatusCode
		reason string
	}{
		{name: "normal", code: 1000, reason: "server done"},
		{name: "application", code: 4000, reason: "bye"},
		{name: "long_reason", code: 4999, reason: strings.Repeat("r", 123)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := dialCoder(t, ts, nil)
			sc := ts.h.nextOpen(t)
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			if err := sc.Close(tc.code, tc.reason); err != nil {
				t.Fatalf("server Close: %v", err)
			}
			_, _, err := conn.Read(ctx)
			var ce websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.StatusCode(tc.code) || ce.Reason != tc.reason {
				t.Errorf("client read = %v; want close %d %q", err, tc.code, tc.reason)
			}
			expectClose(t, ts.h.nextClose(t), tc.code, tc.reason, false)
		})
	}
}

// TestCoderTooBig sends a message over WithMaxMessageSize and expects
// close 1009 (StatusMessageTooBig).
func TestCoderTooBig(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, loop.Options{MaxMessageSize: 1024})
	conn := dialCoder(t, ts, nil)
	ts.h.nextOpen(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()

	ok := textPayload(1024)
	if err := conn.Write(ctx, websocket.MessageText, ok); err != nil {
		t.Fatalf("write: %v", err)
	}
	if _, p, err := conn.Read(ctx); err != nil || !bytes.Equal(p, ok) {
		t.Fatalf("echo of a 1024-byte message = %d bytes, %v; want it echoed", len(p), err)
	}
	if err := conn.Write(ctx, websocket.MessageBinary, binaryPayload(2048, 1)); err != nil {
		t.Fatalf("write: %v", err)
	}
	_, _, err := conn.Read(ctx)
	if got := websocket.CloseStatus(err); got != websocket.StatusMessageTooBig {
		t.Errorf("client read after a 2048-byte message = %v (status %d); want status %d",
			err, got, websocket.StatusMessageTooBig)
	}
	ev := ts.h.nextClose(t)
	if ev.err.Code != 1009 || ev.err.Remote {
		t.Errorf("server OnClose = %+v; want code 1009, not Remote", *ev.err)
	}
}

func TestCoderSubprotocol(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, loop.Options{Protocols: []string{"chat", "superchat"}})
	conn := dialCoder(t, ts, &websocket.DialOptions{Subprotocols: []string{"superchat"}})
	sc := ts.h.nextOpen(t)
	if conn.Subprotocol() != "superchat" || sc.Subprotocol() != "superchat" {
		t.Errorf("Subprotocol: client %q, server %q; want \"superchat\"", conn.Subprotocol(), sc.Subprotocol())
	}
	if err := conn.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Errorf("client Close(1000): %v", err)
	}
	ts.h.nextClose(t)
}
