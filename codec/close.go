package codec

import (
	"strconv"
	"unicode/utf8"
)

// StatusCode is the status code of a close frame (RFC 6455 §7.4).
type StatusCode uint16

// Status codes registered by RFC 6455 §7.4.1 and in the IANA "WebSocket
// Close Code Number Registry". 1005, 1006 and 1015 are never sent on the
// wire: they stand for "no code received", "closed without a close frame"
// and "TLS handshake failure" in APIs.
const (
	StatusNormalClosure           StatusCode = 1000
	StatusGoingAway               StatusCode = 1001
	StatusProtocolError           StatusCode = 1002
	StatusUnsupportedData         StatusCode = 1003
	StatusNoStatusRcvd            StatusCode = 1005
	StatusAbnormalClosure         StatusCode = 1006
	StatusInvalidFramePayloadData StatusCode = 1007
	StatusPolicyViolation         StatusCode = 1008
	StatusMessageTooBig           StatusCode = 1009
	StatusMandatoryExtension      StatusCode = 1010
	StatusInternalError           StatusCode = 1011
	StatusServiceRestart          StatusCode = 1012
	StatusTryAgainLater           StatusCode = 1013
	StatusBadGateway              StatusCode = 1014
	StatusTLSHandshake            StatusCode = 1015
)

// String returns the Go name of a registered code ("StatusNormalClosure")
// and "StatusCode(n)" for the others.
func (c StatusCode) String() string {
	switch c {
	case StatusNormalClosure:
		return "StatusNormalClosure"
	case StatusGoingAway:
		return "StatusGoingAway"
	case StatusProtocolError:
		return "StatusProtocolError"
	case StatusUnsupportedData:
		return "StatusUnsupportedData"
	case StatusNoStatusRcvd:
		return "StatusNoStatusRcvd"
	case StatusAbnormalClosure:
		return "StatusAbnormalClosure"
	case StatusInvalidFramePayloadData:
		return "StatusInvalidFramePayloadData"
	case StatusPolicyViolation:
		return "StatusPolicyViolation"
	case StatusMessageTooBig:
		return "StatusMessageTooBig"
	case StatusMandatoryExtension:
		return "StatusMandatoryExtension"
	case StatusInternalError:
		return "StatusInternalError"
	case StatusServiceRestart:
		return "StatusServiceRestart"
	case StatusTryAgainLater:
		return "StatusTryAgainLater"
	case StatusBadGateway:
		return "StatusBadGateway"
	case StatusTLSHandshake:
		return "StatusTLSHandshake"
	}
	return "StatusCode(" + strconv.Itoa(int(c)) + ")"
}

// ValidOnWire reports whether c may be sent in, and accepted from, a close
// frame: 1000–1003, 1007–1014 and 3000–4999 (RFC 6455 §7.4.1, §7.4.2 and the
// IANA registry). 1004 is reserved, 1005, 1006 and 1015 MUST NOT be sent,
// 0–999 are not used, the rest of 1000–2999 is reserved for future
// standards.
func (c StatusCode) ValidOnWire() bool {
	switch {
	case c >= 1000 && c <= 1003:
		return true
	case c >= 1007 && c <= 1014:
		return true
	case c >= 3000 && c <= 4999:
		return true
	}
	return false
}

// maxCloseReason is the longest close reason: a control payload holds 125
// bytes, 2 of which are the code.
const maxCloseReason = MaxControlPayload - 2

// ParseClose validates the payload of a received close frame and splits it
// into code and reason. reason aliases p.
//
// An empty payload means the peer sent no code: ParseClose returns
// (StatusNoStatusRcvd, nil, nil). Errors (code and reason are then zero):
// ErrCloseLength for a 1-byte payload or one over 125 bytes (1002),
// ErrCloseCode for a code that is not ValidOnWire (1002), ErrCloseReason
// for a reason that is not UTF-8 (1007).
//
// NOTE: p does not escape except through reason.
func ParseClose(p []byte) (code StatusCode, reason []byte, err error) {
	switch {
	case len(p) == 0:
		// RFC 6455 §7.1.5: no status code → "1005".
		return StatusNoStatusRcvd, nil, nil
	case len(p) == 1 || len(p) > MaxControlPayload:
		// RFC 6455 §5.5.1: if there is a body, its first two bytes MUST be
		// the status code; control payloads are at most 125 bytes (§5.5).
		return 0, nil, ErrCloseLength
	}
	code = StatusCode(p[0])<<8 | StatusCode(p[1])
	// RFC 6455 §7.4: an endpoint MUST NOT send 1005/1006/1015, and codes
	// outside the defined ranges are invalid (§7.4.2); fail on them.
	if !code.ValidOnWire() {
		return 0, nil, ErrCloseCode
	}
	reason = p[2:]
	// RFC 6455 §5.5.1: the reason is UTF-8; §8.1: invalid UTF-8 MUST fail
	// the connection (1007).
	if !utf8.Valid(reason) {
		return 0, nil, ErrCloseReason
	}
	return code, reason, nil
}

// CutReason returns reason cut to the 123 bytes a close frame holds
// after its code, at a UTF-8 boundary (at most 3 bytes before the
// limit); a shorter reason is returned as it is.
func CutReason(reason string) string {
	if len(reason) <= maxCloseReason {
		return reason
	}
	cut := maxCloseReason
	// Back up to the first byte of the code point that would be split
	// (at most 3 bytes for valid UTF-8).
	for i := 0; i < utf8.UTFMax-1 && cut > 0 && !utf8.RuneStart(reason[cut]); i++ {
		cut--
	}
	return reason[:cut]
}

// AppendClose appends a close frame payload to dst: the code big-endian,
// then the reason, and returns the extended slice. The result is always a
// payload ParseClose accepts:
//
//   - code 0 or StatusNoStatusRcvd gives an empty payload (no code, no
//     reason; RFC 6455 §5.5.1 allows a reason only after a code);
//   - any other code that is not ValidOnWire (1004, 1006, 1015, 0–999,
//     2000, 5000, ...) is the caller's bug and is written as
//     StatusInternalError, so the peer does not fail the connection;
//   - a reason longer than 123 bytes is cut to at most 123 bytes at a
//     UTF-8 boundary; a reason that is not valid UTF-8 is dropped.
//
// It does not allocate when dst has 125 bytes of spare capacity.
func AppendClose(dst []byte, code StatusCode, reason string) []byte {
	if code == 0 || code == StatusNoStatusRcvd {
		return dst
	}
	if !code.ValidOnWire() {
		code = StatusInternalError
	}
	dst = append(dst, byte(code>>8), byte(code))
	reason = CutReason(reason)
	if !utf8.ValidString(reason) {
		return dst
	}
	return append(dst, reason...)
}
