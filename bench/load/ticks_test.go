package load

import (
	"bytes"
	"compress/flate"
	"io"
	"testing"

	kflate "github.com/klauspost/compress/flate"
)

// tickMessages returns messages 1..n of a fanout of size-byte ticks, as
// the publisher sends them (without "BCAST "), 50 ms apart.
func tickMessages(n, size int) [][]byte {
	fill := ticks(size)
	msgs := make([][]byte, n)
	for i := range msgs {
		seq := uint32(i + 1)
		m := make([]byte, size)
		putMsgHeader(m, seq, int64(seq)*50e6, size)
		o := tickOffset(seq, size)
		copy(m[MinSize:], fill[o+MinSize:o+size])
		msgs[i] = m
	}
	return msgs
}

// ratio compresses msgs as one connection with context takeover (one
// writer flushed after every message: a 32 KiB window) and as messages
// without context (the writer reset for each), and returns what each
// sends over the payload, less the sync-flush tails (RFC 7692 §7.2.1).
func ratio(t *testing.T, msgs [][]byte, newWriter func(w io.Writer) (flateWriter, error)) (takeover, fresh float64) {
	t.Helper()
	var payload, tk, fr int
	var a, b bytes.Buffer
	za, err := newWriter(&a)
	if err != nil {
		t.Fatal(err)
	}
	zb, _ := newWriter(&b)
	for _, m := range msgs {
		payload += len(m)
		a.Reset()
		b.Reset()
		zb.Reset(&b)
		for _, z := range []flateWriter{za, zb} {
			if _, err := z.Write(m); err != nil {
				t.Fatal(err)
			}
			if err := z.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		tk += a.Len() - 4
		fr += b.Len() - 4
	}
	return float64(tk) / float64(payload), float64(fr) / float64(payload)
}

type flateWriter interface {
	io.Writer
	Flush() error
	Reset(io.Writer)
}

// TestTickRatio measures what context takeover makes of the fanout ticks
// (150 bytes: the 24-byte header and 126 bytes of trades) with
// compress/flate, and with klauspost/compress/flate level 1, which the
// servers use. The ticks must not flatter takeover: no tick's filler
// repeats within the whole sequence, let alone within the ~260 ticks a
// 32 KiB window holds. Measured: compress/flate level 1 0.564 with
// takeover, 0.705 without context; level 6 0.239; klauspost level 1
// 0.317.
func TestTickRatio(t *testing.T) {
	const n, size = 3000, 150
	msgs := tickMessages(n, size)
	seen := map[string]int{}
	for i, m := range msgs {
		if j, ok := seen[string(m[MinSize:])]; ok {
			t.Fatalf("message %d repeats the filler of message %d", i+1, j+1)
		}
		seen[string(m[MinSize:])] = i
	}
	tests := []struct {
		name           string
		newWriter      func(w io.Writer) (flateWriter, error)
		lo, hi, minNoC float64
	}{
		{"compress/flate level 1", func(w io.Writer) (flateWriter, error) { return flate.NewWriter(w, 1) }, 0.4, 0.7, 0.6},
		{"compress/flate level 6", func(w io.Writer) (flateWriter, error) { return flate.NewWriter(w, 6) }, 0.15, 0.4, 0.5},
		{"klauspost level 1", func(w io.Writer) (flateWriter, error) { return kflate.NewWriter(w, 1) }, 0.2, 0.45, 0.6},
	}
	for _, tt := range tests {
		tk, fr := ratio(t, msgs, tt.newWriter)
		t.Logf("%d ticks of %d B, %s: %.3f of the payload with per-connection takeover, %.3f without context", n, size, tt.name, tk, fr)
		// Exact repeats would give far less than these bounds; without
		// context a short tick compresses little.
		if tk < tt.lo || tk > tt.hi || fr < tt.minNoC {
			t.Errorf("%s: takeover %.3f, want within [%g, %g]; without context %.3f, want >= %g", tt.name, tk, tt.lo, tt.hi, fr, tt.minNoC)
		}
	}
}
