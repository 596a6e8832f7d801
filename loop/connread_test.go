//go:build !windows

package loop

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"testing"

	"github.com/panjf2000/gnet/v2"

	"github.com/wsgate/wsgate/codec"
)

// fakeConn is the part of gnet.Conn the engine uses, without a socket:
// Next returns what the test feeds, Write records what the engine sends.
// Any other method panics (the embedded interface is nil), which shows
// when the engine starts to use one.
type fakeConn struct {
	gnet.Conn
	ctx  any
	in   []byte
	out  bytes.Buffer
	addr net.Addr
}

func (f *fakeConn) Context() any         { return f.ctx }
func (f *fakeConn) SetContext(v any)     { f.ctx = v }
func (f *fakeConn) RemoteAddr() net.Addr { return f.addr }
func (f *fakeConn) EventLoop() gnet.EventLoop {
	return nil
}
func (f *fakeConn) Next(n int) ([]byte, error) {
	b := f.in
	f.in = nil
	return b, nil
}
func (f *fakeConn) Write(p []byte) (int, error) { return f.out.Write(p) }
func (f *fakeConn) OutboundBuffered() int       { return 0 }
func (f *fakeConn) Fd() int                     { return -1 } // shutdown(-1) fails harmlessly
func (f *fakeConn) Wake(gnet.AsyncCallback) error {
	return nil
}

// readReaction is what one connection did with its input.
type readReaction struct {
	msgs      []string         // delivered messages: opcode and payload
	closeSent int              // the code of the close frame we sent (0: none)
	closed    bool             // gnet was told to close the TCP connection
	code      codec.StatusCode // OnClose's CloseError
	remote    bool
	pongs     []string
}

type recordingHandler struct {
	r *readReaction
}

func (h recordingHandler) OnOpen(*Conn) {}
func (h recordingHandler) OnMessage(c *Conn, op codec.OpCode, p []byte) {
	h.r.msgs = append(h.r.msgs, fmt.Sprintf("%v:%q", op, p))
	_ = c.WriteMessage(op, p)
}
func (h recordingHandler) OnClose(_ *Conn, err error) {
	ce := err.(*CloseError)
	h.r.code, h.r.remote = ce.Code, ce.Remote
}

