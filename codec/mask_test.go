package codec

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
)

// TestMaskReference compares Mask with the byte-at-a-time reference for
// every length 0–300 and 480–640 (the unsafe version aligns slices from
// 512 bytes on), every starting phase 0–7 and every alignment 0–7 of the
// slice start, and checks that bytes outside the slice are untouched.
func TestMaskReference(t *testing.T) {
	t.Parallel()
	key := [4]byte{0x01, 0x23, 0x45, 0x67}
	src := make([]byte, 640)
	fill(rand.New(rand.NewPCG(3, 4)), src)
	buf := make([]byte, 8+len(src)+8)
	ref := make([]byte, len(src))
	var lengths []int
	for n := range 301 {
		lengths = append(lengths, n)
	}
	for n := 480; n <= 640; n++ {
		lengths = append(lengths, n)
	}
	for align := range 8 {
		for _, n := range lengths {
			for pos := range 8 {
				for i := range buf {
					buf[i] = 0xaa
				}
				p := buf[align : align+n]
				copy(p, src)
				copy(ref, src[:n])
				wantPos := maskRef(ref[:n], key, pos)
				gotPos := Mask(p, key, pos)
				if gotPos != wantPos || !bytes.Equal(p, ref[:n]) {
					t.Fatalf("align %d len %d pos %d: pos %d (want %d), bytes differ: %v",
						align, n, pos, gotPos, wantPos, !bytes.Equal(p, ref[:n]))
				}
				for i, b := range buf {
					if (i < align || i >= align+n) && b != 0xaa {
						t.Fatalf("align %d len %d pos %d: byte %d outside the slice changed", align, n, pos, i)
					}
				}
			}
		}
	}
}

// TestMaskChunks checks that masking a payload piece by piece, carrying
// the returned phase, is the same as masking it at once.
func TestMaskChunks(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	key := [4]byte{0xde, 0xad, 0xbe, 0xef}
	for range 2000 {
		n := rng.IntN(2000)
		src := make([]byte, n)
		fill(rng, src)
		whole := bytes.Clone(src)
		Mask(whole, key, 0)
		pieces := bytes.Clone(src)
		pos := 0
		for off := 0; off < n; {
			k := min(n-off, rng.IntN(100))
			pos = Mask(pieces[off:off+k], key, pos)
			off += k
		}
		if pos != n%4 || !bytes.Equal(whole, pieces) {
			t.Fatalf("len %d: chunked masking differs", n)
		}
		// Masking twice restores the input.
		Mask(whole, key, 0)
		if !bytes.Equal(whole, src) {
			t.Fatalf("len %d: mask is not an involution", n)
		}
	}
}

func TestMaskPhase(t *testing.T) {
	t.Parallel()
	for _, pos := range []int{-5, -1, 0, 3, 4, 1 << 30, math.MaxInt} {
		p := []byte{0, 0, 0, 0, 0}
		next := Mask(p, [4]byte{1, 2, 3, 4}, pos)
		ph := pos & 3
		want := []byte{byte(1 + ph), byte(1 + (ph+1)&3), byte(1 + (ph+2)&3), byte(1 + (ph+3)&3), byte(1 + ph)}
		if !bytes.Equal(p, want) || next != (ph+5)&3 {
			t.Errorf("pos %d: % x, %d; want % x, %d", pos, p, next, want, (ph+5)&3)
		}
	}
}
