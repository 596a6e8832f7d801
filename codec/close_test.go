package codec

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestStatusCode(t *testing.T) {
	t.Parallel()
	for c := range 1 << 16 {
		code := StatusCode(c)
		want := (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999)
		if code.ValidOnWire() != want {
			t.Errorf("%d.ValidOnWire() = %v", c, !want)
		}
	}
	for c, want := range map[StatusCode]string{
		StatusNormalClosure: "StatusNormalClosure", StatusGoingAway: "StatusGoingAway",
		StatusProtocolError: "StatusProtocolError", StatusUnsupportedData: "StatusUnsupportedData",
		StatusNoStatusRcvd: "StatusNoStatusRcvd", StatusAbnormalClosure: "StatusAbnormalClosure",
		StatusInvalidFramePayloadData: "StatusInvalidFramePayloadData", StatusPolicyViolation: "StatusPolicyViolation",
		StatusMessageTooBig: "StatusMessageTooBig", StatusMandatoryExtension: "StatusMandatoryExtension",
		StatusInternalError: "StatusInternalError", StatusServiceRestart: "StatusServiceRestart",
		StatusTryAgainLater: "StatusTryAgainLater", StatusBadGateway: "StatusBadGateway",
		StatusTLSHandshake: "StatusTLSHandshake", 1004: "StatusCode(1004)", 4000: "StatusCode(4000)",
	} {
		if c.String() != want {
			t.Errorf("%d.String() = %q; want %q", uint16(c), c.String(), want)
		}
	}
}

func TestParseClose(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		in     []byte
		code   StatusCode
		reason string
		err    error
	}{
		{name: "empty", in: nil, code: StatusNoStatusRcvd},
		{name: "1000", in: []byte{0x03, 0xe8}, code: StatusNormalClosure},
		{name: "1001 with reason", in: []byte("\x03\xe9bye"), code: StatusGoingAway, reason: "bye"},
		{name: "utf-8 reason", in: []byte("\x03\xe8€😀"), code: 1000, reason: "€😀"},
		{name: "3000", in: []byte{0x0b, 0xb8}, code: 3000},
		{name: "4999", in: []byte{0x13, 0x87}, code: 4999},
		{name: "1014", in: []byte{0x03, 0xf6}, code: StatusBadGateway},
		{name: "123-byte reason", in: cat([]byte{0x03, 0xe8}, bytes.Repeat([]byte{'r'}, 123)), code: 1000, reason: strings.Repeat("r", 123)},
		// RFC 6455 §5.5.1 / §5.5: lengths.
		{name: "1 byte", in: []byte{0x03}, err: ErrCloseLength},
		{name: "126 bytes", in: cat([]byte{0x03, 0xe8}, bytes.Repeat([]byte{'r'}, 124)), err: ErrCloseLength},
		// RFC 6455 §7.4: codes.
		{name: "0", in: []byte{0, 0}, err: ErrCloseCode},
		{name: "999", in: []byte{0x03, 0xe7}, err: ErrCloseCode},
		{name: "1004", in: []byte{0x03, 0xec}, err: ErrCloseCode},
		{name: "1005", in: []byte{0x03, 0xed}, err: ErrCloseCode},
		{name: "1006", in: []byte{0x03, 0xee}, err: ErrCloseCode},
		{name: "1015", in: []byte{0x03, 0xf7}, err: ErrCloseCode},
		{name: "1016", in: []byte{0x03, 0xf8}, err: ErrCloseCode},
		{name: "2999", in: []byte{0x0b, 0xb7}, err: ErrCloseCode},
		{name: "5000", in: []byte{0x13, 0x88}, err: ErrCloseCode},
		{name: "65535", in: []byte{0xff, 0xff}, err: ErrCloseCode},
		// RFC 6455 §8.1: reason must be UTF-8.
		{name: "bad reason", in: []byte("\x03\xe8\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"), err: ErrCloseReason},
		{name: "truncated reason", in: []byte("\x03\xe8ab\xe2\x82"), err: ErrCloseReason},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, reason, err := ParseClose(tt.in)
			if code != tt.code || string(reason) != tt.reason || err != tt.err {
				t.Errorf("ParseClose(% x) = %v, %q, %v; want %v, %q, %v", tt.in, code, reason, err, tt.code, tt.reason, tt.err)
			}
		})
	}
	if code, _ := CloseStatus(ErrCloseReason); code != StatusInvalidFramePayloadData {
		t.Errorf("ErrCloseReason code %v", code)
	}
}

func TestAppendClose(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 122) + "€" // 125 bytes; € starts at 122
	tests := []struct {
		name   string
		code   StatusCode
		reason string
		want   []byte
	}{
		{"no code", 0, "ignored", []byte{}},
		{"no status received", StatusNoStatusRcvd, "ignored", []byte{}},
		{"normal", StatusNormalClosure, "", []byte{0x03, 0xe8}},
		{"with reason", StatusGoingAway, "bye", []byte("\x03\xe9bye")},
		{"application code", 4000, "x", []byte("\x0f\xa0x")},
		{"1006 is not sent", StatusAbnormalClosure, "oops", []byte("\x03\xf3oops")},
		{"1015 is not sent", StatusTLSHandshake, "", []byte{0x03, 0xf3}},
		{"1004 is not sent", 1004, "", []byte{0x03, 0xf3}},
		{"5000 is not sent", 5000, "", []byte{0x03, 0xf3}},
		{"123 bytes kept", 1000, strings.Repeat("b", 123), cat([]byte{0x03, 0xe8}, bytes.Repeat([]byte{'b'}, 123))},
		{"124 bytes cut", 1000, strings.Repeat("b", 124), cat([]byte{0x03, 0xe8}, bytes.Repeat([]byte{'b'}, 123))},
		{"cut before a split code point", 1000, long, cat([]byte{0x03, 0xe8}, bytes.Repeat([]byte{'a'}, 122))},
		{"invalid reason dropped", 1000, "bad\xff", []byte{0x03, 0xe8}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := AppendClose([]byte{0x55}, tt.code, tt.reason)
			if !bytes.Equal(got, cat([]byte{0x55}, tt.want)) {
				t.Errorf("AppendClose = % x; want 55 % x", got, tt.want)
			}
			if _, _, err := ParseClose(got[1:]); err != nil {
				t.Errorf("ParseClose rejects AppendClose's output: %v", err)
			}
		})
	}
	// Cutting at every position relative to a multi-byte code point.
	for pad := 118; pad <= 124; pad++ {
		for _, r := range []string{"é", "€", "😀"} {
			s := strings.Repeat("x", pad) + r + "tail"
			got := AppendClose(nil, 1000, s)
			reason := got[2:]
			// The longest prefix of at most 123 bytes that ends between
			// code points.
			want := s[:123]
			for !utf8.ValidString(want) {
				want = want[:len(want)-1]
			}
			if string(reason) != want {
				t.Fatalf("pad %d %q: reason %q; want %q", pad, r, reason, want)
			}
		}
	}
}
