//go:build !windows

package loop

import (
	"fmt"
	"testing"
	"time"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/deflate"
)

// TestReviewShareStreamRetainsLargeFrame: one large message published to
// a topic that then carries only small ticks must not leave each of the
// topic's streams holding a buffer the size of that message while the
// topic stays active (the stream's frame buffer is reused with its
// capacity; releaseStreams frees it only after HistoryIdle without any
// message).
func TestReviewShareStreamRetainsLargeFrame(t *testing.T) {
	h := openRec{conns: make(chan *Conn, 1)}
	o := Options{NumLoops: 1, Deflate: &deflate.Config{ServerContextTakeover: true, HistoryIdle: 300 * time.Millisecond}}
	s, addr := startServer(t, h, o, nil)
	var ics []*inflateClient
	for bits := 9; bits <= 15; bits += 3 {
		ics = append(ics, dialInflate(t, addr, fmt.Sprintf("permessage-deflate; server_max_window_bits=%d", bits)))
		if err := s.Subscribe(<-h.conns, "t"); err != nil {
			t.Fatal(err)
		}
	}
	g := newTickGen(5)
	var big []byte
	for len(big) < 4<<20 {
		big = append(big, g.next("")...)
	}
	pub := func(p []byte) {
		pm, _ := s.Prepare(codec.OpText, p, "")
		if err := s.Publish("t", pm); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, len(ics))
	for _, ic := range ics {
		go func() {
			for i := range 61 {
				_, p, _, err := ic.next(20 * time.Second)
				if err == nil && i == 0 && len(p) != len(big) {
					err = fmt.Errorf("big: %d bytes", len(p))
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	pub(big)
	// Ticks, more often than HistoryIdle, for 4 HistoryIdle periods.
	for i := range 60 {
		pub(g.next(fmt.Sprintf(`"seq":%d,`, i)))
		time.Sleep(20 * time.Millisecond)
	}
	for range ics {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var held int
	onLoops(s, func(ls *loopState) {
		for _, tp := range ls.topics {
			for _, st := range tp.streams {
				held += cap(st.frames) + cap(st.seed)
			}
		}
	})
	t.Logf("streams' frame buffers: %d bytes", held)
	if held > 256<<10 {
		t.Errorf("after 60 ticks over %v, the topic's %d streams hold %d bytes of frame buffers (one %d-byte message long ago)",
			1200*time.Millisecond, len(ics), held, len(big))
	}
}
