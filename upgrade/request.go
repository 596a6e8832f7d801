package upgrade

import "bytes"

// Defaults of Config.
const (
	DefaultMaxHeaderBytes = 8192
	DefaultMaxHeaders     = 64
	DefaultMaxRequestLine = 4096
)

// maxLimit caps every limit so that offsets fit in the uint32 fields of
// Request and sums of two of them fit in an int on 32-bit platforms.
const maxLimit = 1 << 28

// Config holds the size limits of a request. The zero value means the
// defaults; a zero or negative field takes its default. A Request copies
// the values in Reset and never changes the caller's Config. Every limit
// is also the most memory a client can make the server hold for one
// handshake.
type Config struct {
	// MaxHeaderBytes caps the request line, header lines and the blank
	// line together, CRLFs included. Above it: 431 (ErrHeaderTooLarge).
	// Default 8192 bytes; every limit above 256 MiB is treated as 256 MiB.
	MaxHeaderBytes int
	// MaxHeaders caps the number of header lines. Above it: 431
	// (ErrTooManyHeaders). Default 64.
	MaxHeaders int
	// MaxRequestLine caps the request line, without its CRLF. Above it:
	// 414 (ErrRequestLineTooLong). Default 4096 bytes.
	MaxRequestLine int
}

// Parser states.
const (
	stateRequestLine uint8 = iota // waiting for the request line
	stateHeaders                  // reading header lines
	stateDone                     // complete and valid
	stateFailed                   // rejected; err holds why
)

// Request flags: what the header lines seen so far held.
const (
	fHost       uint16 = 1 << iota // a Host header
	fUpgrade                       // "websocket" in an Upgrade header
	fConnection                    // "upgrade" in a Connection header
	fKey                           // a (valid) Sec-WebSocket-Key
	fVersion                       // Sec-WebSocket-Version: 13
	fOrigin                        // an Origin header
	fQuery                         // the target has a '?'
	fAbsolute                      // the target is an absolute URI
)

// span is the position of a byte range in the request buffer. Positions
// are offsets, not slices, because the buffer may move between Parse calls.
type span struct{ start, end uint32 }

func (s span) in(b []byte) []byte { return b[s.start:s.end:s.end] }

// Request is an incremental parser for the HTTP/1.1 request that opens a
// WebSocket connection (RFC 6455 §4.2.1) and, once Parse has returned
// n > 0, the parsed request.
//
// A Request holds offsets into the caller's buffer (136 bytes on 64-bit
// platforms) and a reference to the buffer of the last Parse call, which
// Reset drops: call Reset before putting it back in a pool. It is meant to
// live for the handshake only. The zero value is ready to use with the
// default Config. A Request must not be copied after first use.
type Request struct {
	_   noCopy
	buf []byte // the buffer of the last Parse call
	err error  // why the request was rejected (stateFailed)

	maxBytes, maxLine, maxHeaders uint32 // limits; 0 until set

	line   uint32 // offset of the first byte of the current line
	scan   uint32 // offset where the search for the line's LF resumes
	hdr    uint32 // offset of the first header line
	end    uint32 // length of the request, once complete
	nhdr   uint32 // header lines seen
	method span
	target span
	path   span
	query  span
	host   span // the Host value, or the authority of an absolute target
	key    span
	origin span
	flags  uint16
	state  uint8
}

// noCopy makes go vet's copylocks check report copies of a Request.
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}

// Reset prepares r for a new request with the limits of cfg (nil means the
// defaults). It drops r's reference to the previous buffer.
func (r *Request) Reset(cfg *Config) {
	*r = Request{}
	r.setLimits(cfg)
}

func (r *Request) setLimits(cfg *Config) {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	r.maxBytes = limit(c.MaxHeaderBytes, DefaultMaxHeaderBytes)
	r.maxLine = limit(c.MaxRequestLine, DefaultMaxRequestLine)
	r.maxHeaders = limit(c.MaxHeaders, DefaultMaxHeaders)
}

