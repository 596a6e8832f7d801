package interop

import (
	"bytes"
	"compress/flate"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/deflate"
	"github.com/wsgate/wsgate/loop"
)

// permessage-deflate (RFC 7692) against real clients, with what was
// negotiated and what went over the wire checked through a sniffer, and
// the failure cases with a raw client.

// The answers wsgate gives by default and with ServerContextTakeover.
const (
	extNoTakeover = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	extTakeover   = "permessage-deflate; client_no_context_takeover"
)

// Default compression thresholds (deflate.Config.Threshold = 0): smaller
// messages go out uncompressed.
const (
	thresholdNoTakeover = 512
	thresholdTakeover   = 128
)

// sniffed is a proxied connection's data messages, decoded.
type sniffed struct {
	toServer, toClient     []wireMsg
	fromClient, fromServer [][]byte
	control                []wireFrame // from the server
}

// decodeSniffed assembles and decodes a proxied connection's data
// messages, reporting RSV misuse and undecodable messages as errors.
// Client messages are decoded without context (wsgate always answers
// client_no_context_takeover); server messages with a history of
// serverWindow bytes (0: 32 KiB) when serverTakeover is set.
func decodeSniffed(t *testing.T, rec *sniffConn, serverTakeover bool, serverWindow int) sniffed {
	t.Helper()
	_, _, up, down, errs := rec.snapshot()
	for _, e := range errs {
		t.Errorf("sniffer: %s", e)
	}
	var s sniffed
	var problems []string
	s.toServer, _, problems = assemble(up)
	for _, p := range problems {
		t.Errorf("client frames: %s", p)
	}
	s.toClient, s.control, problems = assemble(down)
	for _, p := range problems {
		t.Errorf("server frames: %s", p)
	}
	var cw window
	for i, m := range s.toServer {
		out, err := cw.decode(m, false)
		if err != nil {
			t.Errorf("client message %d (%d wire bytes): inflate: %v", i, m.wireSize(), err)
		}
		s.fromClient = append(s.fromClient, out)
	}
	sw := window{size: serverWindow}
	for i, m := range s.toClient {
		out, err := sw.decode(m, serverTakeover)
		if err != nil {
			t.Errorf("server message %d (%d wire bytes, compressed %v): inflate: %v", i, m.wireSize(), m.compressed, err)
		}
		s.fromServer = append(s.fromServer, out)
	}
	return s
}

// clearlyCompressible reports whether flate at level 1 shrinks p by a
// quarter or more.
func clearlyCompressible(p []byte) bool {
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestSpeed)
	w.Write(p)
	w.Flush()
	return buf.Len() < len(p)*3/4
}

// checkServerCompression checks the server's choice for each message it
// sent: under the threshold never compressed; at or above it, compressed
// when that clearly pays; and a compressed message always shorter on the
// wire than its content. It returns how many were compressed.
func checkServerCompression(t *testing.T, s sniffed, threshold int) (compressed int) {
	t.Helper()
	for i, m := range s.toClient {
		p := s.fromServer[i]
		switch {
		case m.compressed && len(p) < threshold:
			t.Errorf("server message %d: %d bytes sent compressed (RSV1); want uncompressed under the %d-byte threshold",
				i, len(p), threshold)
		case m.compressed && m.wireSize() >= len(p):
			t.Errorf("server message %d: %d bytes compressed to %d; want it sent uncompressed when compression does not pay",
				i, len(p), m.wireSize())
		case !m.compressed && len(p) >= threshold && clearlyCompressible(p):
			t.Errorf("server message %d: %d compressible bytes sent uncompressed (RSV1 clear)", i, len(p))
		}
		if m.compressed {
			compressed++
		}
	}
	return compressed
}

// checkEchoes checks that the server echoed, byte for byte, what the
// client sent, as decoded on the wire, and that it equals want if given.
func checkEchoes(t *testing.T, s sniffed, want [][]byte) {
	t.Helper()
	if len(s.fromClient) != len(s.fromServer) {
		t.Errorf("wire: %d client messages, %d server messages; want equal", len(s.fromClient), len(s.fromServer))
	}
	if want != nil && len(s.fromClient) != len(want) {
		t.Errorf("wire: %d client messages; want %d", len(s.fromClient), len(want))
	}
	for i := range min(len(s.fromClient), len(s.fromServer)) {
		if !bytes.Equal(s.fromClient[i], s.fromServer[i]) {
			t.Errorf("wire: server message %d (%d bytes) differs from client message %d (%d bytes) at %d",
				i, len(s.fromServer[i]), i, len(s.fromClient[i]), firstDiff(s.fromServer[i], s.fromClient[i]))
		}
		if s.toClient[i].op != s.toServer[i].op {
			t.Errorf("wire: message %d opcode %d echoed as %d", i, s.toServer[i].op, s.toClient[i].op)
		}
		if want != nil && i < len(want) && !bytes.Equal(s.fromClient[i], want[i]) {
			t.Errorf("wire: client message %d is not what the test sent", i)
		}
	}
}

func wireTotal(msgs []wireMsg) (wire int) {
	for _, m := range msgs {
		wire += m.wireSize()
	}
	return wire
}

func byteTotal(ps [][]byte) (n int) {
	for _, p := range ps {
		n += len(p)
	}
	return n
}

// proxiedVia returns a copy of ts whose url points at the sniffer.
func proxiedVia(ts *testServer, sn *sniffer) *testServer {
	p := *ts
	p.url = "ws://" + sn.addr + "/"
	return &p
}

