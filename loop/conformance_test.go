//go:build !windows

package loop_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/wsgate/wsgate/loop"
	"github.com/wsgate/wsgate/upgrade"
)

// The RFC 6455 conformance suite. It takes the place of the Autobahn
// testsuite (cases 1–7: framing, ping/pong, reserved bits, opcodes,
// fragmentation, UTF-8, close handling) plus the opening handshake, limits
// and timeouts, and is stricter where Autobahn says "NON-STRICT": a
// protocol violation must be answered by a close frame with the exact code
// before the TCP connection ends, an invalid text message must fail as
// soon as the bad byte is in, and a message accepted before a violation
// must still be echoed.
//
// Every case is a script run by a raw TCP client against an echo server,
// in two modes: "whole" writes each send step at once, "bytes" writes one
// byte per Write (TCP_NODELAY, ~100 µs apart) so that the server sees
// every request, header and payload cut at every byte boundary.

type stepKind int

const (
	sSend   stepKind = iota // write data (and/or an upgrade request)
	sMsg                    // expect a message (the server may fragment it)
	sFrame                  // expect exactly one frame
	sPing                   // expect a ping; answer it with a pong when answer is set
	sClose                  // expect a close frame with one of codes
	sEOF                    // expect the TCP connection to end, with nothing more before it
	sQuiet                  // expect nothing for d
	sHTTP                   // expect an HTTP response with status
	sPause                  // sleep d
	sHangup                 // close the TCP connection without a closing handshake
)

type step struct {
	kind      stepKind
	data      []byte
	req       *reqSpec // sSend: an upgrade request for the server, before data
	bulk      int      // sSend: byte mode bulk limit (0 default, -1 none)
	lax       bool     // byte mode only: the server may close while we write, and may reset
	fin       bool
	op        byte
	payload   []byte
	codes     []int // sClose: accepted codes, -1 for an empty payload
	status    int
	hdr       []string // sHTTP: "Name: token" the response must carry
	answer    bool
	skipPings bool // sMsg, sClose: server pings may come first (RFC 6455 §5.5.2 allows them at any time)
	d         time.Duration
	notBefore time.Duration // an expectation met sooner than this after the last write fails
}

func send(parts ...[]byte) step { return step{kind: sSend, data: cat(parts...)} }

// sendLax is a send during which the server may legitimately close (the
// bytes come after a close frame or a rejected request).
func sendLax(parts ...[]byte) step { return step{kind: sSend, data: cat(parts...), lax: true} }

func sendReq(r reqSpec, tail ...[]byte) step {
	return step{kind: sSend, req: &r, data: cat(tail...)}
}

func msg(op byte, p []byte) step  { return step{kind: sMsg, op: op, payload: p} }
func text(s string) step          { return msg(opText, []byte(s)) }
func pong(p string) step          { return step{kind: sFrame, fin: true, op: opPong, payload: []byte(p)} }
func expectPing(answer bool) step { return step{kind: sPing, answer: answer} }
func closeWith(codes ...int) step { return step{kind: sClose, codes: codes} }
func eof() step                   { return step{kind: sEOF} }
func eofLax() step                { return step{kind: sEOF, lax: true} }
func quiet(d time.Duration) step  { return step{kind: sQuiet, d: d} }
func pause(d time.Duration) step  { return step{kind: sPause, d: d} }
func hangup() step                { return step{kind: sHangup} }
func status(code int, hdr ...string) step {
	return step{kind: sHTTP, status: code, hdr: hdr}
}

func (s step) after(d time.Duration) step { s.notBefore = d; return s }
func (s step) allBytes() step             { s.bulk = -1; return s }
func (s step) laxed() step                { s.lax = true; return s }
func (s step) afterPings() step           { s.skipPings = true; return s }

func (s step) String() string {
	switch s.kind {
	case sSend:
		d := s.data
		if len(d) > 48 {
			d = d[:48]
		}
		r := ""
		if s.req != nil {
			r = "request+"
		}
		return fmt.Sprintf("send %s%d bytes %x…", r, len(s.data), d)
	case sMsg:
		return fmt.Sprintf("expect message op=%#x len=%d", s.op, len(s.payload))
	case sFrame:
		return fmt.Sprintf("expect frame op=%#x payload=%q", s.op, s.payload)
	case sPing:
		return "expect ping"
	case sClose:
		return fmt.Sprintf("expect close %v", s.codes)
	case sEOF:
		return "expect TCP close"
	case sQuiet:
		return fmt.Sprintf("expect nothing for %v", s.d)
	case sHTTP:
		return fmt.Sprintf("expect HTTP %d", s.status)
	case sPause:
		return fmt.Sprintf("pause %v", s.d)
	case sHangup:
		return "hang up"
	}
	return "?"
}

// closeWant is what Handler.OnClose must receive.
type closeWant struct {
	code   int
	remote bool
	reason *string
	err    error         // errors.Is(err, ...), if set
	within time.Duration // after the last step, if set
}

type confCase struct {
	name     string
	srv      string        // shared server by name ("" = "default")
	opts     *loop.Options // if set: a server of its own with these options
	raw      bool          // the steps do the opening handshake themselves
	pre      int           // upgraded connections opened (and held) first
	steps    []step
	closed   *closeWant // nil only for connections that are never upgraded
	keepOpen bool       // wait for OnClose with the socket still open
}

func (c confCase) on(srv string) confCase       { c.srv = srv; return c }
func (c confCase) with(o loop.Options) confCase { c.opts = &o; return c }

func sptr(s string) *string { return &s }

// bye is the normal closing handshake that ends every successful case.
var bye = []step{send(closeFrame(1000, "bye")), closeWith(1000), eof()}

// ok is a case that must succeed and then close normally.
func ok(name string, steps ...step) confCase {
	return confCase{name: name, steps: append(steps, bye...),
		closed: &closeWant{code: 1000, remote: true, reason: sptr("bye")}}
}

// fail is a case after whose steps the server must fail the connection
// with code: a close frame, then the end of the TCP stream. Once it has
// failed the connection the server may drop it (RFC 6455 §7.1.7), so in
// byte mode the bytes that follow the violation may meet a reset.
func fail(name string, code int, steps ...step) confCase {
	c := confCase{name: name, steps: append(steps, closeWith(code), eof()),
		closed: &closeWant{code: code}}
	return c.lax()
}

