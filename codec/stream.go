package codec

import "math"

// Rules say what a stream of frame headers may contain. The zero value
// describes the client side of a connection with no extension and no size
// limits: frames must not be masked, RSV bits must be clear. A nil *Rules
// means the zero value. Rules are read, never modified.
type Rules struct {
	// Server is true on the server side: every received frame must be
	// masked (RFC 6455 §5.1). On the client side (false) no received frame
	// may be masked. Either violation is ErrMaskRequired or
	// ErrMaskForbidden (1002).
	Server bool
	// Rsv holds the RSV bits (Rsv1, Rsv2, Rsv3) a negotiated extension
	// gives a meaning to; permessage-deflate uses Rsv1. They are allowed
	// only on the first frame of a text or binary message (RFC 7692 §6.1);
	// on a control or continuation frame they are ErrMisplacedRsv, and bits
	// not in Rsv are ErrReservedBits (1002). Default 0: no extension.
	Rsv byte
	// MaxFrameSize is the largest payload length of one frame, in bytes;
	// a longer frame is ErrFrameTooLarge (1009). 0 means no limit.
	MaxFrameSize int64
	// MaxMessageSize is the largest sum of the payload lengths of the frames
	// of one message, in bytes; it is checked on each header, before any of
	// the payload is read, and a message going over is ErrMessageTooLarge
	// (1009). For a compressed message it limits the compressed size. 0
	// means no limit.
	MaxMessageSize int64
}

// Stream checks the sequence of frames in one direction of a connection
// and remembers the message in progress. The zero value has no message in
// progress. It is 16 bytes; copying it copies the state.
type Stream struct {
	size  int64  // payload bytes of the current message so far (saturating)
	op    OpCode // OpText or OpBinary of the current message, or 0
	flags uint8  // stream… bits
}

const (
	streamOpen       uint8 = 1 << iota // a fragmented message awaits continuation frames
	streamCompressed                   // the first frame of the message had RSV1
)

// Next checks the header of the next received frame against r and the
// frames before it, and records it. It returns nil, or a ProtocolError
// with the close code to send; after an error the state is unchanged and
// the connection should be failed.
//
// It checks, in this order: the mask rule (Rules.Server), the RSV bits
// (Rules.Rsv), the opcode sequence (a continuation frame needs an open
// message, a text or binary frame needs none), then the frame and message
// sizes. Control frames may come between the fragments of a message and do
// not change the state. The checks ParseHeader makes are not repeated,
// except that a reserved opcode is ErrReservedOpcode. It does not allocate.
//
// NOTE: r does not escape.
func (s *Stream) Next(h Header, r *Rules) error {
	var zero Rules
	if r == nil {
		r = &zero
	}
	// RFC 6455 §5.1: a server MUST close the connection upon receiving a
	// frame that is not masked; a client MUST close it if it detects a
	// masked frame.
	if h.Masked != r.Server {
		if r.Server {
			return ErrMaskRequired
		}
		return ErrMaskForbidden
	}
	// RFC 6455 §5.2: RSV bits MUST be 0 unless an extension defines them;
	// otherwise the receiver MUST fail the connection.
	if h.Rsv&^r.Rsv != 0 {
		return ErrReservedBits
	}
	op := h.OpCode
	switch {
	case op.IsReserved():
		// RFC 6455 §5.2: reserved opcodes MUST fail the connection.
		return ErrReservedOpcode
	case op.IsControl():
		// RFC 7692 §6.1: the "Per-Message Compressed" bit MUST NOT be set
		// on control frames (and no extension here defines other bits for
		// them).
		if h.Rsv != 0 {
			return ErrMisplacedRsv
		}
		if r.MaxFrameSize > 0 && h.Length > r.MaxFrameSize {
			return ErrFrameTooLarge
		}
		return nil // RFC 6455 §5.4: control frames MAY be injected between fragments.
	case op == OpContinuation:
		// RFC 6455 §5.4: a fragmented message is a first frame with FIN
		// clear, continuations, and a final continuation: a continuation
		// with nothing to continue is an error.
		if s.flags&streamOpen == 0 {
			return ErrUnexpectedContinuation
		}
		// RFC 7692 §6.1: RSV1 MUST NOT be set on non-first fragments.
		if h.Rsv != 0 {
			return ErrMisplacedRsv
		}
	default: // OpText, OpBinary
		// RFC 6455 §5.4: fragments of one message MUST NOT be interleaved
		// with another message's (without an extension that says so).
		if s.flags&streamOpen != 0 {
			return ErrContinuationExpected
		}
	}
	// RFC 6455 §10.4: an implementation SHOULD impose a limit on frame and
	// message size and fail with 1009 when it is exceeded.
	if r.MaxFrameSize > 0 && h.Length > r.MaxFrameSize {
		return ErrFrameTooLarge
	}
	size := s.size
	if op != OpContinuation {
		size = 0
	}
	if r.MaxMessageSize > 0 && h.Length > r.MaxMessageSize-size {
		return ErrMessageTooLarge
	}
	if op != OpContinuation {
		s.op = op
		s.flags = 0
		if h.Rsv&Rsv1 != 0 {
			s.flags = streamCompressed
		}
	}
	if h.Length > math.MaxInt64-size {
		size = math.MaxInt64 // only reachable without MaxMessageSize
	} else {
		size += h.Length
	}
	s.size = size
	if h.Fin {
		s.flags &^= streamOpen
	} else {
		s.flags |= streamOpen
	}
	return nil
}

// Op returns the opcode (OpText or OpBinary) of the message the last data
// frame accepted by Next belongs to, or OpContinuation before the first
// one and after Reset. It still reports the message after its final frame,
// until the next message starts, so the final frame's payload can be
// handled; InMessage tells whether more fragments are due.
func (s *Stream) Op() OpCode { return s.op }

// Compressed reports whether the first frame of the message Op describes
// carried RSV1 (a permessage-deflate message, RFC 7692 §6).
func (s *Stream) Compressed() bool { return s.flags&streamCompressed != 0 }

// InMessage reports whether a fragmented message is open: the last data
// frame had FIN clear, so the next data frame must be a continuation.
func (s *Stream) InMessage() bool { return s.flags&streamOpen != 0 }

// Size returns the sum of the payload lengths of the frames of the message
// Op describes, accepted so far (saturating at math.MaxInt64).
func (s *Stream) Size() int64 { return s.size }

// Reset forgets the message in progress.
func (s *Stream) Reset() { *s = Stream{} }
