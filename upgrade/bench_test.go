package upgrade

import (
	"strings"
	"testing"
)

// benchRequests is a size ladder of valid requests.
var benchRequests = []struct {
	name string
	in   string
}{
	{"minimal", valid()},
	{"chrome", chromeRequest},
	{"cookie-4KiB", valid("Cookie: session=" + strings.Repeat("c", 4096))},
	{"headers-64", valid(strings.Split(strings.TrimSuffix(strings.Repeat("X-Forwarded-Something: 203.0.113.7\n", 59), "\n"), "\n")...)},
}

func BenchmarkParse(b *testing.B) {
	for _, c := range benchRequests {
		b.Run(c.name, func(b *testing.B) {
			in := []byte(c.in + trailer)
			var r Request
			b.SetBytes(int64(len(c.in)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				r.Reset(nil)
				if n, err := r.Parse(in); n != len(c.in) || err != nil {
					b.Fatal(n, err)
				}
			}
		})
	}
}

// BenchmarkParseChunks3 parses the Chrome request arriving in three reads,
// as the event loop calls Parse: on a third, two thirds, then everything.
func BenchmarkParseChunks3(b *testing.B) {
	in := []byte(chromeRequest + trailer)
	cuts := []int{len(chromeRequest) / 3, 2 * len(chromeRequest) / 3, len(in)}
	var r Request
	b.SetBytes(int64(len(chromeRequest)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		r.Reset(nil)
		for _, k := range cuts {
			if _, err := r.Parse(in[:k]); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkParseByteByByte shows that resuming costs no rescanning: the
// time per byte stays close to the one-shot figure's order.
func BenchmarkParseByteByByte(b *testing.B) {
	in := []byte(chromeRequest)
	var r Request
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		r.Reset(nil)
		for k := 1; k <= len(in); k++ {
			if _, err := r.Parse(in[:k]); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkAppendAccept(b *testing.B) {
	key := []byte(rfcKey)
	dst := make([]byte, 0, 64)
	b.SetBytes(int64(len(key)))
	b.ReportAllocs()
	for range b.N {
		dst = AppendAccept(dst[:0], key)
	}
}

func BenchmarkAppendResponse(b *testing.B) {
	key := []byte(rfcKey)
	resp := &Response{Protocol: "chat", Extensions: []byte("permessage-deflate; server_no_context_takeover; client_no_context_takeover")}
	dst := make([]byte, 0, 512)
	b.ReportAllocs()
	for range b.N {
		dst = AppendResponse(dst[:0], key, resp)
	}
	b.SetBytes(int64(len(dst)))
}

// BenchmarkHandshake is the whole server side of an accepted handshake:
// parse, pick the subprotocol, build the 101.
func BenchmarkHandshake(b *testing.B) {
	in := []byte(chromeRequest + trailer)
	supported := []string{"v1.chat"}
	dst := make([]byte, 0, 512)
	var r Request
	b.SetBytes(int64(len(chromeRequest)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		r.Reset(nil)
		if _, err := r.Parse(in); err != nil {
			b.Fatal(err)
		}
		dst = AppendResponse(dst[:0], r.Key(), &Response{Protocol: r.Protocol(supported)})
	}
}

func BenchmarkAppendReject(b *testing.B) {
	dst := make([]byte, 0, 512)
	b.ReportAllocs()
	for range b.N {
		dst = AppendReject(dst[:0], ErrVersion.(RejectError))
	}
	b.SetBytes(int64(len(dst)))
}
