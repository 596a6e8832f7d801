package codec

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
	"unicode/utf8"
)

// rfcFrames are the frames of RFC 6455 §5.7 (and a masked 64-bit length
// header), the seeds of every target.
var rfcFrames = [][]byte{
	{0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f},                           // unmasked "Hello"
	{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58},   // masked "Hello"
	{0x01, 0x03, 0x48, 0x65, 0x6c},                                       // "Hel", FIN clear
	{0x80, 0x02, 0x6c, 0x6f},                                             // "lo", continuation
	{0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f},                           // unmasked ping
	{0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58},   // masked pong
	cat([]byte{0x82, 0x7e, 0x01, 0x00}, bytes.Repeat([]byte{0x11}, 256)), // 256 bytes binary
	cat([]byte{0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0}, make([]byte, 65536)), // 64 KiB binary
	{0x82, 0xff, 0, 0, 1, 0, 0, 0, 0, 0, 1, 2, 3, 4},                     // masked, 1 TiB, header only
}

func FuzzParseHeader(f *testing.F) {
	for _, fr := range rfcFrames {
		f.Add(fr[:min(len(fr), 16)])
	}
	f.Add(bits("1 000 0011 0 0000000"))                                                                         // reserved opcode
	f.Add(bits("0 000 1001 0 0000000"))                                                                         // fragmented ping
	f.Add(bits("1 000 0010 0 1111110 00000000 01111101"))                                                       // non-minimal 16-bit
	f.Add(bits("1 000 0010 0 1111111 10000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000")) // top bit
	f.Fuzz(func(t *testing.T, p []byte) {
		h, n, err := ParseHeader(p)
		if n < 0 || n > len(p) || n > MaxHeaderSize {
			t.Fatalf("n = %d for %d bytes", n, len(p))
		}
		if err != nil {
			if n != 0 || h != (Header{}) {
				t.Fatalf("error %v with n = %d, h = %+v", err, n, h)
			}
			if code, ok := CloseStatus(err); !ok || code != StatusProtocolError {
				t.Fatalf("error %v carries %v, %v", err, code, ok)
			}
			return
		}
		if n == 0 {
			if len(p) >= MaxHeaderSize {
				t.Fatalf("need more with %d bytes", len(p))
			}
			return
		}
		if got := AppendHeader(nil, h); !bytes.Equal(got, p[:n]) {
			t.Fatalf("AppendHeader(%+v) = % x; want % x", h, got, p[:n])
		}
		if HeaderSize(h) != n {
			t.Fatalf("HeaderSize = %d; want %d", HeaderSize(h), n)
		}
		if h.Length < 0 || (h.OpCode.IsControl() && (h.Length > MaxControlPayload || !h.Fin)) || h.OpCode.IsReserved() {
			t.Fatalf("invalid header accepted: %+v", h)
		}
		for i := range n {
			if _, m, err := ParseHeader(p[:i]); m != 0 || err != nil {
				t.Fatalf("prefix %d of a valid header: %d, %v", i, m, err)
			}
		}
	})
}

func FuzzMask(f *testing.F) {
	f.Add([]byte("Hello"), uint32(0x3d21fa37), uint8(0), uint8(0), uint16(0))
	f.Add(make([]byte, 300), uint32(0x01234567), uint8(3), uint8(5), uint16(17))
	f.Add(bytes.Repeat([]byte{0xff}, 129), uint32(0xffffffff), uint8(7), uint8(1), uint16(64))
	f.Fuzz(func(t *testing.T, p []byte, k uint32, pos, align uint8, split uint16) {
		key := [4]byte{byte(k), byte(k >> 8), byte(k >> 16), byte(k >> 24)}
		a := int(align % 8)
		buf := make([]byte, a+len(p)+8)
		got := buf[a : a+len(p)]
		copy(got, p)
		want := bytes.Clone(p)
		wantPos := maskRef(want, key, int(pos))
		if gp := Mask(got, key, int(pos)); gp != wantPos || !bytes.Equal(got, want) {
			t.Fatalf("len %d pos %d align %d: phase %d (want %d), equal %v", len(p), pos, a, gp, wantPos, bytes.Equal(got, want))
		}
		if slices.ContainsFunc(buf[:a], func(b byte) bool { return b != 0 }) || slices.ContainsFunc(buf[a+len(p):], func(b byte) bool { return b != 0 }) {
			t.Fatal("Mask wrote outside the slice")
		}
		// Two pieces with the phase carried over give the same bytes.
		s := int(split) % (len(p) + 1)
		two := bytes.Clone(p)
		ph := Mask(two[:s], key, int(pos))
		if Mask(two[s:], key, ph) != wantPos || !bytes.Equal(two, want) {
			t.Fatalf("len %d split %d: two pieces differ", len(p), s)
		}
	})
}