func limit(v, def int) uint32 {
	switch {
	case v <= 0:
		return uint32(def)
	case v > maxLimit:
		return maxLimit
	}
	return uint32(v)
}

// Parse parses the request in buf, the bytes received so far. Each call
// must pass all the bytes of the previous call, unchanged, followed by any
// new ones; the buffer itself may be a different one (after a copy). Parse
// resumes where the previous call stopped, so feeding a request in any
// number of pieces costs the same as one piece, and gives the same result
// and the same error.
//
// It returns:
//   - n > 0, err == nil: buf[:n] is a complete request (through the blank
//     line) that satisfies RFC 6455 §4.2.1; buf[n:] are the bytes that
//     followed it (WebSocket frames) and belong to the caller. The
//     accessors are valid from now on.
//   - n == 0, err == nil: the request is not complete; call again with
//     more bytes.
//   - err != nil: a RejectError, one of the sentinels marked Parse, that
//     says what to answer (see AppendReject).
//
// Parse checks each line as soon as its LF arrives and fails at the first
// line that breaks a rule: a POST is refused after the request line, a
// repeated Host as soon as the second one is read. The size limits are
// checked on every call, even before a line is complete. After a result
// (n > 0 or an error), later calls return that result again.
//
// Lines must end in CRLF. RFC 9112 §2.2 lets a recipient accept a bare LF;
// this parser refuses one (400), as it refuses a bare CR, so that it never
// splits a request differently from a proxy in front of it. Empty lines
// before the request line are skipped, as RFC 9112 §2.2 advises.
func (r *Request) Parse(buf []byte) (n int, err error) {
	switch r.state {
	case stateDone:
		if len(buf) < int(r.end) {
			return 0, ErrInternal
		}
		r.buf = buf
		return int(r.end), nil
	case stateFailed:
		return 0, r.err
	}
	if r.maxBytes == 0 {
		r.setLimits(nil) // a zero Request: the defaults
	}
	if len(buf) < int(r.scan) {
		return 0, r.fail(ErrInternal)
	}
	for {
		// The line's LF must come before lim. Checking that bound on the
		// bytes we have, complete line or not, keeps the verdict the
		// same however the request is split.
		lim, limErr := int(r.maxBytes), ErrHeaderTooLarge
		if r.state == stateRequestLine {
			// Room for the request line, its CR and its LF.
			if l := int(r.line) + int(r.maxLine) + 2; l < lim {
				lim, limErr = l, ErrRequestLineTooLong
			}
		}
		end := min(len(buf), lim)
		i := bytes.IndexByte(buf[r.scan:end], '\n')
		if i < 0 {
			if end == lim {
				return 0, r.fail(limErr)
			}
			r.scan = uint32(end)
			return 0, nil
		}
		lf := int(r.scan) + i
		// [RFC9112 §2.2]: the line terminator is CRLF. A bare LF (which a
		// recipient MAY accept) is refused, see above.
		if lf == int(r.line) || buf[lf-1] != '\r' {
			return 0, r.fail(ErrMalformed)
		}
		start, next := int(r.line), lf+1
		if r.state == stateRequestLine {
			if lf-1 > start {
				if err := r.requestLine(buf, start, lf-1); err != nil {
					return 0, r.fail(err)
				}
				r.state = stateHeaders
				r.hdr = uint32(next)
			}
			// else [RFC9112 §2.2]: a server SHOULD ignore at least one
			// empty line received before the request-line.
		} else {
			if lf-1 == start { // the blank line: the header is complete
				if err := r.complete(); err != nil {
					return 0, r.fail(err)
				}
				r.state = stateDone
				r.end = uint32(next)
				r.buf = buf
				return next, nil
			}
			if err := r.headerLine(buf, start, lf-1); err != nil {
				return 0, r.fail(err)
			}
		}
		r.line, r.scan = uint32(next), uint32(next)
	}
}