// TestDeflateGorilla: gorilla with EnableCompression offers no context
// takeover both ways and compresses every message it sends.
func TestDeflateGorilla(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, loop.Options{Deflate: &deflate.Config{}})
	sn := startSniffer(t, ts.addr)
	conn, resp := dialGorilla(t, proxiedVia(ts, sn), &websocket.Dialer{EnableCompression: true})
	ts.h.nextOpen(t)
	rec := sn.conn(0)
	if got := resp.Header.Get("Sec-WebSocket-Extensions"); got != extNoTakeover {
		t.Errorf("gorilla: Sec-WebSocket-Extensions %q; want %q", got, extNoTakeover)
	}
	if got := rec.wireExtensions(); got != extNoTakeover {
		t.Errorf("wire: Sec-WebSocket-Extensions %q; want %q", got, extNoTakeover)
	}

	msgs := []struct {
		name string
		op   int
		p    []byte
	}{
		{"empty", websocket.TextMessage, []byte{}},
		{"json_64B", websocket.TextMessage, jsonPayload(64, 1)},
		{"json_511B", websocket.TextMessage, jsonPayload(511, 2)},
		{"json_512B", websocket.TextMessage, jsonPayload(512, 3)},
		{"json_4KiB", websocket.TextMessage, jsonPayload(4096, 4)},
		{"json_4KiB_again", websocket.TextMessage, jsonPayload(4096, 4)},
		{"utf8_70000B", websocket.TextMessage, textPayload(70000)},
		{"random_64KiB", websocket.BinaryMessage, binaryPayload(65536, 5)},
		{"zeros_1000B", websocket.BinaryMessage, make([]byte, 1000)},
		{"words_300KiB", websocket.TextMessage, wordsPayload(300<<10, 6)},
	}
	var want [][]byte
	for _, m := range msgs {
		conn.SetWriteDeadline(time.Now().Add(waitTimeout))
		if err := conn.WriteMessage(m.op, m.p); err != nil {
			t.Fatalf("%s: write: %v", m.name, err)
		}
		conn.SetReadDeadline(time.Now().Add(waitTimeout))
		typ, got, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("%s: read echo: %v", m.name, err)
		}
		if typ != m.op || !bytes.Equal(got, m.p) {
			t.Errorf("%s: echo type %d, %d bytes; want type %d, the %d bytes sent (first difference at %d)",
				m.name, typ, len(got), m.op, len(m.p), firstDiff(got, m.p))
		}
		want = append(want, m.p)
	}
	gorillaClose(t, conn, websocket.CloseNormalClosure, "")
	expectClose(t, ts.h.nextClose(t), 1000, "", true)

	s := decodeSniffed(t, rec, false, 0)
	checkEchoes(t, s, want)
	if len(s.toClient) != len(msgs) {
		t.Fatalf("wire: %d server messages; want %d", len(s.toClient), len(msgs))
	}
	// gorilla compresses everything it sends, so the server inflated
	// every one of these, the empty message included.
	for i, m := range s.toServer {
		if !m.compressed {
			t.Errorf("client message %d (%s) went uncompressed: the test does not exercise inflate", i, msgs[i].name)
		}
	}
	n := checkServerCompression(t, s, thresholdNoTakeover)
	for i, m := range msgs {
		t.Logf("%-16s %7d B -> server sent %7d B (compressed %v, %d frames)",
			m.name, len(m.p), s.toClient[i].wireSize(), s.toClient[i].compressed, len(s.toClient[i].frames))
	}
	if n != 6 { // 512, 4KiB ×2, utf8, zeros, words
		t.Errorf("server compressed %d messages; want 6", n)
	}
	// No context takeover: the same message compresses to the same bytes.
	if a, b := s.toClient[4].payload, s.toClient[5].payload; !bytes.Equal(a, b) {
		t.Errorf("the same 4 KiB message compressed to %d then %d different bytes; without context takeover they must match",
			len(a), len(b))
	}
	// A compressed message larger than FragmentSize (64 KiB): RSV1 on the
	// first frame only (assemble reports RSV1 on a continuation frame).
	if big := s.toClient[9]; !big.compressed || len(big.frames) < 2 {
		t.Errorf("300 KiB words echo: compressed %v in %d frames (%d wire bytes); want compressed, fragmented",
			big.compressed, len(big.frames), big.wireSize())
	}
}

