package deflate

import (
	"bytes"

	"github.com/klauspost/compress/flate"
)

// syncTail ends the output of every sync flush (an empty stored block). RFC
// 7692 §7.2.1: "Remove 4 octets (that are 0x00 0x00 0xff 0xff) from the tail
// end."
var syncTail = []byte{0x00, 0x00, 0xff, 0xff}

// smallInput is the size under which klauspost's flate.Writer does no LZ77
// matching at all (compressor.storeFast in v1.20.3 Huffman-codes or stores
// inputs under 128 bytes), so a dictionary cannot help it.
const smallInput = 128

// Compressor compresses messages for permessage-deflate. It is meant to be
// owned by one event loop and used for every connection of that loop, one
// message at a time: it is not safe for concurrent use, and holds no
// per-connection state (that is the History).
//
// Design, with the figures that chose it. A one-off comparison of the
// candidates (klauspost/compress v1.20.3, 2 shared vCPUs under other load,
// unique JSON market data; ratio = compressed/original; allocations per
// message; memory = heap after the first message):
//
//	per message, ~170 B trade / ~2 KB depth   µs           ratio          allocs
//	L1 Writer per loop, ResetDict(nil)        7.9 / 12.8   0.735 / 0.433  0
//	StatelessDeflate, no dictionary           8.0 / 14.1   0.729 / 0.438  0
//	L1 Writer, ResetDict(4 KiB history)       9.7 / 23     0.286 / 0.326  0
//	StatelessDeflate, 4 KiB history as dict   12.1 / 16.0  0.299 / 0.337  1 (4.9–5.4 KB)
//	NewWriterWindow(4096), ResetDict(4 KiB)   15.0 / 42    0.247 / 0.311  0
//	persistent Writer per connection          3.9 / 10.8   0.277 / 0.327  0, but 800 KB each
//
//	memory per flate.Writer: L1 800 KB, L2 1.2 MB, L5 1.1 MB, L9 1.4 MB,
//	NewWriterWindow (any size) 1.06 MB; flate reader 36 KB.
//
// The package's own benchmarks (BenchmarkMarketData, BenchmarkCompress,
// BenchmarkCompressWindow) measure what was chosen:
//
//   - Messages are compressed by one flate.Writer per Compressor, of
//     Config.Level, created on first use and reset per message with
//     ResetDict. Unlike StatelessDeflate with a dictionary (one allocation of
//     len(dict)+len(msg) per message) it allocates nothing per message, for
//     a similar time and a slightly better ratio; without history it is as
//     fast as StatelessDeflate and does not depend on the package-level
//     sync.Pools (~330 KB of tokens and bit writer) that every GC empties.
//   - Context takeover is emulated with the connection's History as the
//     dictionary, as gws does. ResetDict re-indexes the history on every
//     message, so the cost grows with HistoryBits while, on market data, a
//     2 KiB history compresses as well as 8 KiB (trades 0.286 / 0.284 /
//     0.287 at 2 / 4 / 8 KiB; depth 0.326 for all three); the default is
//     4 KiB for feeds that interleave more streams.
//   - Messages under 128 bytes with a non-empty History, compressed only when
//     Config.Threshold is lowered below 128, use flate.StatelessDeflate with
//     the history as dictionary (the Writer does no matching at all on such
//     short inputs) and pay its one allocation (64-byte messages: ratio
//     0.15). An empty History is seeded by sending the first such message as
//     a stored block.
//   - server_max_window_bits = N < 15 is honoured, never declined: every
//     distance in the output is below 2^N (checked by the tests against a
//     reference inflater). A compressor reset before each message and fed
//     dict+msg emits distances below len(dict)+len(msg), so when that is at
//     most 2^N the ordinary Writer is used, and when the message is at most
//     half the window the dictionary is cut to fit. Only a message larger
//     than 2^(N-1) needs flate.NewWriterWindow(2^N) (its matches are all
//     closer than 2^N), created on first need, one per distinct N per
//     Compressor (1.06 MB each, at most seven). At N = 10, 256-byte messages
//     compress to 0.59 (0.31 with takeover) and 4 KiB ones to 0.35 (0.33),
//     against 0.59 and 0.32 with a full window.
//   - Where an echo server's time goes, per 4 KiB message of JSON-like text
//     without context takeover (100 connections, one message in flight,
//     CPU profiles of the event loop, same shared machine): compressing
//     15–20 µs, inflating 11–15 µs, the read and write system calls 11–15
//     µs, of 40–55 µs in all; the output ratio is 0.28. About a third of
//     the compressing is building the message's Huffman tables, which no
//     flate API lets a caller keep from one message to the next. The
//     level-1 Writer is the cheapest at this ratio: StatelessDeflate took
//     the same time in the server (15–18 µs), level 2 took about 1.05×
//     (ratio 0.273), and HuffmanOnly about two thirds at a ratio of 0.55,
//     too much bandwidth to give away by default. An encoder of our own
//     that kept the tables across messages saved 3–5 µs per message on
//     this text (and compressed 1 KiB messages to 0.43 against 0.40): not
//     worth its 600 lines.
type Compressor struct {
	_        noCopy
	level    int
	minPlain int // threshold without history
	minHist  int // threshold with history
	w        *flate.Writer
	win      [maxWindowBits - minWindowBits]*flate.Writer // NewWriterWindow(1 << (i+8))
	out      appender
}

