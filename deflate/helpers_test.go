package deflate

import (
	"bytes"
	stdflate "compress/flate"
	"errors"
	"io"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/klauspost/compress/flate"
)

// ---- a reference inflater that reports the largest match distance ----
//
// refInflate is a slow, independent DEFLATE decoder (RFC 1951, decoding
// Huffman codes bit by bit in the manner of zlib's puff.c). Besides the
// output it returns the largest LZ77 distance used, which is what proves that
// a compressor honours server_max_window_bits: a real peer with a 2^N window
// rejects (or misdecodes) any distance above 2^N. dict is the window the
// peer holds before the message; distances reaching before it are errors.
// It stops after a final block or when the input ends at a block boundary.
func refInflate(data, dict []byte) (out []byte, maxDist int, err error) {
	r := &bitReader{b: data}
	win := append([]byte(nil), dict...)
	for {
		last, err := r.bits(1)
		if err != nil {
			return nil, 0, err
		}
		typ, err := r.bits(2)
		if err != nil {
			return nil, 0, err
		}
		switch typ {
		case 0:
			r.pos = (r.pos + 7) &^ 7
			n, err1 := r.bits(16)
			nn, err2 := r.bits(16)
			if err1 != nil || err2 != nil || n != ^nn&0xffff {
				return nil, 0, errRef
			}
			if r.pos/8+n > len(data) {
				return nil, 0, errRef
			}
			win = append(win, data[r.pos/8:r.pos/8+n]...)
			r.pos += 8 * n
		case 1:
			if err := r.codes(&win, &maxDist, len(dict), fixedLit, fixedDist); err != nil {
				return nil, 0, err
			}
		case 2:
			lit, dist, err := r.dynamicTables()
			if err != nil {
				return nil, 0, err
			}
			if err := r.codes(&win, &maxDist, len(dict), lit, dist); err != nil {
				return nil, 0, err
			}
		default:
			return nil, 0, errRef
		}
		if last == 1 || r.pos == 8*len(data) {
			return win[len(dict):], maxDist, nil
		}
	}
}

var errRef = errors.New("refInflate: invalid data")

type bitReader struct {
	b   []byte
	pos int // in bits
}

func (r *bitReader) bits(n int) (int, error) {
	v := 0
	for i := range n {
		if r.pos >= 8*len(r.b) {
			return 0, io.ErrUnexpectedEOF
		}
		v |= int(r.b[r.pos>>3]>>(r.pos&7)&1) << i
		r.pos++
	}
	return v, nil
}

type huffman struct {
	count  [16]int
	symbol []int
}

func newHuffman(lengths []int) *huffman {
	h := &huffman{symbol: make([]int, len(lengths))}
	for _, l := range lengths {
		h.count[l]++
	}
	var offs [16]int
	for l := 1; l < 15; l++ {
		offs[l+1] = offs[l] + h.count[l]
	}
	for s, l := range lengths {
		if l != 0 {
			h.symbol[offs[l]] = s
			offs[l]++
		}
	}
	return h
}

func (r *bitReader) decode(h *huffman) (int, error) {
	code, first, index := 0, 0, 0
	for l := 1; l <= 15; l++ {
		b, err := r.bits(1)
		if err != nil {
			return 0, err
		}
		code |= b
		count := h.count[l]
		if code-count < first {
			return h.symbol[index+code-first], nil
		}
		index += count
		first = (first + count) << 1
		code <<= 1
	}
	return 0, errRef
}

