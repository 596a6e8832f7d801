//go:build !purego

package codec

import (
	"encoding/binary"
	"unsafe"
)

// maskWords is Mask for len(p) >= 16: bytes up to an 8-byte aligned
// address, then aligned uint64 words (the key in native byte order, so any
// architecture works and no load is ever unaligned), then the tail bytes.
func maskWords(p []byte, key [4]byte, pos int) {
	n := len(p)
	base := unsafe.Pointer(unsafe.SliceData(p))
	i := min(int(-uintptr(base)&7), n)
	for j := 0; j < i; j++ {
		p[j] ^= key[(pos+j)&3]
	}
	var kb [8]byte
	for j := range kb {
		kb[j] = key[(pos+i+j)&3]
	}
	k := binary.NativeEndian.Uint64(kb[:])
	// Blocks and words are multiples of 4 bytes: the phase does not move.
	for ; n-i >= 64; i += 64 {
		w := (*[8]uint64)(unsafe.Add(base, i))
		w[0] ^= k
		w[1] ^= k
		w[2] ^= k
		w[3] ^= k
		w[4] ^= k
		w[5] ^= k
		w[6] ^= k
		w[7] ^= k
	}
	for ; n-i >= 8; i += 8 {
		*(*uint64)(unsafe.Add(base, i)) ^= k
	}
	for ; i < n; i++ {
		p[i] ^= key[(pos+i)&3]
	}
}