// peerClose is a case where the client closes with code; the server must
// answer with one of answer.
func peerClose(name string, code int, reason string, steps []step, answer ...int) confCase {
	return confCase{name: name, steps: append(steps, closeWith(answer...), eof()),
		closed: &closeWant{code: code, remote: true, reason: sptr(reason)}}
}

// rejected is an opening handshake the server must refuse with status.
func rejected(name string, r reqSpec, code int, hdr ...string) confCase {
	return confCase{name: name, raw: true, steps: []step{
		sendReq(r).laxed(), status(code, hdr...), eofLax(),
	}}
}

// textPattern is n bytes of printable ASCII with no period of 4.
func textPattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = ' ' + byte((i*7+i/95)%95)
	}
	return b
}

// Named shared servers and their options.
func sharedServers() map[string]loop.Options {
	return map[string]loop.Options{
		"default": {},
		"small":   {MaxMessageSize: 4096},
		"idle":    {HandshakeTimeout: 5 * time.Second, PingInterval: 300 * time.Millisecond, IdleTimeout: time.Second},
		"hs":      {HandshakeTimeout: 500 * time.Millisecond},
		"origins": {AllowedOrigins: []string{"https://app.example"}},
	}
}

func conformanceCases() []confCase {
	var cs []confCase
	add := func(c ...confCase) { cs = append(cs, c...) }

	// ---- §5.2 framing and payload lengths (Autobahn 1.1, 1.2) ----
	for _, n := range []int{0, 1, 125, 126, 127, 128, 1000, 65535, 65536, 1<<20 - 1, 1 << 20} {
		tp, bp := textPattern(n), pattern(n)
		add(ok(fmt.Sprintf("framing.text.len%d", n), send(frame(true, opText, tp)), msg(opText, tp)))
		add(ok(fmt.Sprintf("framing.binary.len%d", n), send(frame(true, opBinary, bp)), msg(opBinary, bp)))
	}
	{
		var frames []byte
		var expect []step
		for i := range 100 {
			s := fmt.Sprintf("message %d", i)
			frames = append(frames, textFrame(s)...)
			expect = append(expect, text(s))
		}
		add(ok("framing.pipelined.100", append([]step{send(frames)}, expect...)...))
	}
	add(ok("framing.text.then.binary.same.write",
		send(textFrame("text"), binFrame([]byte{0, 1, 0xff})), text("text"), msg(opBinary, []byte{0, 1, 0xff})))
	// RFC 6455 §5.2: "the minimal number of bytes MUST be used to encode the length".
	for _, v := range []struct {
		n   int
		enc int
	}{{0, enc16}, {5, enc16}, {125, enc16}, {5, enc64}, {126, enc64}, {65535, enc64}} {
		name := fmt.Sprintf("framing.nonminimal.len%d.%dbit", v.n, map[int]int{enc16: 16, enc64: 64}[v.enc])
		add(fail(name, 1002, send(rawFrame(fin(opBinary), pattern(v.n), v.enc, false))))
	}
	// RFC 6455 §5.2: the most significant bit of a 64-bit length MUST be 0.
	add(fail("framing.len64.topbit", 1002, send(appendHeader(nil, fin(opBinary), 1<<63|5, enc64, false))))

	// ---- §5.5.2, §5.5.3 ping and pong (Autobahn 2) ----
	add(ok("ping.empty", send(pingFrame("")), pong("")))
	add(ok("ping.text", send(pingFrame("Hello, world!")), pong("Hello, world!")))
	add(ok("ping.binary", send(frame(true, opPing, []byte{0, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0})),
		pong(string([]byte{0, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0}))))
	add(ok("ping.len125", send(frame(true, opPing, pattern(125))), pong(string(pattern(125)))))
	add(fail("ping.len126", 1002, send(frame(true, opPing, pattern(126)))))
	add(fail("ping.len126.header.only", 1002, send(header(fin(opPing), 126))))
	// Fail fast: a control frame with FIN clear is refused on its first byte.
	add(fail("ping.fragmented.first.byte.only", 1002, send([]byte{opPing})))
	add(fail("ping.fragmented", 1002, send(frame(false, opPing, []byte("frag")), frame(true, opCont, []byte("ment")))))
	add(fail("pong.fragmented", 1002, send(frame(false, opPong, []byte("frag")), frame(true, opCont, []byte("ment")))))
	add(ok("pong.unsolicited.empty", send(pongFrame(""), textFrame("after")), text("after")))
	add(ok("pong.unsolicited.payload", send(pongFrame("unsolicited"), textFrame("after")), text("after")))
	add(ok("pong.then.ping", send(pongFrame("unsolicited"), pingFrame("solicited")), pong("solicited")))
	{
		var pings []byte
		var pongs []step
		for i := range 10 {
			p := fmt.Sprintf("ping-%d", i)
			pings = append(pings, pingFrame(p)...)
			pongs = append(pongs, pong(p))
		}
		add(ok("ping.ten", append([]step{send(pings)}, pongs...)...))
	}
	add(ok("ping.separate.writes", send(pingFrame("one")), pong("one"), send(pingFrame("two")), pong("two")))

	// ---- §5.2 reserved bits (Autobahn 3) ----
	for _, v := range []struct {
		name string
		b0   byte
		p    []byte
	}{
		{"text.rsv1", 0x80 | 0x40 | opText, []byte("rsv1")},
		{"binary.rsv2", 0x80 | 0x20 | opBinary, []byte{1, 2}},
		{"text.rsv3", 0x80 | 0x10 | opText, []byte("rsv3")},
		{"text.rsv13", 0x80 | 0x50 | opText, nil},
		{"binary.rsv123", 0x80 | 0x70 | opBinary, []byte{0xff}},
		{"ping.rsv1", 0x80 | 0x40 | opPing, []byte("p")},
		{"ping.rsv123", 0x80 | 0x70 | opPing, nil},
		{"pong.rsv2", 0x80 | 0x20 | opPong, nil},
		{"close.rsv3", 0x80 | 0x10 | opClose, closePayload(1000, "")},
	} {
		add(fail("rsv."+v.name, 1002, send(rawFrame(v.b0, v.p, encMin, false))))
	}
	{
		// permessage-deflate offered but not enabled on the server: the 101
		// carries no extension (checked for every 101), so RSV1 is still
		// reserved.
		c := fail("rsv.rsv1.after.declined.deflate.offer", 1002,
			sendReq(reqSpec{extra: []string{"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"}}),
			status(101), send(rawFrame(0x80|0x40|opText, []byte("x"), encMin, false)))
		c.raw = true
		add(c)
	}
	add(fail("rsv.continuation.rsv1", 1002,
		send(frame(false, opText, []byte("a")), rawFrame(0x80|0x40|opCont, []byte("b"), encMin, false))))

	// ---- §5.2 reserved opcodes (Autobahn 4) ----
	for _, op := range []byte{3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF} {
		add(fail(fmt.Sprintf("opcode.reserved.%#x", op), 1002, send(rawFrame(fin(op), nil, encMin, false))))
		add(fail(fmt.Sprintf("opcode.reserved.%#x.payload", op), 1002, send(rawFrame(fin(op), []byte("reserved"), encMin, false))))
	}

	add(fail("opcode.reserved.inside.fragmented.message", 1002,
		send(frame(false, opText, []byte("a")), rawFrame(fin(0x4), nil, encMin, false), frame(true, opCont, []byte("b")))))

	// A message accepted before the violation is echoed before the close
	// (Autobahn 3.2, 4.1.3, 4.2.3, 5.15: "NON-STRICT" if it is lost).
	add(fail("order.echo.before.rsv", 1002,
		send(textFrame("Hello, world!"), rawFrame(0x80|0x20|opText, []byte("Hello, world!"), encMin, false), pingFrame("")),
		text("Hello, world!")))
	add(fail("order.echo.before.opcode5", 1002,
		send(textFrame("Hello, world!"), rawFrame(fin(5), nil, encMin, false), pingFrame("")), text("Hello, world!")))
	add(fail("order.echo.before.opcodeD", 1002,
		send(textFrame("Hello, world!"), rawFrame(fin(0xD), []byte("reserved"), encMin, false), pingFrame("")), text("Hello, world!")))
	add(fail("order.echo.before.orphan.continuation", 1002,
		send(frame(false, opText, []byte("frag1")), frame(true, opCont, []byte("frag2")),
			frame(false, opCont, []byte("frag3")), frame(true, opCont, []byte("frag4"))),
		text("frag1frag2")))
	add(fail("order.pong.before.violation", 1002,
		send(pingFrame("first"), rawFrame(fin(3), nil, encMin, false)), pong("first")))

	// ---- §5.4 fragmentation (Autobahn 5) ----
	add(ok("frag.text.2", send(frame(false, opText, []byte("fragment1")), frame(true, opCont, []byte("fragment2"))),
		text("fragment1fragment2")))
	add(ok("frag.binary.2", send(frame(false, opBinary, []byte{1, 2}), frame(true, opCont, []byte{3})),
		msg(opBinary, []byte{1, 2, 3})))
	// The message is not delivered before its final fragment.
	add(ok("frag.text.2.separate.writes", send(frame(false, opText, []byte("fragment1"))), quiet(100*time.Millisecond),
		send(frame(true, opCont, []byte("fragment2"))), text("fragment1fragment2")))
	{
		var frames []byte
		s := "0123456789abcdefghij"
		for i := range s {
			op := opCont
			if i == 0 {
				op = opText
			}
			frames = append(frames, frame(i == len(s)-1, op, []byte(s[i:i+1]))...)
		}
		add(ok("frag.text.20.fragments", send(frames), text(s)))
		var big []byte
		p := pattern(64 << 10)
		for i := 0; i < len(p); i += 4 << 10 {
			op := opCont
			if i == 0 {
				op = opBinary
			}
			big = append(big, frame(i+4<<10 >= len(p), op, p[i:i+4<<10])...)
		}
		add(ok("frag.binary.16x4KiB", send(big), msg(opBinary, p)))
	}
	add(ok("frag.ping.between", send(frame(false, opText, []byte("fragment1")), pingFrame("ping"), frame(true, opCont, []byte("fragment2"))),
		pong("ping"), text("fragment1fragment2")))
	// The pong is sent while the message is still open.
	add(ok("frag.ping.between.answered.at.once",
		send(frame(false, opText, []byte("Hello, ")), pingFrame("p1")), pong("p1"),
		send(frame(false, opCont, []byte("world")), pingFrame("p2")), pong("p2"),
		send(frame(true, opCont, []byte("!"))), text("Hello, world!")))
	{
		var frames []byte
		var pongs []step
		for i := range 5 {
			op := opCont
			if i == 0 {
				op = opText
			}
			frames = append(frames, frame(i == 4, op, []byte(fmt.Sprintf("f%d", i)))...)
			if i < 4 {
				frames = append(frames, pingFrame(fmt.Sprintf("p%d", i))...)
				pongs = append(pongs, pong(fmt.Sprintf("p%d", i)))
			}
		}
		add(ok("frag.pings.between.all", append(append([]step{send(frames)}, pongs...), text("f0f1f2f3f4"))...))
	}
	add(ok("frag.unsolicited.pong.between", send(frame(false, opText, []byte("a")), pongFrame("x"), frame(true, opCont, []byte("b"))), text("ab")))
	add(fail("frag.continuation.without.start.fin", 1002, send(frame(true, opCont, []byte("orphan")))))
	add(fail("frag.continuation.without.start.nofin", 1002, send(frame(false, opCont, []byte("orphan")))))
	add(fail("frag.continuation.after.complete.message", 1002, send(textFrame("done")), text("done"), send(frame(true, opCont, []byte("more")))))
	add(fail("frag.text.inside.fragmented", 1002, send(frame(false, opText, []byte("a")), frame(true, opText, []byte("b")))))
	add(fail("frag.binary.inside.fragmented", 1002, send(frame(false, opText, []byte("a")), frame(false, opBinary, []byte("b")))))
	add(fail("frag.text.inside.fragmented.binary", 1002, send(frame(false, opBinary, []byte("a")), textFrame("b"))))
	add(ok("frag.zero.length.all", send(frame(false, opText, nil), frame(false, opCont, nil), frame(true, opCont, nil)), text("")))
	add(ok("frag.zero.length.first", send(frame(false, opText, nil), frame(true, opCont, []byte("abc"))), text("abc")))
	add(ok("frag.zero.length.last", send(frame(false, opText, []byte("abc")), frame(true, opCont, nil)), text("abc")))
	add(ok("frag.zero.length.middle", send(frame(false, opBinary, []byte{1}), frame(false, opCont, nil), frame(false, opCont, nil), frame(true, opCont, []byte{2})),
		msg(opBinary, []byte{1, 2})))
	add(ok("frag.two.messages", send(frame(false, opText, []byte("a")), frame(true, opCont, []byte("b")),
		frame(false, opBinary, []byte{9}), frame(true, opCont, []byte{8})), text("ab"), msg(opBinary, []byte{9, 8})))

	// ---- §8.1 UTF-8 (Autobahn 6) ----
	valid := []struct{ name, s string }{
		{"ascii", "Hello-µ@ßöäüàá-UTF-8!!"},
		{"greek", "κόσμε"},
		{"nul", "\x00"},
		{"del", "\x7f"},
		{"2byte.first", "\xc2\x80"},
		{"2byte.last", "\xdf\xbf"},
		{"3byte.first", "\xe0\xa0\x80"},
		{"3byte.before.surrogates", "\xed\x9f\xbf"},
		{"3byte.after.surrogates", "\xee\x80\x80"},
		{"replacement", "\xef\xbf\xbd"},
		{"bom", "\xef\xbb\xbf"},
		{"noncharacter.fdd0", "\xef\xb7\x90"},
		{"3byte.last", "\xef\xbf\xbf"},
		{"4byte.first", "\xf0\x90\x80\x80"},
		{"4byte.gclef", "𝄞"},
		{"4byte.last", "\xf4\x8f\xbf\xbf"},
		{"mixed", "a€𝄞κ\x00z"},
	}
	for _, v := range valid {
		add(ok("utf8.valid."+v.name, send(textFrame(v.s)), text(v.s)))
	}
	invalid := []struct{ name, s string }{
		{"lone.continuation", "\x80"},
		{"lone.continuation.bf", "\xbf"},
		{"overlong.nul", "\xc0\x80"},
		{"overlong.c1", "\xc1\xbf"},
		{"truncated.2byte", "\xc2"},
		{"lead.then.ascii", "a\xc2b"},
		{"overlong.3byte", "\xe0\x80\x80"},
		{"overlong.3byte.max", "\xe0\x9f\xbf"},
		{"surrogate.high", "\xed\xa0\x80"},
		{"surrogate.low", "\xed\xbf\xbf"},
		{"surrogate.pair", "\xed\xa0\x80\xed\xb0\x80"},
		{"truncated.3byte", "\xe1\x80"},
		{"overlong.4byte", "\xf0\x80\x80\x80"},
		{"overlong.4byte.max", "\xf0\x8f\xbf\xbf"},
		{"above.10ffff", "\xf4\x90\x80\x80"},
		{"f5", "\xf5\x80\x80\x80"},
		{"5byte", "\xf8\x88\x80\x80\x80"},
		{"6byte", "\xfc\x84\x80\x80\x80\x80"},
		{"fe", "\xfe"},
		{"ff", "\xff"},
		{"truncated.4byte", "\xf0\x9d\x84"},
		{"kosme.surrogate.edited", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64"},
	}
	for _, v := range invalid {
		add(fail("utf8.invalid."+v.name, 1007, send(textFrame(v.s))))
	}
	add(ok("utf8.binary.not.checked", send(binFrame([]byte("\xff\xfe\xc0\x80"))), msg(opBinary, []byte("\xff\xfe\xc0\x80"))))
	{
		// Autobahn 6.2.x: a valid text split into two fragments at every position.
		s := "Hello-µ@ßöäüàá-UTF-8!!"
		var steps []step
		for i := 0; i <= len(s); i++ {
			steps = append(steps, send(frame(false, opText, []byte(s[:i])), frame(true, opCont, []byte(s[i:]))), text(s))
		}
		add(ok("utf8.split.every.position", steps...))
		k := "κόσμε"
		var frames []byte
		for i := range len(k) {
			op := opCont
			if i == 0 {
				op = opText
			}
			frames = append(frames, frame(i == len(k)-1, op, []byte{k[i]})...)
		}
		add(ok("utf8.one.byte.per.fragment", send(frames), text(k)))
	}
	add(ok("utf8.4byte.split.2.fragments", send(frame(false, opText, []byte("\xf0\x9d")), frame(true, opCont, []byte("\x84\x9e"))), text("𝄞")))
	add(ok("utf8.4byte.split.around.empty.fragment", send(frame(false, opText, []byte("\xf0")), frame(false, opCont, nil),
		frame(false, opCont, []byte("\x9d\x84")), frame(true, opCont, []byte("\x9e"))), text("𝄞")))
	add(ok("utf8.split.with.ping.between", send(frame(false, opText, []byte("\xce")), pingFrame("p"), frame(true, opCont, []byte("\xba"))),
		pong("p"), text("κ")))
	// Fail fast: the 1007 must come without the rest of the message.
	add(fail("utf8.failfast.later.fragment", 1007,
		send(frame(false, opText, []byte("valid ")), frame(false, opCont, []byte("\xff")))))
	add(fail("utf8.failfast.first.fragment", 1007, send(frame(false, opText, []byte("\xc0\xaf")))))
	add(fail("utf8.failfast.sequence.broken.across.fragments", 1007,
		send(frame(false, opText, []byte("\xf0\x9d")), frame(false, opCont, []byte(" ")))))
	add(fail("utf8.failfast.above.max.across.fragments", 1007,
		send(frame(false, opText, []byte("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5")), frame(false, opCont, []byte("\xf4\x90")))))
	// Autobahn 6.4.1/6.4.2: inside one frame whose end has not been sent.
	kosme := []byte("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5")
	add(fail("utf8.failfast.inside.frame", 1007, send(partial(fin(opText), 21, cat(kosme, []byte("\xf4\x90\x80\x80"))))))
	add(fail("utf8.failfast.inside.frame.second.byte", 1007, send(partial(fin(opText), 21, cat(kosme, []byte("\xf4\x90"))))))
	add(fail("utf8.failfast.inside.big.frame", 1007, send(partial(fin(opText), 60000, cat(textPattern(1000), []byte{0xff})))))
	add(fail("utf8.truncated.at.end.of.message", 1007, send(frame(false, opText, []byte("a\xf0\x9d")), frame(true, opCont, []byte("\x84")))))
	add(fail("utf8.truncated.before.empty.final.fragment", 1007, send(frame(false, opText, []byte("\xce")), frame(true, opCont, nil))))

	// ---- §5.5.1, §7.4 close (Autobahn 7) ----
	add(peerClose("close.empty.payload", 1005, "", []step{send(closeFrame(-1, ""))}, 1000, -1))
	add(peerClose("close.1000", 1000, "", []step{send(closeFrame(1000, ""))}, 1000))
	add(peerClose("close.1000.reason", 1000, "Hello World!", []step{send(closeFrame(1000, "Hello World!"))}, 1000))
	add(peerClose("close.reason.123", 1000, strings.Repeat("r", 123), []step{send(closeFrame(1000, strings.Repeat("r", 123)))}, 1000))
	add(peerClose("close.reason.utf8", 1000, "κόσμε 𝄞", []step{send(closeFrame(1000, "κόσμε 𝄞"))}, 1000))
	add(fail("close.reason.124", 1002, send(closeFrame(1000, strings.Repeat("r", 124)))))
	add(fail("close.payload.1byte", 1002, send(closeRaw([]byte{0x03}))))
	add(fail("close.reason.invalid.utf8", 1007, send(closeFrame(1000, string(kosme)+"\xed\xa0\x80edited"))))
	add(fail("close.reason.truncated.utf8", 1007, send(closeFrame(1000, "abc\xe2\x82"))))
	for _, code := range []int{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999} {
		add(peerClose(fmt.Sprintf("close.code.valid.%d", code), code, "", []step{send(closeFrame(code, ""))}, code))
	}
	for _, code := range []int{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		add(fail(fmt.Sprintf("close.code.invalid.%d", code), 1002, send(closeFrame(code, ""))))
	}
	add(peerClose("close.after.echo", 1000, "", []step{send(textFrame("Hello World!"), closeFrame(1000, "")), text("Hello World!")}, 1000))
	// After the client's close the server sends its close and ends TCP:
	// nothing else (no echo, no pong).
	add(peerClose("close.twice", 1000, "", []step{sendLax(closeFrame(1000, ""), closeFrame(1000, ""))}, 1000).lax())
	add(peerClose("close.then.ping", 1000, "", []step{sendLax(closeFrame(1000, ""), pingFrame("ping"))}, 1000).lax())
	add(peerClose("close.then.text", 1000, "", []step{sendLax(closeFrame(1000, ""), textFrame("not echoed"))}, 1000).lax())
	add(peerClose("close.in.fragmented.message", 1000, "", []step{sendLax(frame(false, opText, []byte("frag")),
		closeFrame(1000, ""), frame(true, opCont, []byte("ment")))}, 1000).lax())
	big := textPattern(256 << 10)
	add(peerClose("close.after.256KiB.message", 1000, "", []step{sendLax(textFrame(string(big)), closeFrame(1000, ""), pingFrame("p")), text(string(big))}, 1000).lax())
	add(confCase{name: "close.timeout.silent.peer", keepOpen: true,
		opts:   &loop.Options{CloseTimeout: 500 * time.Millisecond},
		steps:  []step{send(rawFrame(fin(3), nil, encMin, false)), closeWith(1002), eof()},
		closed: &closeWant{code: 1002, within: 2 * time.Second}}.lax())

	// ---- §10.4 message size limits (server "small": 4096 bytes) ----
	add(ok("size.exact.text", send(textFrame(string(textPattern(4096)))), text(string(textPattern(4096)))).on("small"))
	add(ok("size.exact.fragmented", send(frame(false, opBinary, pattern(3000)), frame(true, opCont, pattern(1096))),
		msg(opBinary, append(pattern(3000), pattern(1096)...))).on("small"))
	add(ok("size.control.125.unaffected", send(frame(true, opPing, pattern(125))), pong(string(pattern(125)))).on("small"))
	// Fail fast: 1009 as soon as the header announces too much.
	add(fail("size.over.header.only", 1009, send(header(fin(opText), 4097))).on("small"))
	add(fail("size.over.64bit.header.only", 1009, send(header(fin(opBinary), 1<<40))).on("small"))
	add(fail("size.over.fragmented", 1009, send(frame(false, opBinary, pattern(3000)), header(fin(opCont), 1097))).on("small"))
	add(fail("size.over.fragmented.nofin", 1009, send(frame(false, opText, textPattern(4096)), header(opCont, 1))).on("small"))
	{
		var frames []byte
		for i := range 4 {
			op := opCont
			if i == 0 {
				op = opBinary
			}
			frames = append(frames, frame(false, op, pattern(1000))...)
		}
		add(fail("size.over.fifth.fragment", 1009, send(frames, header(fin(opCont), 1000))).on("small"))
	}
	add(fail("size.over.default.1MiB+1", 1009, send(header(fin(opBinary), 1<<20+1))))

	// ---- §5.1 masking ----
	add(fail("unmasked.text", 1002, send(rawFrame(fin(opText), []byte("Hello"), encMin, true))))
	add(fail("unmasked.binary.empty", 1002, send(rawFrame(fin(opBinary), nil, encMin, true))))
	add(fail("unmasked.ping", 1002, send(rawFrame(fin(opPing), []byte("p"), encMin, true))))
	add(fail("unmasked.close", 1002, send(rawFrame(fin(opClose), closePayload(1000, ""), encMin, true))))
	add(fail("unmasked.continuation", 1002, send(frame(false, opText, []byte("a")), rawFrame(fin(opCont), []byte("b"), encMin, true))))

	// ---- §4.2 opening handshake ----
	upgraded := func(name string, r reqSpec, hdr ...string) confCase {
		c := ok(name, sendReq(r), status(101, hdr...), send(textFrame("hi")), text("hi"))
		c.raw = true
		return c
	}
	add(upgraded("handshake.ok", reqSpec{}))
	add(upgraded("handshake.rfc.example.key", reqSpec{key: "dGhlIHNhbXBsZSBub25jZQ=="}, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="))
	add(upgraded("handshake.tokens.case.and.lists", reqSpec{replace: []string{"Upgrade: WebSocket", "Connection: keep-alive, upgrade"}}))
	add(upgraded("handshake.unknown.extension.offered", reqSpec{extra: []string{"Sec-WebSocket-Extensions: x-unknown; foo=1"}}))
	add(upgraded("handshake.absolute.uri", reqSpec{target: "http://127.0.0.1/chat?x=1"}))
	{
		// (Ping first: a pong may overtake the echo of an earlier message.)
		c := ok("handshake.frames.in.same.write", sendReq(reqSpec{}, pingFrame("early ping"), textFrame("early")),
			status(101), pong("early ping"), text("early"))
		c.raw = true
		add(c)
	}
	add(rejected("handshake.method.post", reqSpec{method: "POST"}, 405, "Allow: GET"))
	add(rejected("handshake.host.missing", reqSpec{omit: []string{"Host"}}, 400))
	add(rejected("handshake.key.missing", reqSpec{omit: []string{"Sec-WebSocket-Key"}}, 400))
	add(rejected("handshake.key.not.base64", reqSpec{key: "not a key!"}, 400))
	add(rejected("handshake.key.15.bytes", reqSpec{key: "AAAAAAAAAAAAAAAAAAAA"}, 400))
	add(rejected("handshake.upgrade.missing", reqSpec{omit: []string{"Upgrade"}}, 400))
	add(rejected("handshake.upgrade.h2c", reqSpec{replace: []string{"Upgrade: h2c"}}, 400))
	add(rejected("handshake.connection.missing", reqSpec{omit: []string{"Connection"}}, 400))
	add(rejected("handshake.connection.keepalive", reqSpec{replace: []string{"Connection: keep-alive"}}, 400))
	add(rejected("handshake.version.8", reqSpec{replace: []string{"Sec-WebSocket-Version: 8"}}, 426, "Sec-WebSocket-Version: 13"))
	add(rejected("handshake.version.missing", reqSpec{omit: []string{"Sec-WebSocket-Version"}}, 400))
	add(rejected("handshake.http10", reqSpec{proto: "HTTP/1.0"}, 505))
	{
		c := rejected("handshake.header.9KiB", reqSpec{extra: []string{"X-Pad: " + strings.Repeat("p", 9<<10)}}, 431)
		c.steps[0] = c.steps[0].allBytes()
		add(c)
	}
	add(rejected("handshake.origin.foreign", reqSpec{extra: []string{"Origin: https://evil.example"}}, 403))
	add(rejected("handshake.origin.foreign.allowlist", reqSpec{extra: []string{"Origin: https://evil.example"}}, 403).on("origins"))
	add(upgraded("handshake.origin.allowed", reqSpec{extra: []string{"Origin: https://app.example"}}).on("origins"))
	add(upgraded("handshake.no.origin", reqSpec{}).on("origins"))
	{
		c := rejected("handshake.max.conns.503", reqSpec{}, 503).with(loop.Options{MaxConns: 2})
		c.pre = 2
		add(c)
		d := upgraded("handshake.max.conns.below", reqSpec{}).with(loop.Options{MaxConns: 2})
		d.pre = 1
		add(d)
	}
	protos := loop.Options{Protocols: []string{"chat", "superchat"}}
	add(upgraded("handshake.subprotocol.selected", reqSpec{extra: []string{"Sec-WebSocket-Protocol: foo, chat"}},
		"Sec-WebSocket-Protocol: chat").with(protos))
	{
		c := upgraded("handshake.subprotocol.none.offered", reqSpec{}).with(protos)
		c.steps[1] = status(101, "!Sec-WebSocket-Protocol")
		add(c)
	}
	auth := loop.Options{Authorize: func(r *upgrade.Request) (any, error) {
		if string(r.Header("Authorization")) != "Bearer good" {
			return nil, upgrade.RejectError{Status: 401, Reason: "no token"}
		}
		return "user", nil
	}}
	add(rejected("handshake.authorize.401", reqSpec{}, 401).with(auth))
	add(upgraded("handshake.authorize.ok", reqSpec{extra: []string{"Authorization: Bearer good"}}).with(auth))
	// Server "hs": 500 ms handshake timeout.
	add(confCase{name: "handshake.timeout.partial", srv: "hs", raw: true, steps: []step{
		send([]byte("GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\n")), status(408).after(250 * time.Millisecond), eof()}})
	add(confCase{name: "handshake.timeout.silent", srv: "hs", raw: true, steps: []step{
		status(408).after(250 * time.Millisecond), eof()}})
	{
		// Completed in time: the handshake deadline must not fire later.
		c := ok("handshake.timeout.not.after.upgrade", sendReq(reqSpec{}), status(101), pause(800*time.Millisecond),
			send(textFrame("still here")), text("still here"))
		c.raw, c.srv = true, "hs"
		add(c)
	}

	// ---- keepalive: server "idle" (ping 300 ms, idle 1 s) ----
	add(confCase{name: "idle.ping.then.1001", srv: "idle", steps: []step{
		expectPing(false).after(150 * time.Millisecond),
		closeWith(1001).afterPings().after(500 * time.Millisecond), eof()},
		closed: &closeWant{code: 1001, err: loop.ErrIdle}})
	// The server closes first: the client's answering close ends it.
	add(confCase{name: "idle.1001.answered", srv: "idle", steps: []step{
		closeWith(1001).afterPings(), send(closeFrame(1001, "")), eof()},
		closed: &closeWant{code: 1001, err: loop.ErrIdle, within: time.Second}, keepOpen: true})
	// The timing wheel ticks every 100 ms and may lag under load, so a ping
	// may come a little early: extra pings are legal, an idle close is not.
	{
		c := ok("idle.pongs.keep.alive", expectPing(true), expectPing(true), expectPing(true), expectPing(true), expectPing(true),
			send(textFrame("alive")), text("alive").afterPings()).on("idle")
		c.steps[len(c.steps)-2] = c.steps[len(c.steps)-2].afterPings()
		add(c)
	}
	{
		var steps []step
		for i := range 8 {
			s := fmt.Sprintf("tick %d", i)
			steps = append(steps, send(textFrame(s)), text(s).afterPings(), pause(150*time.Millisecond))
		}
		c := ok("idle.traffic.keeps.alive", steps...).on("idle")
		c.steps[len(c.steps)-2] = c.steps[len(c.steps)-2].afterPings()
		add(c)
	}

	// ---- what OnClose receives ----
	add(peerClose("onclose.client.1000", 1000, "bye bye", []step{send(closeFrame(1000, "bye bye"))}, 1000))
	add(peerClose("onclose.client.4000", 4000, "app", []step{send(closeFrame(4000, "app"))}, 4000))
	add(fail("onclose.protocol.error.1002", 1002, send(frame(true, 0x3, nil))))
	add(confCase{name: "onclose.tcp.vanished.1006", steps: []step{send(textFrame("x")), text("x"), hangup()},
		closed: &closeWant{code: 1006}})
	add(confCase{name: "onclose.tcp.vanished.mid.message.1006", steps: []step{send(frame(false, opText, []byte("part"))), hangup()},
		closed: &closeWant{code: 1006}})
	return cs
}

// lax marks the last send and the EOF of a case lax (byte mode only).
func (c confCase) lax() confCase {
	steps := append([]step(nil), c.steps...)
	for i := range steps {
		if steps[i].kind == sSend || steps[i].kind == sEOF {
			steps[i].lax = true
		}
	}
	c.steps = steps
	return c
}

func TestConformance(t *testing.T) {
	cases := conformanceCases()
	seen := map[string]bool{}
	for _, c := range cases {
		if seen[c.name] {
			t.Fatalf("duplicate case %q", c.name)
		}
		seen[c.name] = true
	}
	servers := map[string]*echoServer{}
	for name, opts := range sharedServers() {
		servers[name] = startEcho(t, opts)
	}
	for _, mode := range []string{"whole", "bytes"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					e := servers[tc.srv]
					if tc.opts != nil {
						e = startEcho(t, *tc.opts)
					} else if tc.srv == "" {
						e = servers["default"]
					}
					runCase(t, e, tc, mode == "bytes")
				})
			}
		})
	}
}

