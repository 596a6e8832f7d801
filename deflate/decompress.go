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
	_   noCopy
	fr  io.ReadCloser // a flate reader; also a flate.Resetter
	br  bytes.Reader
	sr  sliceReader
	in  []byte  // payload + inflateTail for payloads up to maxCopy
	one [1]byte // a byte read past a full dst
	// window of a stream that follows a final block inside a message
	// (History tail + output), when it is not a slice of the output
	dict []byte
}

// maxWindow is DEFLATE's largest window (RFC 1951 §2).
const maxWindow = 1 << 15

// NewDecompressor returns a Decompressor. It allocates nothing else until
// the first message.
func NewDecompressor() *Decompressor { return new(Decompressor) }

// Limit bounds what one compressed message may inflate to. A Decompressor
// stops inflating as soon as the output would exceed the bound, so the
// work and the memory a message costs are bounded by it, not by what the
// sender claims.
//
// Size alone bounds one message. Ratio also bounds the work per byte
// received: DEFLATE inflates up to about 1,000 times (a 1 KiB message can
// carry 1 MiB of zeros), ordinary text and JSON 3 to 20 times, so a ratio
// limit makes a decompression bomb cost its sender about as many bytes as
// it costs the server work, while leaving real messages alone.
type Limit struct {
	// Size is the largest inflated message, in bytes (negative: no limit,
	// for tests and trusted peers only). Past it: ErrTooLarge.
	Size int

	// Ratio, when positive, is the largest ratio of inflated to compressed
	// size: a message of n compressed bytes may inflate to at most
	// max(Floor, Ratio*n) bytes (and never past Size). Past it: ErrRatio.
	// Zero: no ratio limit.
	Ratio int

	// Floor is the inflated size any message may reach whatever its ratio
	// (used only with Ratio): small messages compress by large factors
	// when they repeat what the History holds. It is also the work a
	// sender gets for a message of a few bytes, so keep it small (a few
	// KiB).
	Floor int
}

// bound returns the largest output allowed for a payload of n bytes and
// the error for going past it.
func (l Limit) bound(n int) (int, error) {
	size := l.Size
	if size < 0 {
		size = math.MaxInt
	}
	if l.Ratio > 0 {
		r := math.MaxInt
		if n <= math.MaxInt/l.Ratio {
			r = l.Ratio * n
		}
		if r = max(r, l.Floor); r < size {
			return r, ErrRatio
		}
	}
	return size, ErrTooLarge
}

// AppendDecompress inflates payload, the concatenated payloads of the frames
// of one message that had RSV1 set on its first frame, appends the message
// to dst and returns it. It is AppendDecompressLimit with Limit{Size: limit}.
//
// limit is the largest decompressed size accepted, in bytes (negative: no
// limit, for tests and trusted peers only).
func (d *Decompressor) AppendDecompress(dst, payload []byte, limit int, p Params, h *History) ([]byte, error) {
	return d.AppendDecompressLimit(dst, payload, Limit{Size: limit}, p, h)
}

// AppendDecompressLimit inflates payload, the concatenated payloads of the
// frames of one message that had RSV1 set on its first frame, appends the
// message to dst and returns it.
//
// lim is enforced while inflating: as soon as the output would exceed it,
// inflating stops and ErrTooLarge (past lim.Size) or ErrRatio (past the
// ratio bound) is returned, so a decompression bomb costs bounded work and
// dst grows by at most the bound. Invalid DEFLATE data returns ErrCorrupt.
// On error dst is returned with its original length (its spare capacity may
// have been written, and it may have been grown: keep the returned slice to
// reuse its capacity).
//
// dst is the caller's to reuse: an event loop that passes the same buffer,
// emptied, for every message allocates nothing once the buffer has reached
// the bound. A buffer whose capacity is exactly the message size is enough
// (the end of the message is detected without more room).
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
func (d *Decompressor) AppendDecompressLimit(dst, payload []byte, lim Limit, p Params, h *History) ([]byte, error) {
	if len(payload) == 0 {
		return dst, nil
	}
	start := len(dst)
	limit, errOver := lim.bound(len(payload))
	limit = min(limit, math.MaxInt-start)
	end := start + limit // the output may reach this length
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
		if room := min(cap(dst), end); len(dst) < room {
			var n int
			n, err = d.fr.Read(dst[len(dst):room])
			dst = dst[:len(dst)+n]
		} else {
			// dst is full or at the limit: read one byte aside, so that
			// a message that ends here needs no more room.
			var n int
			n, err = d.fr.Read(d.one[:])
			if n > 0 {
				if len(dst) == end {
					err = errOver
					break
				}
				// Grow geometrically, starting from a guess of 4× the
				// payload, but never past what the limit allows.
				grow := max(len(dst)-start, 4*len(payload), 512)
				dst = append(slices.Grow(dst, min(grow, end-len(dst))), d.one[0])
			}
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