// validPrefix reports whether q can be extended to valid UTF-8, using only
// package unicode/utf8: q is valid up to a last, unfinished code point.
func validPrefix(q []byte) bool {
	if utf8.Valid(q) {
		return true
	}
	for k := 1; k <= 3 && k <= len(q); k++ {
		if t := q[len(q)-k:]; utf8.RuneStart(t[0]) && !utf8.FullRune(t) {
			return utf8.Valid(q[:len(q)-k])
		}
	}
	return false
}

func FuzzUTF8(f *testing.F) {
	f.Add([]byte("Hello"), uint64(0))
	f.Add([]byte("κόσμε\xf4\x90\x80\x80edited"), uint64(1))
	f.Add([]byte("Grüße, 世界 😀! abcdefghijklmnop"), uint64(2))
	f.Add([]byte("\xed\xa0\x80\xe0\x80\x80\xf0\x8f\xbf\xbf"), uint64(3))
	f.Add([]byte("\xf0\x9f\x98"), uint64(4))
	f.Fuzz(func(t *testing.T, p []byte, seed uint64) {
		var v UTF8
		if ok := v.Write(p); ok != validPrefix(p) || v.Complete() != utf8.Valid(p) {
			t.Fatalf("% x at once: Write %v Complete %v; utf8.Valid %v", p, ok, v.Complete(), utf8.Valid(p))
		}
		// In random chunks: each Write answers for the bytes so far.
		rng := rand.New(rand.NewPCG(seed, 0))
		v.Reset()
		for off := 0; off < len(p); {
			k := min(len(p)-off, rng.IntN(20))
			ok := v.Write(p[off : off+k])
			off += k
			if want := validPrefix(p[:off]); ok != want {
				t.Fatalf("% x: Write after %d bytes = %v; want %v", p, off, ok, want)
			}
		}
		if v.Complete() != utf8.Valid(p) {
			t.Fatalf("% x chunked: Complete %v; utf8.Valid %v", p, v.Complete(), utf8.Valid(p))
		}
	})
}

// frame is what splitReader reports for each complete frame.
type frame struct {
	h       Header
	payload string // unmasked
}

// splitReader reads frames the way an event loop does: each call to feed
// gets whatever bytes arrived. A header split between calls is kept in a
// 14-byte array; a payload is unmasked and validated in the pieces it
// arrives in, carrying the mask phase and the UTF-8 state across pieces,
// frames and fragments.
type splitReader struct {
	rules  Rules
	stream Stream
	text   UTF8
	hdr    [MaxHeaderSize]byte // a partial header
	nhdr   int
	h      Header // the frame being read, if inFrame
	in     bool
	left   int64 // payload bytes still to come
	pos    int   // mask phase
	cur    []byte
	frames []frame
	err    error
}

func (r *splitReader) feed(p []byte) {
	for r.err == nil {
		if r.in {
			if len(p) == 0 {
				return
			}
			k := int(min(r.left, int64(len(p))))
			chunk := p[:k]
			p = p[k:]
			if r.h.Masked {
				r.pos = Mask(chunk, r.h.Mask, r.pos)
			}
			if r.checkText() && !r.text.Write(chunk) {
				r.err = ErrInvalidUTF8
				return
			}
			r.cur = append(r.cur, chunk...)
			r.left -= int64(k)
			if r.left == 0 {
				r.endFrame()
			}
			continue
		}
		var (
			h   Header
			n   int
			err error
		)
		if r.nhdr > 0 {
			k := copy(r.hdr[r.nhdr:], p)
			h, n, err = ParseHeader(r.hdr[:r.nhdr+k])
			if err == nil && n == 0 {
				r.nhdr += k // k == len(p): 14 bytes always make a header
				return
			}
			if err == nil {
				p = p[n-r.nhdr:]
				r.nhdr = 0
			}
		} else {
			if len(p) == 0 {
				return
			}
			h, n, err = ParseHeader(p)
			if err == nil && n == 0 {
				r.nhdr = copy(r.hdr[:], p)
				return
			}
			p = p[n:]
		}
		if err == nil {
			err = r.stream.Next(h, &r.rules)
		}
		if err != nil {
			r.err = err
			return
		}
		r.h, r.in, r.left, r.pos, r.cur = h, true, h.Length, 0, r.cur[:0]
		if h.OpCode == OpText || h.OpCode == OpBinary {
			r.text.Reset()
		}
		if r.left == 0 {
			r.endFrame()
		}
	}
}

