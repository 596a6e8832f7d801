package codec

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

var benchSizes = []int{16, 64, 256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 1 << 20}

func sizeName(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// maskBytes is the plain byte-at-a-time loop Mask is compared with.
func maskBytes(p []byte, key [4]byte, pos int) int {
	for i := range p {
		p[i] ^= key[(pos+i)&3]
	}
	return (pos + len(p)) & 3
}

// BenchmarkMask runs, for each size, Mask on an 8-byte aligned slice, Mask
// on a slice starting 1 byte later at phase 1, a plain copy of the same
// number of bytes, and the byte-at-a-time loop.
func BenchmarkMask(b *testing.B) {
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	for _, n := range benchSizes {
		buf := make([]byte, n+8)
		dst := make([]byte, n)
		b.Run(sizeName(n)+"/mask", func(b *testing.B) {
			p := buf[:n]
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				Mask(p, key, 0)
			}
		})
		b.Run(sizeName(n)+"/mask-unaligned", func(b *testing.B) {
			p := buf[1 : n+1]
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				Mask(p, key, 1)
			}
		})
		b.Run(sizeName(n)+"/copy", func(b *testing.B) {
			p := buf[:n]
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				copy(dst, p)
			}
		})
		b.Run(sizeName(n)+"/bytes", func(b *testing.B) {
			p := buf[:n]
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				maskBytes(p, key, 0)
			}
		})
	}
}

func BenchmarkParseHeader(b *testing.B) {
	cases := []struct {
		name string
		p    []byte
	}{
		{"7bit", rfcFrames[0]},
		{"7bit-masked", rfcFrames[1]},
		{"16bit", rfcFrames[6][:4]},
		{"64bit-masked", rfcFrames[8]},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sinkHeader, sinkInt, sinkErr = ParseHeader(c.p)
			}
		})
	}
}

func BenchmarkAppendHeader(b *testing.B) {
	buf := make([]byte, 0, MaxHeaderSize)
	h := Header{Fin: true, OpCode: OpBinary, Masked: true, Mask: rfcKey, Length: 70000}
	b.ReportAllocs()
	for b.Loop() {
		sinkBytes = AppendHeader(buf[:0], h)
	}
}

func BenchmarkStreamNext(b *testing.B) {
	var s Stream
	r := &Rules{Server: true, Rsv: Rsv1, MaxFrameSize: 1 << 20, MaxMessageSize: 1 << 24}
	h := Header{Fin: true, OpCode: OpText, Masked: true, Length: 100}
	b.ReportAllocs()
	for b.Loop() {
		sinkErr = s.Next(h, r)
	}
}

// BenchmarkUTF8 runs UTF8.Write and, as a yardstick, utf8.Valid on ASCII,
// on JSON with a few accented letters, and on mixed text (most bytes
// non-ASCII).
func BenchmarkUTF8(b *testing.B) {
	mixed := "Hello, Grüße, 世界, κόσμε 😀 — "
	json := `{"id":12345,"name":"Zoë Müller","city":"Zürich","tags":["naïve","café"],"note":"plain text"}`
	for _, kind := range []string{"ascii", "json", "mixed"} {
		for _, n := range []int{64, 1 << 10, 64 << 10} {
			var text []byte
			switch kind {
			case "ascii":
				text = []byte(strings.Repeat("a", n))
			case "json":
				text = []byte(strings.Repeat(json, n/len(json)+1))
			default:
				text = []byte(strings.Repeat(mixed, n/len(mixed)+1))
			}
			for !utf8.Valid(text[:n]) {
				n-- // end on a code point boundary
			}
			text = text[:n]
			b.Run(kind+"/"+sizeName(len(text))+"/Write", func(b *testing.B) {
				var v UTF8
				b.SetBytes(int64(len(text)))
				b.ReportAllocs()
				for b.Loop() {
					v.Reset()
					sinkBool = v.Write(text)
				}
			})
			b.Run(kind+"/"+sizeName(len(text))+"/utf8.Valid", func(b *testing.B) {
				b.SetBytes(int64(len(text)))
				b.ReportAllocs()
				for b.Loop() {
					sinkBool = utf8.Valid(text)
				}
			})
		}
	}
}

func BenchmarkParseClose(b *testing.B) {
	p := []byte("\x03\xe9server going away")
	b.ReportAllocs()
	for b.Loop() {
		sinkCode, sinkBytes, sinkErr = ParseClose(p)
	}
}
