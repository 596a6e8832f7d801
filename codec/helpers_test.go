package codec

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
)

// bits turns a bit string written like the RFC 6455 §5.2 diagram into
// bytes: "1 000 0001 1 0000101" is FIN, RSV1-3, opcode 1, MASK, length 5.
// Spaces are ignored; the bit count must be a multiple of 8.
func bits(s string) []byte {
	s = strings.ReplaceAll(s, " ", "")
	if len(s)%8 != 0 {
		panic(fmt.Sprintf("bits: %d bits is not a whole number of bytes", len(s)))
	}
	out := make([]byte, len(s)/8)
	for i, c := range s {
		switch c {
		case '1':
			out[i/8] |= 0x80 >> (i % 8)
		case '0':
		default:
			panic("bits: bad character " + string(c))
		}
	}
	return out
}

// cat concatenates byte slices into a new one.
func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// maskRef is the byte-at-a-time reference for Mask, written straight from
// RFC 6455 §5.3: octet i is XORed with key[i MOD 4].
func maskRef(p []byte, key [4]byte, pos int) int {
	for i := range p {
		p[i] ^= key[(pos+i)%4]
	}
	return (pos + len(p)) % 4
}

// fill fills p with pseudo-random bytes from rng.
func fill(rng *rand.Rand, p []byte) {
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
}

// Sinks keep results alive in benchmarks and allocation tests.
var (
	sinkHeader Header
	sinkInt    int
	sinkErr    error
	sinkBool   bool
	sinkCode   StatusCode
	sinkBytes  []byte
)