var (
	lenBase   = [29]int{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lenExtra  = [29]int{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase  = [30]int{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra = [30]int{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
	clOrder   = [19]int{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

	fixedLit, fixedDist = func() (*huffman, *huffman) {
		l := make([]int, 288)
		for i := range l {
			switch {
			case i < 144:
				l[i] = 8
			case i < 256:
				l[i] = 9
			case i < 280:
				l[i] = 7
			default:
				l[i] = 8
			}
		}
		d := make([]int, 30)
		for i := range d {
			d[i] = 5
		}
		return newHuffman(l), newHuffman(d)
	}()
)

func (r *bitReader) dynamicTables() (lit, dist *huffman, err error) {
	nlen, _ := r.bits(5)
	ndist, _ := r.bits(5)
	ncode, err := r.bits(4)
	if err != nil {
		return nil, nil, err
	}
	nlen += 257
	ndist++
	ncode += 4
	var cl [19]int
	for i := range ncode {
		if cl[clOrder[i]], err = r.bits(3); err != nil {
			return nil, nil, err
		}
	}
	clh := newHuffman(cl[:])
	lengths := make([]int, nlen+ndist)
	for i := 0; i < len(lengths); {
		sym, err := r.decode(clh)
		if err != nil {
			return nil, nil, err
		}
		if sym < 16 {
			lengths[i] = sym
			i++
			continue
		}
		rep, val := 0, 0
		switch sym {
		case 16:
			if i == 0 {
				return nil, nil, errRef
			}
			val = lengths[i-1]
			rep, _ = r.bits(2)
			rep += 3
		case 17:
			rep, _ = r.bits(3)
			rep += 3
		default:
			rep, _ = r.bits(7)
			rep += 11
		}
		if i+rep > len(lengths) {
			return nil, nil, errRef
		}
		for ; rep > 0; rep-- {
			lengths[i] = val
			i++
		}
	}
	return newHuffman(lengths[:nlen]), newHuffman(lengths[nlen:]), nil
}

func (r *bitReader) codes(win *[]byte, maxDist *int, dictLen int, lit, dist *huffman) error {
	for {
		sym, err := r.decode(lit)
		if err != nil {
			return err
		}
		switch {
		case sym < 256:
			*win = append(*win, byte(sym))
			continue
		case sym == 256:
			return nil
		case sym > 285:
			return errRef
		}
		sym -= 257
		e, _ := r.bits(lenExtra[sym])
		n := lenBase[sym] + e
		ds, err := r.decode(dist)
		if err != nil || ds > 29 {
			return errRef
		}
		e, err = r.bits(distExtra[ds])
		if err != nil {
			return err
		}
		d := distBase[ds] + e
		if d > len(*win) {
			return errRef // before the start of the peer's window
		}
		*maxDist = max(*maxDist, d)
		for range n {
			*win = append(*win, (*win)[len(*win)-d])
		}
	}
}

// ---- decoding as three independent peers would ----

// peer is the receiving side of a connection as a real client sees it: with
// context takeover its window is everything it inflated, not our History.
type peer struct {
	bits     int // its window: server_max_window_bits
	takeover bool
	window   []byte // all plaintext of compressed messages received
	maxDist  int    // largest distance seen
}

// receive decodes one compressed payload with the reference inflater (and
// checks every distance against the peer's window), with a fresh
// klauspost/compress reader and with the standard library, and checks that
// all three give want.
func (pr *peer) receive(t testing.TB, payload, want []byte) {
	t.Helper()
	var dict []byte
	if pr.takeover {
		dict = pr.window[max(0, len(pr.window)-(1<<pr.bits)):]
	}
	data := append(append([]byte(nil), payload...), syncTail...)
	got, maxDist, err := refInflate(data, dict)
	if err != nil {
		t.Fatalf("reference inflate: %v (dict %d bytes, payload %d bytes)", err, len(dict), len(payload))
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("reference inflate: got %d bytes, want %d", len(got), len(want))
	}
	if maxDist > 1<<pr.bits {
		t.Fatalf("distance %d exceeds the %d-bit window", maxDist, pr.bits)
	}
	pr.maxDist = max(pr.maxDist, maxDist)
	data = append(data, 0x01, 0x00, 0x00, 0xff, 0xff)
	kr := flate.NewReaderDict(bytes.NewReader(data), dict)
	if got, err := io.ReadAll(kr); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("klauspost inflate: err %v, equal %v", err, bytes.Equal(got, want))
	}
	sr := stdflate.NewReaderDict(bytes.NewReader(data), dict)
	if got, err := io.ReadAll(sr); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("compress/flate inflate: err %v, equal %v", err, bytes.Equal(got, want))
	}
	if pr.takeover {
		pr.window = append(pr.window, want...)
		if len(pr.window) > 1<<16 {
			pr.window = append([]byte(nil), pr.window[len(pr.window)-1<<15:]...)
		}
	}
}

// deflateStd compresses msg with the standard library as a client would:
// sync flush, tail removed. With final it ends the stream with BFINAL
// instead (RFC 7692 §7.2.3.4 style) and adds the stored-block byte.
func deflateStd(t testing.TB, msg, dict []byte, final bool) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := stdflate.NewWriterDict(&b, stdflate.BestSpeed, dict)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(msg)
	if final {
		w.Close()
		return b.Bytes()
	}
	w.Flush()
	out := b.Bytes()
	if !bytes.HasSuffix(out, syncTail) {
		t.Fatalf("stdlib flush did not end with 00 00 ff ff")
	}
	return out[:len(out)-4]
}

// ---- test data ----

// market generates unique JSON market-data messages, deterministic for a
// seed: trades of ~190 bytes and order-book updates of ~2 KB.
type market struct {
	r     *rand.Rand
	price float64
	seq   int64
	ts    int64
}

func newMarket(seed uint64) *market {
	return &market{r: rand.New(rand.NewPCG(seed, 1)), price: 43123.45, seq: 3123456789, ts: 1700000000123}
}

var symbols = []string{"BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT"}

func (m *market) trade(dst []byte) []byte {
	m.seq += 1 + int64(m.r.IntN(5))
	m.ts += int64(m.r.IntN(40))
	m.price += (m.r.Float64() - 0.5) * 3
	s := symbols[m.r.IntN(len(symbols))]
	dst = append(dst, `{"stream":"`...)
	dst = append(dst, s...)
	dst = append(dst, `@trade","data":{"e":"trade","E":`...)
	dst = strconv.AppendInt(dst, m.ts, 10)
	dst = append(dst, `,"s":"`...)
	dst = append(dst, s...)
	dst = append(dst, `","t":`...)
	dst = strconv.AppendInt(dst, m.seq, 10)
	dst = append(dst, `,"p":"`...)
	dst = strconv.AppendFloat(dst, m.price, 'f', 8, 64)
	dst = append(dst, `","q":"`...)
	dst = strconv.AppendFloat(dst, m.r.Float64()*2, 'f', 8, 64)
	dst = append(dst, `","T":`...)
	dst = strconv.AppendInt(dst, m.ts-1, 10)
	dst = append(dst, `,"m":`...)
	dst = strconv.AppendBool(dst, m.r.IntN(2) == 0)
	return append(dst, `,"M":true}}`...)
}

func (m *market) depth(dst []byte) []byte {
	m.seq += 1 + int64(m.r.IntN(50))
	m.ts += int64(m.r.IntN(100))
	m.price += (m.r.Float64() - 0.5) * 3
	dst = append(dst, `{"stream":"btcusdt@depth20@100ms","data":{"e":"depthUpdate","E":`...)
	dst = strconv.AppendInt(dst, m.ts, 10)
	dst = append(dst, `,"s":"BTCUSDT","U":`...)
	dst = strconv.AppendInt(dst, m.seq, 10)
	dst = append(dst, `,"u":`...)
	dst = strconv.AppendInt(dst, m.seq+int64(m.r.IntN(30)), 10)
	for side, key := range []string{`,"b":[`, `],"a":[`} {
		dst = append(dst, key...)
		p := m.price
		for i := range 20 {
			if i > 0 {
				dst = append(dst, ',')
			}
			step := 0.01 + m.r.Float64()*0.5
			if side == 0 {
				p -= step
			} else {
				p += step
			}
			dst = append(dst, `["`...)
			dst = strconv.AppendFloat(dst, p, 'f', 2, 64)
			dst = append(dst, `","`...)
			dst = strconv.AppendFloat(dst, m.r.Float64()*3, 'f', 5, 64)
			dst = append(dst, `"]`...)
		}
	}
	return append(dst, `]}}`...)
}

// sized returns a message of exactly n bytes of market data (trades and
// order-book updates run together and cut).
func (m *market) sized(n int) []byte {
	var b []byte
	for len(b) < n {
		if m.r.IntN(4) == 0 {
			b = m.depth(b)
		} else {
			b = m.trade(b)
		}
	}
	return b[:n]
}

// randomBytes returns n incompressible bytes.
func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func mustCompressor(t testing.TB, cfg *Config) *Compressor {
	t.Helper()
	c, err := NewCompressor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
