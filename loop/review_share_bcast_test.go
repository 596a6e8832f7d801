//go:build !windows

package loop

import (
	"fmt"
	"testing"
	"time"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/deflate"
)

// TestReviewShareBroadcastPerStream: connections that each have a topic
// of their own (private channels, "user:<id>") are each tracked by their
// topic's stream. A Broadcast must not then be compressed once per
// connection (before shared streams it was compressed once per window
// size and loop, and added to each connection's History), nor leave a
// copy of its compressed frames in every stream.
func TestReviewShareBroadcastPerStream(t *testing.T) {
	h := openRec{conns: make(chan *Conn, 1)}
	o := Options{NumLoops: 1, Deflate: &deflate.Config{ServerContextTakeover: true}}
	s, addr := startServer(t, h, o, nil)
	const n = 200
	var ics []*inflateClient
	g := newTickGen(12)
	for i := range n {
		ic := dialInflate(t, addr, "permessage-deflate")
		c := <-h.conns
		tp := fmt.Sprintf("user:%d", i)
		if err := s.Subscribe(c, tp); err != nil {
			t.Fatal(err)
		}
		pm, _ := s.Prepare(codec.OpText, g.next(""), "")
		if err := s.Publish(tp, pm); err != nil {
			t.Fatal(err)
		}
		ics = append(ics, ic)
	}
	for _, ic := range ics {
		if _, _, _, err := ic.next(5 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	var big []byte
	for len(big) < 64<<10 {
		big = append(big, g.next("")...)
	}
	if err := s.Broadcast(codec.OpText, big); err != nil {
		t.Fatal(err)
	}
	for i, ic := range ics {
		if _, p, _, err := ic.next(10 * time.Second); err != nil || string(p) != string(big) {
			t.Fatalf("client %d: %d bytes, %v", i, len(p), err)
		}
	}
	// A stream compressed the broadcast with its History when it holds
	// frames for it. (add > 0 alone no longer tells: a topic's stream now
	// adds a broadcast to its History without compressing it, sending its
	// connections the broadcast's compression without history.) Entered
	// counts the streams that did add it, so that their members stay
	// members.
	var compressions, entered, held int
	onLoops(s, func(ls *loopState) {
		count := func(tp *topic) {
			for _, st := range tp.streams {
				if st.seq == ls.seq && st.add > 0 {
					entered++
					if len(st.frames) > 0 {
						compressions++
					}
				}
				held += cap(st.frames) + cap(st.seed)
			}
		}
		count(&ls.broadcasts)
		for _, tp := range ls.topics {
			count(tp)
		}
	})
	t.Logf("one %d-byte broadcast to %d connections of one window size on one loop: compressed %d times; %d bytes of frames held by streams",
		len(big), n, compressions, held)
	if compressions > 1 {
		t.Errorf("one broadcast compressed %d times for %d connections of one class on one loop; want 1", compressions, n)
	}
	if entered != n {
		t.Errorf("the broadcast entered %d streams' History; want %d", entered, n)
	}
	// Each connection is still a member of its topic's stream: the next
	// message of its topic is its stream's frame, compressed with the
	// History that now ends with the broadcast, and the client inflates
	// it with its own window.
	var next [][]byte
	for i := range n {
		p := g.next(fmt.Sprintf(`"after":%d,`, i))
		next = append(next, p)
		pm, _ := s.Prepare(codec.OpText, p, "")
		if err := s.Publish(fmt.Sprintf("user:%d", i), pm); err != nil {
			t.Fatal(err)
		}
	}
	for i, ic := range ics {
		if _, p, _, err := ic.next(10 * time.Second); err != nil || string(p) != string(next[i]) {
			t.Fatalf("client %d after the broadcast: %q, %v", i, p, err)
		}
	}
	members := 0
	onLoops(s, func(ls *loopState) {
		for _, tp := range ls.topics {
			for _, c := range tp.subs {
				if d := c.dfl(); d != nil && len(tp.streams) == 1 && d.sh == tp.streams[0] {
					st := d.sh
					if d.at == st.pos && st.pos-d.from >= int64(st.hist.Len()) && st.hist.Len() > 0 {
						members++
					}
				}
			}
		}
	})
	if members != n {
		t.Errorf("after the broadcast and a tick, %d of %d connections are members of their stream", members, n)
	}
}