// checkText reports whether the current frame's payload is UTF-8 text to
// validate: a data frame of an uncompressed text message.
func (r *splitReader) checkText() bool {
	return r.h.OpCode.IsData() && r.stream.Op() == OpText && !r.stream.Compressed()
}

func (r *splitReader) endFrame() {
	r.in = false
	switch {
	case r.h.Fin && r.checkText() && !r.text.Complete():
		r.err = ErrInvalidUTF8
		return
	case r.h.OpCode == OpClose:
		if _, _, err := ParseClose(r.cur); err != nil {
			r.err = err
			return
		}
	}
	r.frames = append(r.frames, frame{r.h, string(r.cur)})
}

// fuzzRules derives Rules from one byte.
func fuzzRules(b byte) Rules {
	frame := []int64{0, 10, 200, 70000}
	msg := []int64{0, 20, 300, 100000}
	return Rules{
		Server:         b&1 != 0,
		Rsv:            (b >> 1 & 1) * Rsv1,
		MaxFrameSize:   frame[b>>2&3],
		MaxMessageSize: msg[b>>4&3],
	}
}

// splitSeed is a stream of frames with what splitReader must make of it.
type splitSeed struct {
	name     string
	rules    byte // see fuzzRules
	stream   []byte
	payloads []string // of the complete frames
	err      error
}

func splitSeeds() []splitSeed {
	const (
		client  = byte(0x00)
		server  = byte(0x01)
		deflate = byte(0x03)
		limited = byte(0x01 | 1<<2 | 1<<4) // server, frames <= 10, messages <= 20
	)
	masked := func(h Header, payload string) []byte {
		h.Masked, h.Mask = true, [4]byte{0x37, 0xfa, 0x21, 0x3d}
		return AppendFrame(nil, h, []byte(payload))
	}
	text := Header{Fin: true, OpCode: OpText}
	bin := Header{Fin: true, OpCode: OpBinary}
	first := Header{OpCode: OpText}
	cont := Header{OpCode: OpContinuation}
	last := Header{Fin: true, OpCode: OpContinuation}
	ping := Header{Fin: true, OpCode: OpPing}
	closeH := Header{Fin: true, OpCode: OpClose}
	zeros300 := string(make([]byte, 300))
	return []splitSeed{
		{"rfc unmasked", client, cat(rfcFrames[0], rfcFrames[2], rfcFrames[4], rfcFrames[3], rfcFrames[6]),
			[]string{"Hello", "Hel", "Hello", "lo", string(rfcFrames[6][4:])}, nil},
		{"rfc masked", server, cat(rfcFrames[1], rfcFrames[5]), []string{"Hello", "Hello"}, nil},
		{"rfc 64KiB", client, rfcFrames[7], []string{string(make([]byte, 65536))}, nil},
		{"masked to client", client, rfcFrames[1], nil, ErrMaskForbidden},
		{"unmasked to server", server, rfcFrames[0], nil, ErrMaskRequired},
		{"utf-8 split across fragments", server,
			cat(masked(first, "κό\xcf"), masked(ping, "p"), masked(cont, "\x83μ"), masked(last, "ε"), masked(closeH, "\x03\xe8bye")),
			[]string{"κό\xcf", "p", "\x83μ", "ε", "\x03\xe8bye"}, nil},
		{"utf-8 fails in last fragment", server, cat(masked(first, "κό"), masked(last, "\xf4\x90\x80\x80edited"), masked(text, "x")),
			[]string{"κό"}, ErrInvalidUTF8},
		{"utf-8 incomplete at end", server, cat(masked(first, "a"), masked(last, "\xe2\x82"), masked(text, "x")), []string{"a"}, ErrInvalidUTF8},
		{"binary is not utf-8 checked", server, masked(bin, "\xff"), []string{"\xff"}, nil},
		{"close 1006", server, cat(masked(text, "ok"), masked(closeH, "\x03\xee")), []string{"ok"}, ErrCloseCode},
		{"close 1 byte", server, cat(masked(text, "ok"), masked(closeH, "\x03")), []string{"ok"}, ErrCloseLength},
		{"empty close", server, masked(closeH, ""), []string{""}, nil},
		{"lone continuation", server, masked(last, "x"), nil, ErrUnexpectedContinuation},
		{"text inside fragmented", server, cat(masked(first, "x"), masked(text, "y")), []string{"x"}, ErrContinuationExpected},
		{"compressed", deflate, cat(masked(Header{Fin: true, OpCode: OpText, Rsv: Rsv1}, "\xff\x00"), masked(Header{Fin: true, OpCode: OpPing, Rsv: Rsv1}, "")),
			[]string{"\xff\x00"}, ErrMisplacedRsv},
		{"rsv without extension", server, masked(Header{Fin: true, OpCode: OpText, Rsv: Rsv2}, ""), nil, ErrReservedBits},
		{"message limit", limited, cat(masked(first, "0123456789"), masked(cont, "0123456789"), masked(last, "0")),
			[]string{"0123456789", "0123456789"}, ErrMessageTooLarge},
		{"frame limit", limited, masked(bin, "0123456789a"), nil, ErrFrameTooLarge},
		{"reserved opcode after payload", server, cat(masked(bin, zeros300), []byte{0x83, 0x80}), []string{zeros300}, ErrReservedOpcode},
		{"fragmented ping", server, []byte{0x09, 0x80}, nil, ErrControlFragmented},
		{"long ping", server, []byte{0x89, 0xfe, 0x00, 0x7e}, nil, ErrControlTooLong},
		{"non-minimal length", server, []byte{0x82, 0xfe, 0x00, 0x05}, nil, ErrNonMinimalLength},
		{"incomplete", server, cat(masked(text, "a"), masked(bin, zeros300)[:100]), []string{"a"}, nil},
	}
}

