package codec

import "encoding/binary"

// Bits of Header.Rsv: RSV1, RSV2 and RSV3 of the first header byte.
const (
	Rsv1 byte = 4
	Rsv2 byte = 2
	Rsv3 byte = 1
)

// MaxHeaderSize is the size of the longest frame header: 2 bytes, an 8-byte
// extended length and a 4-byte masking key.
const MaxHeaderSize = 14

// MaxControlPayload is the longest payload of a control frame (RFC 6455
// §5.5). A close reason may be 2 bytes shorter.
const MaxControlPayload = 125

// Header is a frame header (RFC 6455 §5.2).
type Header struct {
	Fin    bool    // this is the final fragment of a message
	Rsv    byte    // RSV1..RSV3 as bits 2..0 (Rsv1, Rsv2, Rsv3)
	OpCode OpCode  // 4 bits
	Masked bool    // Mask holds the masking key
	Mask   [4]byte // masking key, if Masked
	Length int64   // payload length, 0 to 1<<63-1
}

// ParseHeader parses the frame header at the start of p and returns it with
// its size n. If p holds only part of a header, ParseHeader returns n == 0
// and a nil error: nothing was consumed, call again with more bytes (at most
// MaxHeaderSize are ever needed). On error n is 0 and h is the zero Header.
//
// ParseHeader checks what a header says on its own (each error is a
// ProtocolError with code 1002): a reserved opcode, a control frame that is
// fragmented or longer than 125 bytes, a length not in its shortest
// encoding, and a 64-bit length with the top bit set. The checks run in
// the order of the bytes they look at, so an error is reported as soon as
// the byte that causes it is in p, whatever the size of p. The rules that
// depend on the connection (masking, RSV bits, fragmentation, size limits)
// belong to Stream.Next.
//
// NOTE: p does not escape.
func ParseHeader(p []byte) (h Header, n int, err error) {
	if len(p) < 1 {
		return Header{}, 0, nil
	}
	b0 := p[0]
	op := OpCode(b0 & 0x0f)
	// RFC 6455 §5.2: a recipient receiving a reserved opcode MUST fail the
	// connection.
	if op.IsReserved() {
		return Header{}, 0, ErrReservedOpcode
	}
	// RFC 6455 §5.5: control frames MUST NOT be fragmented.
	if op.IsControl() && b0&0x80 == 0 {
		return Header{}, 0, ErrControlFragmented
	}
	if len(p) < 2 {
		return Header{}, 0, nil
	}
	b1 := p[1]
	l7 := int64(b1 & 0x7f)
	// RFC 6455 §5.5: control frames MUST have a payload length of 125 bytes
	// or less (126 and 127 announce an extended length).
	if op.IsControl() && l7 > MaxControlPayload {
		return Header{}, 0, ErrControlTooLong
	}
	n = 2
	switch l7 {
	case 126:
		if len(p) < 4 {
			return Header{}, 0, nil
		}
		l7 = int64(binary.BigEndian.Uint16(p[2:4]))
		// RFC 6455 §5.2: the minimal number of bytes MUST be used to encode
		// the length.
		if l7 < 126 {
			return Header{}, 0, ErrNonMinimalLength
		}
		n = 4
	case 127:
		if len(p) < 10 {
			return Header{}, 0, nil
		}
		v := binary.BigEndian.Uint64(p[2:10])
		// RFC 6455 §5.2: the most significant bit of the 64-bit length MUST
		// be 0.
		if v>>63 != 0 {
			return Header{}, 0, ErrLengthOverflow
		}
		// RFC 6455 §5.2: the minimal number of bytes MUST be used.
		if v <= 0xffff {
			return Header{}, 0, ErrNonMinimalLength
		}
		l7 = int64(v)
		n = 10
	}
	h = Header{
		Fin:    b0&0x80 != 0,
		Rsv:    (b0 >> 4) & 7,
		OpCode: op,
		Masked: b1&0x80 != 0,
		Length: l7,
	}
	if h.Masked {
		if len(p) < n+4 {
			return Header{}, 0, nil
		}
		copy(h.Mask[:], p[n:n+4])
		n += 4
	}
	return h, n, nil
}

// HeaderSize returns the number of bytes AppendHeader writes for h: 2, 4
// or 10, plus 4 if h is masked.
func HeaderSize(h Header) int {
	n := 2
	switch {
	case h.Length > 0xffff:
		n = 10
	case h.Length > MaxControlPayload:
		n = 4
	}
	if h.Masked {
		n += 4
	}
	return n
}

// AppendHeader appends the wire form of h to dst, with the length in its
// shortest encoding, and returns the extended slice. Only the low 4 bits of
// h.OpCode and the low 3 bits of h.Rsv are used; h is not validated. A
// negative h.Length is the caller's bug and is written as 0.
//
// It does not allocate when dst has HeaderSize(h) bytes of spare capacity.
func AppendHeader(dst []byte, h Header) []byte {
	var b [MaxHeaderSize]byte
	b[0] = byte(h.OpCode&0x0f) | (h.Rsv&7)<<4
	if h.Fin {
		b[0] |= 0x80
	}
	length := max(h.Length, 0)
	n := 2
	switch {
	case length > 0xffff:
		b[1] = 127
		binary.BigEndian.PutUint64(b[2:10], uint64(length))
		n = 10
	case length > MaxControlPayload:
		b[1] = 126
		binary.BigEndian.PutUint16(b[2:4], uint16(length))
		n = 4
	default:
		b[1] = byte(length)
	}
	if h.Masked {
		b[1] |= 0x80
		copy(b[n:n+4], h.Mask[:])
		n += 4
	}
	return append(dst, b[:n]...)
}

// AppendFrame appends a whole frame to dst: the header h with Length set to
// len(payload), then a copy of payload, masked with h.Mask if h.Masked
// (payload itself is not modified).
func AppendFrame(dst []byte, h Header, payload []byte) []byte {
	h.Length = int64(len(payload))
	dst = AppendHeader(dst, h)
	start := len(dst)
	dst = append(dst, payload...)
	if h.Masked {
		Mask(dst[start:], h.Mask, 0)
	}
	return dst
}
