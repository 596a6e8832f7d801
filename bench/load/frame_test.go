package load

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/klauspost/compress/flate"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/upgrade"
)

// recorder is a frameSink that writes down what it is told.
type recorder struct {
	events []string
	data   bytes.Buffer // payload of the message in progress
}

func (r *recorder) messageStart(op codec.OpCode, compressed bool) {
	r.data.Reset()
	r.events = append(r.events, fmt.Sprintf("start %v z=%v", op, compressed))
}
func (r *recorder) messageData(p []byte) { r.data.Write(p) }
func (r *recorder) messageEnd() {
	r.events = append(r.events, fmt.Sprintf("end %d %q", r.data.Len(), short16(r.data.Bytes())))
}
func (r *recorder) control(op codec.OpCode, p []byte) {
	r.events = append(r.events, fmt.Sprintf("control %v %q", op, p))
}

func short16(p []byte) []byte { return p[:min(len(p), 16)] }

// serverFrame appends an unmasked server frame.
func serverFrame(dst []byte, fin bool, rsv byte, op codec.OpCode, payload []byte) []byte {
	return codec.AppendFrame(dst, codec.Header{Fin: fin, Rsv: rsv, OpCode: op}, payload)
}

// stream is a server byte stream with every kind of frame the reader meets.
func stream() ([]byte, []string) {
	big := bytes.Repeat([]byte("0123456789"), 6554) // 65540 B: 64-bit length
	mid := bytes.Repeat([]byte("x"), 126)           // 16-bit length
	var b []byte
	b = serverFrame(b, true, 0, codec.OpText, []byte("hello"))
	b = serverFrame(b, true, 0, codec.OpBinary, nil) // empty message
	b = serverFrame(b, false, 0, codec.OpText, []byte("frag-"))
	b = serverFrame(b, true, 0, codec.OpPing, []byte("ping!")) // between fragments
	b = serverFrame(b, false, 0, codec.OpContinuation, nil)
	b = serverFrame(b, true, 0, codec.OpContinuation, []byte("mented"))
	b = serverFrame(b, true, 0, codec.OpBinary, mid)
	b = serverFrame(b, true, 0, codec.OpBinary, big)
	b = serverFrame(b, true, 0, codec.OpPong, nil)
	b = serverFrame(b, true, codec.Rsv1, codec.OpBinary, []byte{1, 2, 3})
	b = serverFrame(b, true, 0, codec.OpClose, codec.AppendClose(nil, 1000, "bye"))
	want := []string{
		`start OpText z=false`, `end 5 "hello"`,
		`start OpBinary z=false`, `end 0 ""`,
		`start OpText z=false`, `control OpPing "ping!"`, `end 11 "frag-mented"`,
		`start OpBinary z=false`, `end 126 "xxxxxxxxxxxxxxxx"`,
		`start OpBinary z=false`, `end 65540 "0123456789012345"`,
		`control OpPong ""`,
		`start OpBinary z=true`, `end 3 "\x01\x02\x03"`,
		`control OpClose "\x03\xe8bye"`,
	}
	return b, want
}

func TestFrameReaderSplits(t *testing.T) {
	t.Parallel()
	full, want := stream()
	splits := map[string]func(p []byte) [][]byte{
		"one shot": func(p []byte) [][]byte { return [][]byte{p} },
		"byte by byte": func(p []byte) [][]byte {
			out := make([][]byte, len(p))
			for i := range p {
				out[i] = p[i : i+1]
			}
			return out
		},
		"random chunks": func(p []byte) [][]byte {
			r := rand.New(rand.NewPCG(5, 6))
			var out [][]byte
			for len(p) > 0 {
				n := min(len(p), 1+r.IntN(40))
				if r.IntN(10) == 0 {
					n = min(len(p), 1+r.IntN(5000))
				}
				out = append(out, p[:n])
				p = p[n:]
			}
			return out
		},
	}
	for name, split := range splits {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var rd frameReader
			rd.reset(codec.Rsv1, 0)
			var rec recorder
			for _, piece := range split(full) {
				// The reader must not keep the caller's slice: scribble
				// over each piece after feeding it.
				buf := append([]byte(nil), piece...)
				if err := rd.feed(buf, &rec); err != nil {
					t.Fatalf("feed: %v", err)
				}
				for i := range buf {
					buf[i] = 0xEE
				}
			}
			if !reflect.DeepEqual(rec.events, want) {
				t.Errorf("events:\n%s\nwant:\n%s", strings.Join(rec.events, "\n"), strings.Join(want, "\n"))
			}
			if err := rd.feed([]byte{0x81, 0}, &rec); !errors.Is(err, errClosedRead) {
				t.Errorf("data after close: err = %v, want errClosedRead", err)
			}
		})
	}
}

func TestFrameReaderErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []byte
		rsv  byte
		want error
	}{
		{"masked server frame", codec.AppendFrame(nil, codec.Header{Fin: true, OpCode: codec.OpText, Masked: true}, []byte("x")), 0, codec.ErrMaskForbidden},
		{"rsv1 without deflate", serverFrame(nil, true, codec.Rsv1, codec.OpText, []byte("x")), 0, codec.ErrReservedBits},
		{"continuation first", serverFrame(nil, true, 0, codec.OpContinuation, []byte("x")), 0, codec.ErrUnexpectedContinuation},
		{"reserved opcode", []byte{0x83, 0}, 0, codec.ErrReservedOpcode},
		{"long ping", serverFrame(nil, true, 0, codec.OpPing, make([]byte, 126)), 0, codec.ErrControlTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, byteByByte := range []bool{false, true} {
				var rd frameReader
				rd.reset(tt.rsv, 0)
				var err error
				if byteByByte {
					for i := 0; i < len(tt.in) && err == nil; i++ {
						err = rd.feed(tt.in[i:i+1], &recorder{})
					}
				} else {
					err = rd.feed(tt.in, &recorder{})
				}
				if !errors.Is(err, tt.want) {
					t.Errorf("byteByByte=%v: err = %v, want %v", byteByByte, err, tt.want)
				}
			}
		})
	}
}

func TestTemplateInflates(t *testing.T) {
	t.Parallel()
	for _, prefix := range []string{"", bcastPrefix} {
		for _, size := range []int{MinSize, MinSize + 1, 64, 4096, 70000} {
			fill := filler(size)
			tm, err := newTemplate(prefix, size, fill, true)
			if err != nil {
				t.Fatal(err)
			}
			putMsgHeader(tm.z[tm.zHead:], 42, 123456789, size)
			putMsgHeader(tm.plain[len(prefix):], 42, 123456789, size)
			var ls loopState
			got, err := ls.inflate(nil, append([]byte(nil), tm.z...), nil, len(prefix)+size)
			if err != nil {
				t.Fatalf("prefix %q size %d: inflate: %v", prefix, size, err)
			}
			if !bytes.Equal(got, tm.plain) {
				t.Fatalf("prefix %q size %d: inflated message differs", prefix, size)
			}
			seq, ts, sz, err := parseMsgHeader(got[len(prefix):])
			if err != nil || seq != 42 || ts != 123456789 || sz != size&0xffff {
				t.Fatalf("header = %d %d %d %v", seq, ts, sz, err)
			}
			if size >= 4096 && len(tm.z) > size*7/10 {
				t.Errorf("size %d compresses to %d: filler too random", size, len(tm.z))
			}
		}
	}
	if _, err := newTemplate("", MinSize-1, filler(MinSize), false); err == nil {
		t.Error("size below MinSize accepted")
	}
}

// testConn is a connection of an echo worker that is not attached to
// gnet, for feeding bytes straight into its parser.
func testConn(t *testing.T, size int, deflate bool) *wsConn {
	t.Helper()
	w := &worker{spec: Spec{Scenario: ScenarioEcho, Size: size, Deflate: deflate, Subprotocol: "chat"}, op: codec.OpBinary, fill: filler(size)}
	var err error
	if w.tmpl, err = newTemplate("", size, w.fill, deflate); err != nil {
		t.Fatal(err)
	}
	tg := &Target{Host: "example.com:80", Path: "/chat?x=1"}
	w.req = newRequest(tg, []string{"Authorization: Bearer x"}, "chat", deflate, false)
	ls := &loopState{w: w, rnd: rng{x: 99}}
	ws := &wsConn{w: w, ls: ls, state: stHandshake}
	newKey(&ws.key, &ls.rnd)
	return ws
}