func (r *Request) fail(err error) error {
	r.state = stateFailed
	r.err = err
	r.buf = nil
	return err
}

// requestLine checks buf[start:end], the request line without CRLF.
func (r *Request) requestLine(buf []byte, start, end int) error {
	line := buf[start:end]
	// [RFC9112 §3]: request-line = method SP request-target SP HTTP-version,
	// with single spaces; method is a token.
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 || !isToken(line[:sp1]) {
		return ErrMalformed
	}
	sp2 := bytes.IndexByte(line[sp1+1:], ' ')
	if sp2 <= 0 {
		return ErrMalformed
	}
	sp2 += sp1 + 1
	// [RFC9112 §2.3]: HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive.
	v := line[sp2+1:]
	if len(v) != 8 || string(v[:5]) != "HTTP/" || !isDigit(v[5]) || v[6] != '.' || !isDigit(v[7]) {
		return ErrMalformed
	}
	// [RFC6455 §4.2.1]: the request MUST be HTTP/1.1 or higher; a later
	// major version is a different protocol (RFC 9110 §15.6.6: 505).
	if v[5] != '1' || v[7] < '1' {
		return ErrHTTPVersion
	}
	// [RFC6455 §4.2.1]: the method MUST be GET (RFC 9110 §15.5.6: 405).
	if string(line[:sp1]) != "GET" {
		return ErrMethod
	}
	r.method = span{uint32(start), uint32(start + sp1)}
	return r.parseTarget(buf, start+sp1+1, start+sp2)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// parseTarget checks the request-target buf[start:end] and records its
// parts.
func (r *Request) parseTarget(buf []byte, start, end int) error {
	t := buf[start:end]
	for _, c := range t {
		if class[c]&cTarget == 0 {
			// [RFC3986 §2, §3.5]: no spaces, controls or raw non-ASCII in
			// a URI; [RFC6455 §3]: no fragment in a WebSocket URI.
			return ErrTarget
		}
	}
	r.target = span{uint32(start), uint32(end)}
	p := start // start of the path
	if t[0] != '/' {
		// [RFC6455 §4.2.1]: the Request-URI is a resource name (origin-
		// form, checked above) or an absolute http/https URI holding one
		// (absolute-form, RFC 9112 §3.2.2).
		var n int
		switch {
		case len(t) > 7 && equalLower(t[:7], "http://"):
			n = 7
		case len(t) > 8 && equalLower(t[:8], "https://"):
			n = 8
		default:
			return ErrTarget
		}
		a := n
		for a < len(t) && t[a] != '/' && t[a] != '?' {
			a++
		}
		// [RFC9110 §4.2.4]: userinfo in an http(s) URI is an error; the
		// authority must be a host.
		if !validHost(t[n:a]) {
			return ErrTarget
		}
		// [RFC9112 §3.2.2]: with an absolute target the server MUST use
		// its authority and ignore Host.
		r.host = span{uint32(start + n), uint32(start + a)}
		r.flags |= fAbsolute
		p = start + a
	}
	q := bytes.IndexByte(buf[p:end], '?')
	if q < 0 {
		r.path = span{uint32(p), uint32(end)}
		return nil
	}
	r.path = span{uint32(p), uint32(p + q)}
	r.query = span{uint32(p + q + 1), uint32(end)}
	r.flags |= fQuery
	return nil
}

// headerLine checks buf[start:end], a header line without CRLF, and records
// what the handshake needs.
func (r *Request) headerLine(buf []byte, start, end int) error {
	line := buf[start:end]
	// [RFC9112 §5.2]: a server MUST reject obs-fold (a line starting with
	// SP or HTAB) with 400 or replace it; we reject. This also covers
	// whitespace between the request line and the first field (§2.2).
	if isOWS(line[0]) {
		return ErrHeaderField
	}
	r.nhdr++
	if r.nhdr > r.maxHeaders {
		return ErrTooManyHeaders
	}
	colon := bytes.IndexByte(line, ':')
	// [RFC9110 §5.1]: field-name is a token. [RFC9112 §5.1]: whitespace
	// between the name and the colon MUST be rejected with 400; it is not
	// a token byte, so isToken refuses it.
	if colon <= 0 || !isToken(line[:colon]) {
		return ErrHeaderField
	}
	name := line[:colon]
	vs := colon + 1
	ve := len(line)
	for vs < ve && isOWS(line[vs]) {
		vs++
	}
	for ve > vs && isOWS(line[ve-1]) {
		ve--
	}
	value := line[vs:ve]
	// [RFC9110 §5.5]: a value containing CR, LF or NUL MUST be rejected or
	// cleaned; field-vchar excludes the other controls too. Refused.
	for _, c := range value {
		if class[c]&cValue == 0 {
			return ErrHeaderField
		}
	}
	switch len(name) {
	case 4:
		if equalLower(name, "host") {
			// [RFC9112 §3.2]: a server MUST answer 400 to a request with
			// more than one Host line or an invalid Host value.
			if r.flags&fHost != 0 || !validHost(value) {
				return ErrHost
			}
			r.flags |= fHost
			if r.flags&fAbsolute == 0 {
				r.host = span{uint32(start + vs), uint32(start + ve)}
			}
		}
	case 6:
		if equalLower(name, "origin") && r.flags&fOrigin == 0 {
			r.flags |= fOrigin
			r.origin = span{uint32(start + vs), uint32(start + ve)}
		}
	case 7:
		// [RFC6455 §4.2.1 item 3]: Upgrade contains "websocket", ASCII
		// case-insensitive. It is a list and may be repeated (RFC 9110
		// §5.3), so a token in any of them counts.
		if equalLower(name, "upgrade") && hasToken(value, "websocket") {
			r.flags |= fUpgrade
		}
	case 10:
		// [RFC6455 §4.2.1 item 4]: Connection includes the token
		// "Upgrade", ASCII case-insensitive; same list rules.
		if equalLower(name, "connection") && hasToken(value, "upgrade") {
			r.flags |= fConnection
		}
	case 14:
		// The bytes after the header are frames: a request that announces
		// a body would be framed differently by an HTTP intermediary.
		if equalLower(name, "content-length") && string(value) != "0" {
			return ErrBody
		}
	case 17:
		switch {
		case equalLower(name, "sec-websocket-key"):
			// [RFC6455 §4.2.1 item 5, §11.3.1]: exactly one key whose
			// base64 value decodes to 16 bytes.
			if r.flags&fKey != 0 || !validKey(value) {
				return ErrKey
			}
			r.flags |= fKey
			r.key = span{uint32(start + vs), uint32(start + ve)}
		case equalLower(name, "transfer-encoding"):
			return ErrBody
		}
	case 21:
		// [RFC6455 §4.2.1 item 6, §4.2.2]: the version MUST be 13, or the
		// server answers 426 with the versions it supports. A second line
		// makes the combined value "13, …" (RFC 9110 §5.3), not 13.
		if equalLower(name, "sec-websocket-version") {
			if r.flags&fVersion != 0 || string(value) != "13" {
				return ErrVersion
			}
			r.flags |= fVersion
		}
	}
	return nil
}

// complete runs the checks that need the whole header, in the order of
// RFC 6455 §4.2.1.
func (r *Request) complete() error {
	switch {
	case r.flags&fHost == 0:
		// [RFC6455 §4.2.1 item 2], [RFC9112 §3.2]: Host is required.
		return ErrHost
	case r.flags&fUpgrade == 0:
		return ErrUpgrade
	case r.flags&fConnection == 0:
		return ErrConnection
	case r.flags&fKey == 0:
		return ErrKey
	case r.flags&fVersion == 0:
		return ErrVersionMissing
	}
	return nil
}
