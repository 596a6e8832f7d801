package deflate

import (
	"encoding/binary"
	"math"
	"math/bits"
	"slices"
)

// encoder is the Compressor's own DEFLATE encoder for the common case: a
// message of at most maxEncode bytes compressed without a dictionary. It
// writes one dynamic-Huffman block per message, like a flate.Writer of
// level 1, but with two differences that make it cheaper per message:
//
//   - The Huffman tables are not built for every message. The encoder keeps
//     the tables (and their encoded block header) built from the symbol
//     counts of the messages it compressed before, gives every symbol a
//     code so that any message can be written with them, and rebuilds them
//     every refreshEvery messages, or at once when a message would cost
//     noticeably more bits with them than the messages they were built
//     from. Building the tables is about a third of klauspost's level-1
//     time on a 4 KiB message (huffmanEncoder.generate, 3.9 of 11.2 µs).
//   - The match finder's hash table is small (2^hashBits entries, 32 KB)
//     and is not cleared between messages (entries carry a running base),
//     so it stays in cache; klauspost's level-1 table is 256 KB.
//
// Measured on the 4 KiB JSON-like messages of the echo benchmark (2 shared
// vCPUs): klauspost level 1 with ResetDict 11.2 µs, ratio 0.280; this
// encoder see BenchmarkEncoder. It holds about 40 KB (the hash table and
// the tables), plus a token buffer of 4 bytes per input byte at most,
// instead of the 800 KB of a level-1 flate.Writer.
type encoder struct {
	table  [1 << hashBits]uint32 // hash of 5 bytes → base+position+1
	base   uint32                // added to positions in table
	tokens []uint32              // literal byte, or matchFlag|(len-3)<<15|(dist-1)

	msgLit  [numLit]uint32  // symbol counts of the message being written
	msgDist [numDist]uint32 //
	lit     [numLit]uint32  // symbol counts the next tables are built from
	dist    [numDist]uint32 //
	counted uint32          // symbols in lit
	basis   uint32          // symbols the current tables were built from
	msgs    int             // messages written with the current tables

	litLen   [numLit]uint8
	distLen  [numDist]uint8
	litCode  [numLit]huffCode
	distCode [numDist]huffCode
	lenCode  [256]lenCode // by length-3: the length's code and extra bits
	header   []byte       // the block header: BFINAL 0, BTYPE 10 and the code lengths
	hdrBits  uint         // bits of header used in its last byte (1–8)
	built    bool
	hs       huffScratch
}

const (
	hashBits  = 13
	maxEncode = 32 << 10 // largest message the encoder takes: every distance fits a 32 KiB window
	// maxHeader bounds a dynamic block header: 17 bits, 19 3-bit code
	// length code lengths, and 316 code lengths of at most 7+2 bits.
	maxHeader = (17 + 19*3 + (numLit+numDist)*9 + 7) / 8
	minEncode = 1 << 10  // smallest: below, a table of its own pays for the flate.Writer's time
	minMatch  = 4
	maxMatch  = 258
	matchFlag = 1 << 31
	numLit    = 286 // literal/length symbols 0–285
	numDist   = 30  // distance symbols 0–29
	endBlock  = 256

	// refreshEvery is how many messages the tables serve before they are
	// rebuilt from the counts of those messages (and half the counts the
	// tables before were built from).
	refreshEvery = 32
	// minBasis is the fewest symbols tables are built from to be kept
	// for the next message: until that many were counted, every message
	// rebuilds them.
	minBasis = 2048
)

// lenCode is the code of a match length followed by its extra bits.
type lenCode struct {
	bits uint32
	n    uint8
}

// huffCode is a Huffman code, bit-reversed for DEFLATE's LSB-first packing.
type huffCode struct {
	code uint16
	len  uint8
}

