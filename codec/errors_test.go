package codec

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

var sentinels = map[error]StatusCode{
	ErrReservedOpcode:         1002,
	ErrReservedBits:           1002,
	ErrMisplacedRsv:           1002,
	ErrControlTooLong:         1002,
	ErrControlFragmented:      1002,
	ErrNonMinimalLength:       1002,
	ErrLengthOverflow:         1002,
	ErrMaskRequired:           1002,
	ErrMaskForbidden:          1002,
	ErrUnexpectedContinuation: 1002,
	ErrContinuationExpected:   1002,
	ErrFrameTooLarge:          1009,
	ErrMessageTooLarge:        1009,
	ErrInvalidUTF8:            1007,
	ErrCloseLength:            1002,
	ErrCloseCode:              1002,
	ErrCloseReason:            1007,
}

func TestErrors(t *testing.T) {
	t.Parallel()
	msgs := map[string]bool{}
	for err, want := range sentinels {
		if code, ok := CloseStatus(err); !ok || code != want {
			t.Errorf("%v: CloseStatus = %v, %v; want %v", err, code, ok, want)
		}
		var cc interface{ CloseCode() uint16 }
		if !errors.As(err, &cc) || StatusCode(cc.CloseCode()) != want {
			t.Errorf("%v: no CloseCode %v", err, want)
		}
		wrapped := fmt.Errorf("conn 7: %w", err)
		if code, ok := CloseStatus(wrapped); !ok || code != want || !errors.Is(wrapped, err) {
			t.Errorf("%v wrapped: CloseStatus = %v, %v", err, code, ok)
		}
		if !strings.HasPrefix(err.Error(), "codec: ") || msgs[err.Error()] {
			t.Errorf("%q: message must start with \"codec: \" and be unique", err.Error())
		}
		msgs[err.Error()] = true
		if len(err.Error()) > 123 {
			t.Errorf("%q does not fit in a close reason", err.Error())
		}
	}
	if ErrFrameTooLarge == ErrMessageTooLarge || ErrMaskRequired == ErrMaskForbidden {
		t.Error("distinct sentinels compare equal")
	}
	for _, err := range []error{nil, io.EOF, errors.New("codec: lookalike")} {
		if code, ok := CloseStatus(err); ok || code != 0 {
			t.Errorf("CloseStatus(%v) = %v, %v; want 0, false", err, code, ok)
		}
	}
	p := &ProtocolError{Code: 4001, msg: "codec: custom"}
	if code, ok := CloseStatus(fmt.Errorf("x: %w", p)); !ok || code != 4001 {
		t.Errorf("CloseStatus(*ProtocolError) = %v, %v", code, ok)
	}
}
