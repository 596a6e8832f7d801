package codec

import "errors"

// ProtocolError is an input the peer should not have sent, with the close
// code to answer it with (RFC 6455 §7.4.1). The package returns the
// preallocated Err… values below, which compare with == and errors.Is.
type ProtocolError struct {
	Code StatusCode // the status code of the close frame to send
	msg  string
}

// Error returns the message, which starts with "codec: ".
func (e ProtocolError) Error() string { return e.msg }

// CloseCode returns the close code to answer the error with: the way any
// error that implies a close code tells it (an interface with this one
// method, so that a server reads it with one check whatever the package).
func (e ProtocolError) CloseCode() uint16 { return uint16(e.Code) }

// The sentinels are declared as error values so that returning one does not
// allocate (a ProtocolError converted to an interface at each return would).
var (
	// ErrReservedOpcode is returned when a frame uses one of the reserved
	// opcodes 0x3–0x7 or 0xB–0xF (1002).
	ErrReservedOpcode error = ProtocolError{StatusProtocolError, "codec: reserved opcode"}
	// ErrReservedBits is returned when a frame sets an RSV bit that no
	// negotiated extension defines (1002).
	ErrReservedBits error = ProtocolError{StatusProtocolError, "codec: reserved bits set without a negotiated extension"}
	// ErrMisplacedRsv is returned when an RSV bit that the extension allows
	// is set on a control frame or a continuation frame (RFC 7692 §6.1) (1002).
	ErrMisplacedRsv error = ProtocolError{StatusProtocolError, "codec: RSV bit set on a control or continuation frame"}
	// ErrControlTooLong is returned when a control frame has a payload longer
	// than 125 bytes (1002).
	ErrControlTooLong error = ProtocolError{StatusProtocolError, "codec: control frame payload longer than 125 bytes"}
	// ErrControlFragmented is returned when a control frame has FIN clear
	// (1002).
	ErrControlFragmented error = ProtocolError{StatusProtocolError, "codec: fragmented control frame"}
	// ErrNonMinimalLength is returned when a payload length is encoded in
	// more bytes than needed (1002).
	ErrNonMinimalLength error = ProtocolError{StatusProtocolError, "codec: payload length not minimally encoded"}
	// ErrLengthOverflow is returned when a 64-bit payload length has its most
	// significant bit set (1002).
	ErrLengthOverflow error = ProtocolError{StatusProtocolError, "codec: 64-bit payload length with the top bit set"}
	// ErrMaskRequired is returned to a server when a client frame is not
	// masked (1002).
	ErrMaskRequired error = ProtocolError{StatusProtocolError, "codec: client frame not masked"}
	// ErrMaskForbidden is returned to a client when a server frame is masked
	// (1002).
	ErrMaskForbidden error = ProtocolError{StatusProtocolError, "codec: server frame masked"}
	// ErrUnexpectedContinuation is returned when a continuation frame
	// arrives while no fragmented message is in progress (1002).
	ErrUnexpectedContinuation error = ProtocolError{StatusProtocolError, "codec: continuation frame without a message to continue"}
	// ErrContinuationExpected is returned when a text or binary frame starts
	// a new message while a fragmented one is still open (1002).
	ErrContinuationExpected error = ProtocolError{StatusProtocolError, "codec: new data frame inside a fragmented message"}
	// ErrFrameTooLarge is returned when a frame's payload length is above
	// Rules.MaxFrameSize (1009).
	ErrFrameTooLarge error = ProtocolError{StatusMessageTooBig, "codec: frame too large"}
	// ErrMessageTooLarge is returned when the payload lengths of a message's
	// frames add up to more than Rules.MaxMessageSize (1009).
	ErrMessageTooLarge error = ProtocolError{StatusMessageTooBig, "codec: message too large"}
	// ErrInvalidUTF8 is returned (by the caller, after UTF8.Write or
	// UTF8.Complete reports false) when a text message is not UTF-8 (1007).
	ErrInvalidUTF8 error = ProtocolError{StatusInvalidFramePayloadData, "codec: invalid UTF-8 in text message"}
	// ErrCloseLength is returned by ParseClose when a close payload is one
	// byte long, or longer than 125 bytes (1002).
	ErrCloseLength error = ProtocolError{StatusProtocolError, "codec: invalid close payload length"}
	// ErrCloseCode is returned by ParseClose when the status code may not be
	// sent on the wire (1002).
	ErrCloseCode error = ProtocolError{StatusProtocolError, "codec: invalid close status code"}
	// ErrCloseReason is returned by ParseClose when the close reason is not
	// UTF-8 (1007).
	ErrCloseReason error = ProtocolError{StatusInvalidFramePayloadData, "codec: close reason not UTF-8"}
)

// CloseStatus returns the close code err asks to close the connection
// with: (code, true) if err is or wraps a ProtocolError (or a
// *ProtocolError), (0, false) otherwise.
func CloseStatus(err error) (StatusCode, bool) {
	if pe, ok := err.(ProtocolError); ok { // fast path: no allocation
		return pe.Code, true
	}
	var pe ProtocolError
	if errors.As(err, &pe) {
		return pe.Code, true
	}
	var pp *ProtocolError
	if errors.As(err, &pp) && pp != nil {
		return pp.Code, true
	}
	return 0, false
}