// TestDeflateUncompressed: Conn.WriteUncompressed sends a compressible
// message without RSV1 on a deflate connection, also when it is
// fragmented, while WriteMessage still compresses, before and after it.
func TestDeflateUncompressed(t *testing.T) {
	t.Parallel()
	h := newRecorder(t)
	h.onMessage = func(c *loop.Conn, op codec.OpCode, p []byte) {
		write := c.WriteMessage
		if bytes.HasPrefix(p, []byte("raw:")) {
			write = c.WriteUncompressed
		}
		if err := write(op, p); err != nil {
			t.Errorf("write: %v", err)
		}
	}
	ts := startServer(t, h, loop.Options{Deflate: &deflate.Config{}})
	sn := startSniffer(t, ts.addr)
	conn, _ := dialGorilla(t, proxiedVia(ts, sn), &websocket.Dialer{EnableCompression: true})
	ts.h.nextOpen(t)
	msgs := [][]byte{
		jsonPayload(4096, 1),
		append([]byte("raw:"), jsonPayload(4096, 2)...),
		append([]byte("raw:"), wordsPayload(200<<10, 3)...), // fragmented at 64 KiB
		jsonPayload(4096, 4),
	}
	for i, m := range msgs {
		conn.SetWriteDeadline(time.Now().Add(waitTimeout))
		if err := conn.WriteMessage(websocket.TextMessage, m); err != nil {
			t.Fatalf("message %d: write: %v", i, err)
		}
		conn.SetReadDeadline(time.Now().Add(waitTimeout))
		if _, got, err := conn.ReadMessage(); err != nil || !bytes.Equal(got, m) {
			t.Fatalf("message %d: echo of %d bytes, %v; want the %d bytes sent", i, len(got), err, len(m))
		}
	}
	gorillaClose(t, conn, websocket.CloseNormalClosure, "")
	expectClose(t, ts.h.nextClose(t), 1000, "", true)

	s := decodeSniffed(t, sn.conn(0), false, 0)
	checkEchoes(t, s, msgs)
	if len(s.toClient) != len(msgs) {
		t.Fatalf("wire: %d server messages; want %d", len(s.toClient), len(msgs))
	}
	for i, want := range []bool{true, false, false, true} {
		if got := s.toClient[i].compressed; got != want {
			t.Errorf("server message %d: compressed %v; want %v", i, got, want)
		}
	}
	if n := len(s.toClient[2].frames); n < 2 {
		t.Errorf("200 KiB uncompressed message in %d frame(s); want it fragmented", n)
	}
}

