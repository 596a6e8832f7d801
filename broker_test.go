package wsgate

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestMemoryBrokerHistory checks offsets, size and TTL trimming, Since
// queries and the global byte cap.
func TestMemoryBrokerHistory(t *testing.T) {
	b := NewMemoryBroker(100)
	opts := PublishOptions{HistorySize: 3, HistoryTTL: time.Minute}
	for i := 1; i <= 5; i++ {
		sp, err := b.Publish("c", []byte("0123456789"), opts)
		if err != nil || sp.Offset != uint64(i) {
			t.Fatalf("publish %d: %+v %v", i, sp, err)
		}
	}
	pubs, sp, err := b.History("c", HistoryOptions{Limit: -1})
	if err != nil || len(pubs) != 3 || pubs[0].Offset != 3 || sp.Offset != 5 {
		t.Fatalf("history: %d pubs, %+v, %v", len(pubs), sp, err)
	}
	if _, _, err := b.History("c", HistoryOptions{Since: &StreamPosition{Offset: 1, Epoch: sp.Epoch}, Limit: -1}); !errors.Is(err, ErrUnrecoverablePosition) {
		t.Fatalf("since a trimmed offset: %v", err)
	}
	pubs, _, err = b.History("c", HistoryOptions{Since: &StreamPosition{Offset: 3, Epoch: sp.Epoch}, Limit: -1})
	if err != nil || len(pubs) != 2 || pubs[0].Offset != 4 {
		t.Fatalf("since 3: %d pubs, %v", len(pubs), err)
	}
	// The global cap: 100 bytes hold at most ten 10-byte publications
	// across channels; the channel published to loses its oldest.
	for i := 0; i < 20; i++ {
		b.Publish("d", []byte("0123456789"), PublishOptions{HistorySize: 100, HistoryTTL: time.Minute})
	}
	if got := b.bytes.Load(); got > 100 {
		t.Fatalf("%d bytes held, cap 100", got)
	}
	// TTL: publications older than the TTL are not returned.
	b.Publish("e", []byte("x"), PublishOptions{HistorySize: 10, HistoryTTL: time.Millisecond})
	time.Sleep(5 * time.Millisecond)
	if pubs, sp, _ := b.History("e", HistoryOptions{Limit: -1, TTL: time.Millisecond}); len(pubs) != 0 || sp.Offset != 1 {
		t.Fatalf("after TTL: %d pubs, offset %d", len(pubs), sp.Offset)
	}
	// An emptied stream unused for StreamMetaTTL is dropped; the channel
	// starts again with a new epoch.
	old := sp.Epoch
	b.expire(time.Now().Add(StreamMetaTTL + time.Minute))
	if b.stream("e", false) != nil {
		t.Fatal("idle empty stream kept")
	}
	if b.stream("c", false) != nil {
		t.Fatal("idle stream kept after its publications aged out")
	}
	sp, _ = b.Publish("e", []byte("y"), PublishOptions{HistorySize: 10, HistoryTTL: time.Minute})
	if sp.Offset != 1 || sp.Epoch == old {
		t.Fatalf("after expiry: %+v (old epoch %s)", sp, old)
	}
}

// TestMemoryBrokerEpochBeforeFirstPublish: a channel's epoch, fixed when
// a subscriber first asks for its position, survives the once-a-minute
// expiry that runs before the channel's first publication. It used to
// drop the stream (its last publish time was zero), so the first
// publication came with a new epoch and the subscriber could not
// recover (the SDK tests' intermittent "recovered: false").
func TestMemoryBrokerEpochBeforeFirstPublish(t *testing.T) {
	b := NewMemoryBroker(0)
	_, sp, err := b.History("c", HistoryOptions{})
	if err != nil || sp.Epoch == "" {
		t.Fatalf("position: %+v %v", sp, err)
	}
	b.expire(time.Now().Add(time.Minute))
	got, err := b.Publish("c", []byte("x"), PublishOptions{HistorySize: 10, HistoryTTL: time.Minute})
	if err != nil || got.Epoch != sp.Epoch || got.Offset != 1 {
		t.Fatalf("first publication at %+v (%v); want offset 1 in epoch %s", got, err, sp.Epoch)
	}
}

// TestMemoryBrokerIdempotencyConcurrent: publishes with the same
// idempotency key at the same time publish once; every caller gets that
// publication's position.
func TestMemoryBrokerIdempotencyConcurrent(t *testing.T) {
	b := NewMemoryBroker(0)
	b.Run(slowHandler{}) // widens the window between check and remember
	opts := PublishOptions{HistorySize: 1000, HistoryTTL: time.Minute}
	for round := range 50 {
		opts.IdempotencyKey = fmt.Sprintf("k%d", round)
		var wg sync.WaitGroup
		offs := make([]uint64, 16)
		start := make(chan struct{})
		for i := range offs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				sp, err := b.Publish("idem", []byte("x"), opts)
				if err != nil {
					t.Error(err)
				}
				offs[i] = sp.Offset
			}()
		}
		close(start)
		wg.Wait()
		for _, o := range offs {
			if o != uint64(round+1) {
				t.Fatalf("round %d: offsets %v, want all %d", round, offs, round+1)
			}
		}
	}
}

// slowHandler takes a millisecond per publication.
type slowHandler struct{}

func (slowHandler) HandlePublication(string, *Publication, StreamPosition) {
	time.Sleep(time.Millisecond)
}
