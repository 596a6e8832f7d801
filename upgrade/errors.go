package upgrade

import "errors"

// RejectError is a failed handshake together with the HTTP response that
// answers it: the status code, a short reason (sent as the text body) and
// optional extra header lines. It is a comparable value, so the sentinels
// below work with == and errors.Is; hooks may return their own.
type RejectError struct {
	// Status is the HTTP status code of the response, e.g. 400.
	Status int
	// Reason is a short human-readable explanation. AppendReject sends it
	// as the body; the status line uses the standard reason phrase.
	Reason string
	// Header holds extra raw header lines, each ending in "\r\n", e.g.
	// "Sec-WebSocket-Version: 13\r\n". Empty for most errors.
	Header string
}

// Error returns "upgrade: " followed by the reason.
func (e RejectError) Error() string { return "upgrade: " + e.Reason }

// AsReject reports whether err is, or wraps, a RejectError (or a
// *RejectError) and returns it. It does not allocate when err is one
// itself, as Parse's errors are.
func AsReject(err error) (RejectError, bool) {
	switch e := err.(type) {
	case RejectError:
		return e, true
	case *RejectError:
		if e != nil {
			return *e, true
		}
	}
	return asWrapped(err)
}

// asWrapped is AsReject for wrapped errors, through errors.As (whose
// targets escape).
func asWrapped(err error) (RejectError, bool) {
	var re RejectError
	if errors.As(err, &re) {
		return re, true
	}
	var pre *RejectError
	if errors.As(err, &pre) && pre != nil {
		return *pre, true
	}
	return RejectError{}, false
}

