package load

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/upgrade"
)

// The deflate offers. Both ask for client_no_context_takeover, so that a
// client message is one self-contained DEFLATE stream (see template).
//
// deflateOffer also asks for server_no_context_takeover: a server message
// then inflates on its own with the loop's single reader, and a server
// that accepts the offer must echo the parameter (RFC 7692 §7.1.1.1).
//
// takeoverOffer leaves the server free to keep its context: the client
// then inflates each compressed message with the connection's window, the
// last bytes it inflated (RFC 7692 §7.2.2). A server MAY still answer
// server_no_context_takeover (§7.1.1.1); the connection then inflates
// every message on its own.
const (
	deflateOffer  = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	takeoverOffer = "permessage-deflate; client_no_context_takeover"
)

// maxResponse caps the server's handshake response.
const maxResponse = 16 << 10

// Handshake failures.
var (
	errRespTooLarge   = errors.New("handshake: response header larger than 16 KiB")
	errRespStatus     = errors.New("handshake: status is not 101")
	errRespUpgrade    = errors.New("handshake: no Upgrade: websocket")
	errRespConn       = errors.New("handshake: no Connection: Upgrade")
	errRespAccept     = errors.New("handshake: wrong Sec-WebSocket-Accept")
	errRespProto      = errors.New("handshake: server chose a subprotocol that was not offered")
	errRespNoProto    = errors.New("handshake: server did not accept the subprotocol")
	errRespExt        = errors.New("handshake: server chose an extension that was not offered")
	errRespNoTakeover = errors.New("handshake: permessage-deflate accepted without server_no_context_takeover")
	errRespNoDeflate  = errors.New("handshake: server did not accept permessage-deflate (closed with 1010)")
	errRespWindow     = errors.New("handshake: bad server_max_window_bits in the permessage-deflate answer")
)

// deflateExtension is the extension a -deflate client requires.
const deflateExtension = "permessage-deflate"

// appendDeflateRequired appends the masked close frame with which a client
// that requires permessage-deflate ends a connection whose server did not
// accept it. RFC 6455 §7.4.1: 1010 is sent by a client that "has expected
// the server to negotiate one or more extension, but the server didn't
// return them"; the list of extensions that are needed SHOULD appear in
// the reason.
func appendDeflateRequired(dst []byte, mask [4]byte) []byte {
	var p [2 + len(deflateExtension)]byte
	payload := codec.AppendClose(p[:0], codec.StatusMandatoryExtension, deflateExtension)
	return codec.AppendFrame(dst, codec.Header{Fin: true, OpCode: codec.OpClose, Masked: true, Mask: mask}, payload)
}

// requestTemplate is the upgrade request with a slot for the key.
type requestTemplate struct {
	head, tail []byte // request = head + key(24) + tail
}

