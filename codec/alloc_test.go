//go:build !race

package codec

import (
	"bytes"
	"testing"
)

// The race detector and coverage change allocation counts, so these tests
// live in a !race file and skip under -short.

func assertNoAllocs(t *testing.T, name string, f func()) {
	t.Helper()
	if testing.Short() {
		t.Skip("allocation tests skipped in -short mode")
	}
	if n := testing.AllocsPerRun(100, f); n > 0 {
		t.Errorf("%s: allocs = %g; want 0", name, n)
	}
}

func TestParseHeaderAllocs(t *testing.T) {
	for _, fr := range rfcFrames {
		assertNoAllocs(t, "ParseHeader", func() { sinkHeader, sinkInt, sinkErr = ParseHeader(fr) })
	}
	bad := []byte{0x83, 0x00}
	assertNoAllocs(t, "ParseHeader error", func() { sinkHeader, sinkInt, sinkErr = ParseHeader(bad) })
}

func TestAppendHeaderAllocs(t *testing.T) {
	buf := make([]byte, 0, 64)
	h := Header{Fin: true, OpCode: OpBinary, Masked: true, Mask: rfcKey, Length: 1 << 20}
	assertNoAllocs(t, "AppendHeader", func() { sinkBytes = AppendHeader(buf[:0], h) })
	payload := bytes.Repeat([]byte{'x'}, 1000)
	fbuf := make([]byte, 0, 2048)
	assertNoAllocs(t, "AppendFrame", func() { sinkBytes = AppendFrame(fbuf[:0], h, payload) })
}

func TestMaskAllocs(t *testing.T) {
	p := make([]byte, 4099)
	assertNoAllocs(t, "Mask", func() { sinkInt = Mask(p[1:], rfcKey, 3) })
	assertNoAllocs(t, "Mask short", func() { sinkInt = Mask(p[:7], rfcKey, 1) })
}

func TestUTF8Allocs(t *testing.T) {
	text := []byte("Grüße, 世界 😀! plain ASCII that is long enough for the word loop")
	var v UTF8
	assertNoAllocs(t, "UTF8.Write", func() {
		v.Reset()
		sinkBool = v.Write(text) && v.Complete()
	})
}

func TestStreamNextAllocs(t *testing.T) {
	var s Stream
	r := &Rules{Server: true, Rsv: Rsv1, MaxFrameSize: 1 << 20, MaxMessageSize: 1 << 24}
	first := Header{OpCode: OpText, Rsv: Rsv1, Masked: true, Length: 100}
	ping := Header{Fin: true, OpCode: OpPing, Masked: true}
	last := Header{Fin: true, OpCode: OpContinuation, Masked: true, Length: 100}
	assertNoAllocs(t, "Stream.Next", func() {
		sinkErr = s.Next(first, r)
		sinkErr = s.Next(ping, r)
		sinkErr = s.Next(last, r)
	})
	assertNoAllocs(t, "Stream.Next error", func() { sinkErr = s.Next(last, nil) })
}

func TestCloseAllocs(t *testing.T) {
	payload := []byte("\x03\xe8normal closure, Grüße")
	assertNoAllocs(t, "ParseClose", func() { sinkCode, sinkBytes, sinkErr = ParseClose(payload) })
	bad := []byte("\x03\xee")
	assertNoAllocs(t, "ParseClose error", func() { sinkCode, sinkBytes, sinkErr = ParseClose(bad) })
	buf := make([]byte, 0, MaxControlPayload)
	reason := "going away: " + string(bytes.Repeat([]byte("€"), 50))
	assertNoAllocs(t, "AppendClose", func() { sinkBytes = AppendClose(buf[:0], StatusGoingAway, reason) })
	assertNoAllocs(t, "CloseStatus", func() { sinkCode, sinkBool = CloseStatus(ErrMessageTooLarge) })
}
