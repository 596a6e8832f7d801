package deflate

import (
	"bytes"
	stdflate "compress/flate"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
)

// TestRFC7692Examples decodes the examples of RFC 7692 §7.2.3.
func TestRFC7692Examples(t *testing.T) {
	t.Parallel()
	hello := []byte("Hello")
	tests := []struct {
		name    string
		payload []byte
	}{
		{"7.2.3.1 one compressed block", []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}},
		{"7.2.3.3 no compression", []byte{0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00}},
		{"7.2.3.4 BFINAL set", []byte{0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00}},
		{"7.2.3.4 BFINAL without the stored block", []byte{0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}},
		{"7.2.3.5 two blocks", []byte{0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00}},
	}
	d := NewDecompressor()
	for _, tt := range tests {
		got, err := d.AppendDecompress(nil, tt.payload, 100, Params{}, nil)
		if err != nil || !bytes.Equal(got, hello) {
			t.Errorf("%s: got %q, %v", tt.name, got, err)
		}
	}

	// 7.2.3.2: the second "Hello" refers to the first through the window.
	first := []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}
	second := []byte{0xf2, 0x00, 0x11, 0x00, 0x00}
	p := Params{ClientContextTakeover: true, ClientMaxWindowBits: 15}
	var h History
	for i, pl := range [][]byte{first, second} {
		got, err := d.AppendDecompress(nil, pl, 100, p, &h)
		if err != nil || !bytes.Equal(got, hello) {
			t.Fatalf("7.2.3.2 message %d: got %q, %v", i, got, err)
		}
	}
	// Without takeover the second message refers to nothing it has.
	if _, err := d.AppendDecompress(nil, second, 100, Params{}, nil); err != ErrCorrupt {
		t.Fatalf("7.2.3.2 without history: %v, want ErrCorrupt", err)
	}
}

func TestDecompress(t *testing.T) {
	t.Parallel()
	m := newMarket(9)
	msg := m.sized(5000)
	big := m.sized(300000) // compresses to more than maxCopy: the in-place reader
	r := rand.New(rand.NewPCG(9, 9))
	incompressible := randomBytes(r, 100000)

	d := NewDecompressor()
	for _, tt := range []struct {
		name string
		msg  []byte
	}{{"5 KB", msg}, {"300 KB", big}, {"100 KB random", incompressible}} {
		payload := deflateStd(t, tt.msg, nil, false)
		if tt.name != "5 KB" && len(payload) <= maxCopy {
			t.Fatalf("%s: payload %d bytes does not test the in-place path", tt.name, len(payload))
		}
		got, err := d.AppendDecompress([]byte("keep"), payload, len(tt.msg), Params{}, nil)
		if err != nil || !bytes.Equal(got[4:], tt.msg) || string(got[:4]) != "keep" {
			t.Fatalf("%s: %v", tt.name, err)
		}
		// The limit is exact.
		if _, err := d.AppendDecompress(nil, payload, len(tt.msg)-1, Params{}, nil); err != ErrTooLarge {
			t.Fatalf("%s: limit-1: %v, want ErrTooLarge", tt.name, err)
		}
		// A BFINAL stream followed by a second stream in the same message
		// (RFC 7692 §7.2.1: "The next DEFLATE block follows the padded data").
		two := append(deflateStd(t, tt.msg, nil, true), deflateStd(t, []byte("second stream"), nil, false)...)
		got, err = d.AppendDecompress(nil, two, -1, Params{}, nil)
		if err != nil || !bytes.Equal(got, append(append([]byte(nil), tt.msg...), "second stream"...)) {
			t.Fatalf("%s: two streams: %v", tt.name, err)
		}
		// Truncated in the middle.
		if _, err := d.AppendDecompress(nil, payload[:len(payload)/2], -1, Params{}, nil); err != ErrCorrupt {
			t.Fatalf("%s: truncated: %v, want ErrCorrupt", tt.name, err)
		}
	}

	if got, err := d.AppendDecompress([]byte("x"), nil, 0, Params{}, nil); err != nil || string(got) != "x" {
		t.Fatalf("empty payload: %q, %v", got, err)
	}
	if got, err := d.AppendDecompress(nil, []byte{0x00}, 0, Params{}, nil); err != nil || len(got) != 0 {
		t.Fatalf("empty stored block with limit 0: %q, %v", got, err)
	}
	if _, err := d.AppendDecompress(nil, []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}, 0, Params{}, nil); err != ErrTooLarge {
		t.Fatalf("Hello with limit 0: %v", err)
	}
}

