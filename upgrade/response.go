package upgrade

import (
	"crypto/sha1"
	"encoding/base64"
	"strconv"
)

// acceptGUID is the fixed string RFC 6455 §1.3 appends to the client's key
// before hashing.
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// maxStackKey is the longest key AppendAccept hashes from a stack buffer.
// A valid key is 24 bytes; longer ones (only possible when the caller did
// not validate the key) go through a heap-allocated hash.
const maxStackKey = 64

// AppendAccept appends the Sec-WebSocket-Accept value for key:
// base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")), RFC 6455
// §4.2.2 step 5.4. It appends 28 bytes and does not allocate when dst has
// room and key is at most 64 bytes (every valid key is 24).
func AppendAccept(dst, key []byte) []byte {
	var sum [sha1.Size]byte
	if len(key) <= maxStackKey {
		var b [maxStackKey + len(acceptGUID)]byte // NOTE: does not escape.
		n := copy(b[:], key)
		n += copy(b[n:], acceptGUID)
		sum = sha1.Sum(b[:n])
	} else {
		h := sha1.New()
		h.Write(key)
		h.Write([]byte(acceptGUID))
		h.Sum(sum[:0])
	}
	return base64.StdEncoding.AppendEncode(dst, sum[:])
}

// Response holds the optional parts of a 101 response.
type Response struct {
	// Protocol is the selected subprotocol, sent as Sec-WebSocket-Protocol
	// when not empty. It must be one the client offered (RFC 6455 §4.2.2).
	Protocol string
	// Extensions is the negotiated Sec-WebSocket-Extensions value, sent
	// when not empty.
	Extensions []byte
	// Header holds extra raw header lines, each ending in "\r\n".
	Header []byte
}

// AppendResponse appends the complete 101 Switching Protocols response that
// accepts a handshake with the given Sec-WebSocket-Key (RFC 6455 §4.2.2
// step 5): status line, Upgrade: websocket, Connection: Upgrade,
// Sec-WebSocket-Accept, then the protocol, extensions and extra lines of
// resp (which may be nil) and the blank line. It does not allocate when
// dst has room.
func AppendResponse(dst, key []byte, resp *Response) []byte {
	dst = append(dst, "HTTP/1.1 101 Switching Protocols\r\n"+
		"Upgrade: websocket\r\n"+
		"Connection: Upgrade\r\n"+
		"Sec-WebSocket-Accept: "...)
	dst = AppendAccept(dst, key)
	dst = append(dst, "\r\n"...)
	if resp != nil {
		if resp.Protocol != "" {
			dst = append(dst, "Sec-WebSocket-Protocol: "...)
			dst = append(dst, resp.Protocol...)
			dst = append(dst, "\r\n"...)
		}
		if len(resp.Extensions) > 0 {
			dst = append(dst, "Sec-WebSocket-Extensions: "...)
			dst = append(dst, resp.Extensions...)
			dst = append(dst, "\r\n"...)
		}
		dst = appendLines(dst, resp.Header)
	}
	return append(dst, "\r\n"...)
}

// AppendReject appends a complete response that refuses the handshake:
// the status line with its reason phrase, "Connection: close",
// "Content-Type: text/plain; charset=utf-8", Content-Length, the lines of
// e.Header, the blank line and e.Reason plus a newline as the body.
//
// A status outside 200–599 is sent as 500. A 426 also carries
// "Upgrade: websocket" and the upgrade connection option, which RFC 9110
// §15.5.22 and §7.8 require of that status; do not repeat them in
// e.Header. 204 and 304 are sent without a body, as they must be.
func AppendReject(dst []byte, e RejectError) []byte {
	status := e.Status
	if status < 200 || status > 599 {
		status = 500
	}
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	dst = append(dst, StatusText(status)...)
	if status == 426 {
		dst = append(dst, "\r\nConnection: Upgrade, close\r\nUpgrade: websocket"...)
	} else {
		dst = append(dst, "\r\nConnection: close"...)
	}
	body := status != 204 && status != 304
	if body {
		dst = append(dst, "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: "...)
		dst = strconv.AppendInt(dst, int64(len(e.Reason)+1), 10)
	}
	dst = append(dst, "\r\n"...)
	dst = appendLines(dst, e.Header)
	dst = append(dst, "\r\n"...)
	if body {
		dst = append(dst, e.Reason...)
		dst = append(dst, '\n')
	}
	return dst
}

// appendLines appends raw header lines, adding the final CRLF if the
// caller forgot it so the response stays well formed.
func appendLines[S string | []byte](dst []byte, lines S) []byte {
	if len(lines) == 0 {
		return dst
	}
	dst = append(dst, lines...)
	if len(lines) < 2 || lines[len(lines)-2] != '\r' || lines[len(lines)-1] != '\n' {
		dst = append(dst, "\r\n"...)
	}
	return dst
}
