//go:build !purego

package codec

import (
	"encoding/binary"
	"runtime"
	"unsafe"
)

// unalignedOK is true where the CPU loads and stores unaligned words in
// hardware (the list crypto/subtle used for its XOR), so short payloads
// skip the alignment prelude. Elsewhere every word access is aligned.
const unalignedOK = runtime.GOARCH == "386" || runtime.GOARCH == "amd64" || runtime.GOARCH == "arm64" ||
	runtime.GOARCH == "ppc64" || runtime.GOARCH == "ppc64le" || runtime.GOARCH == "s390x"

// alignFrom is the length from which aligning the slice pays off even where
// unaligned access works: unaligned words crossing cache lines cost more
// than the prelude (measured at 64 KiB: about 30% slower).
const alignFrom = 512

var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// wordKey returns the 64-bit word whose bytes, in memory order, are
// key[pos&3], key[(pos+1)&3], ... (the key rotated to phase pos, twice).
func wordKey(key [4]byte, pos int) uint64 {
	s := uint(pos&3) * 8
	var k uint32
	if littleEndian {
		k = binary.LittleEndian.Uint32(key[:])
		k = k>>s | k<<(32-s) // a shift by 32 gives 0
	} else {
		k = binary.BigEndian.Uint32(key[:])
		k = k<<s | k>>(32-s)
	}
	return uint64(k)<<32 | uint64(k)
}

// maskWords is Mask for len(p) >= 16.
func maskWords(p []byte, key [4]byte, pos int) {
	if unalignedOK && len(p) < alignFrom {
		maskFrom(p, 0, key, pos)
		return
	}
	maskAligned(p, key, pos)
}

// maskAligned masks p in bytes up to an 8-byte boundary and in single
// words up to a 64-byte boundary, so that every word access is aligned and
// no 64-byte block straddles two cache lines, then hands over to maskFrom.
func maskAligned(p []byte, key [4]byte, pos int) {
	n := len(p)
	base := unsafe.Pointer(unsafe.SliceData(p))
	i := min(int(-uintptr(base)&7), n)
	for j := 0; j < i; j++ {
		p[j] ^= key[(pos+j)&3]
	}
	k := wordKey(key, pos+i)
	for ; n-i >= 8 && (uintptr(base)+uintptr(i))&63 != 0; i += 8 {
		*(*uint64)(unsafe.Add(base, i)) ^= k
	}
	maskFrom(p, i, key, pos)
}

// maskFrom masks p[i:], where i is 0 or an offset at which p is 8-byte
// aligned: 64-byte blocks of 8 words, then words, then bytes. Words and
// blocks are multiples of 4 bytes, so the mask phase only moves in the
// byte loops.
func maskFrom(p []byte, i int, key [4]byte, pos int) {
	n := len(p)
	base := unsafe.Pointer(unsafe.SliceData(p))
	k := wordKey(key, pos+i)
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