// NewCompressor returns a Compressor for cfg (nil means the zero Config).
// It allocates nothing else until the first message is compressed.
func NewCompressor(cfg *Config) (*Compressor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := cfg.withDefaults()
	plain, hist := c.thresholds()
	return &Compressor{level: c.Level, minPlain: plain, minHist: hist}, nil
}

// AppendCompress compresses msg as one permessage-deflate message for a
// connection with parameters p and send-side History h, appends the payload
// to dst (with the trailing 00 00 ff ff removed, RFC 7692 §7.2.1) and
// returns it with ok == true: send it as the payload of the message with RSV1
// set on its first frame.
//
// With ok == false dst is returned unchanged and the message must be sent
// uncompressed (RSV1 clear): it was shorter than the threshold, or
// compressing did not make it shorter. (One exception: a message under 128
// bytes that does not shrink while h is empty is sent as a stored block,
// len(msg)+6 bytes, because only compressed messages enter the history and
// short ones would otherwise never start it.)
//
// h is used only when p.ServerContextTakeover is set, and may be nil (no
// history). When it is used, msg is added to it if and only if ok is true,
// so the frame must then be sent (or h released, see History.Release).
// msg is not retained and may alias nothing else passed in.
//
// In steady state (dst with enough capacity, the Writer already created)
// AppendCompress does not allocate, except for the opt-in path described on
// Config.Threshold.
func (c *Compressor) AppendCompress(dst, msg []byte, p Params, h *History) (_ []byte, ok bool) {
	takeover := h != nil && p.ServerContextTakeover
	if takeover {
		if len(msg) < c.minHist {
			return dst, false
		}
	} else if len(msg) < c.minPlain {
		return dst, false
	}

	var dict []byte
	if takeover {
		dict = h.buf
	}
	w := c.w
	if w == nil {
		w, _ = flate.NewWriter(nil, c.level) // the level was validated
		c.w = w
	}
	if bits := p.serverBits(); bits < maxWindowBits {
		// RFC 7692 §7.1.2.1: with server_max_window_bits agreed, the server
		// must not use an LZ77 window larger than 2^bits.
		window := 1 << bits
		if len(dict)+len(msg) > window {
			if len(msg) <= window/2 {
				dict = dict[len(dict)-(window-len(msg)):]
			} else {
				w = c.windowWriter(bits)
			}
		}
	}

	start := len(dst)
	c.out.b = dst
	if len(msg) < smallInput && len(dict) > 0 && w == c.w {
		_ = flate.StatelessDeflate(&c.out, msg, false, dict)
	} else {
		// ResetDict, never Reset: Reset would re-apply the last dictionary,
		// which the Writer keeps without copying (an old History buffer).
		w.ResetDict(&c.out, dict)
		_, _ = w.Write(msg)
		_ = w.Flush()
	}
	out := c.out.b
	c.out.b = nil

	n := len(out) - len(syncTail)
	if n < start || !bytes.Equal(out[n:], syncTail) {
		panic("deflate: sync flush did not end with 00 00 ff ff")
	}
	if n-start >= len(msg) {
		if !takeover || h.Len() > 0 || len(msg) == 0 || len(msg) >= smallInput {
			return out[:start], false
		}
		// A short message does not shrink without history, and only
		// messages sent compressed enter the history, so short messages
		// alone would never start one. Seed an empty History by sending
		// this one as a stored block: len(msg)+6 bytes, once per History.
		out = appendStored(out[:start], msg)
		n = len(out)
	}
	if takeover {
		h.add(msg, p.historySize())
	}
	return out[:n], true
}

// appendStored appends msg (at most 65535 bytes) as one non-final stored
// block (RFC 1951 §3.2.4) followed by what remains of a sync flush once its
// 00 00 ff ff is removed: the empty stored block's header byte.
func appendStored(dst, msg []byte) []byte {
	n := len(msg)
	dst = append(dst, 0x00, byte(n), byte(n>>8), ^byte(n), ^byte(n>>8))
	dst = append(dst, msg...)
	return append(dst, 0x00)
}

// windowWriter returns the Writer whose matches all lie within 2^bits.
func (c *Compressor) windowWriter(bits int) *flate.Writer {
	i := bits - minWindowBits
	if c.win[i] == nil {
		c.win[i], _ = flate.NewWriterWindow(nil, 1<<bits)
	}
	return c.win[i]
}

// appender is the io.Writer the flate writers append to.
type appender struct{ b []byte }

func (a *appender) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

// noCopy makes go vet's copylocks check report copies of the structs that
// embed it.
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}
