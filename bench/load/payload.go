package load

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strconv"

	"github.com/klauspost/compress/flate"
)

// Every message the load generator sends, and so every message it expects
// back, has the same layout, all printable ASCII so that it is valid as a
// text message too:
//
//	[0:8]   sequence number, 8 lower-case hex digits
//	[8:20]  send time in nanoseconds since the run's epoch, 12 hex digits
//	[20:24] the message length mod 65536, 4 hex digits
//	[24:]   filler: byte i is fill[i], a fixed JSON-like text (echo), or
//	        fill[tickOffset(seq)+i] (fanout, see ticks)
//
// so a receiver checks length, sequence and every byte without keeping a
// copy of what was sent, piece by piece as the bytes arrive.
//
// Fanout messages are ticks that differ from one message to the next: the
// filler of message seq is cut from a long deterministic text (tickPeriod
// bytes, far more than a DEFLATE window of 32 KiB) at an offset that moves
// by the filler's length with every message, so that consecutive messages
// are consecutive, distinct pieces of the text and no message repeats one
// of the previous tickPeriod/(size-24) messages. A compressor with context
// takeover then finds in its window recent ticks like real market data
// (the same keys and symbols, other numbers), never the message itself.
const (
	// MinSize is the smallest message size: the header alone.
	MinSize = 24
	// MaxSize is the largest message size the generator sends.
	MaxSize = 16 << 20

	seqEnd = 8
	tsEnd  = 20
)

var errMsgHeader = errors.New("verify: message header is not hex")

// tickPeriod is the length of the text the fanout fillers are cut from,
// past which the offsets wrap around.
const tickPeriod = 1 << 20