// encode appends msg compressed as one non-final dynamic block followed by
// the 3 header bits of an empty stored block, padded to a byte: a sync
// flush without its final 00 00 ff ff (RFC 7692 §7.2.1). len(msg) must be
// in [1, maxEncode].
func (e *encoder) encode(dst, msg []byte) []byte {
	e.match(msg)
	syms, all := e.bodyBits()
	switch {
	case !e.built || float64(syms) > 1.1*e.entropy()+64:
		// The message would take a tenth more bits with the tables than
		// with tables of its own: build them from this message alone, as
		// what was counted before does not describe the traffic any more.
		e.lit, e.dist, e.counted = e.msgLit, e.msgDist, 0
		e.build()
		_, all = e.bodyBits()
	case e.msgs >= refreshEvery || e.basis < minBasis && e.counted >= 2*e.basis:
		e.build()
		_, all = e.bodyBits()
	}
	e.msgs++
	return e.write(dst, len(e.header)+int(all/8)+8)
}

// match fills e.tokens with a greedy LZ77 parse of msg (4-byte hashes, one
// candidate per hash, like klauspost's level 1) and adds the symbols to
// the counts.
func (e *encoder) match(msg []byte) {
	if e.base > 1<<30 {
		e.table = [1 << hashBits]uint32{}
		e.base = 0
	}
	base := e.base
	e.base += uint32(len(msg)) + 1
	n := len(msg)
	if cap(e.tokens) < n {
		e.tokens = make([]uint32, n)
	}
	tok := e.tokens[:n] // at most one token per byte
	nt := 0
	e.msgLit = [numLit]uint32{}
	e.msgDist = [numDist]uint32{}
	ml := &e.msgLit
	s, emit := 0, 0
	for s+8 <= n {
		cur := binary.LittleEndian.Uint64(msg[s:])
		h := hash5(cur)
		cand := int(e.table[h]) - int(base) - 1
		e.table[h] = base + uint32(s) + 1
		// cand >= s: a position indexed before a long match that was
		// extended backwards ended short of it (matches stop at 258).
		if cand < 0 || cand >= s || uint32(cur) != binary.LittleEndian.Uint32(msg[cand:]) {
			// Step faster through data that does not match.
			s += 1 + (s-emit)>>5
			continue
		}
		// Extend the match backwards over pending literals, then
		// forwards 8 bytes at a time.
		for cand > 0 && s > emit && msg[cand-1] == msg[s-1] {
			cand--
			s--
		}
		l := minMatch
		for s+l+8 <= n && l < maxMatch {
			x := binary.LittleEndian.Uint64(msg[s+l:]) ^ binary.LittleEndian.Uint64(msg[cand+l:])
			if x != 0 {
				l += bits.TrailingZeros64(x) >> 3
				break
			}
			l += 8
		}
		for s+l < n && l < maxMatch && msg[s+l] == msg[cand+l] {
			l++
		}
		l = min(l, maxMatch)
		for _, b := range msg[emit:s] {
			tok[nt] = uint32(b)
			nt++
			ml[b]++
		}
		d := s - cand
		tok[nt] = matchFlag | uint32(l-3)<<15 | uint32(d-1)
		nt++
		ml[lengthSym[l-3]]++
		e.msgDist[distSym(d-1)]++
		s += l
		emit = s
		// Index the two positions before the end of the match, so that
		// repeats right after it are found.
		if s+6 <= n {
			x := binary.LittleEndian.Uint64(msg[s-2:])
			e.table[hash5(x)] = base + uint32(s-2) + 1
			e.table[hash5(x>>8)] = base + uint32(s-1) + 1
		}
	}
	for _, b := range msg[emit:] {
		tok[nt] = uint32(b)
		nt++
		ml[b]++
	}
	e.tokens = tok[:nt]
	for i, c := range e.msgLit {
		e.lit[i] += c
	}
	for i, c := range e.msgDist {
		e.dist[i] += c
	}
	e.counted += uint32(nt)
}

// hash5 hashes the low 5 bytes of u.
func hash5(u uint64) uint32 { return uint32(((u << 24) * 889523592379) >> (64 - hashBits)) }

// bodyBits returns the bits the message just parsed takes with the current
// tables: its symbols alone, and with their extra bits.
func (e *encoder) bodyBits() (syms, all uint64) {
	for i, c := range e.msgLit {
		syms += uint64(c) * uint64(e.litLen[i])
	}
	for i, c := range e.msgDist {
		syms += uint64(c) * uint64(e.distLen[i])
		all += uint64(c) * uint64(encDistExtra[i])
	}
	for i, c := range e.msgLit[257:] {
		all += uint64(c) * uint64(encLenExtra[i])
	}
	return syms, syms + all
}

