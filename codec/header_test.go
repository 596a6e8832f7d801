package codec

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
)

var rfcKey = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// TestRFCExamples decodes the frames of RFC 6455 §5.7.
func TestRFCExamples(t *testing.T) {
	t.Parallel()
	big256 := bytes.Repeat([]byte{0xab}, 256)
	big64k := bytes.Repeat([]byte{0xcd}, 65536)
	tests := []struct {
		name    string
		wire    []byte
		want    Header
		hdrLen  int
		payload []byte // after unmasking
	}{
		{
			name:    "single-frame unmasked text",
			wire:    []byte{0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f},
			want:    Header{Fin: true, OpCode: OpText, Length: 5},
			hdrLen:  2,
			payload: []byte("Hello"),
		},
		{
			name:    "single-frame masked text",
			wire:    []byte{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58},
			want:    Header{Fin: true, OpCode: OpText, Masked: true, Mask: rfcKey, Length: 5},
			hdrLen:  6,
			payload: []byte("Hello"),
		},
		{
			name:    "fragmented first",
			wire:    []byte{0x01, 0x03, 0x48, 0x65, 0x6c},
			want:    Header{OpCode: OpText, Length: 3},
			hdrLen:  2,
			payload: []byte("Hel"),
		},
		{
			name:    "fragmented last",
			wire:    []byte{0x80, 0x02, 0x6c, 0x6f},
			want:    Header{Fin: true, OpCode: OpContinuation, Length: 2},
			hdrLen:  2,
			payload: []byte("lo"),
		},
		{
			name:    "unmasked ping",
			wire:    []byte{0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f},
			want:    Header{Fin: true, OpCode: OpPing, Length: 5},
			hdrLen:  2,
			payload: []byte("Hello"),
		},
		{
			name:    "masked pong",
			wire:    []byte{0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58},
			want:    Header{Fin: true, OpCode: OpPong, Masked: true, Mask: rfcKey, Length: 5},
			hdrLen:  6,
			payload: []byte("Hello"),
		},
		{
			name:    "256 bytes binary",
			wire:    cat([]byte{0x82, 0x7e, 0x01, 0x00}, big256),
			want:    Header{Fin: true, OpCode: OpBinary, Length: 256},
			hdrLen:  4,
			payload: big256,
		},
		{
			name:    "64KiB binary",
			wire:    cat([]byte{0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0}, big64k),
			want:    Header{Fin: true, OpCode: OpBinary, Length: 65536},
			hdrLen:  10,
			payload: big64k,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wire := bytes.Clone(tt.wire)
			h, n, err := ParseHeader(wire)
			if err != nil || n != tt.hdrLen || h != tt.want {
				t.Fatalf("ParseHeader = %+v, %d, %v; want %+v, %d, nil", h, n, err, tt.want, tt.hdrLen)
			}
			if HeaderSize(h) != n {
				t.Errorf("HeaderSize = %d; want %d", HeaderSize(h), n)
			}
			if got := AppendHeader(nil, h); !bytes.Equal(got, wire[:n]) {
				t.Errorf("AppendHeader = % x; want % x", got, wire[:n])
			}
			payload := wire[n:]
			if int64(len(payload)) != h.Length {
				t.Fatalf("payload is %d bytes; header says %d", len(payload), h.Length)
			}
			if h.Masked {
				Mask(payload, h.Mask, 0)
			}
			if !bytes.Equal(payload, tt.payload) {
				t.Errorf("payload = %q; want %q", payload, tt.payload)
			}
			// Encoding the frame again gives the same bytes.
			if got := AppendFrame(nil, h, tt.payload); !bytes.Equal(got, tt.wire) {
				t.Errorf("AppendFrame = % x; want % x", got, tt.wire)
			}
		})
	}
}