// ticks is the text of fanout messages of size bytes: fill[tickOffset(seq,
// size)+i] is byte i of message seq, for MinSize <= i < size. It is a
// deterministic stream of trades like a market-data feed's: a symbol of
// ten, its price walking from the last trade of that symbol by up to
// ±0.15, a round lot of 100 to 2,000, a side and a trade id that counts
// up.
func ticks(size int) []byte {
	n := tickPeriod + size
	syms := []string{"AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "TSLA", "META", "BRK.B", "JPM", "V"}
	price := []int{18742, 41230, 17655, 18790, 12140, 24810, 51220, 41575, 19830, 27710} // cents
	b := make([]byte, 0, n+128)
	x := uint64(0x2545f4914f6cdd1d)
	id := 7_000_000
	for len(b) < n {
		x ^= x >> 12 // xorshift64*
		x ^= x << 25
		x ^= x >> 27
		r := x * 2685821657736338717
		k := r % uint64(len(syms))
		price[k] += int(r>>8%31) - 15
		id++
		b = append(b, `{"s":"`...)
		b = append(b, syms[k]...)
		b = append(b, `","p":`...)
		b = strconv.AppendInt(b, int64(price[k]/100), 10)
		b = append(b, '.', byte('0'+price[k]/10%10), byte('0'+price[k]%10))
		b = append(b, `,"q":`...)
		b = strconv.AppendInt(b, int64(100*(1+r>>16%20)), 10)
		b = append(b, `,"side":"`...)
		b = append(b, []string{"buy", "sell"}[r>>24&1]...)
		b = append(b, `","id":`...)
		b = strconv.AppendInt(b, int64(id), 10)
		b = append(b, "},"...)
	}
	return b[:n]
}

// tickOffset is where the filler of message seq starts in ticks(size),
// less MinSize.
func tickOffset(seq uint32, size int) int {
	return int(uint64(seq) * uint64(size-MinSize) % tickPeriod)
}

const hexDigits = "0123456789abcdef"

// putHex writes v as len(p) hex digits into p.
func putHex(p []byte, v uint64) {
	for i := len(p) - 1; i >= 0; i-- {
		p[i] = hexDigits[v&15]
		v >>= 4
	}
}

// getHex parses len(p) hex digits.
func getHex(p []byte) (uint64, bool) {
	var v uint64
	for _, c := range p {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// putMsgHeader writes the 24-byte header of a message of the given size.
func putMsgHeader(p []byte, seq uint32, ts int64, size int) {
	putHex(p[:seqEnd], uint64(seq))
	putHex(p[seqEnd:tsEnd], uint64(ts)&(1<<48-1))
	putHex(p[tsEnd:MinSize], uint64(size)&0xffff)
}

// parseMsgHeader reads a header written by putMsgHeader.
func parseMsgHeader(p []byte) (seq uint32, ts int64, size16 int, err error) {
	s, ok1 := getHex(p[:seqEnd])
	t, ok2 := getHex(p[seqEnd:tsEnd])
	l, ok3 := getHex(p[tsEnd:MinSize])
	if !ok1 || !ok2 || !ok3 {
		return 0, 0, 0, errMsgHeader
	}
	return uint32(s), int64(t), int(l), nil
}

// filler returns the filler text for messages up to size bytes: a
// deterministic mix of JSON-like records with varying numbers, which
// compresses about as well as real market data or chat traffic (ratio
// 0.3–0.5 with DEFLATE) rather than perfectly (a repeated byte) or not at
// all (random bytes).
func filler(size int) []byte {
	syms := []string{"AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "TSLA", "META", "BRK.B", "JPM", "V"}
	sides := []string{"buy", "sell"}
	b := make([]byte, 0, size+128)
	var x uint64 = 0x9e3779b97f4a7c15
	next := func() uint64 { // xorshift64*
		x ^= x >> 12
		x ^= x << 25
		x ^= x >> 27
		return x * 2685821657736338717
	}
	num := func(n uint64, digits int) {
		var d [20]byte
		i := len(d)
		for k := 0; k < digits || n > 0; k++ {
			i--
			d[i] = byte('0' + n%10)
			n /= 10
		}
		b = append(b, d[i:]...)
	}
	for len(b) < size {
		r := next()
		b = append(b, `{"s":"`...)
		b = append(b, syms[r%uint64(len(syms))]...)
		b = append(b, `","p":`...)
		num(100+r>>8%900, 1)
		b = append(b, '.')
		num(r>>20%100, 2)
		b = append(b, `,"q":`...)
		num(1+r>>28%5000, 1)
		b = append(b, `,"d":"`...)
		b = append(b, sides[r>>40&1]...)
		b = append(b, `"},`...)
	}
	return b[:size]
}

// template holds what is needed to build the messages of one size: the
// plain bytes with a header slot, and, for permessage-deflate, the same
// message as DEFLATE data in which only the header changes.
type template struct {
	size   int    // message size, without the prefix
	prefix int    // len of a fixed prefix before the header ("BCAST ")
	plain  []byte // prefix + header slot + filler
	// compressed message: a stored block holding prefix + header, then the
	// filler compressed once with its sync-flush tail 00 00 ff ff removed
	// (RFC 7692 §7.2.1). Stored blocks are byte-aligned, and the filler's
	// blocks refer only to themselves, so the pieces can be joined.
	z []byte
	// zHead is the offset of the header slot in z.
	zHead int
}

// newTemplate builds the template of messages of size bytes after prefix,
// with fill as the filler (len(fill) >= size). The compressed form is built
// only if compress is set.
func newTemplate(prefix string, size int, fill []byte, compress bool) (*template, error) {
	if size < MinSize || size > MaxSize {
		return nil, errors.New("load: message size out of range")
	}
	t := &template{size: size, prefix: len(prefix)}
	t.plain = make([]byte, 0, len(prefix)+size)
	t.plain = append(t.plain, prefix...)
	t.plain = append(t.plain, make([]byte, MinSize)...)
	t.plain = append(t.plain, fill[MinSize:size]...)
	if !compress {
		return t, nil
	}
	head := len(prefix) + MinSize
	z := make([]byte, 0, head+size/2+64)
	// Stored block, BFINAL=0 BTYPE=00, then LEN and NLEN little-endian.
	z = append(z, 0)
	z = binary.LittleEndian.AppendUint16(z, uint16(head))
	z = binary.LittleEndian.AppendUint16(z, ^uint16(head))
	t.zHead = len(z) + len(prefix)
	z = append(z, t.plain[:head]...)
	if size > MinSize {
		var buf bytes.Buffer
		w, err := flate.NewWriter(&buf, flate.BestSpeed)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(fill[MinSize:size]); err != nil {
			return nil, err
		}
		if err := w.Flush(); err != nil {
			return nil, err
		}
		z = append(z, buf.Bytes()...)
	} else {
		z = append(z, 0, 0, 0, 0xff, 0xff) // the sync-flush block alone
	}
	if !bytes.HasSuffix(z, []byte{0, 0, 0xff, 0xff}) {
		return nil, errors.New("load: flate sync flush did not end in 00 00 ff ff")
	}
	t.z = z[:len(z)-4]
	return t, nil
}
