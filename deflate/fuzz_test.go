package deflate

import (
	"bytes"
	"testing"
)

// Seed corpora are in testdata/fuzz/<Target>; the f.Add seeds below are the
// same kinds of input and keep the targets meaningful when run with -run.

// fuzzConfigs are the configurations FuzzNegotiate picks from.
var fuzzConfigs = []*Config{
	nil,
	{ServerContextTakeover: true},
	{ClientContextTakeover: true},
	{ClientContextTakeover: true, ClientMaxWindowBits: 15},
	{ServerContextTakeover: true, ClientContextTakeover: true, HistoryBits: 15, ClientMaxWindowBits: 8},
	{ServerContextTakeover: true, HistoryBits: 8},
}

// FuzzNegotiate: Negotiate never panics, keeps dst, and an accepted answer
// parses back into the agreed Params, carries client_max_window_bits only if
// offered (RFC 7692 §7.1.2.2) and echoes the server_max_window_bits it
// honours.
func FuzzNegotiate(f *testing.F) {
	for _, s := range []string{
		"permessage-deflate; client_max_window_bits",
		"permessage-deflate; server_max_window_bits=10; client_max_window_bits=9",
		`foo; bar="a,b", permessage-deflate; server_max_window_bits="12"`,
		"permessage-deflate; server_max_window_bits=10; server_max_window_bits=10, permessage-deflate",
		"permessage-deflate; client_no_context_takeover; server_no_context_takeover",
		`permessage-deflate; server_max_window_bits="1\5"`,
		"permessage-deflate; x, permessage-deflate; server_max_window_bits=8",
	} {
		for i := range fuzzConfigs {
			f.Add([]byte(s), uint8(i))
		}
	}
	f.Fuzz(func(t *testing.T, offers []byte, which uint8) {
		cfg := fuzzConfigs[int(which)%len(fuzzConfigs)]
		resp, p, ok := Negotiate([]byte("x:"), offers, cfg)
		if string(resp[:2]) != "x:" {
			t.Fatalf("dst prefix lost")
		}
		if !ok {
			if len(resp) != 2 || p != (Params{}) {
				t.Fatalf("declined but answered %q %+v", resp, p)
			}
			return
		}
		if !bytes.Contains(bytes.ToLower(offers), []byte("permessage-deflate")) {
			t.Fatalf("accepted %q", offers)
		}
		checkResponse(t, string(offers), string(resp[2:]), p)
	})
}

// FuzzRoundTrip: any message, compressed at any window size with and without
// history, decodes to itself with the reference inflater (all distances
// within the window), klauspost, compress/flate and this package's
// Decompressor. The compressors are built once and reset per input.
func FuzzRoundTrip(f *testing.F) {
	m := newMarket(1)
	f.Add([]byte("Hello"), uint8(7), uint8(0))
	f.Add(m.trade(nil), uint8(7), uint8(3))
	f.Add(m.depth(nil), uint8(2), uint8(3))
	f.Add(m.sized(1500), uint8(0), uint8(1))
	f.Add(bytes.Repeat([]byte("abcdefghijklmnopqrstuvwxyz0123456789"), 40), uint8(0), uint8(3))
	comps := []*Compressor{
		mustCompressor(f, &Config{Threshold: -1}),
		mustCompressor(f, &Config{Threshold: -1, ServerContextTakeover: true}),
		mustCompressor(f, &Config{Threshold: -1, Level: 5}),
	}
	dec := NewDecompressor()
	f.Fuzz(func(t *testing.T, msg []byte, bits, mode uint8) {
		b := 8 + int(bits%8)
		takeover := mode&1 != 0
		comp := comps[int(mode>>2)%len(comps)]
		p := Params{ServerContextTakeover: takeover, ServerMaxWindowBits: uint8(b), HistoryBits: uint8(min(b, 8+int(mode>>4)%8))}
		dp := Params{ClientContextTakeover: takeover, ClientMaxWindowBits: uint8(b)}
		pr := &peer{bits: b, takeover: takeover}
		var h, dh History
		seq := [][]byte{msg}
		if mode&2 != 0 {
			seq = [][]byte{msg[len(msg)/2:], msg[:len(msg)/2], msg} // history first
		}
		for _, x := range seq {
			before := append([]byte(nil), h.buf...)
			out, ok := comp.AppendCompress(nil, x, p, &h)
			if !ok {
				if len(out) != 0 || !bytes.Equal(before, h.buf) {
					t.Fatal("uncompressed message changed dst or the history")
				}
				continue
			}
			pr.receive(t, out, x)
			got, err := dec.AppendDecompress(nil, out, len(x), dp, &dh)
			if err != nil || !bytes.Equal(got, x) {
				t.Fatalf("Decompressor: %v", err)
			}
		}
	})
}

// FuzzInflate: arbitrary payloads never panic, never produce more than the
// limit (size or ratio), keep dst, and fail only with the sentinels.
func FuzzInflate(f *testing.F) {
	m := newMarket(2)
	f.Add([]byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}, uint16(100), false)
	f.Add([]byte{0xf2, 0x00, 0x11, 0x00, 0x00}, uint16(100), true)
	f.Add([]byte{0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00}, uint16(4), false)
	f.Add(deflateStd(f, make([]byte, 100000), nil, false), uint16(1000), false)
	f.Add(deflateStd(f, m.sized(3000), nil, false), uint16(3000), true)
	f.Add(append(deflateStd(f, []byte("one"), nil, true), deflateStd(f, []byte("two"), nil, false)...), uint16(6), false)
	dec := NewDecompressor()
	var h History
	f.Fuzz(func(t *testing.T, payload []byte, limit uint16, takeover bool) {
		p := Params{ClientContextTakeover: takeover, ClientMaxWindowBits: 10}
		if !takeover {
			h.Release() // a fresh connection now and then
		}
		// One limit in three also has a ratio bound (2 to 8, floor a
		// quarter of the size).
		lim := Limit{Size: int(limit)}
		if limit%3 == 0 {
			lim.Ratio, lim.Floor = 2+int(limit%7), int(limit)/4
		}
		bound, _ := lim.bound(len(payload))
		out, err := dec.AppendDecompressLimit([]byte("dst"), payload, lim, p, &h)
		if string(out[:3]) != "dst" {
			t.Fatal("dst prefix lost")
		}
		switch err {
		case nil:
			if len(out)-3 > bound {
				t.Fatalf("%d bytes out with limit %+v (bound %d)", len(out)-3, lim, bound)
			}
		case ErrRatio:
			if lim.Ratio == 0 || len(out) != 3 {
				t.Fatalf("ErrRatio with limit %+v, %d bytes out", lim, len(out)-3)
			}
		case ErrTooLarge, ErrCorrupt:
			if len(out) != 3 {
				t.Fatal("error with output")
			}
		default:
			t.Fatalf("unexpected error %v", err)
		}
		if h.Len() > 1<<10 {
			t.Fatalf("history %d bytes for a 10-bit window", h.Len())
		}
	})
}