// feed runs one connection through the engine's callbacks: accept, the
// input in the given pieces, then gnet's close if the engine asked for it.
func feed(t *testing.T, pieces [][]byte) readReaction {
	var r readReaction
	s, err := NewServer(recordingHandler{&r}, Options{
		NumLoops: 1, MaxMessageSize: 1 << 12, FragmentSize: 1 << 10,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	fc := &fakeConn{addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}}
	e := &s.eng
	if _, act := e.OnOpen(fc); act != gnet.None {
		t.Fatal("OnOpen refused")
	}
	for _, p := range pieces {
		fc.in = append([]byte(nil), p...)
		if e.OnTraffic(fc) == gnet.Close {
			r.closed = true
			break
		}
	}
	e.OnClose(fc, nil)
	// What we sent after the 101: server frames, whole.
	out := fc.out.Bytes()
	if i := bytes.Index(out, []byte("\r\n\r\n")); bytes.HasPrefix(out, []byte("HTTP/1.1 101")) && i > 0 {
		out = out[i+4:]
	} else {
		t.Fatalf("no 101: %q", out)
	}
	for len(out) > 0 {
		h, n, err := codec.ParseHeader(out)
		if err != nil || n == 0 || int64(len(out)-n) < h.Length || h.Masked || h.Rsv != 0 {
			t.Fatalf("we sent a broken frame: %+v %v", h, err)
		}
		p := out[n : n+int(h.Length)]
		out = out[n+int(h.Length):]
		switch h.OpCode {
		case codec.OpClose:
			if r.closeSent != 0 {
				t.Fatal("two close frames sent")
			}
			code, _, err := codec.ParseClose(p)
			if err != nil {
				t.Fatalf("we sent an invalid close frame: %v", err)
			}
			r.closeSent = int(code)
		case codec.OpPong:
			r.pongs = append(r.pongs, string(p))
		default:
			if r.closeSent != 0 {
				t.Fatalf("%v frame after our close frame", h.OpCode)
			}
		}
	}
	return r
}

// FuzzConnRead feeds arbitrary bytes, after a valid upgrade request, to
// one connection's read path through a fake gnet.Conn, whole and cut at
// random points: no panic, what we send is whole server frames with at
// most one close frame and nothing after it, the same messages are
// delivered and the same close code sent whichever way the input is cut,
// and a close we start for bad input carries 1002, 1007 or 1009, the codes
// the conformance suite expects for protocol errors, bad UTF-8 and
// messages too large.
func FuzzConnRead(f *testing.F) {
	mf := func(b0 byte, p []byte) []byte {
		h := codec.Header{Fin: b0&0x80 != 0, Rsv: b0 >> 4 & 7, OpCode: codec.OpCode(b0 & 0xf), Masked: true, Mask: [4]byte{1, 2, 3, 4}, Length: int64(len(p))}
		b := codec.AppendHeader(nil, h)
		q := append([]byte(nil), p...)
		codec.Mask(q, h.Mask, 0)
		return append(b, q...)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	f.Add(cat(mf(0x81, []byte("hello")), mf(0x89, []byte("ping")), mf(0x88, []byte{3, 232})), uint64(1))
	f.Add(cat(mf(0x01, []byte("frag")), mf(0x89, nil), mf(0x80, []byte("ment"))), uint64(2))
	f.Add(mf(0x81, []byte{0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xed, 0xa0, 0x80}), uint64(3))
	f.Add(cat(mf(0x83, nil), mf(0x81, []byte("late"))), uint64(4))
	f.Add(cat(mf(0x82, make([]byte, 5000))), uint64(5))
	f.Add(cat(mf(0x88, []byte{3}), mf(0x81, []byte("x"))), uint64(6))
	f.Add(cat(mf(0xc1, []byte("rsv")), []byte{0x81, 0x05}), uint64(7))
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		if len(data) > 1<<12 {
			return
		}
		in := append([]byte(upgradeRequest), data...)
		whole := feed(t, [][]byte{in})
		var pieces [][]byte
		r := rand.New(rand.NewPCG(seed, 7))
		for rest := in; len(rest) > 0; {
			n := min(len(rest), 1+r.IntN(16))
			pieces = append(pieces, rest[:n])
			rest = rest[n:]
		}
		split := feed(t, pieces)
		if fmt.Sprint(whole.msgs) != fmt.Sprint(split.msgs) {
			t.Fatalf("messages differ:\nwhole %v\nsplit %v", whole.msgs, split.msgs)
		}
		if whole.closeSent != split.closeSent || whole.code != split.code {
			t.Fatalf("close differs: whole sent %d (OnClose %v), split sent %d (OnClose %v)",
				whole.closeSent, whole.code, split.closeSent, split.code)
		}
		if len(whole.pongs) != len(split.pongs) {
			t.Fatalf("pongs differ: whole %q, split %q", whole.pongs, split.pongs)
		}
		switch c := whole.closeSent; {
		case c == 0:
		case whole.remote: // our answer echoes the peer's code (1000 for none)
			if want := whole.code; c != int(want) && !(want == codec.StatusNoStatusRcvd && c == 1000) {
				t.Fatalf("peer closed with %v, we answered %d", want, c)
			}
		case c != 1002 && c != 1007 && c != 1009:
			t.Fatalf("we closed with %d for bad input; want 1002, 1007 or 1009", c)
		}
	})
}

// The fake connection carries a real exchange: a message is delivered and
// echoed, a ping answered, the peer's close echoed and TCP closed; bad
// UTF-8 is answered 1007.
func TestFeedReacts(t *testing.T) {
	mf := func(b0 byte, p []byte) []byte {
		return codec.AppendFrame(nil, codec.Header{Fin: b0&0x80 != 0, OpCode: codec.OpCode(b0 & 0xf), Masked: true}, p)
	}
	r := feed(t, [][]byte{[]byte(upgradeRequest), mf(0x81, []byte("hello")), mf(0x89, []byte("p")), mf(0x88, []byte{3, 232})})
	if fmt.Sprint(r.msgs) != `[OpText:"hello"]` || len(r.pongs) != 1 || r.closeSent != 1000 || !r.closed || !r.remote {
		t.Errorf("reaction %+v", r)
	}
	r = feed(t, [][]byte{[]byte(upgradeRequest), mf(0x81, []byte{0xff})})
	if len(r.msgs) != 0 || r.closeSent != 1007 || r.remote {
		t.Errorf("bad UTF-8: reaction %+v", r)
	}
}
