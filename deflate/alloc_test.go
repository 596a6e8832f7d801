//go:build !race

package deflate

import (
	"testing"
)

// The race detector and coverage change allocation counts, so these tests
// live in a !race file and skip under -short.

func assertNoAllocs(t *testing.T, name string, f func()) {
	t.Helper()
	if testing.Short() {
		t.Skip("allocation tests skipped in -short mode")
	}
	if n := testing.AllocsPerRun(100, f); n > 0 {
		t.Errorf("%s: allocs = %g; want 0", name, n)
	}
}

func TestNegotiateAllocs(t *testing.T) {
	dst := make([]byte, 0, 128)
	cfg := &Config{ServerContextTakeover: true, ClientContextTakeover: true}
	for _, offers := range []string{
		"permessage-deflate; client_max_window_bits",
		`foo; bar="x,y", permessage-deflate; server_max_window_bits="10"; client_max_window_bits=9`,
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=15",
		"permessage-deflate; junk, x-other",
	} {
		b := []byte(offers)
		assertNoAllocs(t, offers, func() { sinkBytes, sinkParams, sinkBool = Negotiate(dst[:0], b, nil) })
		assertNoAllocs(t, offers, func() { sinkBytes, sinkParams, sinkBool = Negotiate(dst[:0], b, cfg) })
	}
}

func TestCompressAllocs(t *testing.T) {
	m := newMarket(21)
	depth, trade, big := m.depth(nil), m.trade(nil), m.sized(4096)
	dst := make([]byte, 0, 8192)
	comp := mustCompressor(t, nil)
	tp := Params{ServerContextTakeover: true, HistoryBits: 12}
	var h History
	comp.AppendCompress(dst[:0], depth, tp, &h) // create the Writer and the History
	assertNoAllocs(t, "no takeover 2 KB", func() { sinkBytes, sinkBool = comp.AppendCompress(dst[:0], depth, Params{}, nil) })
	assertNoAllocs(t, "takeover 2 KB", func() { sinkBytes, sinkBool = comp.AppendCompress(dst[:0], depth, tp, &h) })
	assertNoAllocs(t, "takeover 190 B", func() { sinkBytes, sinkBool = comp.AppendCompress(dst[:0], trade, tp, &h) })

	// 10-bit window: a 4 KiB message needs the window writer, a 190-byte
	// one the cut dictionary.
	wp := Params{ServerContextTakeover: true, ServerMaxWindowBits: 10, HistoryBits: 10}
	var wh History
	comp.AppendCompress(dst[:0], big, wp, &wh)
	assertNoAllocs(t, "10-bit window 4 KiB", func() { sinkBytes, sinkBool = comp.AppendCompress(dst[:0], big, wp, &wh) })
	assertNoAllocs(t, "10-bit window 190 B", func() { sinkBytes, sinkBool = comp.AppendCompress(dst[:0], trade, wp, &wh) })

	// Documented exception: under 128 bytes with a history (Threshold < 0)
	// StatelessDeflate allocates one buffer per message.
	all := mustCompressor(t, &Config{Threshold: -1})
	small := trade[:100]
	all.AppendCompress(dst[:0], depth, tp, &h)
	if n := testing.AllocsPerRun(100, func() { sinkBytes, sinkBool = all.AppendCompress(dst[:0], small, tp, &h) }); n > 1 {
		t.Errorf("small message with history: allocs = %g; want ≤ 1", n)
	}
}

func TestDecompressAllocs(t *testing.T) {
	m := newMarket(22)
	depth := m.depth(nil)
	big := m.sized(300000)
	comp := mustCompressor(t, nil)
	payload, _ := comp.AppendCompress(nil, depth, Params{}, nil)
	bigPayload := deflateStd(t, big, nil, false)
	if len(bigPayload) <= maxCopy {
		t.Fatalf("big payload %d bytes", len(bigPayload))
	}
	dst := make([]byte, 0, 512<<10)
	d := NewDecompressor()
	d.AppendDecompress(dst[:0], payload, 1<<20, Params{}, nil)
	assertNoAllocs(t, "2 KB", func() { sinkBytes, sinkErr = d.AppendDecompress(dst[:0], payload, 1<<20, Params{}, nil) })
	assertNoAllocs(t, "300 KB in place", func() { sinkBytes, sinkErr = d.AppendDecompress(dst[:0], bigPayload, 1<<20, Params{}, nil) })
	assertNoAllocs(t, "too large", func() { sinkBytes, sinkErr = d.AppendDecompress(dst[:0], payload, 100, Params{}, nil) })
	corrupt := []byte{0x06} // a literal would be allocated per call: payload escapes (see AppendDecompress)
	assertNoAllocs(t, "corrupt", func() { sinkBytes, sinkErr = d.AppendDecompress(dst[:0], corrupt, 100, Params{}, nil) })

	// Client context takeover: the inflate History is the dictionary.
	p := Params{ClientContextTakeover: true, ClientMaxWindowBits: 15}
	var h History
	d.AppendDecompress(dst[:0], payload, 1<<20, p, &h)
	assertNoAllocs(t, "client takeover", func() { sinkBytes, sinkErr = d.AppendDecompress(dst[:0], payload, 1<<20, p, &h) })
	if sinkErr != nil {
		t.Fatal(sinkErr)
	}
}

// TestDecompressExactBufferAllocs: a reused buffer exactly as large as the
// message, and as the limit, is enough (the end of the message is found
// without more room), for a 1 KiB message that inflates to 1 MiB too.
func TestDecompressExactBufferAllocs(t *testing.T) {
	bomb := deflateStd(t, make([]byte, 1<<20), nil, false)
	msg := newMarket(5).sized(4096)
	payload := deflateStd(t, msg, nil, false)
	d := NewDecompressor()
	small := make([]byte, 0, len(msg))
	big := make([]byte, 0, 1<<20)
	d.AppendDecompress(small, payload, len(msg), Params{}, nil) // create the reader
	assertNoAllocs(t, "4 KiB into 4 KiB", func() {
		sinkBytes, sinkErr = d.AppendDecompress(small, payload, len(msg), Params{}, nil)
	})
	assertNoAllocs(t, "1 MiB bomb into 1 MiB", func() {
		sinkBytes, sinkErr = d.AppendDecompress(big, bomb, 1<<20, Params{}, nil)
	})
	assertNoAllocs(t, "1 MiB bomb past its ratio", func() {
		sinkBytes, sinkErr = d.AppendDecompressLimit(big, bomb, Limit{Size: 1 << 20, Ratio: 64, Floor: 4096}, Params{}, nil)
	})
	if sinkErr != ErrRatio {
		t.Fatalf("bomb past its ratio: %v", sinkErr)
	}
}
