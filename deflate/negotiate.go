package deflate

// ExtensionName is the extension token of RFC 7692 §7.
const ExtensionName = "permessage-deflate"

// Params are the parameters agreed for one connection by Negotiate. It is a
// few bytes; the event loop stores it by value in the connection's state
// and passes it to every AppendCompress and AppendDecompress call. The zero
// Params means no context takeover and 15-bit windows, which is what a
// frame compressed once for many connections (a broadcast) needs.
type Params struct {
	// ServerContextTakeover reports that messages from the server may
	// refer to earlier ones (the answer has no server_no_context_takeover).
	// AppendCompress then uses and updates the connection's History.
	ServerContextTakeover bool

	// ClientContextTakeover reports that messages from the client may
	// refer to earlier ones (the answer has no client_no_context_takeover).
	// AppendDecompress then uses and updates the connection's inflate
	// History.
	ClientContextTakeover bool

	// ServerMaxWindowBits is the LZ77 window of the server's compressor:
	// 8–15, 0 means 15. Below 15 the client asked for it with
	// server_max_window_bits and no match distance may exceed 2^bits.
	ServerMaxWindowBits uint8

	// ClientMaxWindowBits is the window the client compresses with when
	// ClientContextTakeover is set, and so the size of the inflate History:
	// 8–15, 0 means 15.
	ClientMaxWindowBits uint8

	// HistoryBits is the size of the server's History, at most
	// ServerMaxWindowBits: 8–15, 0 means 12.
	HistoryBits uint8
}

func (p Params) serverBits() int {
	if p.ServerMaxWindowBits < minWindowBits || p.ServerMaxWindowBits > maxWindowBits {
		return maxWindowBits
	}
	return int(p.ServerMaxWindowBits)
}

func (p Params) clientBits() int {
	if p.ClientMaxWindowBits < minWindowBits || p.ClientMaxWindowBits > maxWindowBits {
		return maxWindowBits
	}
	return int(p.ClientMaxWindowBits)
}

// historySize is the capacity of the server→client History in bytes.
func (p Params) historySize() int {
	b := int(p.HistoryBits)
	if b < minWindowBits || b > maxWindowBits {
		b = defaultHistoryBits
	}
	return 1 << min(b, p.serverBits())
}

// Negotiate chooses the first acceptable permessage-deflate offer in offers,
// the value of the Sec-WebSocket-Extensions request header (several header
// lines joined with ", " are one list, RFC 7230 §3.2.2), and appends the
// value of the Sec-WebSocket-Extensions response header to dst. It returns
// ok == false, and dst unchanged, when no offer can be accepted; the
// connection then runs without compression. A nil cfg is the zero Config;
// out-of-range fields are replaced by their defaults (see Config.Validate).
// Negotiate does not allocate when dst has room for the answer (at most 101
// bytes).
//
// An offer is declined, and the next one considered, when it has a syntax
// error, an unknown parameter, a parameter given twice, a value where none
// is allowed (the *_no_context_takeover parameters), no value where one is
// required (server_max_window_bits), or a window size that is not a decimal
// 8–15 (RFC 7692 §7.1: "A server MUST decline an extension negotiation offer
// for this extension if any of the following conditions are met: The
// negotiation offer contains an extension parameter not defined for use in
// an offer. The negotiation offer contains an extension parameter with an
// invalid value. The negotiation offer contains multiple extension
// parameters with the same name. The server doesn't support the offered
// configuration."). Quoted-string values are unescaped before they are
// checked (RFC 6455 §9.1). Names compare case-insensitively. Other
// extensions are skipped.
//
// The answer always carries server_no_context_takeover unless
// cfg.ServerContextTakeover is set and the client did not ask for it, and
// client_no_context_takeover unless cfg.ClientContextTakeover is set and the
// client did not ask for it (RFC 7692 §7.1.1.1 and §7.1.1.2 allow both in any
// answer). A server_max_window_bits the client asked for is honoured and
// echoed (§7.1.2.1); client_max_window_bits is answered only when offered
// (§7.1.2.2: "a server MUST NOT include the client_max_window_bits extension
// parameter in an extension negotiation response unless the extension
// negotiation offer includes it").
func Negotiate(dst, offers []byte, cfg *Config) (resp []byte, p Params, ok bool) {
	c := cfg.withDefaults()
	for i := 0; i <= len(offers); i++ {
		var o offer
		var isDeflate, valid bool
		i, o, isDeflate, valid = parseElement(offers, i)
		if isDeflate && valid {
			p, cmwb := c.accept(&o)
			return appendResponse(dst, p, o.has(paramServerMax), cmwb), p, true
		}
	}
	return dst, Params{}, false
}

