//go:build !race

package upgrade

import "testing"

// TestUpgradeAllocs checks the zero-allocation claim of the handshake path
// the event loop runs: Reset, Parse (in one piece and in three), the
// accessors a hook uses, Sec-WebSocket-Accept and the 101 response into a
// buffer with room, and a rejection.
func TestUpgradeAllocs(t *testing.T) {
	in := []byte(chromeRequest + trailer)
	bad := []byte(replace("Sec-WebSocket-Version", "Sec-WebSocket-Version: 8"))
	supported := []string{"v1.chat", "v2.chat"}
	out := make([]byte, 0, 1024)
	var r, fwd Request
	if _, err := fwd.Parse([]byte(valid("X-Forwarded-For: 192.0.2.1, 10.0.0.1", "X-Forwarded-Host: a.example", `Forwarded: for="[2001:db8::1]:80";proto=https, for=10.0.0.2`))); err != nil {
		t.Fatal(err)
	}
	var sink int
	for _, c := range []struct {
		name string
		fn   func()
	}{
		{"parse and respond", func() {
			r.Reset(nil)
			n, err := r.Parse(in)
			if n != len(chromeRequest) || err != nil {
				panic("parse failed")
			}
			out = AppendResponse(out[:0], r.Key(), &Response{Protocol: r.Protocol(supported)})
			sink += len(r.Header("User-Agent")) + len(r.Host()) + len(r.Origin()) + len(r.Path()) + len(r.Query())
		}},
		{"parse in three pieces", func() {
			r.Reset(nil)
			for _, k := range []int{100, 400, len(in)} {
				if n, err := r.Parse(in[:k]); err != nil || (n == 0) != (k < len(in)) {
					panic("parse failed")
				}
			}
		}},
		{"hook accessors", func() {
			sink += len(r.Cookie("theme")) + len(r.Header("sec-websocket-extensions"))
			out = r.AppendExtensions(out[:0])
			r.VisitHeaders(func(name, value []byte) bool { return len(name) > 0 })
		}},
		{"forwarded", func() {
			hop, _ := fwd.Forwarded(func(node []byte) bool { return len(node) > 0 && node[0] == '1' })
			sink += len(hop.For) + len(hop.Host) + len(hop.Proto)
		}},
		{"accept", func() { out = AppendAccept(out[:0], r.Key()) }},
		{"reject", func() {
			r.Reset(nil)
			_, err := r.Parse(bad)
			re, _ := AsReject(err)
			out = AppendReject(out[:0], re)
		}},
	} {
		if n := testing.AllocsPerRun(100, c.fn); n > 0 {
			t.Errorf("%s: %g allocs, want 0", c.name, n)
		}
	}
	_ = sink
}
