package codec

import "encoding/binary"

// UTF8 validates UTF-8 text that arrives in pieces: chunks of a frame,
// frames of a message. It is a deterministic automaton over the byte
// sequences of Unicode Table 3-7 (no overlongs, no surrogates, nothing above
// U+10FFFF), with one byte of state, so a code point may be split anywhere.
// The zero value is ready to use; call Reset before each new text message.
type UTF8 struct {
	state uint8 // a row of utf8Trans: one of the s… constants
}

// Automaton states, as row offsets into utf8Trans (16 columns per row).
const (
	sAccept = 0 * 16 // between code points
	sReject = 1 * 16 // invalid; sticky
	sTail1  = 2 * 16 // 1 continuation byte (80–BF) to go
	sTail2  = 3 * 16 // 2 continuation bytes to go
	sTail3  = 4 * 16 // 3 continuation bytes to go
	sE0     = 5 * 16 // after E0: A0–BF, then 1 more (no overlong)
	sED     = 6 * 16 // after ED: 80–9F, then 1 more (no surrogates)
	sF0     = 7 * 16 // after F0: 90–BF, then 2 more (no overlong)
	sF4     = 8 * 16 // after F4: 80–8F, then 2 more (≤ U+10FFFF)
)

// Byte classes, the columns of utf8Trans.
const (
	cASCII   = iota // 00–7F
	cCont8          // 80–8F
	cCont9          // 90–9F
	cContAB         // A0–BF
	cInvalid        // C0, C1, F5–FF: never in UTF-8
	cLead2          // C2–DF
	cE0             // E0
	cLead3          // E1–EC, EE, EF
	cED             // ED
	cF0             // F0
	cLead4          // F1–F3
	cF4             // F4
)

// utf8Class maps a byte to its class.
var utf8Class = func() (t [256]uint8) {
	for b := range t {
		switch {
		case b < 0x80:
			t[b] = cASCII
		case b < 0x90:
			t[b] = cCont8
		case b < 0xa0:
			t[b] = cCont9
		case b < 0xc0:
			t[b] = cContAB
		case b < 0xc2:
			t[b] = cInvalid
		case b < 0xe0:
			t[b] = cLead2
		case b == 0xe0:
			t[b] = cE0
		case b == 0xed:
			t[b] = cED
		case b < 0xf0:
			t[b] = cLead3
		case b == 0xf0:
			t[b] = cF0
		case b < 0xf4:
			t[b] = cLead4
		case b == 0xf4:
			t[b] = cF4
		default:
			t[b] = cInvalid
		}
	}
	return t
}()

// utf8Trans[state+class] is the next state. Pairs not listed go to sReject.
var utf8Trans = func() (t [256]uint8) { // 256: a uint8 index needs no bounds check
	for i := range t {
		t[i] = sReject
	}
	t[sAccept+cASCII] = sAccept
	t[sAccept+cLead2] = sTail1
	t[sAccept+cE0] = sE0
	t[sAccept+cLead3] = sTail2
	t[sAccept+cED] = sED
	t[sAccept+cF0] = sF0
	t[sAccept+cLead4] = sTail3
	t[sAccept+cF4] = sF4
	for _, c := range []int{cCont8, cCont9, cContAB} {
		t[sTail1+c] = sAccept
		t[sTail2+c] = sTail1
		t[sTail3+c] = sTail2
	}
	t[sE0+cContAB] = sTail1
	t[sED+cCont8] = sTail1
	t[sED+cCont9] = sTail1
	t[sF0+cCont9] = sTail2
	t[sF0+cContAB] = sTail2
	t[sF4+cCont8] = sTail2
	return t
}()

// Write feeds the next bytes of the text. It returns false as soon as the
// bytes seen since the last Reset cannot be the start of valid UTF-8, and
// from then on (the failure is sticky). A code point split between calls is
// fine. Between code points, ASCII is skipped 32 and 8 bytes at a time.
//
// NOTE: p does not escape.
func (v *UTF8) Write(p []byte) bool {
	const hi = 0x8080808080808080 // the top bit of each byte
	s := v.state
	for len(p) > 0 {
		if s == sAccept {
			// Between code points: skip ASCII, 32, 8, then 1 byte at a time.
			for len(p) >= 32 {
				w := binary.LittleEndian.Uint64(p[0:8]) | binary.LittleEndian.Uint64(p[8:16]) |
					binary.LittleEndian.Uint64(p[16:24]) | binary.LittleEndian.Uint64(p[24:32])
				if w&hi != 0 {
					break
				}
				p = p[32:]
			}
			for len(p) >= 8 && binary.LittleEndian.Uint64(p[:8])&hi == 0 {
				p = p[8:]
			}
			for len(p) > 0 && p[0] < 0x80 {
				p = p[1:]
			}
			if len(p) == 0 {
				break
			}
		}
		s = utf8Trans[s+utf8Class[p[0]]]
		if s == sReject {
			break
		}
		p = p[1:]
	}
	v.state = s
	return s != sReject
}

// Complete reports whether the bytes seen since the last Reset are valid
// UTF-8 that does not end inside a code point. Call it at the end of a
// message.
func (v *UTF8) Complete() bool { return v.state == sAccept }

// Reset forgets all bytes seen, for the next message.
func (v *UTF8) Reset() { v.state = sAccept }
