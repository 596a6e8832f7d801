//go:build !windows

package loop

import (
	"errors"

	"github.com/wsgate/wsgate/codec"
)

// codeError is an error of this package that implies a close code.
type codeError struct {
	code codec.StatusCode
	msg  string
}

func (e codeError) Error() string { return e.msg }

// CloseCode returns the close code the connection is closed with.
func (e codeError) CloseCode() uint16 { return uint16(e.code) }

// The errors that imply a close code are error values of a type with a
// CloseCode() uint16 method, like codec's and deflate's, converted to error
// once so that returning one does not allocate; they compare with == and
// errors.Is.
var (
	// ErrSlowConsumer is returned by a write that would take the bytes
	// pending for a connection above Options.MaxPendingBytes. The message is
	// not queued and the connection is closed with 1008 (its CloseCode).
	ErrSlowConsumer = error(codeError{codec.StatusPolicyViolation, "loop: slow consumer: pending bytes above MaxPendingBytes"})

	// ErrIdle is the cause recorded when a connection received nothing
	// within Options.IdleTimeout; it is closed with 1001.
	ErrIdle = error(codeError{codec.StatusGoingAway, "loop: idle timeout"})

	// ErrShutdown is the cause recorded for connections closed by
	// Server.Shutdown, with 1001.
	ErrShutdown = error(codeError{codec.StatusGoingAway, "loop: server shutting down"})
)

var (
	// ErrServerClosed is returned by Wait once Shutdown has been called.
	ErrServerClosed = errors.New("loop: server closed")

	// ErrClosed is returned by writes to a connection that is closing or
	// closed: nothing more can be sent on it.
	ErrClosed = errors.New("loop: connection closed")

	// ErrNotData is returned by WriteMessage for an opcode other than
	// OpText or OpBinary.
	ErrNotData = errors.New("loop: WriteMessage takes OpText or OpBinary")

	// ErrControlTooLong is returned by Ping and Close when the payload would
	// exceed the 125 bytes a control frame may carry.
	ErrControlTooLong = errors.New("loop: control payload longer than 125 bytes")

	// ErrEmptyTopic is returned by Publish for the empty topic name.
	ErrEmptyTopic = errors.New("loop: empty topic name")

	// ErrCloseTimeout is the cause recorded when the peer did not complete
	// the closing handshake within Options.CloseTimeout.
	ErrCloseTimeout = errors.New("loop: closing handshake timed out")

	// ErrNoPeerClose is the cause recorded when the TCP connection ended
	// after our close frame but before the peer's (gnet's own error, if it
	// reported one, is recorded instead).
	ErrNoPeerClose = errors.New("loop: connection ended without the peer's close frame")

	// ErrEngineStopped is what Wait returns when the engine stopped without
	// Shutdown (an event loop failed; gnet logs why).
	ErrEngineStopped = errors.New("loop: engine stopped on its own (see the log)")

	// ErrMessageBudget is the cause recorded when a message could not be
	// received because the messages being assembled on all connections
	// hold Options.MessageBudget (1013 Try Again Later).
	ErrMessageBudget = error(codeError{codec.StatusTryAgainLater, "loop: server-wide budget for incomplete messages exhausted"})

	// ErrMessageTimeout is the cause recorded when input stayed incomplete
	// (a message, frame header or control frame begun and not finished)
	// for longer than Options.MessageTimeout (1008).
	ErrMessageTimeout = error(codeError{codec.StatusPolicyViolation, "loop: incomplete message timed out"})
)

// CloseError tells OnClose how a connection ended: the close code and
// reason that were exchanged (received from the peer, or sent by us when
// we closed first), or StatusAbnormalClosure (1006) when the TCP connection
// ended without a closing handshake. Err, when set, is the local cause
// (a codec.ProtocolError, ErrIdle, ErrSlowConsumer, an I/O error, ...).
type CloseError struct {
	Code   codec.StatusCode
	Reason string
	Remote bool // the peer sent the close first
	Err    error
}

func (e *CloseError) Error() string {
	s := "loop: closed with " + e.Code.String()
	if e.Reason != "" {
		s += " (" + e.Reason + ")"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *CloseError) Unwrap() error { return e.Err }

// CloseStatus returns the close code of err if it is (or wraps) a
// *CloseError.
func CloseStatus(err error) (codec.StatusCode, bool) {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Code, true
	}
	return 0, false
}

// closeCode maps a local failure to the close code to send: the code of
// the first error in err's chain with a CloseCode method (codec's,
// deflate's and this package's errors), else 1011.
func closeCode(err error) codec.StatusCode {
	var cc interface{ CloseCode() uint16 }
	if errors.As(err, &cc) {
		return codec.StatusCode(cc.CloseCode())
	}
	return codec.StatusInternalError
}