// runCase plays tc against e.
func runCase(t *testing.T, e *echoServer, tc confCase, byteMode bool) {
	for range tc.pre {
		p := dial(t, e.addr, false)
		p.handshake()
	}
	c := dial(t, e.addr, byteMode)
	local := c.conn.LocalAddr().String()
	upgraded := false
	if !tc.raw {
		c.handshake()
		upgraded = true
	}
	for i, s := range tc.steps {
		if err := c.do(s, byteMode, &upgraded); err != nil {
			t.Fatalf("step %d (%v): %v", i, s, err)
		}
	}
	if !upgraded {
		e.mu.Lock()
		n := e.calls[local]
		e.mu.Unlock()
		if n != 0 {
			t.Errorf("OnClose called for a connection that was never upgraded")
		}
		return
	}
	if tc.closed == nil {
		t.Fatalf("case has no OnClose expectation")
	}
	end := time.Now()
	if !tc.keepOpen {
		_ = c.conn.Close()
	}
	var rec closeRecord
	select {
	case rec = <-e.closeChan(local):
	case <-time.After(wait):
		t.Fatalf("OnClose not called within %v", wait)
	}
	w := tc.closed
	if w.within > 0 && rec.at.Sub(end) > w.within {
		t.Errorf("OnClose came %v after the last step, want within %v", rec.at.Sub(end), w.within)
	}
	var ce *loop.CloseError
	if !errors.As(rec.err, &ce) {
		t.Fatalf("OnClose error %T %v is not a *loop.CloseError", rec.err, rec.err)
	}
	if int(ce.Code) != w.code || ce.Remote != w.remote {
		t.Errorf("OnClose got code %d remote %v (%v), want code %d remote %v", ce.Code, ce.Remote, ce, w.code, w.remote)
	}
	if w.reason != nil && ce.Reason != *w.reason {
		t.Errorf("OnClose got reason %q, want %q", ce.Reason, *w.reason)
	}
	if w.err != nil && !errors.Is(rec.err, w.err) {
		t.Errorf("OnClose error %v, want one wrapping %v", rec.err, w.err)
	}
}