// echoBytes is what a server sends back for messages 1..n of ws's size:
// a 101 response, then the messages, split over frames, with a ping.
func echoBytes(t *testing.T, ws *wsConn, n int, compress bool) []byte {
	t.Helper()
	w := ws.w
	var b []byte
	b = append(b, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	b = upgrade.AppendAccept(b, ws.key[:])
	b = append(b, "\r\nSec-WebSocket-Protocol: chat\r\n"...)
	if compress {
		b = append(b, "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"...)
	}
	b = append(b, "\r\n"...)
	msg := append([]byte(nil), w.tmpl.plain...)
	for seq := 1; seq <= n; seq++ {
		putMsgHeader(msg, uint32(seq), int64(seq)*1000, w.spec.Size)
		switch {
		case compress:
			var zb bytes.Buffer
			fw, _ := flate.NewWriter(&zb, 1)
			fw.Write(msg)
			fw.Flush()
			z := bytes.TrimSuffix(zb.Bytes(), []byte{0, 0, 0xff, 0xff})
			b = serverFrame(b, true, codec.Rsv1, codec.OpBinary, z)
		case seq%2 == 0: // in two frames with a ping between
			h := len(msg) / 3
			b = serverFrame(b, false, 0, codec.OpBinary, msg[:h])
			b = serverFrame(b, true, 0, codec.OpPing, []byte("p"))
			b = serverFrame(b, true, 0, codec.OpContinuation, msg[h:])
		default:
			b = serverFrame(b, true, 0, codec.OpBinary, msg)
		}
	}
	return b
}

// feedConn feeds b to ws in pieces of the given size, as OnTraffic does.
func feedConn(t *testing.T, ws *wsConn, b []byte, piece int) {
	t.Helper()
	for len(b) > 0 {
		n := min(piece, len(b))
		buf := append([]byte(nil), b[:n]...)
		b = b[n:]
		if ws.state == stHandshake {
			rest, done, err := ws.handshake(buf)
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if !done {
				continue
			}
			buf = rest
		}
		if err := ws.rd.feed(buf, ws); err != nil {
			t.Fatalf("feed: %v", err)
		}
	}
}

func TestConnVerifiesByteByByte(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		size    int
		deflate bool
		piece   int
	}{
		{"64 B byte by byte", 64, false, 1},
		{"4 KiB byte by byte", 4096, false, 1},
		{"4 KiB in 1000-byte reads", 4096, false, 1000},
		{"70000 B one shot", 70000, false, 1 << 20},
		{"deflate byte by byte", 300, true, 1},
		{"deflate 4 KiB in 7-byte reads", 4096, true, 7},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ws := testConn(t, tt.size, tt.deflate)
			const n = 6
			feedConn(t, ws, echoBytes(t, ws, n, tt.deflate), tt.piece)
			c := ws.w.snapshot()
			if c.Handshakes != 1 || c.Recv != n || c.Errors() != 0 {
				t.Fatalf("counters %+v, want 1 handshake, %d received, no errors (samples %v)", c, n, ws.w.samples)
			}
			if tt.deflate && c.Compressed != n {
				t.Fatalf("compressed = %d, want %d", c.Compressed, n)
			}
			if !tt.deflate && len(ws.ls.out) == 0 {
				t.Fatal("pings not answered")
			}
		})
	}
}

