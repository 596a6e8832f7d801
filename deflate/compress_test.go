package deflate

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// testMessages is a sequence that exercises every compressor path: tiny and
// small JSON (the StatelessDeflate path under 128 bytes, the Writer from
// 128), messages around every window size, incompressible ones (sent
// uncompressed, so kept out of the history), and repeats at distances
// chosen to tempt the compressor past small windows.
func testMessages() [][]byte {
	m := newMarket(7)
	r := rand.New(rand.NewPCG(7, 7))
	var msgs [][]byte
	for _, n := range []int{1, 20, 64, 127, 128, 129, 200, 255, 256, 257, 300, 511, 512, 513, 1000, 1023, 1024, 1025,
		2047, 2048, 2049, 4095, 4096, 4097, 8192, 9000, 16384, 16385, 32767, 32768, 32769, 70000, 150} {
		msgs = append(msgs, m.sized(n))
	}
	for range 20 {
		msgs = append(msgs, m.trade(nil))
	}
	msgs = append(msgs, m.depth(nil), randomBytes(r, 300), m.trade(nil), randomBytes(r, 5000))
	for _, d := range []int{200, 300, 600, 3000, 5000, 20000} {
		blk := randomBytes(r, d)
		msgs = append(msgs, append(append([]byte(nil), blk...), blk...)) // repeat at distance d
		msgs = append(msgs, blk[:min(d, 100)])                           // refers back to the previous message
	}
	return msgs
}

// TestRoundTrip compresses a sequence at every window size, with and without
// server context takeover, and decodes each message as independent peers
// would (reference inflater with its window checked, klauspost, compress/flate,
// and this package's Decompressor with client context takeover).
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	msgs := testMessages()
	type variant struct{ level, bits int }
	var variants []variant
	for bits := 8; bits <= 15; bits++ {
		variants = append(variants, variant{1, bits})
	}
	for _, level := range []int{4, 6, 9} { // other encoders: fewer window sizes
		for _, bits := range []int{8, 11, 15} {
			variants = append(variants, variant{level, bits})
		}
	}
	for _, v := range variants {
		bits := v.bits
		for _, takeover := range []bool{false, true} {
			t.Run(fmt.Sprintf("level=%d/bits=%d/takeover=%v", v.level, bits, takeover), func(t *testing.T) {
				t.Parallel()
				cfg := &Config{Level: v.level, Threshold: -1, ServerContextTakeover: takeover}
				comp := mustCompressor(t, cfg)
				p := Params{ServerContextTakeover: takeover, ServerMaxWindowBits: uint8(bits), HistoryBits: uint8(min(12, bits))}
				pr := &peer{bits: bits, takeover: takeover}
				// Our own Decompressor as the client's peer: the server's
				// output seen from the other side of the wire.
				dec := NewDecompressor()
				dp := Params{ClientContextTakeover: takeover, ClientMaxWindowBits: uint8(bits)}
				var h, dh History
				compressed := 0
				for i, msg := range msgs {
					before := append([]byte(nil), h.buf...)
					payload, ok := comp.AppendCompress([]byte("hdr"), msg, p, &h)
					if !bytes.HasPrefix(payload, []byte("hdr")) {
						t.Fatalf("msg %d: dst prefix lost", i)
					}
					payload = payload[3:]
					if !ok {
						if len(payload) != 0 {
							t.Fatalf("msg %d: ok=false but %d bytes appended", i, len(payload))
						}
						if !bytes.Equal(before, h.buf) {
							t.Fatalf("msg %d: uncompressed message changed the history", i)
						}
						continue
					}
					compressed++
					seed := takeover && len(before) == 0 && len(msg) < smallInput && len(payload) == len(msg)+6
					if len(payload) >= len(msg) && !seed {
						t.Fatalf("msg %d: compressed %d >= %d", i, len(payload), len(msg))
					}
					pr.receive(t, payload, msg)
					got, err := dec.AppendDecompress(nil, payload, -1, dp, &dh)
					if err != nil || !bytes.Equal(got, msg) {
						t.Fatalf("msg %d (%d bytes): Decompressor: %v", i, len(msg), err)
					}
					if takeover {
						if hs := p.historySize(); h.Len() > hs || cap(h.buf) != hs {
							t.Fatalf("history len %d cap %d, size %d", h.Len(), cap(h.buf), hs)
						}
						if tail := pr.window[max(0, len(pr.window)-h.Len()):]; !bytes.Equal(tail, h.buf) {
							t.Fatalf("msg %d: history is not the end of the peer's window", i)
						}
					} else if h.Len() != 0 {
						t.Fatalf("history used without takeover")
					}
					if i == len(msgs)/2 {
						h.Release() // idle: the next message starts without history
						if h.buf != nil {
							t.Fatal("Release kept the buffer")
						}
					}
				}
				if compressed < len(msgs)/2 {
					t.Fatalf("only %d of %d messages compressed", compressed, len(msgs))
				}
				// The data must make the compressor use most of the window,
				// or the distance check proves nothing.
				if pr.maxDist <= 1<<(bits-1) {
					t.Fatalf("largest distance %d: the window was not exercised", pr.maxDist)
				}
			})
		}
	}
}