// The sentinels, each a RejectError declared as an error value so that
// returning one does not allocate (converting a RejectError to an
// interface at each return would); AsReject gets the RejectError back
// without allocating. Parse returns exactly one of the values marked
// "Parse" (the same value on every later call); the others are for the
// event loop and for hooks.
var (
	// ErrMalformed is returned by Parse when the request line is not
	// "method SP request-target SP HTTP/DIGIT.DIGIT" or a line ends in a
	// bare LF instead of CRLF (400).
	ErrMalformed error = RejectError{Status: 400, Reason: "malformed request"}

	// ErrTarget is returned by Parse when the request-target is neither an
	// absolute path nor an absolute http or https URI (RFC 6455 §4.2.1),
	// contains a space, a control byte, a byte above 0x7E or a fragment
	// ('#'), or has userinfo (400).
	ErrTarget error = RejectError{Status: 400, Reason: "invalid request-target"}

	// ErrHeaderField is returned by Parse when a header line is malformed:
	// no colon, a name that is not a token (which includes whitespace
	// before the colon), a line that starts with whitespace (obsolete line
	// folding), or a value with a control byte such as NUL or CR (400).
	ErrHeaderField error = RejectError{Status: 400, Reason: "malformed header field"}

	// ErrBody is returned by Parse when the request announces a body
	// (Transfer-Encoding, or a Content-Length other than 0): the bytes
	// after the header must be WebSocket frames (400).
	ErrBody error = RejectError{Status: 400, Reason: "request body not allowed"}

	// ErrMethod is returned by Parse when the method is not GET (405, with
	// the Allow header RFC 9110 §15.5.6 requires).
	ErrMethod error = RejectError{Status: 405, Reason: "method not allowed: a WebSocket upgrade is a GET", Header: "Allow: GET\r\n"}

	// ErrHTTPVersion is returned by Parse when the request's HTTP version
	// is not 1.1 or a later 1.x, e.g. HTTP/1.0 or HTTP/2.0 (505).
	ErrHTTPVersion error = RejectError{Status: 505, Reason: "HTTP version not supported: HTTP/1.1 required"}

	// ErrHost is returned by Parse when the Host header is missing, empty,
	// repeated or not a valid host[:port] (400).
	ErrHost error = RejectError{Status: 400, Reason: "missing or invalid Host header"}

	// ErrUpgrade is returned by Parse when no Upgrade header contains the
	// token "websocket" (400).
	ErrUpgrade error = RejectError{Status: 400, Reason: "Upgrade header does not name websocket"}

	// ErrConnection is returned by Parse when no Connection header contains
	// the token "Upgrade" (400).
	ErrConnection error = RejectError{Status: 400, Reason: "Connection header lacks the Upgrade token"}

	// ErrKey is returned by Parse when Sec-WebSocket-Key is missing,
	// repeated, or not the base64 encoding of exactly 16 bytes (400).
	ErrKey error = RejectError{Status: 400, Reason: "missing or invalid Sec-WebSocket-Key"}

	// ErrVersion is returned by Parse when Sec-WebSocket-Version is present
	// but is not exactly 13 (repeated headers count as a list, which is not
	// 13). It is answered with 426 and the version this server speaks
	// (RFC 6455 §4.2.2).
	ErrVersion error = RejectError{Status: 426, Reason: "unsupported WebSocket version: 13 required", Header: "Sec-WebSocket-Version: 13\r\n"}

	// ErrVersionMissing is returned by Parse when Sec-WebSocket-Version is
	// absent (400).
	ErrVersionMissing error = RejectError{Status: 400, Reason: "missing Sec-WebSocket-Version"}

	// ErrHeaderTooLarge is returned by Parse when the request line, header
	// lines and blank line together exceed Config.MaxHeaderBytes (431).
	ErrHeaderTooLarge error = RejectError{Status: 431, Reason: "request header too large"}

	// ErrTooManyHeaders is returned by Parse when the request has more than
	// Config.MaxHeaders header lines (431).
	ErrTooManyHeaders error = RejectError{Status: 431, Reason: "too many header fields"}

	// ErrRequestLineTooLong is returned by Parse when the request line,
	// without its CRLF, is longer than Config.MaxRequestLine (414).
	ErrRequestLineTooLong error = RejectError{Status: 414, Reason: "request line too long"}

	// ErrTimeout is returned by the event loop when the handshake did not
	// complete within its deadline (408).
	ErrTimeout error = RejectError{Status: 408, Reason: "handshake timed out"}

	// ErrTooManyConns is returned by the event loop when the server is at
	// its connection limit or shutting down (503).
	ErrTooManyConns error = RejectError{Status: 503, Reason: "server at capacity"}

	// ErrOrigin is returned by the event loop or a hook when the Origin
	// header is not allowed (403).
	ErrOrigin error = RejectError{Status: 403, Reason: "origin not allowed"}

	// ErrUnauthorized is returned by an authorization hook when the request
	// carries no valid credentials (401).
	ErrUnauthorized error = RejectError{Status: 401, Reason: "unauthorized"}

	// ErrForbidden is returned by an authorization hook when the
	// credentials are valid but not allowed (403).
	ErrForbidden error = RejectError{Status: 403, Reason: "forbidden"}

	// ErrInternal is returned when the server fails for a reason of its
	// own, and by Parse when it is misused: called with a buffer shorter
	// than one it has already parsed (500).
	ErrInternal error = RejectError{Status: 500, Reason: "internal error"}
)

// StatusText returns the reason phrase of an HTTP status code (RFC 9110
// §15, RFC 6585), or "" for a code it does not know.
func StatusText(code int) string {
	switch code {
	case 100:
		return "Continue"
	case 101:
		return "Switching Protocols"
	case 200:
		return "OK"
	case 204:
		return "No Content"
	case 301:
		return "Moved Permanently"
	case 302:
		return "Found"
	case 303:
		return "See Other"
	case 307:
		return "Temporary Redirect"
	case 308:
		return "Permanent Redirect"
	case 400:
		return "Bad Request"
	case 401:
		return "Unauthorized"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 406:
		return "Not Acceptable"
	case 408:
		return "Request Timeout"
	case 409:
		return "Conflict"
	case 410:
		return "Gone"
	case 411:
		return "Length Required"
	case 413:
		return "Content Too Large"
	case 414:
		return "URI Too Long"
	case 421:
		return "Misdirected Request"
	case 426:
		return "Upgrade Required"
	case 428:
		return "Precondition Required"
	case 429:
		return "Too Many Requests"
	case 431:
		return "Request Header Fields Too Large"
	case 500:
		return "Internal Server Error"
	case 501:
		return "Not Implemented"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Gateway Timeout"
	case 505:
		return "HTTP Version Not Supported"
	}
	return ""
}
