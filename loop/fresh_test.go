//go:build !windows

package loop

import (
	"bufio"
	"encoding/binary"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/codec"
)

// marketRun describes a market-data fan-out: quotes for keys instruments,
// rate a second in turn (instrument n%keys), published to clients
// subscribers, of which slow read one message per readEvery.
type marketRun struct {
	clients, slow, keys, rate int
	readEvery, dur, warm      time.Duration
}

// marketResult is what the slow clients saw after the warm-up: the age of
// each message when read (sorted), and the largest age of the value held
// for an instrument (the newest one read), checked at every read.
type marketResult struct {
	ages      []time.Duration
	heldAge   time.Duration
	published int
	stats     Stats
}

// quoteSize is the size of a quote: the instrument, the time it was
// published, padding.
const quoteSize = 100

// slowRcvbuf is the slow clients' SO_RCVBUF (the kernel doubles it): what
// a client's own receive buffer holds is out of the server's reach, and a
// slowly read buffer is not grown by autotuning.
const slowRcvbuf = 2048

// run serves the fan-out with SlowConflate, the SocketSendBuffer
// and HighWaterBytes, and real clients on loopback.
func (m marketRun) run(t *testing.T) marketResult {
	o := Options{SlowPolicy: SlowConflate, SocketSendBuffer: 8 << 10, HighWaterBytes: 16 << 10}
	s, _, addr := startSubServer(t, serverPolicy, o)
	cs := make([]*wsClient, m.clients)
	for i := range cs {
		if i >= m.slow {
			cs[i] = dialWS(t, addr, 0)
			continue
		}
		cs[i] = dialWS(t, addr, slowRcvbuf)
		if cs[i].br.Buffered() != 0 {
			t.Fatal("data before the first publication")
		}
		// The smallest read-ahead: what the client buffers itself would
		// only add its own delay to what it reads.
		cs[i].br = bufio.NewReaderSize(cs[i].c, 16)
	}
	waitFor(t, "subscriptions", func() bool { return s.Stats().Subscriptions == int64(m.clients) })

	var (
		res   marketResult
		mu    sync.Mutex
		wg    sync.WaitGroup
		start = time.Now()
		end   = start.Add(m.dur)
	)
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var pace <-chan time.Time
			if i < m.slow {
				tk := time.NewTicker(m.readEvery)
				defer tk.Stop()
				pace = tk.C
			}
			held := make([]time.Time, m.keys) // publication time of the newest value read
			for {
				if pace != nil {
					<-pace
				}
				_, p, err := c.next(5 * time.Second)
				now := time.Now()
				if now.After(end) {
					return
				}
				if err != nil {
					t.Errorf("client %d: %v", i, err)
					return
				}
				k := int(p[0])
				at := time.Unix(0, int64(binary.BigEndian.Uint64(p[1:])))
				held[k] = later(held[k], at)
				if pace == nil || now.Sub(start) < m.warm {
					continue
				}
				var oldest time.Duration
				for _, h := range held {
					oldest = max(oldest, now.Sub(h))
				}
				mu.Lock()
				res.ages = append(res.ages, now.Sub(at))
				res.heldAge = max(res.heldAge, oldest)
				mu.Unlock()
			}
		}()
	}

	// Publish on schedule: the n-th quote at start + n/rate, catching up
	// after a late tick.
	tk := time.NewTicker(time.Second / time.Duration(m.rate))
	defer tk.Stop()
	n := 0
	for now := range tk.C {
		if now.After(end.Add(time.Second)) {
			break
		}
		for ; start.Add(time.Duration(n) * time.Second / time.Duration(m.rate)).Before(now); n++ {
			q := make([]byte, quoteSize)
			q[0] = byte(n % m.keys)
			binary.BigEndian.PutUint64(q[1:], uint64(time.Now().UnixNano()))
			pm, err := s.Prepare(codec.OpBinary, q, strconv.Itoa(n%m.keys))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Publish("t", pm); err != nil {
				t.Fatal(err)
			}
		}
	}
	wg.Wait()
	slices.Sort(res.ages)
	res.published, res.stats = n, s.Stats()
	return res
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// A conflating client that reads a quarter of what is published sees
// fresh values once the first seconds have passed: every message it reads
// at most 1 s plus its read interval old, and the value it holds for every
// instrument at most 1 s plus the time it takes to read one of each
// (keys × its read interval). Without the in-flight window all that gnet and the kernel
// took (hundreds of KiB) went out in order, and the age grew by 0.75 s
// every second. WSGATE_FRESH_FULL=1 runs the scenario: 200
// clients, 10 of them slow, for a minute.
func TestConflateFresh(t *testing.T) {
	m := marketRun{clients: 20, slow: 2, keys: 20, rate: 200, dur: 10 * time.Second, warm: 3 * time.Second}
	if os.Getenv("WSGATE_FRESH_FULL") != "" {
		m.clients, m.slow, m.dur = 200, 10, 60*time.Second
	}
	m.readEvery = 4 * time.Second / time.Duration(m.rate)
	r := m.run(t)
	if len(r.ages) == 0 {
		t.Fatal("the slow clients read nothing")
	}
	p50, p99, top := r.ages[len(r.ages)/2], r.ages[len(r.ages)*99/100], r.ages[len(r.ages)-1]
	t.Logf("%d clients (%d slow), %v, %d quotes: slow clients read %d after %v, age p50 %v p99 %v max %v; oldest value held %v; stats: delivered %d conflated %d dropped %d",
		m.clients, m.slow, m.dur, r.published, len(r.ages), m.warm, p50, p99, top, r.heldAge,
		r.stats.Delivered, r.stats.Conflated, r.stats.Dropped)
	if bound := time.Second + m.readEvery; top > bound {
		t.Errorf("a slow client read a value %v old; want at most %v", top, bound)
	}
	// A slow client reads an instrument once every keys reads at best.
	if bound := time.Second + time.Duration(m.keys)*m.readEvery; r.heldAge > bound {
		t.Errorf("a slow client held a value %v old; want at most %v", r.heldAge, bound)
	}
}

