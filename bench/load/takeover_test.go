package load

import (
	"bytes"
	"errors"
	"testing"

	kflate "github.com/klauspost/compress/flate"

	"github.com/wsgate/wsgate/upgrade"
)

// TestTakeoverResponse checks how the takeover offer's answers are read:
// the window the client keeps, a server that declines takeover, and
// answers that break RFC 7692.
func TestTakeoverResponse(t *testing.T) {
	t.Parallel()
	key := []byte("dGhlIHNhbXBsZSBub25jZQ==")
	ok := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		string(upgrade.AppendAccept(nil, key)) + "\r\nSec-WebSocket-Extensions: "
	tests := []struct {
		ext      string
		takeover bool
		bits     int
		want     error
	}{
		{"permessage-deflate", true, 15, nil},
		{"permessage-deflate; client_no_context_takeover", true, 15, nil},
		{"permessage-deflate; server_max_window_bits=12", true, 12, nil},
		{`permessage-deflate; server_max_window_bits="9"`, true, 9, nil},
		{"permessage-deflate; server_no_context_takeover; client_no_context_takeover", false, 15, nil},
		{"permessage-deflate; server_max_window_bits=7", false, 0, errRespWindow},
		{"permessage-deflate; server_max_window_bits=16", false, 0, errRespWindow},
		{"permessage-deflate; server_max_window_bits", false, 0, errRespWindow},
	}
	for _, tt := range tests {
		res, err := parseResponse([]byte(ok+tt.ext+"\r\n\r\n"), key, "", true, true)
		if !errors.Is(err, tt.want) {
			t.Errorf("%q: err = %v, want %v", tt.ext, err, tt.want)
			continue
		}
		if err == nil && (!res.deflate || res.takeover != tt.takeover || res.takeover && res.windowBits != tt.bits) {
			t.Errorf("%q: %+v, want takeover %v with %d window bits", tt.ext, res, tt.takeover, tt.bits)
		}
	}
	// Without the takeover offer, an answer that keeps the context is
	// refused.
	if _, err := parseResponse([]byte(ok+"permessage-deflate\r\n\r\n"), key, "", true, false); !errors.Is(err, errRespNoTakeover) {
		t.Errorf("takeover kept without the offer: err = %v, want %v", err, errRespNoTakeover)
	}
}

// TestTakeoverRequest checks the two offers.
func TestTakeoverRequest(t *testing.T) {
	t.Parallel()
	tg, err := ParseTarget("ws://127.0.0.1:9/")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		takeover bool
		want     string
	}{
		{false, "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"},
		{true, "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n"},
	} {
		rt := newRequest(tg, nil, "", true, tt.takeover)
		if req := rt.appendRequest(nil, make([]byte, 24)); !bytes.Contains(req, []byte(tt.want)) {
			t.Errorf("takeover %v: request %q lacks %q", tt.takeover, req, tt.want)
		}
	}
}

// TestTakeoverWindow inflates a stream compressed with context takeover
// message by message through wsConn.inflate, with a 512-byte window kept
// in a buffer that must slide many times.
func TestTakeoverWindow(t *testing.T) {
	t.Parallel()
	msgs := tickMessages(400, 150)
	var buf bytes.Buffer
	zw, err := kflate.NewWriterWindow(&buf, 1<<9)
	if err != nil {
		t.Fatal(err)
	}
	ws := &wsConn{ls: &loopState{}, takeover: true, winMax: 1 << 9}
	for i, m := range msgs {
		buf.Reset()
		if _, err := zw.Write(m); err != nil {
			t.Fatal(err)
		}
		if err := zw.Flush(); err != nil {
			t.Fatal(err)
		}
		ws.z = append(ws.z[:0], buf.Bytes()[:buf.Len()-4]...)
		out, err := ws.inflate(len(m))
		if err != nil || !bytes.Equal(out, m) {
			t.Fatalf("message %d: %v, got %q, want %q", i+1, err, out, m)
		}
		if cap(ws.win) > ws.winMax+max(ws.winMax/4, len(m)+1) {
			t.Fatalf("window buffer grew to %d bytes", cap(ws.win))
		}
	}
}
