//go:build !windows

package loop

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/codec"
)

// TestSendBudget: stalled subscribers together hold no more than
// Options.SendBudget plus their allowance (and what one paced burst adds
// before its flush), whatever each one's HighWaterBytes allows, and a
// healthy subscriber beside them gets every message.
func TestSendBudget(t *testing.T) {
	const (
		size    = 2048
		n       = 1000
		stalled = 16
		hw      = 256 << 10
		budget  = 256 << 10
	)
	s, h, addr := startSubServer(t, SlowDropNewest, Options{HighWaterBytes: hw, SocketSendBuffer: 16 << 10, SendBudget: budget})
	healthy := dialWS(t, addr, 0)
	for range stalled {
		dialWS(t, addr, 4096)
	}
	waitFor(t, "subscriptions", func() bool { return s.Stats().Subscriptions == stalled+1 })

	var progress atomic.Int64
	done := make(chan int)
	go func() {
		got := 0
		for got < n {
			_, p, err := healthy.next(10 * time.Second)
			if err != nil {
				t.Errorf("healthy client: %v after %d messages", err, got)
				break
			}
			seq, err := checkSeqMsg(p, size)
			if err != nil || seq != got {
				t.Errorf("healthy client: message %d is seq %d (%v)", got, seq, err)
				break
			}
			got++
			progress.Store(int64(got))
		}
		done <- got
	}()
	maxHeld, maxUsed := 0, int64(0)
	for i := range n {
		pm, err := s.Prepare(codec.OpBinary, seqMsg(i, size), "")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Publish("t", pm); err != nil {
			t.Fatal(err)
		}
		if i%8 == 7 {
			waitFor(t, "the healthy client", func() bool { return progress.Load() > int64(i)-8 })
			held := 0
			h.mu.Lock()
			for _, c := range h.opened {
				held += c.PendingBytes()
			}
			h.mu.Unlock()
			maxHeld = max(maxHeld, held)
			maxUsed = max(maxUsed, s.Stats().SendBudgetUsed)
		}
	}
	if got := <-done; got != n {
		t.Fatalf("healthy client got %d of %d", got, n)
	}
	st := s.Stats()
	t.Logf("held at most %d bytes (budget %d, high-water %d × %d stalled); SendBudgetUsed max %d; dropped %d",
		maxHeld, budget, hw, stalled, maxUsed, st.Dropped)
	// The publisher runs at most 16 messages ahead of the healthy client;
	// a drain may give them all to a stalled connection before its flush
	// charges them (seen under load: 1,658,848 bytes held against an
	// allowance of 8 messages each).
	if limit := budget + (stalled+1)*sendAllowance + stalled*16*(size+4); maxHeld > limit {
		t.Errorf("connections held %d bytes; want at most %d", maxHeld, limit)
	}
	if maxUsed == 0 || st.Dropped == 0 {
		t.Errorf("budget never used (%d) or nothing dropped (%d)", maxUsed, st.Dropped)
	}
}