// TestDecompressCorrupt feeds invalid DEFLATE data; each must fail with
// ErrCorrupt, keep dst and leave the Decompressor usable.
func TestDecompressCorrupt(t *testing.T) {
	t.Parallel()
	d := NewDecompressor()
	hello := []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}
	for _, tt := range []struct {
		name    string
		payload []byte
	}{
		{"reserved block type", []byte{0x06}},
		{"reserved block type final", []byte{0x07, 0x00}},
		{"stored length mismatch", []byte{0x00, 0x05, 0x00, 0x00, 0x00, 'H'}},
		{"stored truncated", []byte{0x00, 0x64, 0x00, 0x9b, 0xff, 'H'}},
		{"distance before start", []byte{0xf2, 0x00, 0x11, 0x00, 0x00}},
		{"bad dynamic header", []byte{0xec, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{"garbage", []byte("not deflate data at all, just text....")},
		{"bad second stream", append([]byte{0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}, 0x06)},
		{"truncated block", hello[:3]},
	} {
		got, err := d.AppendDecompress([]byte("keep"), tt.payload, 1000, Params{}, nil)
		if err != ErrCorrupt || string(got) != "keep" {
			t.Errorf("%s: got %q, %v; want ErrCorrupt", tt.name, got, err)
		}
		var e Error
		if !errors.As(err, &e) || e.Code != 1007 {
			t.Errorf("%s: close code %d", tt.name, e.Code)
		}
		if got, err := d.AppendDecompress(nil, hello, 100, Params{}, nil); err != nil || string(got) != "Hello" {
			t.Fatalf("after %s: %q, %v", tt.name, got, err)
		}
	}
}

// TestBomb inflates 8 MB of zeros (a few KB compressed) with a 64 KiB limit:
// it must stop at the limit, allocating about the limit and not the 8 MB.
func TestBomb(t *testing.T) {
	zeros := make([]byte, 8<<20)
	var payloads [][]byte
	payloads = append(payloads, deflateStd(t, zeros, nil, false))
	comp := mustCompressor(t, nil)
	ours, ok := comp.AppendCompress(nil, zeros, Params{}, nil)
	if !ok {
		t.Fatal("zeros not compressed")
	}
	payloads = append(payloads, ours)
	const limit = 64 << 10
	d := NewDecompressor()
	d.AppendDecompress(nil, payloads[0][:100], limit, Params{}, nil) // create the reader first
	for i, payload := range payloads {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		got, err := d.AppendDecompress([]byte("x"), payload, limit, Params{}, nil)
		runtime.ReadMemStats(&after)
		if err != ErrTooLarge || string(got) != "x" {
			t.Fatalf("payload %d (%d bytes): %v", i, len(payload), err)
		}
		var e Error
		if !errors.As(err, &e) || e.Code != 1009 {
			t.Fatalf("close code %d", e.Code)
		}
		// Allocation: the growing output (≤ 2×limit) and the payload copy.
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 3*limit+uint64(len(payload))+64<<10 {
			t.Fatalf("payload %d: allocated %d bytes for a %d limit", i, alloc, limit)
		}
		t.Logf("payload %d: %d compressed bytes for 8 MiB; stopped at limit %d after allocating %d bytes", i, len(payload), limit, after.TotalAlloc-before.TotalAlloc)
	}
	// A caller's buffer larger than the limit is not filled past it.
	buf := make([]byte, 0, 1<<20)
	if _, err := d.AppendDecompress(buf, payloads[0], limit, Params{}, nil); err != ErrTooLarge {
		t.Fatal(err)
	}
	if bytes.Count(buf[:1<<20], []byte{0}) != 1<<20 {
		t.Fatal("buffer not zero")
	}
}

// TestClientTakeover inflates a stream a client compresses with context
// takeover and a 10-bit window (RFC 7692 §7.2.3.2 style), with the inflate
// History sized by Params.
func TestClientTakeover(t *testing.T) {
	t.Parallel()
	m := newMarket(13)
	var b bytes.Buffer
	// The standard library cannot limit its window; a 15-bit window client.
	w, _ := stdflate.NewWriter(&b, stdflate.BestSpeed)
	p := Params{ClientContextTakeover: true, ClientMaxWindowBits: 15}
	var h History
	d := NewDecompressor()
	for i := range 200 {
		msg := m.trade(nil)
		b.Reset()
		w.Write(msg)
		w.Flush()
		payload := b.Bytes()[:b.Len()-4]
		got, err := d.AppendDecompress(nil, payload, 1<<20, p, &h)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if cap(h.buf) != 1<<15 {
		t.Fatalf("inflate history cap %d", cap(h.buf))
	}
	// Without the History the same stream fails (it refers to earlier
	// messages), proving the History is what made it work.
	b.Reset()
	msg := m.trade(nil)
	w.Write(msg)
	w.Flush()
	if _, err := d.AppendDecompress(nil, b.Bytes()[:b.Len()-4], 1<<20, Params{}, nil); err != ErrCorrupt {
		t.Fatalf("without history: %v", err)
	}
}

// A stream that follows a final block inside one message keeps the LZ77
// window (RFC 7692 §7.2.1, §7.2.2): it may refer to the message's earlier
// streams and, with client context takeover, to the History.
func TestStreamAfterFinalKeepsWindow(t *testing.T) {
	t.Parallel()
	a := bytes.Repeat([]byte("hello world, this is a test. "), 20)
	d := NewDecompressor()

	two := append(deflateStd(t, a, nil, true), deflateStd(t, a, a, false)...)
	got, err := d.AppendDecompress(nil, two, -1, Params{}, nil)
	if err != nil || !bytes.Equal(got, append(append([]byte(nil), a...), a...)) {
		t.Fatalf("second stream referring to the first: %d bytes, %v", len(got), err)
	}

	var h History
	p := Params{ClientContextTakeover: true, ClientMaxWindowBits: 15}
	if _, err := d.AppendDecompress(nil, deflateStd(t, a, nil, false), -1, p, &h); err != nil {
		t.Fatal(err)
	}
	two = append(deflateStd(t, []byte("x"), a, true), deflateStd(t, a, append(append([]byte(nil), a...), 'x'), false)...)
	got, err = d.AppendDecompress(nil, two, -1, p, &h)
	if err != nil || !bytes.Equal(got, append([]byte("x"), a...)) {
		t.Fatalf("takeover: second stream referring to the History and the first: %d bytes, %v", len(got), err)
	}

	// Many tiny final streams cost work in proportion to the payload: they
	// end in ErrTooLarge once the window copies outgrow it, not in 32 KiB
	// of copying each.
	tiny := bytes.Repeat(deflateStd(t, []byte("y"), nil, true), 1<<14)
	if _, err := d.AppendDecompress(nil, tiny, -1, Params{}, nil); err != ErrTooLarge {
		t.Fatalf("16,384 one-byte final streams: %v; want ErrTooLarge", err)
	}
	// A few streams are fine.
	few := bytes.Repeat(deflateStd(t, []byte("y"), nil, true), 16)
	if got, err := d.AppendDecompress(nil, few, -1, Params{}, nil); err != nil || string(got) != strings.Repeat("y", 16) {
		t.Fatalf("16 one-byte final streams: %q, %v", got, err)
	}
}

// TestDecompressLimit checks Limit: the ratio bound and its floor, Size
// below the ratio bound, the errors and their close code, and that the
// output stops at the bound.
func TestDecompressLimit(t *testing.T) {
	t.Parallel()
	zeros := func(n int) []byte { return make([]byte, n) }
	text := newMarket(3).sized(64 << 10) // JSON: inflates a few times its size
	lim := Limit{Size: 1 << 20, Ratio: 64, Floor: 4096}
	tests := []struct {
		name string
		msg  []byte
		lim  Limit
		want error
	}{
		{"text within the ratio", text, lim, nil},
		{"zeros under the floor", zeros(4096), lim, nil},
		{"zeros past the floor and the ratio", zeros(8192), lim, ErrRatio},
		{"1 MiB bomb", zeros(1 << 20), lim, ErrRatio},
		{"no ratio limit", zeros(1 << 20), Limit{Size: 1 << 20}, nil},
		{"size below the ratio bound", text, Limit{Size: 32 << 10, Ratio: 1000}, ErrTooLarge},
		{"no limit at all", zeros(1 << 20), Limit{Size: -1}, nil},
	}
	d := NewDecompressor()
	for _, tt := range tests {
		payload := deflateStd(t, tt.msg, nil, false)
		bound := tt.lim.Size
		if tt.lim.Ratio > 0 {
			bound = min(bound, max(tt.lim.Floor, tt.lim.Ratio*len(payload)))
		}
		buf := make([]byte, 3, 3+len(tt.msg)+1)
		spare := buf[3:cap(buf)]
		for i := range spare {
			spare[i] = 0xaa
		}
		got, err := d.AppendDecompressLimit(buf, payload, tt.lim, Params{}, nil)
		if err != tt.want {
			t.Errorf("%s: %d→%d bytes: err %v, want %v", tt.name, len(payload), len(tt.msg), err, tt.want)
			continue
		}
		if err != nil {
			var e Error
			if !errors.As(err, &e) || e.Code != 1009 {
				t.Errorf("%s: close code %d, want 1009", tt.name, e.Code)
			}
			if len(got) != 3 || cap(got) != cap(buf) {
				t.Errorf("%s: dst len %d cap %d after an error, want 3 and %d", tt.name, len(got), cap(got), cap(buf))
			}
			// Inflating went up to the bound and wrote nothing past it.
			if !bytes.Equal(spare[:bound], tt.msg[:bound]) || bytes.Count(spare[bound:], []byte{0xaa}) != len(spare)-bound {
				t.Errorf("%s: output did not stop at the bound %d", tt.name, bound)
			}
			continue
		}
		if !bytes.Equal(got[3:], tt.msg) {
			t.Errorf("%s: message differs", tt.name)
		}
	}
}

func TestErrorCloseCode(t *testing.T) {
	t.Parallel()
	for err, want := range map[error]uint16{ErrTooLarge: 1009, ErrRatio: 1009, ErrCorrupt: 1007} {
		var cc interface{ CloseCode() uint16 }
		if !errors.As(fmt.Errorf("conn: %w", err), &cc) || cc.CloseCode() != want {
			t.Errorf("%v: CloseCode, want %d", err, want)
		}
		if !strings.HasPrefix(err.Error(), "deflate: ") {
			t.Errorf("%q: no package prefix", err)
		}
	}
}
