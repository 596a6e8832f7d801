package codec

// Mask XORs p in place with the masking key, starting at mask phase pos:
// byte i of p is XORed with key[(pos+i)&3] (RFC 6455 §5.3). It returns the
// phase for the next piece of the same payload, (pos+len(p))&3, so a
// payload that arrives in pieces is unmasked piece by piece:
//
//	pos := 0
//	for each piece { pos = codec.Mask(piece, h.Mask, pos) }
//
// Masking and unmasking are the same operation. pos may be any int; only
// its low 2 bits count. Mask works 8 bytes at a time with the 32-bit key
// rotated to the phase, 64 bytes per loop iteration. It does not allocate.
//
// NOTE: p does not escape.
func Mask(p []byte, key [4]byte, pos int) int {
	pos &= 3
	if len(p) < 16 { // too short for words to pay off
		for i := range p {
			p[i] ^= key[(pos+i)&3]
		}
	} else {
		maskWords(p, key, pos)
	}
	return (pos + len(p)) & 3
}