func TestConnDetectsBadMessages(t *testing.T) {
	t.Parallel()
	const size = 100
	tests := []struct {
		name   string
		mangle func(msgs [][]byte) [][]byte
		check  func(c Counters) bool
	}{
		{"flipped filler byte", func(m [][]byte) [][]byte { m[1][90] ^= 1; return m },
			func(c Counters) bool { return c.BadPayload == 1 && c.Recv == 2 && c.BadOrder == 0 }},
		// An unreadable sequence number costs the next message too: it
		// cannot be told from a gap.
		{"flipped header byte", func(m [][]byte) [][]byte { m[0][3] = 'z'; return m },
			func(c Counters) bool { return c.BadPayload == 1 && c.BadOrder == 1 && c.Recv == 1 }},
		{"flipped length field", func(m [][]byte) [][]byte { m[0][23] = '5'; return m },
			func(c Counters) bool { return c.BadPayload == 1 && c.BadOrder == 0 && c.Recv == 2 }},
		{"short message", func(m [][]byte) [][]byte { m[2] = m[2][:size-1]; return m },
			func(c Counters) bool { return c.BadPayload == 1 && c.Recv == 2 }},
		{"long message", func(m [][]byte) [][]byte { m[2] = append(m[2], 'x'); return m },
			func(c Counters) bool { return c.BadPayload == 1 && c.Recv == 2 }},
		{"reordered", func(m [][]byte) [][]byte { m[0], m[1] = m[1], m[0]; return m },
			func(c Counters) bool { return c.BadOrder >= 1 }},
		{"repeated", func(m [][]byte) [][]byte { m[1] = m[0]; return m },
			func(c Counters) bool { return c.BadOrder >= 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ws := testConn(t, size, false)
			ws.state = stOpen
			ws.nextSend, ws.nextRecv = 4, 1
			ws.rd.reset(0, 0)
			var msgs [][]byte
			for seq := 1; seq <= 3; seq++ {
				m := append([]byte(nil), ws.w.tmpl.plain...)
				putMsgHeader(m, uint32(seq), 5, size)
				msgs = append(msgs, m)
			}
			var b []byte
			for _, m := range tt.mangle(msgs) {
				b = serverFrame(b, true, 0, codec.OpBinary, m)
			}
			feedConn(t, ws, b, 3)
			if c := ws.w.snapshot(); !tt.check(c) {
				t.Fatalf("counters %+v (samples %v)", c, ws.w.samples)
			}
		})
	}
}

func TestHandshakeRejects(t *testing.T) {
	t.Parallel()
	key := []byte("dGhlIHNhbXBsZSBub25jZQ==")
	accept := string(upgrade.AppendAccept(nil, key))
	ok := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n"
	tests := []struct {
		name    string
		resp    string
		proto   string
		deflate bool
		want    error
	}{
		{"ok", ok + "\r\n", "", false, nil},
		{"ok with deflate", ok + "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\r\n", "", true, nil},
		{"400", "HTTP/1.1 400 Bad Request\r\n\r\n", "", false, errRespStatus},
		{"wrong accept", "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n", "", false, errRespAccept},
		{"no upgrade", "HTTP/1.1 101 OK\r\nConnection: upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n\r\n", "", false, errRespUpgrade},
		{"unoffered protocol", ok + "Sec-WebSocket-Protocol: chat\r\n\r\n", "", false, errRespProto},
		{"protocol refused", ok + "\r\n", "chat", false, errRespNoProto},
		{"unoffered extension", ok + "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n", "", false, errRespExt},
		{"takeover kept", ok + "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n", "", true, errRespNoTakeover},
		{"deflate refused", ok + "\r\n", "", true, errRespNoDeflate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseResponse([]byte(tt.resp), key, tt.proto, tt.deflate, false)
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestRequest(t *testing.T) {
	t.Parallel()
	tg, err := ParseTarget("ws://localhost:9/a/b?c=d")
	if err != nil {
		t.Fatal(err)
	}
	if tg.Path != "/a/b?c=d" || tg.Host != "localhost:9" || !tg.Loopback {
		t.Fatalf("target %+v", tg)
	}
	rt := newRequest(tg, []string{"X-A: 1"}, "p1", true, false)
	var key [24]byte
	newKey(&key, &rng{x: 7})
	req := rt.appendRequest(nil, key[:])
	var r upgrade.Request
	r.Reset(nil)
	n, err := r.Parse(req)
	if err != nil || n != len(req) {
		t.Fatalf("the library's parser rejects the request: n=%d err=%v\n%s", n, err, req)
	}
	if string(r.Key()) != string(key[:]) || string(r.Header("X-A")) != "1" || string(r.Header("Sec-WebSocket-Protocol")) != "p1" {
		t.Fatalf("request fields wrong:\n%s", req)
	}
	if _, err := ParseTarget("wss://x/"); err == nil {
		t.Error("wss accepted")
	}
}
