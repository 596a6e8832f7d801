package load

import (
	"errors"

	"github.com/wsgate/wsgate/codec"
)

// frameSink receives what a frameReader parses from the server's bytes.
type frameSink interface {
	// messageStart opens a data message (text or binary; compressed when
	// its first frame had RSV1).
	messageStart(op codec.OpCode, compressed bool)
	// messageData is the next piece of the open message's payload. p is
	// only valid during the call.
	messageData(p []byte)
	// messageEnd closes the message after its final frame.
	messageEnd()
	// control is a whole control frame. p is only valid during the call.
	control(op codec.OpCode, p []byte)
}

// errClosedRead is returned by feed for bytes that follow a close frame.
var errClosedRead = errors.New("load: data after the server's close frame")

// frameReader parses server frames from the bytes of a connection as they
// arrive, in pieces of any size. Payloads are handed to the sink where they
// lie in the input; nothing but a split header (at most 14 bytes) and a
// split control frame (at most 125 bytes) is ever copied.
type frameReader struct {
	rules   codec.Rules
	stream  codec.Stream
	h       codec.Header // the frame in progress, if inFrame
	left    int64        // payload bytes of h still to come
	hdrN    uint8        // bytes in hdr
	inFrame bool
	closed  bool // a close frame was received
	ctrlN   uint8
	hdr     [codec.MaxHeaderSize]byte
	ctrl    [codec.MaxControlPayload]byte
}

// reset prepares r for a new connection; rsv holds the RSV bits the
// negotiated extensions allow (codec.Rsv1 with permessage-deflate).
func (r *frameReader) reset(rsv byte, maxMessage int64) {
	*r = frameReader{rules: codec.Rules{Server: false, Rsv: rsv, MaxMessageSize: maxMessage}}
}

// feed parses p. It returns the first protocol error; the connection must
// then be failed.
func (r *frameReader) feed(p []byte, s frameSink) error {
	for len(p) > 0 {
		if r.closed {
			return errClosedRead
		}
		if !r.inFrame {
			var (
				h   codec.Header
				n   int
				err error
			)
			if r.hdrN == 0 {
				h, n, err = codec.ParseHeader(p)
				if err != nil {
					return err
				}
				if n == 0 { // split header: keep it
					r.hdrN = uint8(copy(r.hdr[:], p))
					return nil
				}
				p = p[n:]
			} else {
				old := int(r.hdrN)
				k := copy(r.hdr[old:], p)
				h, n, err = codec.ParseHeader(r.hdr[:old+k])
				if err != nil {
					return err
				}
				if n == 0 {
					r.hdrN += uint8(k)
					return nil
				}
				r.hdrN = 0
				p = p[n-old:]
			}
			if err := r.stream.Next(h, &r.rules); err != nil {
				return err
			}
			r.h, r.left, r.inFrame = h, h.Length, true
			if h.OpCode.IsData() && h.OpCode != codec.OpContinuation {
				s.messageStart(h.OpCode, r.stream.Compressed())
			}
			r.ctrlN = 0
		}
		take := r.left
		if int64(len(p)) < take {
			take = int64(len(p))
		}
		piece := p[:take]
		p = p[take:]
		r.left -= take
		if r.h.OpCode.IsControl() {
			r.ctrlN += uint8(copy(r.ctrl[r.ctrlN:], piece))
			if r.left > 0 {
				continue
			}
			r.inFrame = false
			if r.h.OpCode == codec.OpClose {
				r.closed = true
			}
			s.control(r.h.OpCode, r.ctrl[:r.ctrlN])
			continue
		}
		if len(piece) > 0 {
			s.messageData(piece)
		}
		if r.left == 0 {
			r.inFrame = false
			if r.h.Fin {
				s.messageEnd()
			}
		}
	}
	return nil
}