// entropy estimates the fewest bits the symbols of the message just parsed
// could take with tables of their own: n·log2(n) − Σ c·log2(c), per
// alphabet.
func (e *encoder) entropy() float64 {
	var ent float64
	for _, hist := range [2][]uint32{e.msgLit[:], e.msgDist[:]} {
		var n uint32
		var sum float64
		for _, c := range hist {
			if c > 1 {
				n += c
				sum += float64(c) * log2(c)
			} else {
				n += c
			}
		}
		if n > 0 {
			ent += float64(n)*log2(n) - sum
		}
	}
	return ent
}

// log2 returns log2(c), from a table for small c.
func log2(c uint32) float64 {
	if c < uint32(len(log2Tab)) {
		return float64(log2Tab[c])
	}
	return math.Log2(float64(c))
}

var log2Tab [1024]float32

// build makes the Huffman tables and the block header from the counts,
// giving every symbol a count of at least one (so that every message can be
// written with them), and halves the counts, so that the next tables follow
// the traffic with a memory of what came before.
func (e *encoder) build() {
	for i := range e.lit {
		e.lit[i]++
	}
	for i := range e.dist {
		e.dist[i]++
	}
	e.hs.huffLengths(e.litLen[:], e.lit[:], 15)
	e.hs.huffLengths(e.distLen[:], e.dist[:], 15)
	canonical(e.litCode[:], e.litLen[:])
	canonical(e.distCode[:], e.distLen[:])
	for l := range e.lenCode {
		sym := lengthSym[l]
		c := e.litCode[sym]
		x := encLenExtra[sym-257]
		e.lenCode[l] = lenCode{bits: uint32(c.code) | uint32(l+3-int(encLenBase[sym-257]))<<c.len, n: c.len + x}
	}
	if e.header == nil {
		e.header = make([]byte, 0, maxHeader)
	}
	e.header, e.hdrBits = e.hs.dynamicHeader(e.header[:0], e.litLen[:], e.distLen[:])
	e.basis = e.counted
	e.counted = 0
	for i := range e.lit {
		e.lit[i] /= 2
		e.counted += e.lit[i]
	}
	for i := range e.dist {
		e.dist[i] /= 2
	}
	e.msgs = 0
	e.built = true
}

// write appends the header, the tokens, the end of block and the empty
// stored block's header. Bits are gathered in a 64-bit word and stored 32
// at a time into need bytes reserved beforehand: the header, the body and
// 8 bytes for the end of block, the stored block header and the last store.
func (e *encoder) write(dst []byte, need int) []byte {
	start := len(dst)
	dst = slices.Grow(dst, need)
	buf := dst[start : start+need]
	pos := copy(buf, e.header) - 1
	acc, n := uint64(buf[pos]), e.hdrBits
	for _, t := range e.tokens {
		if t&matchFlag == 0 {
			c := e.litCode[t]
			acc |= uint64(c.code) << n
			n += uint(c.len)
		} else {
			lc := e.lenCode[t>>15&0xff]
			acc |= uint64(lc.bits) << n
			n += uint(lc.n)
			if n >= 32 {
				binary.LittleEndian.PutUint32(buf[pos:], uint32(acc))
				pos += 4
				acc >>= 32
				n -= 32
			}
			d := t & 0x7fff
			ds := distSym(int(d))
			c := e.distCode[ds]
			acc |= (uint64(c.code) | uint64(d+1-encDistBase[ds])<<c.len) << n
			n += uint(c.len + encDistExtra[ds])
		}
		if n >= 32 {
			binary.LittleEndian.PutUint32(buf[pos:], uint32(acc))
			pos += 4
			acc >>= 32
			n -= 32
		}
	}
	c := e.litCode[endBlock]
	acc |= uint64(c.code) << n
	n += uint(c.len) + 3 // and BFINAL 0, BTYPE 00: the empty stored block of the sync flush
	for ; n > 0; n -= min(n, 8) {
		buf[pos] = byte(acc)
		pos++
		acc >>= 8
	}
	return dst[:start+pos]
}

