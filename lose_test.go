package wsgate

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"
)

// TestGatewayManyChannelsLost: the stream's epoch changes for many
// channels at once (NATS lost its storage; a node cut off for longer
// than history holds). Every subscriber gets its 2500 push and the
// channels take subscribes again, and telling them walks the node's
// clients once for the lot, not once per channel: with one walk (and a
// list of every client) per channel, m channels and n clients cost
// m×n lock passes and m lists of n clients (94 MiB allocated here,
// about 16 GB for 10k channels and 100k clients).
func TestGatewayManyChannelsLost(t *testing.T) {
	const m = 2000 // channels, one subscriber each
	cfg := gwConfig()
	cfg.Client.CommandRateLimit = -1
	n := startNode(t, cfg)
	cs := make([]*gwClient, m)
	for i := range cs {
		cs[i] = dialNode(t, n.addr, false)
		cs[i].connect(token(t, jwt.MapClaims{"sub": fmt.Sprint("u", i)}))
		if r := cs[i].subscribe(&protocol.SubscribeRequest{Channel: fmt.Sprint("lost", i)}); r.Subscribe == nil {
			t.Fatalf("subscribe: %+v", r)
		}
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range m {
		// A publication of another epoch, as a broker hands it.
		n.HandlePublication(fmt.Sprint("lost", i), &Publication{Offset: 1, Data: []byte(`1`)},
			StreamPosition{Offset: 1, Epoch: "other"})
	}
	waitUntil(t, "every channel taking subscribes again", func() bool {
		for i := range m {
			ch := n.lookup(fmt.Sprint("lost", i))
			if ch == nil {
				continue
			}
			ch.mu.Lock()
			lost := ch.lost
			ch.mu.Unlock()
			if lost {
				return false
			}
		}
		return true
	})
	runtime.ReadMemStats(&after)
	for i, c := range cs {
		c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if r := c.reply(); r.Push == nil || r.Push.Unsubscribe == nil || r.Push.Unsubscribe.Code != 2500 || r.Push.Channel != fmt.Sprint("lost", i) {
			t.Fatalf("client %d: want a 2500 unsubscribe push, got %+v", i, r)
		}
	}
	got := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d KiB allocated", got>>10)
	if got > 16<<20 {
		t.Fatalf("telling %d channels' subscribers allocated %d MiB", m, got>>20)
	}
}

// TestGatewayLoseRace: clients subscribe, unsubscribe and are told their
// position is lost while publications of two epochs alternate on the
// channel (each change of epoch makes the node tell them), under -race.
// Each client's publications between its subscribe and the end of that
// subscription come in rising offsets, never twice; when the storm ends
// every client subscribes again and gets the next publication: no
// channel stays refusing subscribes.
func TestGatewayLoseRace(t *testing.T) {
	const k = 6
	cfg := gwConfig()
	cfg.Client.CommandRateLimit = -1
	n := startNode(t, cfg)
	stop := make(chan struct{})
	errs := make(chan error, k)
	final := make(chan uint64, k)
	subscribed := make(chan struct{}, 64*k)
	var told atomic.Int64
	for i := range k {
		g := dialNode(t, n.addr, i%2 == 1)
		g.connect(token(t, jwt.MapClaims{"sub": fmt.Sprint("u", i)}))
		go func() {
			errs <- loseRaceClient(g, i, stop, subscribed, final, &told)
		}()
	}
	var pubs int
	deadline := time.Now().Add(2 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		if i%5 == 4 {
			n.HandlePublication("race", &Publication{Offset: uint64(1000 + i), Data: []byte(`"x"`)},
				StreamPosition{Offset: uint64(1000 + i), Epoch: fmt.Sprint("other", i)})
		} else if _, err := n.Publish("race", []byte(`1`), PublishOptions{}); err == nil {
			pubs++
		}
		time.Sleep(time.Millisecond)
	}
	close(stop)
	// Every client subscribes again (told or not), then one more
	// publication must reach all.
	// (Publications wake the clients blocked reading.)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(10 * time.Second)
	for got := 0; got < k; {
		select {
		case <-subscribed:
			got++
		case <-tick.C:
			if _, err := n.Publish("race", []byte(`2`), PublishOptions{}); err != nil {
				t.Fatal(err)
			}
		case err := <-errs:
			t.Fatal(err)
		case <-timeout:
			t.Fatalf("%d of %d clients could subscribe again: the channel stays refusing", got, k)
		}
	}
	sp, err := n.Publish("race", []byte(`"last"`), PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	timeout = time.After(10 * time.Second)
	for got := 0; got < k; {
		select {
		case off := <-final:
			got++
			if off != sp.Offset {
				t.Errorf("last publication at offset %d, want %d", off, sp.Offset)
			}
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
		case <-timeout:
			t.Fatal("the last publication did not reach every client")
		}
	}
	if told.Load() == 0 {
		t.Fatal("no client was told its position is lost: the test proves nothing")
	}
	t.Logf("%d publications, %d times told", pubs, told.Load())
}

// loseRaceClient is one client of TestGatewayLoseRace: it subscribes,
// sometimes unsubscribes by itself, subscribes again when told its
// position is lost, and checks the offsets it gets; after stop it
// subscribes once more (reported on subscribed) and reports the offset
// of the publication with data "last" on final.
func loseRaceClient(g *gwClient, i int, stop chan struct{}, subscribed chan struct{}, final chan uint64, told *atomic.Int64) error {
	var last uint64
	sub := func() error {
		for {
			g.send(&protocol.Command{Subscribe: &protocol.SubscribeRequest{Channel: "race"}})
			id := g.id
			for {
				r, err := g.next()
				if err != nil {
					return err
				}
				if r.Id != id {
					continue // a push of the previous subscription, or a ping
				}
				if r.Error != nil {
					if !r.Error.Temporary {
						return fmt.Errorf("client %d: subscribe: %v", i, r.Error)
					}
					break
				}
				last = r.Subscribe.Offset
				return nil
			}
			time.Sleep(time.Millisecond)
		}
	}
	stopped := false
	if err := sub(); err != nil {
		return err
	}
	for j := 0; ; j++ {
		if !stopped {
			select {
			case <-stop:
				stopped = true
				// Once more, from scratch: the storm is over.
				g.send(&protocol.Command{Unsubscribe: &protocol.UnsubscribeRequest{Channel: "race"}})
				if err := sub(); err != nil {
					return err
				}
				subscribed <- struct{}{}
			default:
			}
		}
		g.c.SetReadDeadline(time.Now().Add(20 * time.Second))
		r, err := g.next()
		if err != nil {
			return fmt.Errorf("client %d: %v", i, err)
		}
		switch {
		case r.Push != nil && r.Push.Unsubscribe != nil:
			if stopped {
				return fmt.Errorf("client %d: told its position is lost after the storm", i)
			}
			told.Add(1)
			if err := sub(); err != nil {
				return err
			}
		case r.Push != nil && r.Push.Pub != nil:
			p := r.Push.Pub
			if string(p.Data) == `"x"` {
				return fmt.Errorf("client %d: got a publication of another epoch (offset %d)", i, p.Offset)
			}
			if p.Offset <= last {
				return fmt.Errorf("client %d: offset %d after %d", i, p.Offset, last)
			}
			last = p.Offset
			if stopped && string(p.Data) == `"last"` {
				final <- p.Offset
				return nil
			}
			if !stopped && j%7 == 3 {
				g.send(&protocol.Command{Unsubscribe: &protocol.UnsubscribeRequest{Channel: "race"}})
				if err := sub(); err != nil {
					return err
				}
			}
		}
	}
}