func TestParseHeader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []byte
		want Header
		n    int
		err  error
	}{
		{name: "empty", in: nil},
		{name: "text, no length yet", in: bits("1 000 0001")},
		{name: "all rsv bits", in: bits("1 111 0010 0 0000000"), want: Header{Fin: true, Rsv: 7, OpCode: OpBinary}, n: 2},
		{name: "rsv1", in: bits("0 100 0001 0 0000001"), want: Header{Rsv: Rsv1, OpCode: OpText, Length: 1}, n: 2},
		{name: "close 125", in: bits("1 000 1000 0 1111101"), want: Header{Fin: true, OpCode: OpClose, Length: 125}, n: 2},
		{name: "masked, key incomplete", in: bits("1 000 0001 1 0000101 00110111 11111010 00100001")},
		{name: "16-bit length incomplete", in: bits("1 000 0010 0 1111110 00000001")},
		{name: "64-bit length incomplete", in: bits("1 000 0010 0 1111111 00000000 00000000 00000000 00000000 00000000 00000001 00000000")},
		{name: "16-bit length 126", in: bits("1 000 0010 0 1111110 00000000 01111110"), want: Header{Fin: true, OpCode: OpBinary, Length: 126}, n: 4},
		{name: "16-bit length 65535", in: bits("1 000 0010 0 1111110 11111111 11111111"), want: Header{Fin: true, OpCode: OpBinary, Length: 65535}, n: 4},
		{
			name: "64-bit length max",
			in:   bits("1 000 0010 0 1111111 01111111 11111111 11111111 11111111 11111111 11111111 11111111 11111111"),
			want: Header{Fin: true, OpCode: OpBinary, Length: math.MaxInt64}, n: 10,
		},
		{
			name: "64-bit length masked",
			in:   bits("1 000 0010 1 1111111 00000000 00000000 00000000 00000000 00000000 00000001 00000000 00000000 00000001 00000010 00000011 00000100"),
			want: Header{Fin: true, OpCode: OpBinary, Length: 65536, Masked: true, Mask: [4]byte{1, 2, 3, 4}}, n: 14,
		},
		{name: "extra bytes ignored", in: bits("1 000 1001 0 0000000 11111111"), want: Header{Fin: true, OpCode: OpPing}, n: 2},

		// RFC 6455 §5.2: reserved opcodes.
		{name: "opcode 3", in: bits("1 000 0011"), err: ErrReservedOpcode},
		{name: "opcode 7", in: bits("1 000 0111 0 0000000"), err: ErrReservedOpcode},
		{name: "opcode B", in: bits("1 000 1011 0 0000000"), err: ErrReservedOpcode},
		{name: "opcode F", in: bits("1 000 1111 0 0000000"), err: ErrReservedOpcode},
		// RFC 6455 §5.5: control frames.
		{name: "ping fragmented", in: bits("0 000 1001"), err: ErrControlFragmented},
		{name: "close fragmented", in: bits("0 000 1000 0 0000000"), err: ErrControlFragmented},
		{name: "pong 126", in: bits("1 000 1010 0 1111110"), err: ErrControlTooLong},
		{name: "ping 127", in: bits("1 000 1001 1 1111111"), err: ErrControlTooLong},
		// RFC 6455 §5.2: minimal length encoding and the top bit.
		{name: "16-bit length 125", in: bits("1 000 0010 0 1111110 00000000 01111101"), err: ErrNonMinimalLength},
		{name: "16-bit length 0", in: bits("1 000 0010 0 1111110 00000000 00000000"), err: ErrNonMinimalLength},
		{name: "64-bit length 65535", in: bits("1 000 0010 0 1111111 00000000 00000000 00000000 00000000 00000000 00000000 11111111 11111111"), err: ErrNonMinimalLength},
		{name: "64-bit length 5", in: bits("1 000 0010 0 1111111 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000101"), err: ErrNonMinimalLength},
		{name: "64-bit top bit", in: bits("1 000 0010 0 1111111 10000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000"), err: ErrLengthOverflow},
		{name: "64-bit all ones", in: bits("1 000 0010 0 1111111 11111111 11111111 11111111 11111111 11111111 11111111 11111111 11111111"), err: ErrLengthOverflow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, n, err := ParseHeader(tt.in)
			if h != tt.want || n != tt.n || err != tt.err {
				t.Errorf("ParseHeader(% x) = %+v, %d, %v; want %+v, %d, %v", tt.in, h, n, err, tt.want, tt.n, tt.err)
			}
			if err != nil {
				if code, ok := CloseStatus(err); !ok || code != StatusProtocolError {
					t.Errorf("CloseStatus = %v, %v; want 1002", code, ok)
				}
			}
		})
	}
}

// TestParseHeaderPrefixes checks that every proper prefix of a valid
// header asks for more bytes, and that an error is reported by every
// prefix that contains the byte causing it.
func TestParseHeaderPrefixes(t *testing.T) {
	t.Parallel()
	for _, h := range boundaryHeaders() {
		wire := AppendHeader(nil, h)
		for i := range len(wire) {
			if g, n, err := ParseHeader(wire[:i]); n != 0 || err != nil || g != (Header{}) {
				t.Fatalf("ParseHeader(% x) = %+v, %d, %v; want need-more", wire[:i], g, n, err)
			}
		}
	}
	bad := bits("1 000 0010 0 1111111 10000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000")
	for i := range len(bad) + 1 {
		_, n, err := ParseHeader(bad[:i])
		want := error(nil)
		if i == len(bad) {
			want = ErrLengthOverflow
		}
		if n != 0 || err != want {
			t.Errorf("prefix %d: n=%d err=%v; want 0, %v", i, n, err, want)
		}
	}
}

var boundaryLengths = []int64{0, 1, 124, 125, 126, 127, 65535, 65536, 65537, 1<<32 - 1, 1 << 32, math.MaxInt64}

func boundaryHeaders() []Header {
	var hs []Header
	for _, l := range boundaryLengths {
		for _, masked := range []bool{false, true} {
			for _, op := range []OpCode{OpContinuation, OpText, OpBinary, OpClose} {
				if op.IsControl() && l > MaxControlPayload {
					continue
				}
				h := Header{Fin: op.IsControl() || l%2 == 0, OpCode: op, Length: l, Masked: masked}
				if masked {
					h.Mask = [4]byte{0xde, 0xad, 0xbe, byte(l)}
				}
				if op == OpText {
					h.Rsv = Rsv1
				}
				hs = append(hs, h)
			}
		}
	}
	return hs
}

