package wsgate

import (
	"fmt"
	"sync"
	"testing"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"
)

// review2HeldHistory is a MemoryBroker whose recovery reads (Since set)
// are read at once and answered when the test lets them (held: the
// answer on its way back while publications reach the node live).
type review2HeldHistory struct {
	*MemoryBroker
	mu   sync.Mutex
	held []chan struct{}
}

func (b *review2HeldHistory) History(channel string, o HistoryOptions) ([]*Publication, StreamPosition, error) {
	pubs, sp, err := b.MemoryBroker.History(channel, o)
	if o.Since != nil {
		c := make(chan struct{})
		b.mu.Lock()
		b.held = append(b.held, c)
		b.mu.Unlock()
		<-c
	}
	return pubs, sp, err
}

func (b *review2HeldHistory) nheld() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.held)
}

// answer lets the i-th held read return.
func (b *review2HeldHistory) answer(i int) {
	b.mu.Lock()
	close(b.held[i])
	b.mu.Unlock()
}

// checkRecovered checks a recovering subscribe's reply from position
// from: recovered publications in order, then live ones continuing from
// its offset without gap or duplicate, up to top.
func checkRecovered(t *testing.T, name string, g *gwClient, id uint32, ch string, from, top uint64, limit int) {
	t.Helper()
	var r *protocol.Reply
	for r == nil {
		if x := g.reply(); x.Id == id {
			r = x
		}
	}
	s := r.Subscribe
	if r.Error != nil || s == nil {
		t.Fatalf("%s: %+v", name, r)
	}
	if !s.Recovered {
		if s.Offset-from <= uint64(limit) {
			t.Fatalf("%s: not recovered with %d publications to recover (limit %d)", name, s.Offset-from, limit)
		}
		t.Logf("%s: recovered false, %d publications back (limit %d)", name, s.Offset-from, limit)
	} else {
		next := from + 1
		for _, p := range s.Publications {
			if p.Offset != next {
				t.Fatalf("%s: recovered %d, want %d", name, p.Offset, next)
			}
			next++
		}
		if s.Offset != next-1 {
			t.Fatalf("%s: offset %d, recovered up to %d", name, s.Offset, next-1)
		}
	}
	for next := s.Offset + 1; next <= top; next++ {
		if p := g.pub(ch); p.Offset != next {
			t.Fatalf("%s: live %d, want %d", name, p.Offset, next)
		}
	}
}

// TestReview2CmdqCatching: recovering subscribes whose history reads are
// answered late while publications arrive: within the limit (the
// publications come from the channel's record), over it (must answer
// recovered false, never a gap), and two at once on one channel whose
// reads end in either order. Every reply is checked for order, gaps and
// duplicates up to the live stream, and the channel's record is freed
// after.
func TestReview2CmdqCatching(t *testing.T) {
	const limit = 5
	for _, tc := range []struct {
		name        string
		during      []int // publications while read i is held, in order of reads started
		answerOrder []int
		between     int // publications after the first answer
	}{
		{"within", []int{4}, []int{0}, 0},
		{"over", []int{limit + 3}, []int{0}, 0},
		{"two-first-ends-first", []int{2, 2}, []int{0, 1}, 2},
		{"two-second-ends-first", []int{2, 2}, []int{1, 0}, 2},
		{"two-over", []int{3, 4}, []int{0, 1}, 3},
		{"two-within-second-first", []int{1, 1}, []int{1, 0}, 1},
		{"two-within-first-first", []int{1, 1}, []int{0, 1}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &review2HeldHistory{MemoryBroker: NewMemoryBroker(0)}
			cfg := gwConfig()
			cfg.Client.CommandRateLimit = -1
			cfg.Client.RecoveryMaxPublicationLimit = limit
			n := startNodeWith(t, cfg, NodeOptions{Broker: b})
			t.Cleanup(func() {
				b.mu.Lock()
				for _, c := range b.held {
					select {
					case <-c:
					default:
						close(c)
					}
				}
				b.mu.Unlock()
			})
			const ch = "chat:c"
			n.publishAPI(t, ch, `{"n":0}`)
			keep := dialNode(t, n.addr, false)
			keep.connect(token(t, jwt.MapClaims{"sub": "k"}))
			r := keep.subscribe(&protocol.SubscribeRequest{Channel: ch})
			if r.Error != nil {
				t.Fatalf("subscribe: %+v", r)
			}
			epoch := r.Subscribe.Epoch
			top := r.Subscribe.Offset
			pub := func(k int) {
				for range k {
					top = n.publishAPI(t, ch, fmt.Sprintf(`{"t":%d}`, top))
				}
			}
			type rec struct {
				g    *gwClient
				id   uint32
				from uint64
			}
			var rs []rec
			for i, k := range tc.during {
				g := dialNode(t, n.addr, i%2 == 1)
				g.connect(token(t, jwt.MapClaims{"sub": "r"}))
				from := top - 1
				g.send(&protocol.Command{Subscribe: &protocol.SubscribeRequest{Channel: ch, Recover: true, Epoch: epoch, Offset: from}})
				rs = append(rs, rec{g, g.id, from})
				waitUntil(t, "the read held", func() bool { return b.nheld() == i+1 })
				pub(k)
			}
			for i, a := range tc.answerOrder {
				b.answer(a)
				if i == 0 {
					pub(tc.between)
				}
			}
			pub(2)
			for i, x := range rs {
				checkRecovered(t, fmt.Sprint("subscribe ", i), x.g, x.id, ch, x.from, top, limit)
			}
			chp := n.lookup(ch)
			chp.mu.Lock()
			catching, recent := chp.catching, len(chp.recent)
			chp.mu.Unlock()
			if catching != 0 || recent != 0 {
				t.Fatalf("after the subscribes: catching %d, recent %d", catching, recent)
			}
		})
	}
}
