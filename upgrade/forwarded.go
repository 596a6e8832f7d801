package upgrade

import "bytes"

// Hop is what one proxy recorded about the request it received and passed
// on: an element of the Forwarded header (RFC 7239 §4) or an entry of
// X-Forwarded-For. Its slices point into the request, like the accessors'.
type Hop struct {
	// For is the node the proxy received the request from (RFC 7239 §6):
	// an IPv4 address or an IPv6 address in brackets, either with an
	// optional ":port", or "unknown", or an obfuscated identifier. Quotes
	// are removed (escapes inside them are kept); nothing is validated.
	// Empty if the proxy did not record it.
	For []byte
	// Host is the Host header of the request the proxy received, and Proto
	// its scheme ("http", "https"); nil if not recorded. Quotes are
	// removed as in For; neither is validated.
	Host, Proto []byte
}

// Forwarded returns the hop that describes the client, as the proxies in
// front of the server recorded it, and whether the request carries any
// forwarding header. Call it only for a request whose peer is a proxy the
// server trusts: anyone can send these headers.
//
// With one or more Forwarded lines (RFC 7239), only they are read: their
// elements are walked from the last one (added by the nearest proxy)
// towards the first, and the first element whose For the trusted function
// rejects is returned; if every For is trusted, the first element is. The
// element's host and proto parameters come with it. Without Forwarded, the
// entries of X-Forwarded-For are walked the same way, and the hop gets the
// last entry of X-Forwarded-Host and of X-Forwarded-Proto (what the nearest
// proxy set); with neither For list, only those two. Lines of the same name
// form one list (RFC 9110 §5.3); empty elements are skipped.
//
// Walking from the nearest proxy keeps a client from choosing its
// address: entries it wrote itself come before the one the first trusted
// proxy appended, and the walk stops there. trusted gets a For value as
// Hop.For describes it and must not keep it. Forwarded allocates nothing.
func (r *Request) Forwarded(trusted func(node []byte) bool) (hop Hop, ok bool) {
	if r.state != stateDone {
		return Hop{}, false
	}
	haveRFC, haveX := false, false
	it := r.fields()
	for n, _, more := it.next(); more; n, _, more = it.next() {
		switch {
		case equalLower(n, "forwarded"):
			haveRFC = true
		case equalLower(n, "x-forwarded-for"), equalLower(n, "x-forwarded-host"), equalLower(n, "x-forwarded-proto"):
			haveX = true
		}
	}
	switch {
	case haveRFC:
		return r.walk("forwarded", trusted), true
	case haveX:
		hop = r.walk("x-forwarded-for", trusted)
		hop.Host = r.lastEntry("x-forwarded-host")
		hop.Proto = r.lastEntry("x-forwarded-proto")
		return hop, true
	}
	return Hop{}, false
}

// walk returns the client's hop from the lines named name (lower case), a
// Forwarded or X-Forwarded-For list, nearest hop first.
func (r *Request) walk(name string, trusted func([]byte) bool) Hop {
	var farthest Hop
	it := r.fieldsBackward()
	for n, v, more := it.prev(); more; n, v, more = it.prev() {
		if !equalLower(n, name) {
			continue
		}
		for len(v) > 0 {
			i := lastComma(v)
			elem := trimOWS(v[i+1:])
			v = v[:max(i, 0)]
			if len(elem) == 0 {
				continue // [RFC9110 §5.6.1]: empty list elements are ignored
			}
			var hop Hop
			if name == "forwarded" {
				hop = forwardedElem(elem)
			} else {
				hop.For = elem[:len(elem):len(elem)]
			}
			if !trusted(hop.For) {
				return hop
			}
			farthest = hop
		}
	}
	return farthest
}

// lastEntry returns the last element of the list formed by the lines named
// name (lower case), or nil.
func (r *Request) lastEntry(name string) []byte {
	it := r.fieldsBackward()
	for n, v, more := it.prev(); more; n, v, more = it.prev() {
		if !equalLower(n, name) {
			continue
		}
		for len(v) > 0 {
			i := bytes.LastIndexByte(v, ',')
			if e := trimOWS(v[i+1:]); len(e) > 0 {
				return e[:len(e):len(e)]
			}
			v = v[:max(i, 0)]
		}
	}
	return nil
}

// forwardedElem reads the parameters of a Forwarded element:
//
//	forwarded-element = [ forwarded-pair ] *( ";" [ forwarded-pair ] )
//	forwarded-pair    = token "=" value
//	value             = token / quoted-string
//
// Parameter names are case-insensitive (RFC 7239 §4); unknown ones and
// pairs without "=" are skipped.
func forwardedElem(elem []byte) Hop {
	var hop Hop
	for len(elem) > 0 {
		end := len(elem)
		quoted := false
		for i, c := range elem {
			if c == '"' && !escaped(elem, i) {
				quoted = !quoted
			} else if c == ';' && !quoted {
				end = i
				break
			}
		}
		pair := trimOWS(elem[:end])
		elem = elem[min(end+1, len(elem)):]
		eq := bytes.IndexByte(pair, '=')
		if eq < 0 {
			continue
		}
		name, value := pair[:eq], pair[eq+1:]
		if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
			value = value[1 : len(value)-1]
		}
		value = value[:len(value):len(value)]
		switch {
		case equalLower(name, "for"):
			hop.For = value
		case equalLower(name, "host"):
			hop.Host = value
		case equalLower(name, "proto"):
			hop.Proto = value
		}
	}
	return hop
}

// lastComma returns the index of the last comma of list that is not inside
// a quoted-string, or -1.
func lastComma(list []byte) int {
	quoted := false
	for i := len(list) - 1; i >= 0; i-- {
		switch list[i] {
		case '"':
			if !escaped(list, i) {
				quoted = !quoted
			}
		case ',':
			if !quoted {
				return i
			}
		}
	}
	return -1
}

// escaped reports whether b[i] follows an odd number of backslashes: a
// quoted-pair (RFC 9110 §5.6.4).
func escaped(b []byte, i int) bool {
	k := i
	for k > 0 && b[k-1] == '\\' {
		k--
	}
	return (i-k)%2 == 1
}

// revIter walks the header lines of a parsed request from the last to the
// first. Parse has checked each of them, so it only splits.
type revIter struct {
	b []byte // the header lines not yet returned, each ending in CRLF
}

func (r *Request) fieldsBackward() revIter {
	if r.state != stateDone {
		return revIter{}
	}
	return revIter{b: r.buf[r.hdr : r.end-2]} // without the blank line
}

func (it *revIter) prev() (name, value []byte, ok bool) {
	if len(it.b) == 0 {
		return nil, nil, false
	}
	end := len(it.b) - 2 // the line's CR
	start := bytes.LastIndexByte(it.b[:end], '\n') + 1
	line := it.b[start:end]
	it.b = it.b[:start]
	colon := bytes.IndexByte(line, ':')
	value = trimOWS(line[colon+1:])
	return line[:colon:colon], value[:len(value):len(value)], true
}