func TestHeaderRoundTrip(t *testing.T) {
	t.Parallel()
	for _, h := range boundaryHeaders() {
		wire := AppendHeader([]byte("prefix"), h)
		if !bytes.HasPrefix(wire, []byte("prefix")) {
			t.Fatalf("AppendHeader lost dst")
		}
		wire = wire[len("prefix"):]
		want := 2
		switch {
		case h.Length > 65535:
			want = 10
		case h.Length > 125:
			want = 4
		}
		if h.Masked {
			want += 4
		}
		if len(wire) != want || HeaderSize(h) != want {
			t.Errorf("%+v: %d bytes, HeaderSize %d; want %d", h, len(wire), HeaderSize(h), want)
		}
		g, n, err := ParseHeader(wire)
		if err != nil || n != len(wire) || g != h {
			t.Errorf("round trip %+v: got %+v, %d, %v", h, g, n, err)
		}
	}
}

func TestHeaderRandom(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	ops := []OpCode{OpContinuation, OpText, OpBinary, OpClose, OpPing, OpPong}
	for range 100000 {
		h := Header{
			Fin:    rng.IntN(2) == 0,
			Rsv:    byte(rng.IntN(8)),
			OpCode: ops[rng.IntN(len(ops))],
			Masked: rng.IntN(2) == 0,
		}
		switch rng.IntN(3) {
		case 0:
			h.Length = rng.Int64N(126)
		case 1:
			h.Length = rng.Int64N(65536)
		default:
			h.Length = rng.Int64()
		}
		if h.OpCode.IsControl() {
			h.Fin = true
			h.Length %= 126
		}
		if h.Masked {
			h.Mask = [4]byte{byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())}
		}
		wire := AppendHeader(nil, h)
		g, n, err := ParseHeader(append(wire, 0xff, 0xff))
		if err != nil || n != len(wire) || g != h || HeaderSize(h) != n {
			t.Fatalf("%+v: % x parsed as %+v, %d, %v", h, wire, g, n, err)
		}
	}
}

func TestAppendHeaderClamps(t *testing.T) {
	t.Parallel()
	got := AppendHeader(nil, Header{Fin: true, Rsv: 0xff, OpCode: 0xf1, Length: -5})
	if want := bits("1 111 0001 0 0000000"); !bytes.Equal(got, want) {
		t.Errorf("AppendHeader = % x; want % x", got, want)
	}
	if n := HeaderSize(Header{Length: -5}); n != 2 {
		t.Errorf("HeaderSize(-5) = %d; want 2", n)
	}
}

func TestAppendFrame(t *testing.T) {
	t.Parallel()
	payload := []byte("Hello")
	h := Header{Fin: true, OpCode: OpText, Masked: true, Mask: rfcKey, Length: 999}
	got := AppendFrame([]byte{0xee}, h, payload)
	want := []byte{0xee, 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}
	if !bytes.Equal(got, want) {
		t.Errorf("AppendFrame = % x; want % x", got, want)
	}
	if string(payload) != "Hello" {
		t.Errorf("AppendFrame modified payload: %q", payload)
	}
	// Long payloads take the extended lengths and are masked word-wise.
	for _, n := range []int{0, 125, 126, 65535, 65536} {
		p := bytes.Repeat([]byte{'x'}, n)
		f := AppendFrame(nil, Header{Fin: true, OpCode: OpBinary, Masked: true, Mask: rfcKey}, p)
		g, hn, err := ParseHeader(f)
		if err != nil || g.Length != int64(n) || hn+n != len(f) {
			t.Fatalf("n=%d: %+v, %d, %v", n, g, hn, err)
		}
		Mask(f[hn:], g.Mask, 0)
		if !bytes.Equal(f[hn:], p) {
			t.Errorf("n=%d: payload does not unmask", n)
		}
	}
}

func TestOpCode(t *testing.T) {
	t.Parallel()
	for o := range OpCode(16) {
		defined := o <= 2 || (o >= 8 && o <= 0xa)
		if o.IsReserved() == defined {
			t.Errorf("%v.IsReserved() = %v", o, o.IsReserved())
		}
		if o.IsControl() != (o >= 8) || o.IsData() != (o < 8) {
			t.Errorf("%v: IsControl %v IsData %v", o, o.IsControl(), o.IsData())
		}
	}
	for o, want := range map[OpCode]string{
		OpContinuation: "OpContinuation", OpText: "OpText", OpBinary: "OpBinary",
		OpClose: "OpClose", OpPing: "OpPing", OpPong: "OpPong", 3: "OpCode(3)", 0xf: "OpCode(15)",
	} {
		if o.String() != want {
			t.Errorf("String(%d) = %q; want %q", byte(o), o.String(), want)
		}
	}
	if !OpCode(0x10).IsReserved() {
		t.Error("0x10 not reserved")
	}
}
