//go:build !windows

package loop

import (
	"fmt"
	"testing"
	"time"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/deflate"
)

// TestReviewShareIdleTrackedClientTakeover: a connection tracked by a
// stream, with client context takeover negotiated, that has been idle
// for several HistoryIdle periods must not come due in the timing wheel
// on every tick (before shared streams, its deadline after the release
// of its History was the ping interval, 30 s away).
func TestReviewShareIdleTrackedClientTakeover(t *testing.T) {
	s, ic, c := startIdleTakeover(t, "t")
	g := newTickGen(9)
	var want [][]byte
	for i := range 20 {
		p := g.next(fmt.Sprintf(`"seq":%d,`, i))
		want = append(want, p)
		pm, _ := s.Prepare(codec.OpText, p, "")
		if err := s.Publish("t", pm); err != nil {
			t.Fatal(err)
		}
	}
	for i := range want {
		_, p, _, err := ic.next(5 * time.Second)
		if err != nil || string(p) != string(want[i]) {
			t.Fatalf("tick %d: %q, %v", i, p, err)
		}
	}
	time.Sleep(1200 * time.Millisecond) // 6 HistoryIdle periods
	soon := 0
	for range 5 {
		var due, now uint32
		var tracked bool
		onLoops(s, func(ls *loopState) {
			due, now = c.due, ls.wheel.now
			tracked = c.dfl() != nil && c.dfl().sh != nil && c.dparams.ClientContextTakeover
		})
		if due <= now+2 {
			soon++
		}
		t.Logf("tracked %v, due %d, now %d", tracked, due, now)
		time.Sleep(150 * time.Millisecond)
	}
	if soon == 5 {
		t.Errorf("an idle connection comes due on every tick (5 of 5 samples within 2 ticks)")
	}
}

// TestReviewShareOrphanStreamHistory: a connection (client context
// takeover) that received messages of a topic and left it, the topic
// then having no subscriber, must not keep that topic's stream History
// alive for good: after several HistoryIdle periods without messages no
// History may be held for it (before shared streams, its own send
// History was released after HistoryIdle).
func TestReviewShareOrphanStreamHistory(t *testing.T) {
	s, ic, c := startIdleTakeover(t, "user:1")
	g := newTickGen(10)
	for i := range 40 {
		pm, _ := s.Prepare(codec.OpText, g.next(fmt.Sprintf(`"seq":%d,`, i)), "")
		if err := s.Publish("user:1", pm); err != nil {
			t.Fatal(err)
		}
	}
	for range 40 {
		if _, _, _, err := ic.next(5 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Unsubscribe(c, "user:1"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	var held int
	onLoops(s, func(ls *loopState) {
		if d := c.dfl(); d != nil {
			held = d.send.Len()
			if d.sh != nil {
				held += d.sh.hist.Len()
			}
		}
	})
	if held > 0 {
		t.Errorf("after 7 HistoryIdle periods without messages, %d bytes of History are held for the connection", held)
	}
}

// startIdleTakeover starts a one-loop server with context takeover both
// ways and a HistoryIdle of 200 ms, and connects a client offering
// client_max_window_bits, subscribed to topic.
func startIdleTakeover(t *testing.T, topic string) (*Server, *inflateClient, *Conn) {
	t.Helper()
	h := openRec{conns: make(chan *Conn, 1)}
	o := Options{NumLoops: 1, Deflate: &deflate.Config{ServerContextTakeover: true, ClientContextTakeover: true,
		HistoryIdle: 200 * time.Millisecond}}
	s, addr := startServer(t, h, o, nil)
	ic := dialInflate(t, addr, "permessage-deflate; client_max_window_bits")
	c := <-h.conns
	if err := s.Subscribe(c, topic); err != nil {
		t.Fatal(err)
	}
	return s, ic, c
}