// bitWriter packs bits LSB first (RFC 1951 §3.1.1).
type bitWriter struct {
	dst []byte
	acc uint64
	n   uint // bits in acc, < 32 between calls
}

// bits writes the n (≤ 16) low bits of v.
func (w *bitWriter) bits(v uint64, n uint) {
	w.acc |= v << w.n
	w.n += n
	if w.n >= 32 {
		w.dst = binary.LittleEndian.AppendUint32(w.dst, uint32(w.acc))
		w.acc >>= 32
		w.n -= 32
	}
}

// flush pads to a byte and returns the output.
func (w *bitWriter) flush() []byte {
	for w.n > 0 {
		w.dst = append(w.dst, byte(w.acc))
		w.acc >>= 8
		w.n -= min(w.n, 8)
	}
	return w.dst
}

// dynamicHeader appends the header of a non-final dynamic block (RFC 1951
// §3.2.7) with the given code lengths (all 286 and 30, every one non-zero)
// and returns it with the number of bits used in its last byte.
func (hs *huffScratch) dynamicHeader(dst []byte, litLen, distLen []uint8) ([]byte, uint) {
	// The code lengths as one sequence, run-length coded with symbol 16
	// (repeat the previous length 3–6 times); no length is zero.
	var buf [numLit + numDist]uint8
	all := append(append(buf[:0], litLen...), distLen...)
	type rl struct{ sym, extra uint8 }
	var seqBuf [numLit + numDist]rl
	seq := seqBuf[:0]
	var clFreq [19]uint32
	for i := 0; i < len(all); {
		v := all[i]
		seq = append(seq, rl{v, 0})
		clFreq[v]++
		i++
		run := 0
		for i+run < len(all) && all[i+run] == v && run < 6 {
			run++
		}
		if run >= 3 {
			seq = append(seq, rl{16, uint8(run - 3)})
			clFreq[16]++
			i += run
		}
	}
	var clLen [19]uint8
	hs.huffLengths(clLen[:], clFreq[:], 7)
	var clCode [19]huffCode
	canonical(clCode[:], clLen[:])
	order := [19]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}
	hclen := 19
	for hclen > 4 && clLen[order[hclen-1]] == 0 {
		hclen--
	}
	w := bitWriter{dst: dst}
	w.bits(0, 1)          // BFINAL
	w.bits(2, 2)          // BTYPE 10: dynamic Huffman codes
	w.bits(numLit-257, 5) // HLIT
	w.bits(numDist-1, 5)  // HDIST
	w.bits(uint64(hclen-4), 4)
	for _, s := range order[:hclen] {
		w.bits(uint64(clLen[s]), 3)
	}
	for _, r := range seq {
		c := clCode[r.sym]
		w.bits(uint64(c.code), uint(c.len))
		if r.sym == 16 {
			w.bits(uint64(r.extra), 2)
		}
	}
	used := w.n % 8
	if used == 0 {
		used = 8
	}
	if w.n == 0 {
		// The header ends on a byte boundary: keep its last byte whole.
		return w.dst, 8
	}
	return w.flush(), used
}

// huffNode is a leaf (sym >= 0) or an internal node of a Huffman tree.
type huffNode struct {
	w           uint64
	sym         int32
	left, right int32
}

// huffScratch is the working memory of huffLengths, kept by the encoder so
// that rebuilding tables does not allocate.
type huffScratch struct {
	nodes [2 * numLit]huffNode
	depth [2 * numLit]int32
	count [2 * numLit]int32
	keys  [numLit]uint64
}