// TestDeflateCoderTakeover: coder/websocket with context takeover against
// a server with ServerContextTakeover.
func TestDeflateCoderTakeover(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, loop.Options{Deflate: &deflate.Config{ServerContextTakeover: true}})
	sn := startSniffer(t, ts.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	conn, resp, err := coder.Dial(ctx, "ws://"+sn.addr+"/", &coder.DialOptions{CompressionMode: coder.CompressionContextTakeover})
	if err != nil {
		t.Fatalf("coder Dial: %v", err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(1 << 20)
	ts.h.nextOpen(t)
	rec := sn.conn(0)
	req, _, _, _, _ := rec.snapshot()
	t.Logf("coder offered %q", req.Header.Get("Sec-WebSocket-Extensions"))
	if got := resp.Header.Get("Sec-WebSocket-Extensions"); got != extTakeover || strings.Contains(got, "server_no_context_takeover") {
		t.Errorf("coder: Sec-WebSocket-Extensions %q; want %q (no server_no_context_takeover)", got, extTakeover)
	}
	if got := rec.wireExtensions(); got != extTakeover {
		t.Errorf("wire: Sec-WebSocket-Extensions %q; want %q", got, extTakeover)
	}

	roundTrip := func(p []byte) {
		t.Helper()
		if err := conn.Write(ctx, coder.MessageText, p); err != nil {
			t.Fatalf("write %d bytes: %v", len(p), err)
		}
		typ, got, err := conn.Read(ctx)
		if err != nil {
			t.Fatalf("read echo of %d bytes: %v", len(p), err)
		}
		if typ != coder.MessageText || !bytes.Equal(got, p) {
			t.Fatalf("echo of %d bytes: type %v, %d bytes, first difference at %d", len(p), typ, len(got), firstDiff(got, p))
		}
	}
	var sent [][]byte
	const rounds = 8
	for r := range rounds {
		for n := 64; n <= 64<<10; n *= 2 {
			p := jsonPayload(n, uint64(r*100+n))
			roundTrip(p)
			sent = append(sent, p)
		}
	}
	// The same 2 KiB message twice: the second refers to the first.
	rep := jsonPayload(2048, 4242)
	roundTrip(rep)
	roundTrip(rep)
	sent = append(sent, rep, rep)
	if err := conn.Close(coder.StatusNormalClosure, "takeover done"); err != nil {
		t.Errorf("coder Close(1000): %v", err)
	}
	expectClose(t, ts.h.nextClose(t), 1000, "takeover done", true)

	s := decodeSniffed(t, rec, true, 0)
	checkEchoes(t, s, sent)
	if len(s.toClient) != len(sent) {
		t.Fatalf("wire: %d server messages; want %d", len(s.toClient), len(sent))
	}
	n := checkServerCompression(t, s, thresholdTakeover)
	if want := len(sent) - rounds; n != want { // all but the 64-byte ones
		t.Errorf("server compressed %d of %d messages; want %d", n, len(sent), want)
	}
	first, second := s.toClient[len(sent)-2], s.toClient[len(sent)-1]
	t.Logf("2 KiB message repeated: %d then %d wire bytes; whole run: %d bytes of JSON sent as %d",
		first.wireSize(), second.wireSize(), byteTotal(sent), wireTotal(s.toClient))
	if !second.compressed || second.wireSize()*4 > first.wireSize() {
		t.Errorf("repeated 2 KiB message: %d then %d wire bytes; want the second under a quarter of the first (context takeover)",
			first.wireSize(), second.wireSize())
	}
	if out, err := inflate(second.payload, nil); err == nil && bytes.Equal(out, rep) {
		t.Errorf("repeated 2 KiB message decodes without history: the server did not use context takeover")
	}
}

// TestDeflateNode: Node's ws with perMessageDeflate: true.
func TestDeflateNode(t *testing.T) {
	t.Parallel()
	node := ensureNodeWS(t)
	ts := startServer(t, nil, loop.Options{Deflate: &deflate.Config{}})
	sn := startSniffer(t, ts.addr)

	sum := runNodeClient(t, node, "ws://"+sn.addr+"/", "deflate")
	// 9 sizes × text and binary, 5 JSON messages; 3 pings; close 1000.
	if sum.RoundTrips != 23 || sum.Pongs != 3 || sum.CloseCode != 1000 {
		t.Errorf("node client: %d round trips, %d pongs, close %d; want 23, 3, 1000", sum.RoundTrips, sum.Pongs, sum.CloseCode)
	}
	// ws reports the names of the accepted extensions; the parameters
	// are checked on the wire below.
	if sum.Extensions != "permessage-deflate" {
		t.Errorf("node ws.extensions = %q; want \"permessage-deflate\"", sum.Extensions)
	}
	expectClose(t, ts.h.nextClose(t), 1000, "node done", true)

	rec := sn.conn(0)
	req, _, _, _, _ := rec.snapshot()
	t.Logf("node ws %s offered %q, got %q", sum.WS, req.Header.Get("Sec-WebSocket-Extensions"), rec.wireExtensions())
	if got := rec.wireExtensions(); got != extNoTakeover {
		t.Errorf("wire: Sec-WebSocket-Extensions %q; want %q", got, extNoTakeover)
	}
	s := decodeSniffed(t, rec, false, 0)
	checkEchoes(t, s, nil)
	if len(s.toClient) != 23 {
		t.Errorf("wire: %d server messages; want 23", len(s.toClient))
	}
	up := 0
	for _, m := range s.toServer {
		if m.compressed {
			up++
		}
	}
	down := checkServerCompression(t, s, thresholdNoTakeover)
	t.Logf("node compressed %d of its %d messages, the server %d; server sent %d bytes of messages as %d",
		up, len(s.toServer), down, byteTotal(s.fromServer), wireTotal(s.toClient))
	// ws compresses messages of 1 KiB and more: the compressible ones must
	// have been inflated by the server.
	if up == 0 {
		t.Errorf("node sent no compressed message: the test does not exercise inflate")
	}
	if down < 5 {
		t.Errorf("server compressed %d messages to node; want at least the 5 large compressible ones", down)
	}
}

// serverClose checks the server's side of a failure: OnClose with code,
// not Remote.
func serverClose(t *testing.T, ts *testServer, code codec.StatusCode) {
	t.Helper()
	ev := ts.h.nextClose(t)
	if ev.err.Code != code || ev.err.Remote {
		t.Errorf("server OnClose = {Code:%d Reason:%q Remote:%v Err:%v}; want Code %d, not Remote",
			ev.err.Code, ev.err.Reason, ev.err.Remote, ev.err.Err, code)
	}
}

// TestDeflateRawFrames checks the server's compressed frames byte by byte
// and that it inflates what a client sends compressed: one frame or
// several, RSV1 on the first only.
func TestDeflateRawFrames(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, loop.Options{Deflate: &deflate.Config{}})
	rc := dialRaw(t, ts.addr, "permessage-deflate")
	ts.h.nextOpen(t)
	if got := rc.extensions(); got != extNoTakeover {
		t.Errorf("Sec-WebSocket-Extensions %q; want %q", got, extNoTakeover)
	}

	check := func(name string, op byte, want []byte, wantCompressed bool) wireMsg {
		t.Helper()
		m := rc.readMessage()
		got, err := inflate(m.payload, nil)
		if !m.compressed {
			got, err = m.payload, nil
		}
		switch {
		case err != nil:
			t.Errorf("%s: echo of %d wire bytes (RSV1 %v) does not inflate: %v", name, m.wireSize(), m.compressed, err)
		case m.op != op || !bytes.Equal(got, want):
			t.Errorf("%s: echo op %d, %d bytes; want op %d, the %d bytes sent (first difference at %d)",
				name, m.op, len(got), op, len(want), firstDiff(got, want))
		case m.compressed != wantCompressed:
			t.Errorf("%s: echo of %d bytes has RSV1 %v (%d wire bytes); want %v", name, len(want), m.compressed, m.wireSize(), wantCompressed)
		}
		return m
	}

	// Uncompressed from the client (allowed after negotiation: RSV1 is
	// per message), compressed by the server above the threshold.
	small := jsonPayload(300, 1)
	rc.write(appendClientFrame(nil, true, 0, opText, small))
	check("uncompressed 300 B in", opText, small, false)
	mid := jsonPayload(4096, 2)
	rc.write(appendClientFrame(nil, true, 0, opText, mid))
	m := check("uncompressed 4 KiB in", opText, mid, true)
	if len(m.frames) != 1 || m.wireSize()*3 > len(mid) {
		t.Errorf("4 KiB JSON echo: %d frames, %d wire bytes; want 1 frame under a third of 4096", len(m.frames), m.wireSize())
	}
	big := wordsPayload(200<<10, 3)
	rc.write(appendClientFrame(nil, true, 0, opBinary, big))
	m = check("uncompressed 200 KiB words in", opBinary, big, true)
	if len(m.frames) < 2 || m.frames[0].op != opBinary || m.frames[0].rsv != rsv1 {
		t.Errorf("200 KiB words echo: %d frames, first %v; want several, RSV1 on the first", len(m.frames), m.frames[0])
	}

	// Compressed from the client, one frame.
	p := jsonPayload(5000, 4)
	rc.write(appendClientFrame(nil, true, rsv1, opText, compressMsg(t, p, nil, 6)))
	check("compressed 5000 B in", opText, p, true)

	// Compressed from the client, in many frames: RSV1 on the first.
	p = textPayload(100_000)
	z := compressMsg(t, p, nil, 1)
	var frames []byte
	for i, off := 0, 0; off < len(z); i++ {
		n := min(len(z)-off, 97)
		rsv, op := byte(0), byte(opCont)
		if i == 0 {
			rsv, op = rsv1, opText
		}
		frames = appendClientFrame(frames, off+n == len(z), rsv, op, z[off:off+n])
		off += n
	}
	rc.write(frames)
	check("compressed 100 KB in, 97-byte frames", opText, p, true)

	// Compressed with a final block (BFINAL, RFC 7692 §7.2.3.3) and the
	// empty message as a lone 0x00 (§7.2.3.6).
	var fin bytes.Buffer
	fw, _ := flate.NewWriter(&fin, 6)
	p = jsonPayload(800, 5)
	fw.Write(p)
	fw.Close()
	rc.write(appendClientFrame(nil, true, rsv1, opText, fin.Bytes()))
	check("compressed with BFINAL in", opText, p, true)
	rc.write(appendClientFrame(nil, true, rsv1, opBinary, []byte{0x00}))
	check("compressed empty message in", opBinary, []byte{}, false)

	// A ping between the frames of a compressed message is answered and
	// the message still arrives whole.
	p = jsonPayload(3000, 6)
	z = compressMsg(t, p, nil, 6)
	h := len(z) / 2
	var seq []byte
	seq = appendClientFrame(seq, false, rsv1, opText, z[:h])
	seq = appendClientFrame(seq, true, 0, opPing, []byte("mid"))
	seq = appendClientFrame(seq, true, 0, opCont, z[h:])
	rc.write(seq)
	f, err := rc.readFrame(waitTimeout)
	if err != nil || f.op != opPong || string(f.payload) != "mid" || f.rsv != 0 {
		t.Errorf("ping inside a compressed message: got %v %q, %v; want pong \"mid\", no RSV", f, f.payload, err)
	}
	check("compressed 3000 B around a ping", opText, p, true)

	rc.write(appendClientFrame(nil, true, 0, opClose, []byte{0x03, 0xe8}))
	if d := rc.expectClose(1000); d > closePrompt {
		t.Errorf("close took %v", d)
	}
	expectClose(t, ts.h.nextClose(t), 1000, "", true)
}

// TestDeflateRawTakeover checks context takeover on the wire: a repeated
// message refers to the history; a server_max_window_bits the client asks
// for is honoured, within a message and across messages.
func TestDeflateRawTakeover(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, loop.Options{Deflate: &deflate.Config{ServerContextTakeover: true}})

	t.Run("repeat", func(t *testing.T) {
		rc := dialRaw(t, ts.addr, "permessage-deflate")
		ts.h.nextOpen(t)
		if got := rc.extensions(); got != extTakeover {
			t.Errorf("Sec-WebSocket-Extensions %q; want %q", got, extTakeover)
		}
		var w window
		msgs := [][]byte{jsonPayload(2048, 1), jsonPayload(2048, 1), jsonPayload(1500, 2), jsonPayload(2048, 1), jsonPayload(200, 3)}
		var sizes []int
		for i, p := range msgs {
			rc.write(appendClientFrame(nil, true, 0, opText, p))
			m := rc.readMessage()
			got, err := w.decode(m, true)
			if err != nil || !bytes.Equal(got, p) || !m.compressed {
				t.Fatalf("message %d (%d B): RSV1 %v, inflated with history to %d bytes, %v; want it compressed and equal",
					i, len(p), m.compressed, len(got), err)
			}
			sizes = append(sizes, m.wireSize())
			if i == 1 {
				if out, err := inflate(m.payload, nil); err == nil && bytes.Equal(out, p) {
					t.Errorf("the repeated message decodes without history: context takeover was not used")
				}
			}
		}
		t.Logf("wire sizes %v for messages of %d, %d, %d, %d, %d bytes", sizes, len(msgs[0]), len(msgs[1]), len(msgs[2]), len(msgs[3]), len(msgs[4]))
		if sizes[1]*4 > sizes[0] {
			t.Errorf("repeated 2 KiB message: %d then %d wire bytes; want the second under a quarter", sizes[0], sizes[1])
		}
		rc.write(appendClientFrame(nil, true, 0, opClose, []byte{0x03, 0xe8}))
		rc.expectClose(1000)
		ts.h.nextClose(t)
	})

	// Period-600 hex: a window of 512 bytes cannot see the repeat, one of
	// 4 KiB can.
	periodic := bytes.Repeat(hexPayload(600, 7), 3)
	for _, tc := range []struct {
		name   string
		offer  string
		answer string
		window int
	}{
		{"bits_9", "permessage-deflate; server_max_window_bits=9", extTakeover + "; server_max_window_bits=9", 1 << 9},
		{"bits_10_quoted", `permessage-deflate; server_max_window_bits="10"`, extTakeover + "; server_max_window_bits=10", 1 << 10},
		{"default", "permessage-deflate", extTakeover, 32 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := dialRaw(t, ts.addr, tc.offer)
			ts.h.nextOpen(t)
			if got := rc.extensions(); got != tc.answer {
				t.Errorf("offer %q: answer %q; want %q", tc.offer, got, tc.answer)
			}
			// The history passed to the inflater is only the last
			// 2^bits bytes: a reference further back fails to decode.
			w := window{size: tc.window}
			msgs := [][]byte{periodic, jsonPayload(3000, 8), jsonPayload(3000, 8), periodic, hexPayload(700, 9), periodic}
			var sizes []int
			for i, p := range msgs {
				rc.write(appendClientFrame(nil, true, 0, opText, p))
				m := rc.readMessage()
				got, err := w.decode(m, true)
				if err != nil || !bytes.Equal(got, p) {
					t.Fatalf("message %d (%d B, %d wire bytes): inflate with the last %d bytes as history: %d bytes, %v; want the message",
						i, len(p), m.wireSize(), tc.window, len(got), err)
				}
				sizes = append(sizes, m.wireSize())
			}
			t.Logf("offer %q: wire sizes %v", tc.offer, sizes)
			// Inside the first message: with 512 bytes the 600-byte
			// period is out of reach, so at best the hex digits are
			// entropy-coded (4 bits each: ~900 bytes); with a larger
			// window the two repeats become matches (~340 bytes).
			switch {
			case tc.window == 1<<9 && sizes[0] < 800:
				t.Errorf("1800 B of period-600 hex compressed to %d bytes with server_max_window_bits=9: a match beyond 512 bytes", sizes[0])
			case tc.window > 1<<9 && sizes[0] > 600:
				t.Errorf("1800 B of period-600 hex compressed to %d bytes with a %d-byte window; want under 600", sizes[0], tc.window)
			}
			rc.write(appendClientFrame(nil, true, 0, opClose, []byte{0x03, 0xe8}))
			rc.expectClose(1000)
			ts.h.nextClose(t)
		})
	}
}