// newRequest builds the upgrade request for target, with extra header
// lines ("K: V"), an optional subprotocol and the deflate offer (with
// server context takeover allowed if takeover is set).
func newRequest(t *Target, headers []string, subprotocol string, deflate, takeover bool) requestTemplate {
	var b bytes.Buffer
	b.WriteString("GET ")
	b.WriteString(t.Path)
	b.WriteString(" HTTP/1.1\r\nHost: ")
	b.WriteString(t.Host)
	b.WriteString("\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ")
	head := append([]byte(nil), b.Bytes()...)
	b.Reset()
	b.WriteString("\r\n")
	if subprotocol != "" {
		b.WriteString("Sec-WebSocket-Protocol: ")
		b.WriteString(subprotocol)
		b.WriteString("\r\n")
	}
	switch {
	case deflate && takeover:
		b.WriteString("Sec-WebSocket-Extensions: " + takeoverOffer + "\r\n")
	case deflate:
		b.WriteString("Sec-WebSocket-Extensions: " + deflateOffer + "\r\n")
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		b.WriteString(strings.TrimSpace(k))
		b.WriteString(": ")
		b.WriteString(strings.TrimSpace(v))
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	return requestTemplate{head: head, tail: append([]byte(nil), b.Bytes()...)}
}

// appendRequest appends the request with key to dst.
func (rt *requestTemplate) appendRequest(dst []byte, key []byte) []byte {
	dst = append(dst, rt.head...)
	dst = append(dst, key...)
	return append(dst, rt.tail...)
}

// newKey fills key with the base64 of 16 bytes from rnd.
func newKey(key *[24]byte, rnd *rng) {
	var raw [16]byte
	a, b := rnd.next(), rnd.next()
	for i := range 8 {
		raw[i] = byte(a >> (8 * i))
		raw[8+i] = byte(b >> (8 * i))
	}
	base64.StdEncoding.Encode(key[:], raw[:])
}

// respResult is what the handshake response said.
type respResult struct {
	deflate  bool // permessage-deflate was accepted
	takeover bool // with server context takeover
	// windowBits is the server's LZ77 window, 2^windowBits bytes: its
	// server_max_window_bits, 15 when it named none.
	windowBits int
}

// parseResponse checks a complete response header (up to and including
// the blank line) for key. wantProto is the subprotocol offered ("" for
// none); wantDeflate says whether the deflate offer was made, takeover
// whether it was takeoverOffer.
func parseResponse(resp []byte, key []byte, wantProto string, wantDeflate, takeover bool) (respResult, error) {
	var res respResult
	line, rest, _ := bytes.Cut(resp, []byte("\r\n"))
	// HTTP/1.1 101 Switching Protocols
	f := bytes.Fields(line)
	if len(f) < 2 || !bytes.HasPrefix(f[0], []byte("HTTP/1.")) || string(f[1]) != "101" {
		return res, errRespStatus
	}
	var (
		upgradeOK, connOK, acceptOK bool
		proto                       []byte
		sawProto                    bool
		accept                      [28]byte
	)
	upgrade.AppendAccept(accept[:0], key)
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case asciiEqualFold(name, "upgrade"):
			upgradeOK = upgradeOK || hasToken(value, "websocket")
		case asciiEqualFold(name, "connection"):
			connOK = connOK || hasToken(value, "upgrade")
		case asciiEqualFold(name, "sec-websocket-accept"):
			acceptOK = bytes.Equal(value, accept[:])
		case asciiEqualFold(name, "sec-websocket-protocol"):
			proto, sawProto = value, true
		case asciiEqualFold(name, "sec-websocket-extensions"):
			for ext := range bytes.SplitSeq(value, []byte(",")) {
				params := bytes.Split(ext, []byte(";"))
				if len(bytes.TrimSpace(params[0])) == 0 {
					continue
				}
				if !wantDeflate || !asciiEqualFold(bytes.TrimSpace(params[0]), "permessage-deflate") {
					return res, errRespExt
				}
				res.takeover, res.windowBits = true, 15
				for _, p := range params[1:] {
					name, value, _ := bytes.Cut(bytes.TrimSpace(p), []byte("="))
					switch {
					case asciiEqualFold(bytes.TrimSpace(name), "server_no_context_takeover"):
						res.takeover = false
					case asciiEqualFold(bytes.TrimSpace(name), "server_max_window_bits"):
						// §7.1.2.1: a server may answer it even when not
						// offered; its value is 8 to 15, the window the
						// client must keep.
						bits, err := strconv.Atoi(string(bytes.Trim(bytes.TrimSpace(value), `"`)))
						if err != nil || bits < 8 || bits > 15 {
							return res, errRespWindow
						}
						res.windowBits = bits
					}
				}
				if res.takeover && !takeover {
					return res, errRespNoTakeover
				}
				res.deflate = true
			}
		}
	}
	switch {
	case !upgradeOK:
		return res, errRespUpgrade
	case !connOK:
		return res, errRespConn
	case !acceptOK:
		return res, errRespAccept
	case sawProto && (wantProto == "" || string(proto) != wantProto):
		return res, errRespProto
	case wantProto != "" && !sawProto:
		return res, errRespNoProto
	case wantDeflate && !res.deflate:
		return res, errRespNoDeflate
	}
	return res, nil
}

// hasToken reports whether the comma-separated list v holds tok (ASCII
// case-insensitive).
func hasToken(v []byte, tok string) bool {
	for t := range bytes.SplitSeq(v, []byte(",")) {
		if asciiEqualFold(bytes.TrimSpace(t), tok) {
			return true
		}
	}
	return false
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c, d := b[i], s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// rng is a small xorshift generator for masking keys and handshake keys.
// Masks only need to be unpredictable to a browser's script (RFC 6455
// §10.3), which a load generator has not; a fast generator suffices.
type rng struct{ x uint64 }

func (r *rng) next() uint64 {
	r.x ^= r.x << 13
	r.x ^= r.x >> 7
	r.x ^= r.x << 17
	return r.x
}

// mask returns a masking key for a client frame.
func (r *rng) mask() [4]byte {
	v := r.next()
	return [4]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}
}