// huffLengths sets lens to Huffman code lengths of at most maxBits for the
// counts freq (at most numLit). Symbols with a zero count get no code,
// except that while fewer than two symbols have a count the first missing
// ones are given a count of one, so that the code is always complete.
func (hs *huffScratch) huffLengths(lens []uint8, freq []uint32, maxBits int) {
	nodes := hs.nodes[:0]
	for s, f := range freq {
		if f > 0 {
			nodes = append(nodes, huffNode{w: uint64(f), sym: int32(s)})
		}
	}
	for s := 0; len(nodes) < 2; s++ {
		if freq[s] == 0 {
			nodes = append(nodes, huffNode{w: 1, sym: int32(s)})
		}
	}
	leaves := len(nodes)
	// Sort by weight, then symbol, through one key each.
	keys := hs.keys[:0]
	for _, nd := range nodes {
		keys = append(keys, nd.w<<9|uint64(nd.sym))
	}
	slices.Sort(keys)
	for i, k := range keys {
		nodes[i] = huffNode{w: k >> 9, sym: int32(k & 511)}
	}
	// Two-queue construction: the leaves in order of weight, and the
	// internal nodes, which are made in order of weight.
	li, ii := 0, leaves
	pick := func() int32 {
		if li < leaves && (ii >= len(nodes) || nodes[li].w <= nodes[ii].w) {
			li++
			return int32(li - 1)
		}
		ii++
		return int32(ii - 1)
	}
	for len(nodes) < 2*leaves-1 {
		a := pick()
		b := pick()
		nodes = append(nodes, huffNode{w: nodes[a].w + nodes[b].w, sym: -1, left: a, right: b})
	}
	// Depths from the root down (children precede their parent).
	depth, count := hs.depth[:len(nodes)], hs.count[:len(nodes)]
	clear(count)
	depth[len(nodes)-1] = 0
	for i := len(nodes) - 1; i >= 0; i-- {
		if n := nodes[i]; n.sym < 0 {
			depth[n.left] = depth[i] + 1
			depth[n.right] = depth[i] + 1
		} else {
			count[depth[i]]++
		}
	}
	// Limit the depth to maxBits with the adjustment of JPEG's Annex K.3:
	// a pair of leaves too deep moves up, one to the level above, and a
	// shallower leaf becomes the parent of it and another.
	for i := len(count) - 1; i > maxBits; i-- {
		for count[i] > 0 {
			j := i - 2
			for count[j] == 0 {
				j--
			}
			count[i] -= 2
			count[i-1]++
			count[j+1] += 2
			count[j]--
		}
	}
	// The lightest leaves get the longest codes.
	clear(lens)
	li = 0
	for l := maxBits; l >= 1; l-- {
		for range count[l] {
			lens[nodes[li].sym] = uint8(l)
			li++
		}
	}
}

// canonical assigns the canonical codes of RFC 1951 §3.2.2 to lens,
// bit-reversed for writing.
func canonical(codes []huffCode, lens []uint8) {
	var count [16]uint16
	for _, l := range lens {
		count[l]++
	}
	count[0] = 0
	var next [16]uint16
	code := uint16(0)
	for b := 1; b < 16; b++ {
		code = (code + count[b-1]) << 1
		next[b] = code
	}
	for s, l := range lens {
		if l == 0 {
			codes[s] = huffCode{}
			continue
		}
		codes[s] = huffCode{code: bits.Reverse16(next[l]) >> (16 - l), len: l}
		next[l]++
	}
}

// Length and distance codes of RFC 1951 §3.2.5.
var (
	encLenBase   = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	encLenExtra  = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	encDistBase  = [30]uint32{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	encDistExtra = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}

	// lengthSym[l-3] is the symbol of match length l.
	lengthSym [256]uint16
	// distSym512 maps dist-1 < 256 directly and larger ones by (dist-1)>>7.
	distSym512 [512]uint8
)

func init() {
	for i := 1; i < len(log2Tab); i++ {
		log2Tab[i] = float32(math.Log2(float64(i)))
	}
	for s := 28; s >= 0; s-- {
		for l := int(encLenBase[s]); l < int(encLenBase[s])+1<<encLenExtra[s] && l <= 258; l++ {
			if lengthSym[l-3] == 0 {
				lengthSym[l-3] = uint16(257 + s)
			}
		}
	}
	for s := range encDistBase {
		for d := encDistBase[s]; d < encDistBase[s]+1<<encDistExtra[s]; d++ {
			if d <= 256 {
				distSym512[d-1] = uint8(s)
			} else {
				distSym512[256+(d-1)>>7] = uint8(s)
			}
		}
	}
}

// distSym returns the symbol of distance d+1.
func distSym(d int) int {
	if d < 256 {
		return int(distSym512[d])
	}
	return int(distSym512[256+d>>7])
}