// TestDeflateNegotiation checks the answers to offers as the loop
// receives them (several header lines, several offers) and that the
// connection then works: compressed echo if accepted, none otherwise.
func TestDeflateNegotiation(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, loop.Options{Deflate: &deflate.Config{}})
	tsT := startServer(t, nil, loop.Options{Deflate: &deflate.Config{ServerContextTakeover: true}})
	tsOff := startServer(t, nil, loop.Options{})
	for _, tc := range []struct {
		name   string
		ts     *testServer
		offers []string
		answer string // "" = declined
	}{
		{"plain", ts, []string{"permessage-deflate"}, extNoTakeover},
		{"client_max_window_bits", ts, []string{"permessage-deflate; client_max_window_bits"}, extNoTakeover},
		{"browser", ts, []string{"permessage-deflate; client_max_window_bits=15"}, extNoTakeover},
		{"server_max_window_bits", ts, []string{"permessage-deflate; server_max_window_bits=11"}, extNoTakeover + "; server_max_window_bits=11"},
		{"second_line", ts, []string{"permessage-deflate; bogus", "permessage-deflate; server_max_window_bits=12"}, extNoTakeover + "; server_max_window_bits=12"},
		{"second_offer", ts, []string{"x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=16, permessage-deflate"}, extNoTakeover},
		{"invalid_only", ts, []string{"permessage-deflate; server_max_window_bits=16"}, ""},
		{"duplicate_only", ts, []string{"permessage-deflate; server_no_context_takeover; server_no_context_takeover"}, ""},
		{"other_extension", ts, []string{"x-webkit-deflate-frame"}, ""},
		{"takeover", tsT, []string{"permessage-deflate"}, extTakeover},
		{"takeover_declined_by_client", tsT, []string{"permessage-deflate; server_no_context_takeover"}, extNoTakeover},
		{"deflate_off", tsOff, []string{"permessage-deflate; client_max_window_bits"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := dialRaw(t, tc.ts.addr, tc.offers...)
			tc.ts.h.nextOpen(t)
			if got := rc.extensions(); got != tc.answer {
				t.Errorf("offers %q: Sec-WebSocket-Extensions %q; want %q", tc.offers, got, tc.answer)
			}
			if n := len(rc.resp.Header.Values("Sec-WebSocket-Extensions")); tc.answer == "" && n != 0 {
				t.Errorf("declined: %d Sec-WebSocket-Extensions lines; want none", n)
			}
			p := jsonPayload(4096, 1)
			rc.write(appendClientFrame(nil, true, 0, opText, p))
			m := rc.readMessage()
			got := m.payload
			if m.compressed {
				var err error
				if got, err = inflate(m.payload, nil); err != nil {
					t.Errorf("echo does not inflate: %v", err)
				}
			}
			if m.compressed != (tc.answer != "") || !bytes.Equal(got, p) {
				t.Errorf("echo of 4 KiB JSON: RSV1 %v, %d bytes; want RSV1 %v and the message", m.compressed, len(got), tc.answer != "")
			}
			rc.write(appendClientFrame(nil, true, 0, opClose, []byte{0x03, 0xe8}))
			rc.expectClose(1000)
			tc.ts.h.nextClose(t)
		})
	}
}

