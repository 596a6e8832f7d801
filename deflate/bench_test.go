package deflate

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/klauspost/compress/flate"
)

// Benchmarks run with Threshold -1 so that every size is compressed; the
// "ratio" metric is compressed/original bytes over the messages of the run
// (a message left uncompressed counts at its full size).
//
//	go test -run='^$' -bench=. -benchtime=2000x ./deflate

// Sinks keep results alive in benchmarks and allocation tests.
var (
	sinkBytes  []byte
	sinkParams Params
	sinkBool   bool
	sinkErr    error
)

var benchSizes = []int{64, 256, 1 << 10, 4 << 10, 16 << 10, 64 << 10}

func sizeName(n int) string {
	if n >= 1<<10 {
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// benchMessages returns 64 different market-data messages of size bytes.
func benchMessages(size int) [][]byte {
	m := newMarket(uint64(size))
	msgs := make([][]byte, 64)
	for i := range msgs {
		msgs[i] = m.sized(size)
	}
	return msgs
}

var benchModes = []struct {
	name     string
	takeover bool
}{{"no-takeover", false}, {"takeover", true}}

// benchCompress compresses msgs (of size bytes) in turn with one History,
// after a warm-up round, and reports the ratio.
func benchCompress(b *testing.B, comp *Compressor, msgs [][]byte, size int, p Params) {
	var h History
	dst := make([]byte, 0, 2*size+64)
	for _, msg := range msgs {
		comp.AppendCompress(dst[:0], msg, p, &h)
	}
	in, out := 0, 0
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		res, ok := comp.AppendCompress(dst[:0], msgs[i%len(msgs)], p, &h)
		in += size
		if ok {
			out += len(res)
		} else {
			out += size
		}
	}
	b.ReportMetric(float64(out)/float64(in), "ratio")
}

func BenchmarkCompress(b *testing.B) {
	for _, mode := range benchModes {
		for _, size := range benchSizes {
			b.Run(mode.name+"/"+sizeName(size), func(b *testing.B) {
				msgs := benchMessages(size)
				comp := mustCompressor(b, &Config{Threshold: -1, ServerContextTakeover: mode.takeover})
				p := Params{ServerContextTakeover: mode.takeover}
				benchCompress(b, comp, msgs, size, p)
			})
		}
	}
}

func BenchmarkDecompress(b *testing.B) {
	for _, mode := range benchModes {
		for _, size := range benchSizes {
			b.Run(mode.name+"/"+sizeName(size), func(b *testing.B) {
				msgs := benchMessages(size)
				comp := mustCompressor(b, &Config{Threshold: -1, ServerContextTakeover: mode.takeover})
				var h History
				sp := Params{ServerContextTakeover: mode.takeover}
				var payloads [][]byte
				for _, msg := range msgs {
					if out, ok := comp.AppendCompress(nil, msg, sp, &h); ok {
						payloads = append(payloads, out)
					}
				}
				if len(payloads) == 0 {
					b.Skip("nothing compressed")
				}
				// The decoding side keeps the client-takeover History
				// (a 15-bit window holds any 4 KiB history the server used).
				dp := Params{ClientContextTakeover: mode.takeover, ClientMaxWindowBits: 15}
				var dh History
				d := NewDecompressor()
				dst := make([]byte, 0, size+64)
				for _, pl := range payloads {
					if _, err := d.AppendDecompress(dst[:0], pl, size, dp, &dh); err != nil {
						b.Fatal(err)
					}
				}
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					if _, err := d.AppendDecompress(dst[:0], payloads[i%len(payloads)], size, dp, &dh); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkMarketData compresses realistic unique JSON messages: trades of
// ~190 bytes and order-book updates of ~2 KB, without history and with
// histories of 2, 4 and 8 KiB.
func BenchmarkMarketData(b *testing.B) {
	for _, kind := range []string{"trade-190B", "depth-2KB"} {
		for _, hb := range []int{0, 11, 12, 13} {
			name := "no-takeover"
			if hb > 0 {
				name = fmt.Sprintf("takeover-%dKiB", 1<<hb>>10)
			}
			b.Run(kind+"/"+name, func(b *testing.B) {
				m := newMarket(99)
				msgs := make([][]byte, 256)
				total := 0
				for i := range msgs {
					if kind == "trade-190B" {
						msgs[i] = m.trade(nil)
					} else {
						msgs[i] = m.depth(nil)
					}
					total += len(msgs[i])
				}
				comp := mustCompressor(b, &Config{Threshold: -1, ServerContextTakeover: hb > 0, HistoryBits: hb})
				p := Params{ServerContextTakeover: hb > 0, HistoryBits: uint8(hb)}
				var h History
				dst := make([]byte, 0, 8192)
				for _, msg := range msgs {
					comp.AppendCompress(dst[:0], msg, p, &h)
				}
				in, out := 0, 0
				b.SetBytes(int64(total / len(msgs)))
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					msg := msgs[i%len(msgs)]
					res, ok := comp.AppendCompress(dst[:0], msg, p, &h)
					in += len(msg)
					if ok {
						out += len(res)
					} else {
						out += len(msg)
					}
				}
				b.ReportMetric(float64(out)/float64(in), "ratio")
			})
		}
	}
}

// BenchmarkCompressWindow measures an honoured server_max_window_bits=10:
// 256-byte messages use the ordinary Writer with the history cut to fit,
// 4 KiB ones the NewWriterWindow(1024) writer.
func BenchmarkCompressWindow(b *testing.B) {
	for _, size := range []int{256, 4 << 10} {
		for _, mode := range benchModes {
			b.Run(fmt.Sprintf("bits=10/%s/%s", mode.name, sizeName(size)), func(b *testing.B) {
				msgs := benchMessages(size)
				comp := mustCompressor(b, &Config{Threshold: -1, ServerContextTakeover: mode.takeover})
				p := Params{ServerContextTakeover: mode.takeover, ServerMaxWindowBits: 10, HistoryBits: 10}
				benchCompress(b, comp, msgs, size, p)
			})
		}
	}
}

func BenchmarkNegotiate(b *testing.B) {
	offers := []byte("permessage-deflate; client_max_window_bits")
	dst := make([]byte, 0, 128)
	b.SetBytes(int64(len(offers)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		sinkBytes, sinkParams, sinkBool = Negotiate(dst[:0], offers, nil)
	}
}

// bombPayload is what a client sends for 1 MiB of zeros at the best
// compression: about 1 KiB, inflating 1,000 times larger.
func bombPayload(b *testing.B) []byte {
	var buf bytes.Buffer
	w, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		b.Fatal(err)
	}
	w.Write(make([]byte, 1<<20))
	w.Flush()
	return bytes.TrimSuffix(buf.Bytes(), syncTail)
}

// BenchmarkDecompressBomb inflates a 1 KiB message that inflates to 1 MiB,
// into a new buffer each time (what a pool that drops large buffers
// gives) and into one reused buffer, with a size limit the bomb fits in,
// one it exceeds, and a ratio limit.
func BenchmarkDecompressBomb(b *testing.B) {
	payload := bombPayload(b)
	for _, tc := range []struct {
		name   string
		lim    Limit
		reused bool
	}{
		{"new-buffer/size=1MiB", Limit{Size: 1 << 20}, false},
		{"reused-buffer/size=1MiB", Limit{Size: 1 << 20}, true},
		{"reused-buffer/size=64KiB", Limit{Size: 64 << 10}, true},
		{"reused-buffer/ratio=64,floor=4KiB", Limit{Size: 1 << 20, Ratio: 64, Floor: 4 << 10}, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			d := NewDecompressor()
			var dst []byte
			if tc.reused {
				dst = make([]byte, 0, 1<<20)
			}
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				out, err := d.AppendDecompressLimit(dst[:0], payload, tc.lim, Params{}, nil)
				if err != nil && err != ErrTooLarge && err != ErrRatio {
					b.Fatal(err)
				}
				sinkBytes = out
			}
			b.ReportMetric(float64(len(payload)), "payload-bytes")
		})
	}
}
