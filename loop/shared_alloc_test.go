//go:build !race && !windows

package loop

import (
	"fmt"
	"testing"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/deflate"
)

// Allocation counts: not under -race (sync.Pool drops items at random
// there).

// TestStreamSteadyTicksNoAlloc: with the bound on what a stream's frame
// buffers keep, compressing a steady run of ticks (128 bytes or more) for
// a stream, after one large message, allocates nothing once the buffers
// have grown to a tick.
func TestStreamSteadyTicksNoAlloc(t *testing.T) {
	h := openRec{conns: make(chan *Conn, 1)}
	o := Options{NumLoops: 1, Deflate: &deflate.Config{ServerContextTakeover: true}}
	s, addr := startServer(t, h, o, nil)
	dialInflate(t, addr, "permessage-deflate")
	c := <-h.conns
	g := newTickGen(3)
	var ticks []*PreparedMessage
	for i := range 64 {
		// At least 128 bytes: the compressor allocates a buffer for each
		// smaller message compressed with a history (package deflate).
		p := g.next(fmt.Sprintf(`"seq":%d,"src":"feed-a","kind":"trade",`, i))
		if len(p) < 128 {
			t.Fatalf("tick of %d bytes", len(p))
		}
		pm, _ := s.Prepare(codec.OpText, p, "")
		ticks = append(ticks, pm)
	}
	var big []byte
	for len(big) < 256<<10 {
		big = append(big, g.next("")...)
	}
	bigPM, _ := s.Prepare(codec.OpText, big, "")
	var allocs float64
	var kept int
	onLoops(s, func(ls *loopState) {
		st := (&topic{}).stream(c.dparams)
		i := 0
		tick := func() {
			ls.seq++
			st.prepare(ls, ticks[i%len(ticks)], false)
			st.choose(ls, c, ticks[i%len(ticks)])
			i++
		}
		ls.seq++
		st.prepare(ls, bigPM, false)
		tick() // drops the large buffer
		for range 8 {
			tick()
		}
		allocs = testing.AllocsPerRun(200, tick)
		kept = cap(st.frames) + cap(st.seed)
	})
	t.Logf("allocations per tick: %v; frame buffers kept: %d bytes", allocs, kept)
	if allocs != 0 {
		t.Errorf("a steady stream of ticks allocates %v times per tick", allocs)
	}
	if kept > 32<<10 {
		t.Errorf("frame buffers keep %d bytes after one large message", kept)
	}
}
