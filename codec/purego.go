//go:build purego

package codec

import "encoding/binary"

// maskWords is Mask for len(p) >= 16 without package unsafe: little-endian
// uint64 words (the compiler turns encoding/binary into plain loads and
// stores where the CPU allows unaligned access), then the tail bytes.
func maskWords(p []byte, key [4]byte, pos int) {
	// Byte i of the little-endian word is key[(pos+i)&3]: the key rotated
	// right by pos bytes, twice.
	k32 := binary.LittleEndian.Uint32(key[:])
	k32 = k32>>(8*(pos&3)) | k32<<(32-8*(pos&3)) // a shift by 32 gives 0
	k := uint64(k32)<<32 | uint64(k32)
	b := p
	for len(b) >= 64 {
		binary.LittleEndian.PutUint64(b[0:8], binary.LittleEndian.Uint64(b[0:8])^k)
		binary.LittleEndian.PutUint64(b[8:16], binary.LittleEndian.Uint64(b[8:16])^k)
		binary.LittleEndian.PutUint64(b[16:24], binary.LittleEndian.Uint64(b[16:24])^k)
		binary.LittleEndian.PutUint64(b[24:32], binary.LittleEndian.Uint64(b[24:32])^k)
		binary.LittleEndian.PutUint64(b[32:40], binary.LittleEndian.Uint64(b[32:40])^k)
		binary.LittleEndian.PutUint64(b[40:48], binary.LittleEndian.Uint64(b[40:48])^k)
		binary.LittleEndian.PutUint64(b[48:56], binary.LittleEndian.Uint64(b[48:56])^k)
		binary.LittleEndian.PutUint64(b[56:64], binary.LittleEndian.Uint64(b[56:64])^k)
		b = b[64:]
	}
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b[:8], binary.LittleEndian.Uint64(b[:8])^k)
		b = b[8:]
	}
	// Whole words keep the phase: the tail starts at phase pos.
	for i := range b {
		b[i] ^= key[(pos+i)&3]
	}
}
