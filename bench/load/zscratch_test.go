package load

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/klauspost/compress/flate"
	"github.com/wsgate/wsgate/deflate"
)

func msgs4k() [][]byte {
	fill := filler(4096)
	var ms [][]byte
	for i := 0; i < 64; i++ {
		m := append([]byte(nil), fill...)
		putMsgHeader(m, uint32(i), int64(i)*12345, 4096)
		ms = append(ms, m)
	}
	return ms
}

func BenchmarkZLevels(b *testing.B) {
	ms := msgs4k()
	for _, lvl := range []int{-2, 1, 2, 3, 4, 5, 6} {
		b.Run(fmt.Sprintf("L%d", lvl), func(b *testing.B) {
			var buf bytes.Buffer
			w, _ := flate.NewWriter(&buf, lvl)
			out := 0
			b.SetBytes(4096)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				buf.Reset()
				w.ResetDict(&buf, nil)
				w.Write(ms[i%64])
				w.Flush()
				out += buf.Len() - 4
			}
			b.ReportMetric(float64(out)/float64(b.N)/4096, "ratio")
		})
	}
	b.Run("deflateCompressor", func(b *testing.B) {
		c, _ := deflate.NewCompressor(nil)
		dst := make([]byte, 0, 8192)
		out := 0
		b.SetBytes(4096)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			r, _ := c.AppendCompress(dst[:0], ms[i%64], deflate.Params{}, nil)
			out += len(r)
		}
		b.ReportMetric(float64(out)/float64(b.N)/4096, "ratio")
	})
}

func BenchmarkZInflate(b *testing.B) {
	ms := msgs4k()
	fill := filler(4096)
	tm, _ := newTemplate("", 4096, fill, true)
	for _, lvl := range []int{0, -2, 1, 2} {
		b.Run(fmt.Sprintf("src-L%d", lvl), func(b *testing.B) {
			var pls [][]byte
			for _, m := range ms {
				if lvl == 0 {
					pls = append(pls, tm.z)
					continue
				}
				var buf bytes.Buffer
				w, _ := flate.NewWriter(&buf, lvl)
				w.Write(m)
				w.Flush()
				pls = append(pls, buf.Bytes()[:buf.Len()-4])
			}
			d := deflate.NewDecompressor()
			dst := make([]byte, 0, 8192)
			b.SetBytes(4096)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := d.AppendDecompress(dst[:0], pls[i%64], 1<<20, deflate.Params{}, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
