package upgrade

import "bytes"

// The accessors below read the request that Parse accepted. They are valid
// only after Parse returned n > 0, and only while the buffer of that call is
// unchanged: they return subslices of it (capped at their own length), so
// nothing is allocated and nothing is copied. Copy a value to keep it.
// Before a successful Parse they return nil ("" for Protocol).

// Method returns the request method, which Parse has checked is GET.
func (r *Request) Method() []byte { return r.get(r.method, true) }

// Target returns the request-target as sent: an absolute path with an
// optional query ("/chat?room=1") or an absolute http/https URI.
func (r *Request) Target() []byte { return r.get(r.target, true) }

// Path returns the path of the target, without the query. For an absolute
// URI target it is the path after the authority, which may be empty
// (meaning "/"). It is not percent-decoded.
func (r *Request) Path() []byte { return r.get(r.path, true) }

// Query returns the query of the target, after the '?' and without it, or
// nil if the target has no '?'. It is not decoded.
func (r *Request) Query() []byte { return r.get(r.query, r.flags&fQuery != 0) }

// Host returns the authority the request is for: the Host header, or the
// authority of an absolute URI target, which RFC 9112 §3.2.2 says takes
// precedence. Parse has checked it is host[:port].
func (r *Request) Host() []byte { return r.get(r.host, true) }

// Origin returns the first Origin header, or nil if there is none (a
// client other than a browser).
func (r *Request) Origin() []byte { return r.get(r.origin, r.flags&fOrigin != 0) }

// Key returns the Sec-WebSocket-Key value, which Parse has checked is the
// base64 encoding of 16 bytes. Pass it to AppendResponse.
func (r *Request) Key() []byte { return r.get(r.key, true) }

func (r *Request) get(s span, ok bool) []byte {
	if r.state != stateDone || !ok {
		return nil
	}
	return s.in(r.buf)
}

// Header returns the value of the first header line with the given name
// (ASCII case-insensitive), without surrounding whitespace, or nil if there
// is none. A present but empty header gives an empty, non-nil slice.
func (r *Request) Header(name string) []byte {
	it := r.fields()
	for n, v, ok := it.next(); ok; n, v, ok = it.next() {
		if equalFold(n, name) {
			return v
		}
	}
	return nil
}

// VisitHeaders calls fn for each header line in order, with the name as
// sent and the value without surrounding whitespace, until fn returns
// false. The slices are only valid during the call.
func (r *Request) VisitHeaders(fn func(name, value []byte) bool) {
	it := r.fields()
	for n, v, ok := it.next(); ok; n, v, ok = it.next() {
		if !fn(n, v) {
			return
		}
	}
}

// Cookie returns the value of the cookie with the given name (case-
// sensitive) from the Cookie header lines, or nil if there is none. The
// cookie-string is split on ';' as RFC 6265 §5.4 describes; a value in
// double quotes is returned without them. It is not decoded.
func (r *Request) Cookie(name string) []byte {
	if name == "" {
		return nil
	}
	it := r.fields()
	for n, v, ok := it.next(); ok; n, v, ok = it.next() {
		if !equalLower(n, "cookie") {
			continue
		}
		for len(v) > 0 {
			var pair []byte
			pair, v = nextElem(v, ';')
			eq := bytes.IndexByte(pair, '=')
			if eq < 0 || string(trimOWS(pair[:eq])) != name {
				continue // not a cookie-pair, or another cookie
			}
			val := trimOWS(pair[eq+1:])
			if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
				val = val[1 : len(val)-1]
			}
			return val[:len(val):len(val)]
		}
	}
	return nil
}

// Protocol returns the first subprotocol the client offered in
// Sec-WebSocket-Protocol (every such line, each a comma-separated list, in
// the client's order) that is in supported, or "" if none is. Matching is
// exact (case-sensitive). The result is an element of supported, so nothing
// is allocated; send it in Response.Protocol (RFC 6455 §4.2.2 step 5.5).
func (r *Request) Protocol(supported []string) string {
	if len(supported) == 0 {
		return ""
	}
	it := r.fields()
	for n, v, ok := it.next(); ok; n, v, ok = it.next() {
		if !equalLower(n, "sec-websocket-protocol") {
			continue
		}
		for len(v) > 0 {
			var p []byte
			p, v = nextElem(v, ',')
			p = trimOWS(p)
			if len(p) == 0 {
				continue
			}
			for _, s := range supported {
				if string(p) == s {
					return s
				}
			}
		}
	}
	return ""
}

// AppendExtensions appends the extension offers of the request: the values
// of every Sec-WebSocket-Extensions line, in order, joined with ", ", for a
// negotiator (RFC 6455 §9.1). Empty lines are skipped. It appends nothing
// if there are none.
func (r *Request) AppendExtensions(dst []byte) []byte {
	first := true
	it := r.fields()
	for n, v, ok := it.next(); ok; n, v, ok = it.next() {
		if len(v) == 0 || !equalLower(n, "sec-websocket-extensions") {
			continue
		}
		if !first {
			dst = append(dst, ", "...)
		}
		first = false
		dst = append(dst, v...)
	}
	return dst
}

// fieldIter walks the header lines of a parsed request. Parse has checked
// each of them, so it only splits.
type fieldIter struct {
	b []byte // the request, through its blank line
	p int    // offset of the next line
}

func (r *Request) fields() fieldIter {
	if r.state != stateDone {
		return fieldIter{}
	}
	return fieldIter{b: r.buf[:r.end], p: int(r.hdr)}
}

func (it *fieldIter) next() (name, value []byte, ok bool) {
	if it.p >= len(it.b) {
		return nil, nil, false
	}
	i := bytes.IndexByte(it.b[it.p:], '\n')
	line := it.b[it.p : it.p+i-1] // without CRLF
	if len(line) == 0 {           // the blank line
		it.p = len(it.b)
		return nil, nil, false
	}
	it.p += i + 1
	colon := bytes.IndexByte(line, ':')
	value = trimOWS(line[colon+1:])
	return line[:colon:colon], value[:len(value):len(value)], true
}