// do runs one step and reports how the server's reaction differs from it.
func (c *client) do(s step, byteMode bool, upgraded *bool) error {
	lax := s.lax && byteMode
	deadline := time.Now().Add(wait)
	early := func() error {
		if s.notBefore > 0 {
			if d := time.Since(c.last); d < s.notBefore {
				return fmt.Errorf("came %v after the last write, want not before %v", d, s.notBefore)
			}
		}
		return nil
	}
	switch s.kind {
	case sSend:
		data := s.data
		if s.req != nil {
			key := c.key
			if s.req.key != "" {
				key = s.req.key
			}
			c.key = key
			data = append([]byte(s.req.build(c.addr, key)), data...)
		}
		c.write(data, s.bulk, lax)
	case sMsg:
		f, err := c.readFrame(deadline)
		for err == nil && s.skipPings && f.op == opPing {
			f, err = c.readFrame(deadline)
		}
		if err != nil {
			return fmt.Errorf("got %s", describeErr(err))
		}
		if f.op != s.op {
			return fmt.Errorf("got frame %v", f)
		}
		p := f.payload
		frames := 1
		for !f.fin {
			if f, err = c.readFrame(deadline); err != nil {
				return fmt.Errorf("after %d fragments (%d bytes): %s", frames, len(p), describeErr(err))
			}
			if f.op != opCont {
				return fmt.Errorf("after %d fragments (%d bytes) got frame %v, want a continuation", frames, len(p), f)
			}
			frames++
			p = append(p, f.payload...)
		}
		if !bytes.Equal(p, s.payload) {
			return fmt.Errorf("payload differs: %s", diff(p, s.payload))
		}
		return early()
	case sFrame:
		f, err := c.readFrame(deadline)
		if err != nil {
			return fmt.Errorf("got %s", describeErr(err))
		}
		if f.fin != s.fin || f.op != s.op || !bytes.Equal(f.payload, s.payload) {
			return fmt.Errorf("got frame %v", f)
		}
		return early()
	case sPing:
		f, err := c.readFrame(deadline)
		if err != nil {
			return fmt.Errorf("got %s", describeErr(err))
		}
		if f.op != opPing {
			return fmt.Errorf("got frame %v", f)
		}
		if err := early(); err != nil {
			return err
		}
		if s.answer {
			c.write(frame(true, opPong, f.payload), 0, false)
		}
	case sClose:
		f, err := c.readFrame(deadline)
		for err == nil && s.skipPings && f.op == opPing {
			f, err = c.readFrame(deadline)
		}
		if err != nil {
			return fmt.Errorf("got %s", describeErr(err))
		}
		if f.op != opClose {
			return fmt.Errorf("got frame %v", f)
		}
		code := -1
		switch {
		case len(f.payload) == 1:
			return fmt.Errorf("close frame with a 1-byte payload %x", f.payload)
		case len(f.payload) >= 2:
			code = int(f.payload[0])<<8 | int(f.payload[1])
			if !utf8.Valid(f.payload[2:]) {
				return fmt.Errorf("close reason not UTF-8: %q", f.payload[2:])
			}
		}
		for _, want := range s.codes {
			if code == want {
				return early()
			}
		}
		return fmt.Errorf("got close code %d (reason %q)", code, f.payload[min(2, len(f.payload)):])
	case sEOF:
		f, err := c.readFrame(deadline)
		switch {
		case err == nil:
			return fmt.Errorf("got frame %v", f)
		case errors.Is(err, io.EOF):
		case lax && errors.Is(err, syscall.ECONNRESET):
		default:
			return fmt.Errorf("got %s", describeErr(err))
		}
	case sQuiet:
		f, err := c.readFrame(time.Now().Add(s.d))
		var ne net.Error
		switch {
		case err == nil:
			return fmt.Errorf("got frame %v", f)
		case !errors.As(err, &ne) || !ne.Timeout():
			return fmt.Errorf("got %s", describeErr(err))
		}
	case sHTTP:
		r, err := c.readResponse(deadline)
		if err != nil {
			return fmt.Errorf("got %s", describeErr(err))
		}
		if r.status != s.status {
			return fmt.Errorf("got status %d (headers %v, body %q)", r.status, r.header, r.body)
		}
		for _, h := range s.hdr {
			if name, ok := strings.CutPrefix(h, "!"); ok {
				if v := r.get(name); v != "" {
					return fmt.Errorf("unexpected header %s: %s", name, v)
				}
				continue
			}
			name, val, _ := strings.Cut(h, ": ")
			if got := r.get(name); got != val && !hasToken(got, val) {
				return fmt.Errorf("header %s = %q, want %q", name, got, val)
			}
		}
		if s.status == 101 {
			checkAccept(c.t, r, c.key)
			*upgraded = true
		} else if ct := r.get("Content-Length"); ct == "" {
			return fmt.Errorf("rejection without Content-Length")
		}
		return early()
	case sPause:
		time.Sleep(s.d)
	case sHangup:
		_ = c.conn.Close()
	}
	return nil
}