// BenchmarkFanoutHealthy publishes 1 KiB messages, as fast as the loops
// take them, to 50 subscribers that read all they get, with SlowConflate
// (its in-flight window) and with SlowDisconnect (none). The messages
// have no key, so every subscriber must read every one: the difference is
// what the window costs readers that keep up. ns/op is per message
// published.
func BenchmarkFanoutHealthy(b *testing.B) {
	for _, policy := range []SlowPolicy{SlowDisconnect, SlowConflate} {
		b.Run(policy.String(), func(b *testing.B) {
			const subs, size = 50, 1024
			// Nothing may be dropped: the publisher outruns the readers,
			// and what they have not read yet must fit.
			o := Options{MaxPendingBytes: 256 << 20, HighWaterBytes: 128 << 20, SendBudget: -1}
			s, _, addr := startSubServer(b, policy, o)
			cs := make([]*wsClient, subs)
			for i := range cs {
				cs[i] = dialWS(b, addr, 0)
			}
			for s.Stats().Subscriptions != subs {
				time.Sleep(time.Millisecond)
			}
			var wg sync.WaitGroup
			for _, c := range cs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for want := 0; want < b.N; want++ {
						_, p, err := c.next(10 * time.Second)
						if err != nil {
							b.Error(err)
							return
						}
						if got := int(binary.BigEndian.Uint64(p)); got != want {
							b.Errorf("message %d; want %d", got, want)
							return
						}
					}
				}()
			}
			b.SetBytes(subs * size)
			b.ResetTimer()
			for i := range b.N {
				pm, err := s.Prepare(codec.OpBinary, seqMsg(i, size), "")
				if err != nil {
					b.Fatal(err)
				}
				if err := s.Publish("t", pm); err != nil {
					b.Fatal(err)
				}
			}
			wg.Wait()
			if st := s.Stats(); st.Dropped != 0 || st.Conflated != 0 {
				b.Errorf("%d messages dropped, %d conflated", st.Dropped, st.Conflated)
			}
		})
	}
}