// TestWindowWriters checks which writers exist after compressing: the window
// writers appear only for messages over half the window.
func TestWindowWriters(t *testing.T) {
	t.Parallel()
	comp := mustCompressor(t, &Config{Threshold: -1, ServerContextTakeover: true})
	m := newMarket(3)
	var h History
	p := Params{ServerContextTakeover: true, ServerMaxWindowBits: 10, HistoryBits: 10}
	for range 50 {
		comp.AppendCompress(nil, m.sized(300), p, &h) // ≤ 512: dictionary cut to fit
	}
	if n := windowWriters(comp); n != 0 {
		t.Fatalf("%d window writers for small messages", n)
	}
	comp.AppendCompress(nil, m.sized(600), p, &h)
	comp.AppendCompress(nil, m.sized(600), Params{ServerMaxWindowBits: 10}, nil)
	if n := windowWriters(comp); n != 1 || comp.win[10-8] == nil {
		t.Fatalf("%d window writers, want the 10-bit one", n)
	}
	comp.AppendCompress(nil, m.sized(40000), Params{}, nil)
	if n := windowWriters(comp); n != 1 {
		t.Fatalf("%d window writers after a 15-bit message", n)
	}
}

func windowWriters(c *Compressor) (n int) {
	for _, w := range c.win {
		if w != nil {
			n++
		}
	}
	return n
}

func TestThreshold(t *testing.T) {
	t.Parallel()
	m := newMarket(5)
	small, mid, big := m.sized(100), m.sized(300), m.sized(600)
	var h History
	tp := Params{ServerContextTakeover: true}
	tests := []struct {
		cfg  *Config
		msg  []byte
		p    Params
		h    *History
		want bool
	}{
		{nil, mid, Params{}, nil, false},
		{nil, big, Params{}, nil, true},
		{nil, small, tp, &h, false},
		{nil, mid, tp, &h, true},
		{nil, mid, tp, nil, false}, // no History: no takeover, plain threshold
		{&Config{Threshold: 1000}, big, Params{}, nil, false},
		{&Config{Threshold: 1000}, big, tp, &h, false},
		{&Config{Threshold: -1}, mid, Params{}, nil, true},
		{&Config{Threshold: -1}, small, tp, &History{buf: mid[:200]}, true}, // StatelessDeflate with the history
		{&Config{Threshold: -1}, []byte{}, Params{}, nil, false},            // never larger than the input
		{&Config{Threshold: -1}, []byte("a"), Params{}, nil, false},
		{&Config{Threshold: -1}, randomBytes(rand.New(rand.NewPCG(1, 1)), 2000), Params{}, nil, false},
	}
	for i, tt := range tests {
		comp := mustCompressor(t, tt.cfg)
		out, ok := comp.AppendCompress(nil, tt.msg, tt.p, tt.h)
		if ok != tt.want || ok != (len(out) > 0) {
			t.Errorf("case %d: ok=%v len=%d, want ok=%v", i, ok, len(out), tt.want)
		}
	}
}

// TestBroadcast follows the documented broadcast recipe: one frame
// compressed with the zero Params for every connection, then History.Add
// for the connections with takeover, whose next own messages must decode.
func TestBroadcast(t *testing.T) {
	t.Parallel()
	m := newMarket(11)
	comp := mustCompressor(t, &Config{ServerContextTakeover: true})
	p := Params{ServerContextTakeover: true, ServerMaxWindowBits: 15, HistoryBits: 12}
	var h History
	pr := &peer{bits: 15, takeover: true}
	for i := range 40 {
		msg := m.sized(600 + 37*i)
		if i%3 == 0 {
			shared, ok := comp.AppendCompress(nil, msg, Params{}, nil)
			if !ok {
				t.Fatal("broadcast not compressed")
			}
			pr.receive(t, shared, msg)
			h.Add(msg, p)
			continue
		}
		out, ok := comp.AppendCompress(nil, msg, p, &h)
		if !ok {
			t.Fatal("not compressed")
		}
		pr.receive(t, out, msg)
	}
}

// TestSmallTakeover sends only short messages with takeover and Threshold
// -1: the first seeds the History as a stored block, the rest refer to it.
func TestSmallTakeover(t *testing.T) {
	t.Parallel()
	m := newMarket(17)
	comp := mustCompressor(t, &Config{Threshold: -1, ServerContextTakeover: true})
	p := Params{ServerContextTakeover: true}
	pr := &peer{bits: 15, takeover: true}
	var h History
	in, out := 0, 0
	for i := range 100 {
		msg := m.sized(64)
		payload, ok := comp.AppendCompress(nil, msg, p, &h)
		if !ok {
			t.Fatalf("message %d not compressed", i)
		}
		if i == 0 && len(payload) != len(msg)+6 {
			t.Fatalf("seed: %d bytes for %d", len(payload), len(msg))
		}
		pr.receive(t, payload, msg)
		in += len(msg)
		out += len(payload)
	}
	if ratio := float64(out) / float64(in); ratio > 0.6 {
		t.Fatalf("ratio %.2f: the history is not used", ratio)
	}
}

func TestHistoryAdd(t *testing.T) {
	t.Parallel()
	var h History
	h.add(nil, 16)
	if h.buf != nil {
		t.Fatal("empty add allocated")
	}
	h.add([]byte("0123456789"), 16)
	h.add([]byte("abcdefghij"), 16)
	if got := string(h.buf); got != "456789abcdefghij" {
		t.Fatalf("got %q", got)
	}
	h.add([]byte("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), 16)
	if got := string(h.buf); got != "KLMNOPQRSTUVWXYZ" || cap(h.buf) != 16 {
		t.Fatalf("got %q cap %d", got, cap(h.buf))
	}
	h.add([]byte("xy"), 8) // size change keeps the newest bytes
	if got := string(h.buf); got != "UVWXYZxy" || cap(h.buf) != 8 {
		t.Fatalf("got %q cap %d", got, cap(h.buf))
	}
	h.Release()
	if h.Len() != 0 || h.buf != nil {
		t.Fatal("Release kept memory")
	}
}
