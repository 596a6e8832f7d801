package upgrade

import "encoding/base64"

// Byte classes, looked up in class.
const (
	cToken  = 1 << iota // tchar (RFC 9110 §5.6.2)
	cValue              // field-vchar, SP or HTAB (RFC 9110 §5.5); obs-text included
	cTarget             // a byte allowed in a request-target (see ErrTarget)
	cHost               // a byte of a reg-name, IPv4 or IP-literal (RFC 3986 §3.2.2)
)

var class = func() (t [256]uint8) {
	for c := range 256 {
		b := byte(c)
		alnum := 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9'
		if alnum || in(b, "!#$%&'*+-.^_`|~") {
			t[c] |= cToken
		}
		if b >= 0x20 && b != 0x7f || b == '\t' {
			t[c] |= cValue
		}
		// RFC 3986 allows fewer bytes than this, but browsers send some
		// of the others ('|', '^', '{' …) unescaped (WHATWG URL), so only
		// what can never be part of a URI in a request is refused.
		if 0x20 < b && b < 0x7f && b != '#' {
			t[c] |= cTarget
		}
		// unreserved, pct-encoded and sub-delims, plus ':' for IPv6.
		if alnum || in(b, "-._~%!$&'()*+,;=:") {
			t[c] |= cHost
		}
	}
	return t
}()

// in reports whether b is one of the bytes of set.
func in(b byte, set string) bool {
	for i := range len(set) {
		if set[i] == b {
			return true
		}
	}
	return false
}

// isToken reports whether b is a non-empty token (RFC 9110 §5.6.2).
func isToken(b []byte) bool {
	for _, c := range b {
		if class[c]&cToken == 0 {
			return false
		}
	}
	return len(b) > 0
}

// lower returns c in lower case if it is an ASCII letter.
func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

// equalLower reports whether b equals s, ASCII case-insensitively. s must
// already be lower case.
func equalLower(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(s) {
		if lower(b[i]) != s[i] {
			return false
		}
	}
	return true
}

// equalFold reports whether b equals s, ASCII case-insensitively.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(s) {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

// isOWS reports whether c is optional whitespace (RFC 9110 §5.6.3).
func isOWS(c byte) bool { return c == ' ' || c == '\t' }

// trimOWS returns b without leading and trailing SP and HTAB.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && isOWS(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isOWS(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// hasToken reports whether the comma-separated list holds an element equal
// to tok (lower case), ASCII case-insensitively. Empty elements are
// skipped, as RFC 9110 §5.6.1 tells recipients to.
func hasToken(list []byte, tok string) bool {
	for len(list) > 0 {
		var elem []byte
		elem, list = nextElem(list, ',')
		if equalLower(trimOWS(elem), tok) {
			return true
		}
	}
	return false
}

// nextElem splits list at the first sep: the element before it and the
// rest after it.
func nextElem(list []byte, sep byte) (elem, rest []byte) {
	for i, c := range list {
		if c == sep {
			return list[:i], list[i+1:]
		}
	}
	return list, nil
}

// validHost reports whether b is uri-host [":" port] (RFC 9110 §7.2,
// RFC 3986 §3.2.2): an IP literal in brackets or a reg-name/IPv4 address
// of the bytes in cHost, then an optional colon and digits. An empty host
// is refused: a WebSocket server needs the authority (RFC 6455 §4.2.1).
func validHost(b []byte) bool {
	var port []byte
	if len(b) > 0 && b[0] == '[' {
		end := -1
		for i, c := range b {
			if c == ']' {
				end = i
				break
			}
		}
		if end < 2 {
			return false
		}
		for _, c := range b[1:end] {
			if class[c]&cHost == 0 {
				return false
			}
		}
		rest := b[end+1:]
		if len(rest) > 0 {
			if rest[0] != ':' {
				return false
			}
			port = rest[1:]
		}
	} else {
		host := b
		for i, c := range b {
			if c == ':' {
				host, port = b[:i], b[i+1:]
				break
			}
		}
		if len(host) == 0 {
			return false
		}
		for _, c := range host {
			if class[c]&cHost == 0 || c == ':' {
				return false
			}
		}
	}
	for _, c := range port {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// keyEncoding is standard base64 that refuses non-zero padding bits, so
// each 16-byte nonce has exactly one accepted spelling.
var keyEncoding = base64.StdEncoding.Strict()

// validKey reports whether v is the base64 encoding of exactly 16 bytes
// (RFC 6455 §4.1 item 7, §4.2.1 item 5). It decodes v rather than only
// checking its length.
func validKey(v []byte) bool {
	if len(v) != 24 {
		return false
	}
	var nonce [18]byte // NOTE: does not escape.
	n, err := keyEncoding.Decode(nonce[:], v)
	return err == nil && n == 16
}