// accept turns a valid offer into Params. cmwb is the client_max_window_bits
// value to answer, 0 for none.
func (c *Config) accept(o *offer) (p Params, cmwb uint8) {
	p.ServerMaxWindowBits = maxWindowBits
	p.ClientMaxWindowBits = maxWindowBits
	if o.has(paramServerMax) {
		// §7.1.2.1: "A server accepts an extension negotiation offer with
		// this parameter by including the server_max_window_bits extension
		// parameter in the extension negotiation response to send back to
		// the client with the same or smaller value as the offer."
		// AppendCompress keeps every distance within 2^bits.
		p.ServerMaxWindowBits = o.serverMax
	}
	if c.ServerContextTakeover && !o.has(paramServerNoCtx) {
		p.ServerContextTakeover = true
		p.HistoryBits = uint8(min(c.HistoryBits, int(p.ServerMaxWindowBits)))
	}
	if c.ClientContextTakeover && !o.has(paramClientNoCtx) {
		// zlib, which most clients compress with, cannot make a raw DEFLATE
		// stream with an 8-bit window and silently uses 9 bits, so an
		// inflate window of 2^8 would fail on their messages: 8 is taken as
		// 9, and a client that offers at most 8 gets no takeover.
		switch {
		case o.has(paramClientMax) && o.clientMax == minWindowBits:
		case o.has(paramClientMax):
			b := uint8(max(c.ClientMaxWindowBits, minWindowBits+1))
			if o.clientMax != 0 && o.clientMax < b {
				b = o.clientMax
			}
			p.ClientContextTakeover = true
			p.ClientMaxWindowBits = b
			cmwb = b
		case c.ClientMaxWindowBits == maxWindowBits:
			// The client will use a 15-bit window; so can we.
			p.ClientContextTakeover = true
		}
	}
	return p, cmwb
}

// appendResponse appends the extension answer for p.
func appendResponse(dst []byte, p Params, serverMax bool, cmwb uint8) []byte {
	dst = append(dst, ExtensionName...)
	if !p.ServerContextTakeover {
		dst = append(dst, "; server_no_context_takeover"...)
	}
	if !p.ClientContextTakeover {
		dst = append(dst, "; client_no_context_takeover"...)
	}
	if serverMax {
		dst = append(dst, "; server_max_window_bits="...)
		dst = appendBits(dst, p.ServerMaxWindowBits)
	}
	if cmwb != 0 {
		dst = append(dst, "; client_max_window_bits="...)
		dst = appendBits(dst, cmwb)
	}
	return dst
}

func appendBits(dst []byte, b uint8) []byte {
	if b >= 10 {
		return append(dst, '1', '0'+b-10)
	}
	return append(dst, '0'+b)
}

// offer is one parsed permessage-deflate offer.
type offer struct {
	set       uint8 // param… bits seen
	serverMax uint8 // server_max_window_bits value
	clientMax uint8 // client_max_window_bits value, 0 when given without one
}

const (
	paramServerNoCtx = 1 << iota
	paramClientNoCtx
	paramServerMax
	paramClientMax
)

func (o *offer) has(bit uint8) bool { return o.set&bit != 0 }

// add records one parameter and reports whether the offer is still valid.
// val is the unescaped value (or its first bytes when n > len(val)); n is
// its full length.
func (o *offer) add(name, val []byte, hasVal bool, n int) bool {
	var bit uint8
	switch {
	case equalFold(name, "server_no_context_takeover"):
		bit = paramServerNoCtx
	case equalFold(name, "client_no_context_takeover"):
		bit = paramClientNoCtx
	case equalFold(name, "server_max_window_bits"):
		bit = paramServerMax
	case equalFold(name, "client_max_window_bits"):
		bit = paramClientMax
	default:
		return false // not defined for use in an offer
	}
	if o.set&bit != 0 {
		return false // multiple parameters with the same name
	}
	o.set |= bit
	switch bit {
	case paramServerNoCtx, paramClientNoCtx:
		// §7.1.1.1, §7.1.1.2: "This extension parameter has no value."
		return !hasVal
	case paramServerMax:
		// §7.1.2.1: the value is required and is 8–15.
		if !hasVal {
			return false
		}
		b, ok := windowBits(val, n)
		o.serverMax = b
		return ok
	default:
		// §7.1.2.2: "This parameter may have no value"; if it has one,
		// it is 8–15.
		if !hasVal {
			return true
		}
		b, ok := windowBits(val, n)
		o.clientMax = b
		return ok
	}
}