// TestDeflateRSVMisuse: RFC 7692 §6.1 and RFC 6455 §5.2: RSV1 only on the
// first frame of a data message and only when negotiated; any other RSV
// bit fails the connection with 1002.
func TestDeflateRSVMisuse(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, loop.Options{Deflate: &deflate.Config{}})
	tsOff := startServer(t, nil, loop.Options{})
	z := func(p []byte) []byte { return compressMsg(t, p, nil, 6) }
	json1k := jsonPayload(1024, 1)
	for _, tc := range []struct {
		name  string
		ts    *testServer
		offer string
		seq   func() []byte
	}{
		{"ping_rsv1", ts, "permessage-deflate", func() []byte {
			return appendClientFrame(nil, true, rsv1, opPing, []byte("x"))
		}},
		{"pong_rsv1", ts, "permessage-deflate", func() []byte {
			return appendClientFrame(nil, true, rsv1, opPong, nil)
		}},
		{"close_rsv1", ts, "permessage-deflate", func() []byte {
			return appendClientFrame(nil, true, rsv1, opClose, []byte{0x03, 0xe8})
		}},
		{"ping_rsv1_inside_message", ts, "permessage-deflate", func() []byte {
			b := appendClientFrame(nil, false, rsv1, opText, z(json1k))
			return appendClientFrame(b, true, rsv1, opPing, nil)
		}},
		{"continuation_rsv1_after_plain", ts, "permessage-deflate", func() []byte {
			b := appendClientFrame(nil, false, 0, opText, json1k[:500])
			return appendClientFrame(b, true, rsv1, opCont, json1k[500:])
		}},
		{"continuation_rsv1_after_compressed", ts, "permessage-deflate", func() []byte {
			c := z(json1k)
			b := appendClientFrame(nil, false, rsv1, opText, c[:len(c)/2])
			return appendClientFrame(b, true, rsv1, opCont, c[len(c)/2:])
		}},
		{"rsv2_data", ts, "permessage-deflate", func() []byte {
			return appendClientFrame(nil, true, rsv2, opText, json1k)
		}},
		{"rsv3_data", ts, "permessage-deflate", func() []byte {
			return appendClientFrame(nil, true, rsv3, opBinary, json1k)
		}},
		{"rsv1_rsv2_data", ts, "permessage-deflate", func() []byte {
			return appendClientFrame(nil, true, rsv1|rsv2, opText, z(json1k))
		}},
		{"rsv1_not_offered", ts, "", func() []byte {
			return appendClientFrame(nil, true, rsv1, opText, z(json1k))
		}},
		{"rsv1_declined_offer", ts, "permessage-deflate; server_max_window_bits=7", func() []byte {
			return appendClientFrame(nil, true, rsv1, opText, z(json1k))
		}},
		{"rsv1_deflate_off", tsOff, "permessage-deflate", func() []byte {
			return appendClientFrame(nil, true, rsv1, opText, z(json1k))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var offers []string
			if tc.offer != "" {
				offers = append(offers, tc.offer)
			}
			rc := dialRaw(t, tc.ts.addr, offers...)
			tc.ts.h.nextOpen(t)
			// First a good message, so the failure is not a handshake
			// artefact; on a deflate connection its echo is compressed.
			rc.write(appendClientFrame(nil, true, 0, opText, json1k))
			if m := rc.readMessage(); m.compressed != (rc.extensions() != "") {
				t.Errorf("echo RSV1 %v with Sec-WebSocket-Extensions %q", m.compressed, rc.extensions())
			}
			rc.write(tc.seq())
			rc.expectClose(1002)
			serverClose(t, tc.ts, 1002)
		})
	}
}