// TestSplitReader checks the test reader itself on the fuzz seeds, in one
// piece and byte by byte.
func TestSplitReader(t *testing.T) {
	t.Parallel()
	for _, s := range splitSeeds() {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			for _, step := range []int{len(s.stream), 1} {
				r := &splitReader{rules: fuzzRules(s.rules)}
				in := bytes.Clone(s.stream)
				for off := 0; off < len(in); off += step {
					r.feed(in[off:min(off+step, len(in))])
				}
				var got []string
				for _, f := range r.frames {
					got = append(got, f.payload)
				}
				if r.err != s.err || !slices.Equal(got, s.payloads) {
					t.Errorf("step %d: %q, %v; want %q, %v", step, got, r.err, s.payloads, s.err)
				}
			}
		})
	}
}

func FuzzParseSplit(f *testing.F) {
	for i, s := range splitSeeds() {
		f.Add(append([]byte{s.rules, byte(i)}, s.stream...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 2 {
			return
		}
		rules := fuzzRules(data[0])
		rng := rand.New(rand.NewPCG(uint64(data[1]), uint64(len(data))))
		input := data[2:]

		one := &splitReader{rules: rules}
		one.feed(bytes.Clone(input))

		many := &splitReader{rules: rules}
		buf := bytes.Clone(input)
		for off := 0; off < len(buf); {
			var k int
			switch rng.IntN(4) {
			case 0:
				k = 0 // an empty read
			case 1:
				k = 1 + rng.IntN(3)
			default:
				k = 1 + rng.IntN(40)
			}
			k = min(k, len(buf)-off)
			many.feed(buf[off : off+k])
			off += k
		}

		if one.err != many.err {
			t.Fatalf("error: one shot %v, chunked %v", one.err, many.err)
		}
		if !slices.Equal(one.frames, many.frames) {
			t.Fatalf("frames differ:\none shot %v\nchunked  %v", one.frames, many.frames)
		}
		if one.err == nil && (one.nhdr != many.nhdr || !bytes.Equal(one.hdr[:one.nhdr], many.hdr[:many.nhdr]) || one.in != many.in ||
			one.left != many.left || !bytes.Equal(one.cur, many.cur) || one.stream != many.stream || one.text != many.text) {
			t.Fatalf("state after the input differs:\none shot %+v\nchunked  %+v", one, many)
		}
	})
}
