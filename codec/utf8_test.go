package codec

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
	"unsafe"
)

func TestUTF8(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		// fail is the index of the first byte after which the input can no
		// longer be a prefix of UTF-8, or -1 if it is a valid prefix.
		fail     int
		complete bool
	}{
		{"empty", "", -1, true},
		{"ascii", "Hello, world", -1, true},
		{"long ascii", strings.Repeat("abcdefgh", 20), -1, true},
		{"two-byte", "é", -1, true},
		{"three-byte", "€", -1, true},
		{"four-byte", "😀", -1, true},
		{"mixed", "Grüße, 世界 😀!", -1, true},
		{"boundaries", "\u0000\u007f\u0080\u07ff\u0800\ud7ff\ue000\uffff\U00010000\U0010ffff", -1, true},
		{"truncated two-byte", "\xc3", -1, false},
		{"truncated three-byte", "a\xe2\x82", -1, false},
		{"truncated four-byte", "\xf0\x9f\x98", -1, false},
		{"lone continuation", "a\x80", 1, false},
		{"continuation BF", "\xbf", 0, false},
		{"overlong C0", "\xc0\x80", 0, false},
		{"overlong C1", "\xc1\xbf", 0, false},
		{"overlong E0", "\xe0\x80\x80", 1, false},
		{"overlong E0 9F", "\xe0\x9f\xbf", 1, false},
		{"overlong F0", "\xf0\x80\x80\x80", 1, false},
		{"overlong F0 8F", "\xf0\x8f\xbf\xbf", 1, false},
		{"surrogate D800", "\xed\xa0\x80", 1, false},
		{"surrogate DFFF", "\xed\xbf\xbf", 1, false},
		{"above 10FFFF F4 90", "\xf4\x90\x80\x80", 1, false},
		{"F5", "\xf5\x80\x80\x80", 0, false},
		{"FF", "ab\xff", 2, false},
		{"FE", "\xfe", 0, false},
		{"bad second byte", "\xc3\x28", 1, false},
		{"bad third byte", "\xe2\x82\x28", 2, false},
		{"bad fourth byte", "\xf0\x9f\x98\x28", 3, false},
		{"lead after lead", "\xe2\xe2", 1, false},
		{"invalid after long ascii", strings.Repeat("a", 17) + "\x80" + strings.Repeat("b", 30), 17, false},
		// Autobahn case 6.4.1: "κόσμε", then F4 90: fails on the 90.
		{"autobahn 6.4.1", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80\x65\x64\x69\x74\x65\x64", 12, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// At once.
			var v UTF8
			ok := v.Write([]byte(tt.in))
			if ok != (tt.fail < 0) || v.Complete() != tt.complete {
				t.Errorf("Write = %v, Complete = %v; want %v, %v", ok, v.Complete(), tt.fail < 0, tt.complete)
			}
			if tt.complete != utf8.ValidString(tt.in) {
				t.Fatalf("test case disagrees with utf8.ValidString")
			}
			// Byte by byte: fails exactly at byte tt.fail, and stays failed.
			v.Reset()
			for i := range len(tt.in) {
				ok := v.Write([]byte{tt.in[i]})
				if want := tt.fail < 0 || i < tt.fail; ok != want {
					t.Fatalf("byte %d: Write = %v; want %v", i, ok, want)
				}
			}
			if v.Complete() != tt.complete {
				t.Errorf("byte by byte: Complete = %v", v.Complete())
			}
			if tt.fail >= 0 && (v.Write([]byte("a")) || v.Write(nil) || v.Complete()) {
				t.Errorf("failure is not sticky")
			}
		})
	}
}

// TestUTF8Split feeds every valid sequence length split at every point.
func TestUTF8Split(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"é", "€", "😀", "\U0010ffff", "a€b😀c", "\ud7ff\ue000"} {
		for cut := range len(s) + 1 {
			var v UTF8
			if !v.Write([]byte(s[:cut])) {
				t.Fatalf("%q: first part rejected at %d", s, cut)
			}
			if v.Complete() != utf8.ValidString(s[:cut]) {
				t.Errorf("%q cut %d: Complete = %v after the first part", s, cut, v.Complete())
			}
			if !v.Write([]byte(s[cut:])) || !v.Complete() {
				t.Errorf("%q cut %d: split code point rejected", s, cut)
			}
		}
	}
}

// TestUTF8Exhaustive checks every 1- to 3-byte sequence and a sample of
// 4-byte ones against utf8.Valid, both at once and byte by byte.
func TestUTF8Exhaustive(t *testing.T) {
	t.Parallel()
	check := func(p []byte) {
		var v UTF8
		ok := v.Write(p) && v.Complete()
		var w UTF8
		for _, b := range p {
			w.Write([]byte{b})
		}
		if want := utf8.Valid(p); ok != want || w.Complete() != want {
			t.Fatalf("% x: got %v/%v, utf8.Valid %v", p, ok, w.Complete(), want)
		}
	}
	p := make([]byte, 4)
	for a := range 256 {
		p[0] = byte(a)
		check(p[:1])
		for b := range 256 {
			p[1] = byte(b)
			check(p[:2])
			for c := range 256 {
				p[2] = byte(c)
				check(p[:3])
			}
		}
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for range 1 << 20 {
		v := rng.Uint32()
		p[0], p[1], p[2], p[3] = byte(0xf0|v&7), byte(v>>8), byte(v>>16), byte(v>>24)
		check(p)
	}
}

func TestStateSizes(t *testing.T) {
	t.Parallel()
	if n := unsafe.Sizeof(UTF8{}); n != 1 {
		t.Errorf("UTF8 is %d bytes; want 1", n)
	}
	if n := unsafe.Sizeof(Stream{}); n > 16 {
		t.Errorf("Stream is %d bytes; want at most 16", n)
	}
}