// TestDeflateCorrupt: a compressed message that does not inflate fails the
// connection with 1007, as the deflate package documents (ErrCorrupt);
// text that inflates to invalid UTF-8 also gets 1007.
func TestDeflateCorrupt(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil, loop.Options{Deflate: &deflate.Config{}})
	dict := jsonPayload(2000, 1)
	valid := compressMsg(t, jsonPayload(3000, 2), nil, 6)
	for _, tc := range []struct {
		name    string
		op      byte
		payload []byte
		frag    bool
	}{
		{"reserved_block_type", opBinary, []byte{0x06, 0x12, 0x34, 0x56}, false},
		{"stored_length_mismatch", opBinary, []byte{0x00, 0x05, 0x00, 0x00, 0x00, 1, 2, 3, 4, 5}, false},
		{"distance_before_start", opText, compressMsg(t, dict[:1500], dict, 6), false},
		{"truncated", opText, valid[:len(valid)/2], false},
		{"truncated_fragmented", opText, valid[:len(valid)/2], true},
		{"garbage_huffman", opBinary, bytes.Repeat([]byte{0xfd, 0xff, 0x7f}, 40), false},
		{"invalid_utf8_text", opText, compressMsg(t, append(jsonPayload(600, 3), 0xff, 0xfe), nil, 6), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := dialRaw(t, ts.addr, "permessage-deflate")
			ts.h.nextOpen(t)
			var b []byte
			if tc.frag {
				h := len(tc.payload) / 2
				b = appendClientFrame(b, false, rsv1, tc.op, tc.payload[:h])
				b = appendClientFrame(b, true, 0, opCont, tc.payload[h:])
			} else {
				b = appendClientFrame(nil, true, rsv1, tc.op, tc.payload)
			}
			rc.write(b)
			rc.expectClose(1007)
			serverClose(t, ts, 1007)
		})
	}
}

var (
	bombOnce sync.Once
	bomb     []byte // 64 MiB of zeros, compressed
)

const bombSize = 64 << 20

// zerosBomb returns one compressed message of bombSize zeros: 1 MiB of
// zeros compressed and sync-flushed, repeated (a sequence of non-final
// blocks stays valid DEFLATE when repeated: each copy starts with a
// literal and then refers to distance 1), without the final tail.
func zerosBomb(t *testing.T) []byte {
	bombOnce.Do(func() {
		chunk := append(compressMsg(t, make([]byte, 1<<20), nil, flate.BestCompression), 0x00, 0x00, 0xff, 0xff)
		b := bytes.Repeat(chunk, bombSize>>20)
		bomb = b[:len(b)-4]
	})
	return bomb
}

