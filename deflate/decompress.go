package deflate

import (
	"bytes"
	"io"
	"math"
	"slices"

	"github.com/klauspost/compress/flate"
)

// inflateTail is appended to every payload before inflating: the 00 00 ff ff
// that RFC 7692 §7.2.2 says to append ("Append 4 octets of 0x00 0x00 0xff
// 0xff to the tail end of the payload of the message"), which completes the
// empty stored block the sender's sync flush began, then an empty final
// stored block (01 00 00 ff ff) so that the inflater reports a clean io.EOF
// at the end of the message instead of io.ErrUnexpectedEOF.
var inflateTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// maxCopy is the largest payload copied into the Decompressor's own buffer
// (with the tail) so that the inflater reads a *bytes.Reader, the type its
// fastest Huffman loop is specialised for (about 10–40% faster here than a
// generic io.ByteReader). Larger payloads are read in place through
// sliceReader, so the buffer kept per Decompressor is at most 64 KiB.
const maxCopy = 64 << 10

// Decompressor inflates permessage-deflate messages. Like the Compressor it
// is owned by one event loop and used for all its connections, one message
// at a time; it is not safe for concurrent use. It holds one flate reader
// (about 36 KB, created on first use) and reuses it for every message with
// flate.Resetter, so inflating does not allocate in steady state.
type Decompressor struct {
	_  noCopy
	fr io.ReadCloser // a flate reader; also a flate.Resetter
	br bytes.Reader
	sr sliceReader
	in []byte // payload + inflateTail for payloads up to maxCopy
	// window of a stream that follows a final block inside a message
	// (History tail + output), when it is not a slice of the output
	dict []byte
}

// maxWindow is DEFLATE's largest window (RFC 1951 §2).
const maxWindow = 1 << 15

// NewDecompressor returns a Decompressor. It allocates nothing else until
// the first message.
func NewDecompressor() *Decompressor { return new(Decompressor) }

// AppendDecompress inflates payload, the concatenated payloads of the frames
// of one message that had RSV1 set on its first frame, appends the message
// to dst and returns it.
//
// limit is the largest decompressed size accepted, in bytes (negative: no
// limit, for tests and trusted peers only). It is enforced while inflating:
// as soon as limit+1 bytes have come out, inflating stops and ErrTooLarge is
// returned, so a decompression bomb costs bounded work and at most
// limit+1 bytes of dst's growth. Invalid DEFLATE data returns ErrCorrupt.
// On error dst is returned with its original length (its spare capacity may
// have been written).
//
// h is used only when p.ClientContextTakeover is set, and may be nil: it is
// then the dictionary (the client's previous messages) and the message is
// added to it afterwards. Without client context takeover every message is
// inflated alone, which is always correct and keeps no state.
//
// The payload may contain several DEFLATE streams: RFC 7692 §7.2.1 lets a
// sender use blocks with BFINAL set, "The next DEFLATE block follows the
// padded data if any", so inflating continues with a new stream after a
// final block as long as payload bytes remain, with the same LZ77 window
// (the History and what the message has inflated so far). Restarting with
// the window copies it, so a payload made of many tiny final streams
// fails with ErrTooLarge once those copies exceed eight times its size (no
// encoder splits a message like that). An empty payload is taken as
// an empty message (strictly it is not valid DEFLATE data, but nothing is
// lost by accepting it).
//
// payload is not retained. It is read, never written. NOTE: it escapes
// (large payloads are read in place through a field of d), which is free
// for the event loop's heap buffers.
func (d *Decompressor) AppendDecompress(dst, payload []byte, limit int, p Params, h *History) ([]byte, error) {
	if len(payload) == 0 {
		return dst, nil
	}
	start := len(dst)
	if limit < 0 || limit > math.MaxInt-1-start {
		limit = math.MaxInt - 1 - start
	}
	end := start + limit + 1 // stop once the output reaches this length
	var dict, hist []byte
	takeover := h != nil && p.ClientContextTakeover
	window := maxWindow // within a message the sender may refer 32 KiB back
	if takeover {
		hist = h.buf
		dict = hist
		window = 1 << p.clientBits()
	}
	// Streams after a final block restart the inflater with the window so
	// far; copying it is charged to a budget so that a payload of many
	// tiny streams costs work in proportion to its size, not 32 KiB each.
	budget := 8*len(payload) + 2*window

	// Source: payload followed by inflateTail.
	var r flate.Reader
	copied := len(payload) <= maxCopy
	if copied {
		d.in = append(append(d.in[:0], payload...), inflateTail...)
		d.br.Reset(d.in)
		r = &d.br
	} else {
		d.sr = sliceReader{a: payload, b: inflateTail}
		r = &d.sr
	}
	if d.fr == nil {
		d.fr = flate.NewReader(r)
	}
	rs := d.fr.(flate.Resetter)
	_ = rs.Reset(r, dict)

	var err error
	for {
		if len(dst) == cap(dst) {
			// Grow geometrically, starting from a guess of 4× the payload,
			// but never past what the limit allows.
			grow := max(len(dst)-start, 4*len(payload), 512)
			dst = slices.Grow(dst, min(grow, end-len(dst)))
		}
		var n int
		n, err = d.fr.Read(dst[len(dst):min(cap(dst), end)])
		dst = dst[:len(dst)+n]
		if len(dst) >= end {
			err = ErrTooLarge
			break
		}
		if err == io.EOF {
			// A final block ended the stream. If payload is left, a new
			// stream follows in the same message, with the same LZ77
			// window (RFC 7692 §7.2.1, §7.2.2): the History, if any, and
			// what this message has inflated so far. The inflater reads a
			// flate.Reader byte by byte and never ahead, so what is left
			// is exact.
			left := len(d.sr.a)
			if copied {
				left = d.br.Len() - len(inflateTail)
			}
			if left <= 0 {
				err = nil
				break
			}
			switch out := dst[start:]; {
			case len(out) >= window:
				dict = out[len(out)-window:]
			case len(hist) == 0:
				dict = out
			default:
				keep := min(len(hist), window-len(out))
				d.dict = append(append(d.dict[:0], hist[len(hist)-keep:]...), out...)
				dict = d.dict
			}
			if budget -= len(dict); budget < 0 {
				err = ErrTooLarge
				break
			}
			_ = rs.Reset(r, dict)
			continue
		}
		if err != nil {
			err = ErrCorrupt
			break
		}
	}
	d.sr = sliceReader{} // do not keep the caller's payload
	if err != nil {
		return dst[:start], err
	}
	if takeover {
		h.add(dst[start:], 1<<p.clientBits())
	}
	return dst, nil
}

// sliceReader reads a then b, as one io.ByteReader, without copying.
type sliceReader struct{ a, b []byte }

func (r *sliceReader) Read(p []byte) (int, error) {
	n := 0
	for len(p) > 0 && (len(r.a) > 0 || len(r.b) > 0) {
		src := &r.a
		if len(r.a) == 0 {
			src = &r.b
		}
		c := copy(p, *src)
		*src = (*src)[c:]
		p = p[c:]
		n += c
	}
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n, nil
}

func (r *sliceReader) ReadByte() (byte, error) {
	if len(r.a) > 0 {
		c := r.a[0]
		r.a = r.a[1:]
		return c, nil
	}
	if len(r.b) > 0 {
		c := r.b[0]
		r.b = r.b[1:]
		return c, nil
	}
	return 0, io.EOF
}