// windowBits parses a window size: one or two decimal digits, 8 to 15
// (§7.1.2.1: "1*DIGIT" and "an integer in the range of 8 to 15 inclusive";
// "08" is accepted, "008" is not).
func windowBits(val []byte, n int) (uint8, bool) {
	if n == 0 || n > 2 {
		return 0, false
	}
	v := 0
	for _, c := range val {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	if v < minWindowBits || v > maxWindowBits {
		return 0, false
	}
	return uint8(v), true
}

// parseElement parses the list element of s that starts at i (the start of
// s or just after a comma) and returns the index of the comma that ends it
// (or len(s)). isDeflate reports that its extension token is
// permessage-deflate, valid that it is well formed with valid parameters.
//
// The grammar is RFC 6455 §9.1 with RFC 7230 list rules: empty elements
// are allowed, optional whitespace surrounds ',', ';' and '='.
//
//	extension       = extension-token *( ";" extension-param )
//	extension-param = token [ "=" (token | quoted-string) ]
func parseElement(s []byte, i int) (next int, o offer, isDeflate, valid bool) {
	i = skipOWS(s, i)
	if i == len(s) || s[i] == ',' {
		return i, o, false, false // empty element
	}
	name, i := scanToken(s, i)
	if len(name) == 0 {
		return skipElement(s, i), o, false, false
	}
	isDeflate = equalFold(name, ExtensionName)
	valid = true
	var buf [4]byte
	for {
		i = skipOWS(s, i)
		if i == len(s) || s[i] == ',' {
			return i, o, isDeflate, valid
		}
		if s[i] != ';' {
			return skipElement(s, i), o, isDeflate, false
		}
		i = skipOWS(s, i+1)
		var pname []byte
		pname, i = scanToken(s, i)
		if len(pname) == 0 {
			return skipElement(s, i), o, isDeflate, false
		}
		i = skipOWS(s, i)
		var val []byte
		hasVal, n := false, 0
		if i < len(s) && s[i] == '=' {
			hasVal = true
			i = skipOWS(s, i+1)
			if i < len(s) && s[i] == '"' {
				var ok bool
				val, n, i, ok = scanQuoted(s, i, &buf)
				if !ok {
					return skipElement(s, i), o, isDeflate, false
				}
			} else {
				val, i = scanToken(s, i)
				n = len(val)
				if n == 0 {
					return skipElement(s, i), o, isDeflate, false
				}
			}
		}
		if isDeflate && valid {
			valid = o.add(pname, val, hasVal, n)
		}
	}
}

// skipElement returns the index of the next comma outside a quoted string,
// or len(s).
func skipElement(s []byte, i int) int {
	for ; i < len(s); i++ {
		switch s[i] {
		case ',':
			return i
		case '"':
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' {
					i++
				}
			}
		}
	}
	return len(s)
}

func skipOWS(s []byte, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

func scanToken(s []byte, i int) ([]byte, int) {
	j := i
	for j < len(s) && isTchar(s[j]) {
		j++
	}
	return s[i:j], j
}

// scanQuoted scans the quoted-string at s[i] == '"' and unescapes it into
// buf. It returns the first len(buf) unescaped bytes, the full unescaped
// length and the index after the closing quote (len(s) if there is none).
// ok is false if the string is not terminated or has a character not allowed
// in it (RFC 7230 §3.2.6).
//
//	quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE
//	qdtext        = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
//	quoted-pair   = "\" ( HTAB / SP / VCHAR / obs-text )
func scanQuoted(s []byte, i int, buf *[4]byte) (val []byte, n, next int, ok bool) {
	ok = true
	for i++; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			return buf[:min(n, len(buf))], n, i + 1, ok
		case c == '\\':
			i++
			if i == len(s) {
				return nil, 0, len(s), false
			}
			c = s[i]
			ok = ok && isQuotedPairChar(c)
		case !isQdtext(c):
			ok = false
		}
		if n < len(buf) {
			buf[n] = c
		}
		n++
	}
	return nil, 0, len(s), false
}

func isQdtext(c byte) bool {
	return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e) || c >= 0x80
}

func isQuotedPairChar(c byte) bool {
	return c == '\t' || c == ' ' || (c >= 0x21 && c <= 0x7e) || c >= 0x80
}

// isTchar reports whether c may appear in an RFC 7230 token.
func isTchar(c byte) bool {
	return c < 0x80 && tchar[c]
}

var tchar = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// equalFold reports whether b equals the lower-case ASCII string s, ignoring
// ASCII case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
