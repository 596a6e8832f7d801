//go:build !purego

package codec

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestMaskAligned runs the aligned path, which short slices only take on
// CPUs without unaligned access, for every length 0–300 (and around the
// length where long slices switch to it), every phase 0–7 and every
// alignment 0–7.
func TestMaskAligned(t *testing.T) {
	t.Parallel()
	key := [4]byte{0x89, 0xab, 0xcd, 0xef}
	src := make([]byte, 1100)
	fill(rand.New(rand.NewPCG(9, 10)), src)
	buf := make([]byte, 8+len(src)+8)
	lengths := make([]int, 0, 500)
	for n := range 301 {
		lengths = append(lengths, n)
	}
	for n := alignFrom - 70; n <= alignFrom+70; n++ {
		lengths = append(lengths, n)
	}
	lengths = append(lengths, 1024, 1087, 1088, 1089, 1100)
	for align := range 8 {
		for _, n := range lengths {
			for pos := range 8 {
				for i := range buf {
					buf[i] = 0x5a
				}
				p := buf[align : align+n]
				copy(p, src)
				want := bytes.Clone(src[:n])
				maskRef(want, key, pos)
				maskAligned(p, key, pos)
				if !bytes.Equal(p, want) {
					t.Fatalf("maskAligned align %d len %d pos %d: wrong bytes", align, n, pos)
				}
				if bytes.Count(buf[:align], []byte{0x5a}) != align || bytes.Count(buf[align+n:], []byte{0x5a}) != len(buf)-align-n {
					t.Fatalf("maskAligned align %d len %d pos %d: wrote outside the slice", align, n, pos)
				}
			}
		}
	}
}