// TestConformanceShutdown checks the closing handshake the server starts:
// Shutdown sends 1001 to an open connection, the client answers, and
// Shutdown returns once the connection is gone.
func TestConformanceShutdown(t *testing.T) {
	for _, mode := range []string{"whole", "bytes"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := startEchoNoCleanup(t, loop.Options{})
			c := dial(t, e.addr, mode == "bytes")
			c.handshake()
			local := c.conn.LocalAddr().String()
			done := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				done <- e.srv.Shutdown(ctx)
			}()
			var upgraded bool
			for i, s := range []step{closeWith(1001), send(closeFrame(1001, "")), eof()} {
				if err := c.do(s, mode == "bytes", &upgraded); err != nil {
					t.Fatalf("step %d (%v): %v", i, s, err)
				}
			}
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Shutdown: %v", err)
				}
			case <-time.After(wait):
				t.Fatalf("Shutdown did not return within %v", wait)
			}
			select {
			case rec := <-e.closeChan(local):
				if code, _ := loop.CloseStatus(rec.err); code != 1001 || !errors.Is(rec.err, loop.ErrShutdown) {
					t.Errorf("OnClose got %v, want code 1001 wrapping ErrShutdown", rec.err)
				}
			default:
				t.Errorf("OnClose not called before Shutdown returned")
			}
			// Nothing listens any more.
			if nc, err := net.DialTimeout("tcp", e.addr, time.Second); err == nil {
				_ = nc.Close()
				t.Errorf("server still accepts connections after Shutdown")
			}
		})
	}
}