// TestDeflateBomb: with WithMaxMessageSize(1 MiB), a small compressed
// message that inflates to 64 MiB is stopped with 1009 quickly (bounded
// work), while another connection keeps its echo latency; a message that
// inflates to exactly the limit is accepted, one byte more is refused.
func TestDeflateBomb(t *testing.T) {
	t.Parallel()
	const limit = 1 << 20
	ts := startServer(t, nil, loop.Options{Deflate: &deflate.Config{}, MaxMessageSize: limit})
	b := zerosBomb(t)
	t.Logf("bomb: %d MiB of zeros in a %d-byte message", bombSize>>20, len(b))
	// Two of its 64 copies inflate to 2 MiB of zeros (all 64 would take
	// seconds under the race detector).
	two := b[:2*(len(b)+4)/(bombSize>>20)-4]
	if out, err := inflate(two, nil); err != nil || !bytes.Equal(out, make([]byte, 2<<20)) {
		t.Fatalf("test bug: two copies of the bomb's chunk inflate to %d bytes, %v; want 2 MiB of zeros", len(out), err)
	}

	// A bystander echoes continuously during the bomb.
	by := dialRaw(t, ts.addr, "permessage-deflate")
	ts.h.nextOpen(t)
	stop := make(chan struct{})
	type stats struct {
		n     int
		worst time.Duration
		err   string
	}
	done := make(chan stats)
	go func() {
		var st stats
		p := jsonPayload(2000, 1)
		frame := appendClientFrame(nil, true, 0, opText, p)
		for {
			select {
			case <-stop:
				done <- st
				return
			default:
			}
			start := time.Now()
			if _, err := by.c.Write(frame); err != nil {
				st.err = err.Error()
				done <- st
				return
			}
			f, err := by.readFrame(waitTimeout)
			if err != nil {
				st.err = err.Error()
				done <- st
				return
			}
			got, err := inflate(f.payload, nil)
			if err != nil || !bytes.Equal(got, p) {
				st.err = fmt.Sprintf("bystander echo wrong: %v", err)
				done <- st
				return
			}
			st.worst = max(st.worst, time.Since(start))
			st.n++
		}
	}()

	for _, tc := range []struct {
		name string
		seq  func() []byte
	}{
		{"one_frame", func() []byte { return appendClientFrame(nil, true, rsv1, opBinary, b) }},
		{"fragmented", func() []byte {
			var s []byte
			for off := 0; off < len(b); off += 1000 {
				n := min(1000, len(b)-off)
				rsv, op := byte(0), byte(opCont)
				if off == 0 {
					rsv, op = rsv1, opBinary
				}
				s = appendClientFrame(s, off+n == len(b), rsv, op, b[off:off+n])
			}
			return s
		}},
		{"text", func() []byte { return appendClientFrame(nil, true, rsv1, opText, b) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := dialRaw(t, ts.addr, "permessage-deflate")
			ts.h.nextOpen(t)
			seq := tc.seq()
			start := time.Now()
			rc.write(seq)
			d := rc.expectClose(1009)
			t.Logf("1009 after %v", d.Round(time.Millisecond))
			if since := time.Since(start); since > time.Second {
				t.Errorf("bomb: close 1009 came %v after the message; want well under 1 s (bounded inflate)", since)
			}
			serverClose(t, ts, 1009)
		})
	}

	close(stop)
	st := <-done
	t.Logf("bystander: %d round trips during the bombs, worst %v", st.n, st.worst.Round(time.Microsecond))
	if st.err != "" {
		t.Errorf("bystander: %s", st.err)
	}
	if st.n == 0 || st.worst > 500*time.Millisecond {
		t.Errorf("bystander: %d round trips, worst %v; want some, each under 500 ms", st.n, st.worst)
	}

	t.Run("limit", func(t *testing.T) {
		rc := dialRaw(t, ts.addr, "permessage-deflate")
		ts.h.nextOpen(t)
		exact := make([]byte, limit)
		exact[0], exact[limit-1] = 'a', 'z'
		rc.write(appendClientFrame(nil, true, rsv1, opBinary, compressMsg(t, exact, nil, 6)))
		m := rc.readMessage()
		got, err := inflate(m.payload, nil)
		if err != nil || !m.compressed || !bytes.Equal(got, exact) {
			t.Errorf("message inflating to exactly the limit: echo RSV1 %v, %d bytes, %v; want it echoed compressed",
				m.compressed, len(got), err)
		}
		rc.write(appendClientFrame(nil, true, rsv1, opBinary, compressMsg(t, make([]byte, limit+1), nil, 6)))
		rc.expectClose(1009)
		serverClose(t, ts, 1009)
	})

	// The server still accepts and serves new connections.
	rc := dialRaw(t, ts.addr, "permessage-deflate")
	ts.h.nextOpen(t)
	p := jsonPayload(4096, 2)
	rc.write(appendClientFrame(nil, true, 0, opText, p))
	if m := rc.readMessage(); !m.compressed {
		t.Errorf("new connection after the bombs: echo not compressed")
	}
	for _, c := range []*rawConn{rc, by} {
		c.write(appendClientFrame(nil, true, 0, opClose, []byte{0x03, 0xe8}))
		c.expectClose(1000)
		ts.h.nextClose(t)
	}
}