// TestConformanceConnsAfterUpgrade checks that a connection is counted as
// soon as the client holds its 101: Shutdown waits for Conns() to reach 0
// and MaxConns compares against it, so a connection counted only after its
// 101 is out can be cut by Shutdown without a closing handshake.
func TestConformanceConnsAfterUpgrade(t *testing.T) {
	e := startEcho(t, loop.Options{})
	for i := range 200 {
		c := dial(t, e.addr, false)
		c.handshake()
		if n := e.srv.Conns(); n < 1 {
			t.Fatalf("upgrade %d: the client has its 101 but Conns() = %d", i, n)
		}
		_ = c.conn.Close()
		waitConns(t, e, 0)
	}
}

// diff describes how got differs from want.
func diff(got, want []byte) string {
	if len(got) != len(want) {
		return fmt.Sprintf("got %d bytes, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			return fmt.Sprintf("first difference at byte %d: got %#x, want %#x", i, got[i], want[i])
		}
	}
	return "equal"
}

// TestGoroutinesDoNotGrowWithConns asserts that upgraded connections cost
// no goroutine: 500 idle connections leave runtime.NumGoroutine() within a
// small constant of the count with none.
func TestGoroutinesDoNotGrowWithConns(t *testing.T) {
	e := startEcho(t, loop.Options{NumLoops: 2})
	// Warm up: one connection through its whole life, so goroutines the
	// server starts lazily (once) are counted in the baseline.
	w := dial(t, e.addr, false)
	w.handshake()
	_ = w.conn.Close()
	waitConns(t, e, 0)
	base := settledGoroutines()

	const n = 500
	conns := make([]*client, n)
	for i := range conns {
		conns[i] = dial(t, e.addr, false)
		conns[i].handshake()
	}
	waitConns(t, e, n)
	// Every connection is alive: a ping on the last one is answered.
	last := conns[n-1]
	last.write(pingFrame("alive"), 0, false)
	if err := last.do(pong("alive"), false, new(bool)); err != nil {
		t.Fatalf("ping on connection %d: %v", n, err)
	}
	got := settledGoroutines()
	t.Logf("goroutines: %d with 0 connections, %d with %d", base, got, n)
	if got-base > 8 {
		t.Errorf("goroutines grew from %d to %d with %d idle connections", base, got, n)
	}
	for _, c := range conns {
		_ = c.conn.Close()
	}
	waitConns(t, e, 0)
}

// settledGoroutines returns the goroutine count once it has stopped
// changing (timers and finished tests' goroutines wind down).
func settledGoroutines() int {
	n := runtime.NumGoroutine()
	for range 50 {
		time.Sleep(20 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == n {
			return n
		}
		n = m
	}
	return n
}

func waitConns(t *testing.T, e *echoServer, want int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for e.srv.Conns() != want {
		if time.Now().After(deadline) {
			t.Fatalf("server Conns() = %d, want %d", e.srv.Conns(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
