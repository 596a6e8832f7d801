package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/natsbroker"
)

// startNATS runs an embedded NATS server with JetStream storing in dir on
// port (-1: any free one).
func startNATS(t testing.TB, dir string, port int) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	return s
}

// recorder is a BrokerHandler that keeps what it was handed, per
// channel, dropping as the gateway's node does a publication at or below
// the offset it kept last in the same epoch (and counting those).
type recorder struct {
	mu      sync.Mutex
	pubs    map[string][]*wsgate.Publication
	sps     map[string][]wsgate.StreamPosition
	dropped int
}

func newRecorder() *recorder {
	return &recorder{pubs: map[string][]*wsgate.Publication{}, sps: map[string][]wsgate.StreamPosition{}}
}

func (r *recorder) HandlePublication(ch string, p *wsgate.Publication, sp wsgate.StreamPosition) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.pubs[ch]); n > 0 && p.Offset != 0 {
		last, lsp := r.pubs[ch][n-1], r.sps[ch][n-1]
		if lsp.Epoch == sp.Epoch && p.Offset <= last.Offset {
			r.dropped++
			return
		}
	}
	r.pubs[ch] = append(r.pubs[ch], p)
	r.sps[ch] = append(r.sps[ch], sp)
}

func (r *recorder) get(ch string) []*wsgate.Publication {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.pubs[ch])
}

func (r *recorder) wait(t *testing.T, ch string, n int) []*wsgate.Publication {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if p := r.get(ch); len(p) >= n {
			return p
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s: %d publications handed, want %d", ch, len(r.get(ch)), n)
	return nil
}

func newBroker(t testing.TB, url, name string, h wsgate.BrokerHandler) *natsbroker.Broker {
	t.Helper()
	b, err := natsbroker.New(natsbroker.Options{URL: url, Name: name, MaxHistorySize: 1000, Timeout: 5 * time.Second,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if h != nil {
		if err := b.Run(h); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(b.Close)
	return b
}

var hist = wsgate.PublishOptions{HistorySize: 1000, HistoryTTL: time.Hour}

// Two brokers (two nodes) publish to one channel at once from several
// goroutines each: the offsets handed back are exactly 1..N, one epoch,
// and history holds them in that order with the data each publish sent.
func TestConcurrentPublishersContiguousOffsets(t *testing.T) {
	s := startNATS(t, t.TempDir(), -1)
	defer s.Shutdown()
	nodes := []*natsbroker.Broker{newBroker(t, s.ClientURL(), "a", nil), newBroker(t, s.ClientURL(), "b", nil)}
	const perWorker, workers = 40, 4
	var mu sync.Mutex
	got := map[uint64]string{}
	epochs := map[string]bool{}
	var wg sync.WaitGroup
	for ni, b := range nodes {
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perWorker {
					data := fmt.Sprintf(`"%d-%d-%d"`, ni, w, i)
					sp, err := b.Publish("c", []byte(data), hist)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					if _, dup := got[sp.Offset]; dup {
						t.Errorf("offset %d given twice", sp.Offset)
					}
					got[sp.Offset] = data
					epochs[sp.Epoch] = true
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	n := len(nodes) * workers * perWorker
	if len(got) != n || len(epochs) != 1 {
		t.Fatalf("%d offsets, %d epochs; want %d, 1", len(got), len(epochs), n)
	}
	for o := uint64(1); o <= uint64(n); o++ {
		if _, ok := got[o]; !ok {
			t.Fatalf("offset %d missing", o)
		}
	}
	pubs, sp, err := nodes[1].History("c", wsgate.HistoryOptions{Limit: -1})
	if err != nil {
		t.Fatal(err)
	}
	if sp.Offset != uint64(n) || len(pubs) != n || !epochs[sp.Epoch] {
		t.Fatalf("history: position %+v, %d publications", sp, len(pubs))
	}
	for i, p := range pubs {
		if p.Offset != uint64(i+1) || string(p.Data) != got[p.Offset] {
			t.Fatalf("history[%d]: offset %d data %s, want %d %s", i, p.Offset, p.Data, i+1, got[uint64(i+1)])
		}
	}
}

// A publication on one node reaches the handler of a node subscribed to
// the channel, in offset order, with its info and tags; an unsubscribed
// node gets nothing; the publishing node gets its own once.
func TestDeliveryAcrossNodes(t *testing.T) {
	s := startNATS(t, t.TempDir(), -1)
	defer s.Shutdown()
	ra, rb := newRecorder(), newRecorder()
	a := newBroker(t, s.ClientURL(), "a", ra)
	b := newBroker(t, s.ClientURL(), "b", rb)
	if err := b.Subscribe("news.eu"); err != nil {
		t.Fatal(err)
	}
	if err := b.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	opts := hist
	opts.Info = &wsgate.ClientInfo{User: "u1", Client: "c1", ConnInfo: []byte(`{"x":1}`)}
	opts.Tags = map[string]string{"sym": "EURUSD"}
	for i := range 20 {
		if _, err := a.Publish("news.eu", fmt.Appendf(nil, "%d", i), opts); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Publish("news.eu", []byte("nohist"), wsgate.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	got := rb.wait(t, "news.eu", 21)
	for i, p := range got[:20] {
		if p.Offset != uint64(i+1) || string(p.Data) != fmt.Sprint(i) || p.Info == nil || p.Info.User != "u1" ||
			string(p.Info.ConnInfo) != `{"x":1}` || p.Tags["sym"] != "EURUSD" {
			t.Fatalf("publication %d: %+v", i, p)
		}
	}
	if p := got[20]; p.Offset != 0 || string(p.Data) != "nohist" {
		t.Fatalf("publication without history: %+v", p)
	}
	if rb.dropped != 0 {
		t.Fatalf("subscribed node was handed %d duplicates", rb.dropped)
	}
	if n := len(ra.get("news.eu")); n != 21 {
		t.Fatalf("publishing node handed %d of its publications, want 21 (once each)", n)
	}
	if err := b.Unsubscribe("news.eu"); err != nil {
		t.Fatal(err)
	}
	_ = b.Conn().Flush()
	if _, err := a.Publish("news.eu", []byte("late"), hist); err != nil {
		t.Fatal(err)
	}
	_ = a.Conn().Flush()
	time.Sleep(50 * time.Millisecond)
	if n := len(rb.get("news.eu")); n != 21 {
		t.Fatalf("unsubscribed node got %d publications, want 21", n)
	}
}

// History read on another node: since a position, unrecoverable with a
// wrong epoch or a position beyond the channel's size, size and reverse,
// a fixed epoch for a channel never published to, RemoveHistory keeping
// the position, and the idempotency key.
func TestHistoryAcrossNodes(t *testing.T) {
	s := startNATS(t, t.TempDir(), -1)
	defer s.Shutdown()
	a := newBroker(t, s.ClientURL(), "a", nil)
	b := newBroker(t, s.ClientURL(), "b", nil)

	_, sp0, err := b.History("empty", wsgate.HistoryOptions{})
	if err != nil || sp0.Offset != 0 || sp0.Epoch == "" {
		t.Fatalf("empty channel: %+v %v", sp0, err)
	}
	_, sp1, _ := a.History("empty", wsgate.HistoryOptions{})
	sp2, err := a.Publish("empty", []byte("1"), hist)
	if err != nil || sp1 != sp0 || sp2.Epoch != sp0.Epoch || sp2.Offset != 1 {
		t.Fatalf("epoch not fixed by the first read: %+v %+v %+v %v", sp0, sp1, sp2, err)
	}

	small := wsgate.PublishOptions{HistorySize: 5, HistoryTTL: time.Hour}
	var last wsgate.StreamPosition
	for i := 1; i <= 12; i++ {
		if last, err = a.Publish("h", fmt.Appendf(nil, "%d", i), small); err != nil {
			t.Fatal(err)
		}
	}
	pubs, sp, err := b.History("h", wsgate.HistoryOptions{Since: &wsgate.StreamPosition{Offset: 9, Epoch: last.Epoch}, Limit: -1})
	if err != nil || sp != last || offsets(pubs) != "10,11,12" || string(pubs[0].Data) != "10" {
		t.Fatalf("since 9: %s %+v %v", offsets(pubs), sp, err)
	}
	if _, _, err := b.History("h", wsgate.HistoryOptions{Since: &wsgate.StreamPosition{Offset: 6, Epoch: last.Epoch}}); !errors.Is(err, wsgate.ErrUnrecoverablePosition) {
		t.Fatalf("since 6 with size 5: %v", err)
	}
	if pubs, _, err := b.History("h", wsgate.HistoryOptions{Since: &wsgate.StreamPosition{Offset: 7, Epoch: last.Epoch}, Limit: 2}); err != nil || offsets(pubs) != "8,9" {
		t.Fatalf("since 7 limit 2: %s %v", offsets(pubs), err)
	}
	if _, _, err := b.History("h", wsgate.HistoryOptions{Since: &wsgate.StreamPosition{Offset: 11, Epoch: "other"}}); !errors.Is(err, wsgate.ErrUnrecoverablePosition) {
		t.Fatalf("wrong epoch: %v", err)
	}
	if _, _, err := b.History("h", wsgate.HistoryOptions{Since: &wsgate.StreamPosition{Offset: 13, Epoch: last.Epoch}}); !errors.Is(err, wsgate.ErrUnrecoverablePosition) {
		t.Fatalf("offset ahead: %v", err)
	}
	if pubs, _, err := b.History("h", wsgate.HistoryOptions{Limit: -1}); err != nil || offsets(pubs) != "8,9,10,11,12" {
		t.Fatalf("all: %s %v", offsets(pubs), err)
	}
	if pubs, _, err := b.History("h", wsgate.HistoryOptions{Limit: 2, Reverse: true}); err != nil || offsets(pubs) != "12,11" {
		t.Fatalf("reverse 2: %s %v", offsets(pubs), err)
	}

	if err := b.RemoveHistory("h"); err != nil {
		t.Fatal(err)
	}
	pubs, sp, err = a.History("h", wsgate.HistoryOptions{Limit: -1})
	if err != nil || len(pubs) != 0 || sp != last {
		t.Fatalf("after remove: %s %+v %v", offsets(pubs), sp, err)
	}
	if sp, err := a.Publish("h", []byte("13"), small); err != nil || sp.Offset != 13 || sp.Epoch != last.Epoch {
		t.Fatalf("publish after remove: %+v %v", sp, err)
	}
	if pubs, _, err := b.History("h", wsgate.HistoryOptions{Since: &last, Limit: -1}); err != nil || offsets(pubs) != "13" {
		t.Fatalf("since the removed top: %s %v", offsets(pubs), err)
	}

	idem := hist
	idem.IdempotencyKey = "k1"
	p1, err1 := a.Publish("i", []byte("x"), idem)
	p2, err2 := b.Publish("i", []byte("x"), idem)
	if err1 != nil || err2 != nil || p1 != p2 || p1.Offset != 1 {
		t.Fatalf("idempotent publish: %+v %v, %+v %v", p1, err1, p2, err2)
	}
	if pubs, _, _ := a.History("i", wsgate.HistoryOptions{Limit: -1}); len(pubs) != 1 {
		t.Fatalf("idempotent publish stored %d times", len(pubs))
	}
}

// A node's handler fed by NATS on a gap (a publication it missed)
// still sees a later offset: the gateway fills gaps from history.
// Here: NATS goes away and comes back on the same port and storage.
// While it is down, Ready fails, a publish with history fails, one
// without history reaches the local handler and fails; goroutines do not
// grow. After it is back, offsets and epochs continue, and a node
// subscribed before gets the live publications again. With storage lost
// the epoch changes.
func TestNATSRestart(t *testing.T) {
	dir := t.TempDir()
	s := startNATS(t, dir, -1)
	port := s.Addr().(*net.TCPAddr).Port
	url := s.ClientURL()
	ra := newRecorder()
	a := newBroker(t, url, "a", ra)
	rb := newRecorder()
	b := newBroker(t, url, "b", rb)
	if err := b.Subscribe("r"); err != nil {
		t.Fatal(err)
	}
	_ = b.Conn().Flush()
	sp, err := a.Publish("r", []byte("1"), hist)
	if err != nil {
		t.Fatal(err)
	}
	rb.wait(t, "r", 1)
	if err := a.Ready(); err != nil {
		t.Fatal(err)
	}

	s.Shutdown()
	s.WaitForShutdown()
	waitFor(t, func() bool { return a.Ready() != nil })
	g0 := runtime.NumGoroutine()
	for i := range 200 {
		if _, err := a.Publish("r", []byte("down"), hist); err == nil {
			t.Fatal("publish with history succeeded while NATS is down")
		}
		if _, err := a.Publish("local", fmt.Appendf(nil, "%d", i), wsgate.PublishOptions{}); err == nil {
			t.Fatal("publish without history reported no error while NATS is down")
		}
		if _, _, err := a.History("r", wsgate.HistoryOptions{Limit: -1}); err == nil {
			t.Fatal("history answered while NATS is down")
		}
	}
	if n := len(ra.get("local")); n != 200 {
		t.Fatalf("local handler got %d of 200 publications while NATS was down", n)
	}
	if g := runtime.NumGoroutine(); g > g0+2 {
		t.Fatalf("goroutines grew from %d to %d while NATS was down", g0, g)
	}

	s = startNATS(t, dir, port)
	waitFor(t, func() bool { return a.Ready() == nil && b.Ready() == nil })
	sp2, err := a.Publish("r", []byte("2"), hist)
	if err != nil || sp2.Epoch != sp.Epoch || sp2.Offset != 2 {
		t.Fatalf("after restart: %+v (before %+v) %v", sp2, sp, err)
	}
	got := rb.wait(t, "r", 2)
	if got[1].Offset != 2 {
		t.Fatalf("after restart node b got offset %d", got[1].Offset)
	}
	s.Shutdown()
	s.WaitForShutdown()

	// Storage lost: a new epoch, offsets from 1.
	s = startNATS(t, t.TempDir(), port)
	defer s.Shutdown()
	waitFor(t, func() bool { return b.Conn().IsConnected() })
	// b never published to "r" (no cached top): it finds the stream gone
	// on its first read and makes it again. Its link is up before the new
	// server's JetStream answers: a read may time out until then (CI saw
	// "context deadline exceeded" once under -race).
	var fresh wsgate.StreamPosition
	waitFor(t, func() bool {
		_, fresh, err = b.History("r", wsgate.HistoryOptions{})
		return !errors.Is(err, context.DeadlineExceeded)
	})
	if err != nil || fresh.Epoch == sp2.Epoch || fresh.Offset != 0 {
		t.Fatalf("history after storage loss: %+v %v", fresh, err)
	}
	waitFor(t, func() bool { return a.Ready() == nil })
	sp3, err := a.Publish("r", []byte("3"), hist)
	if err != nil || sp3.Epoch != fresh.Epoch || sp3.Offset != 1 {
		t.Fatalf("after storage loss: %+v (before %+v, position read %+v) %v", sp3, sp, fresh, err)
	}
	if got := rb.wait(t, "r", 3); got[2].Offset != 1 || string(got[2].Data) != "3" {
		t.Fatalf("node b after storage loss got %+v", got[2])
	}
}

func waitFor(t *testing.T, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 15 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func offsets(pubs []*wsgate.Publication) string {
	s := ""
	for i, p := range pubs {
		if i > 0 {
			s += ","
		}
		s += fmt.Sprint(p.Offset)
	}
	return s
}

// BenchmarkPublish compares a publish with history on the memory broker
// and on the NATS broker (embedded server, file storage) in one run.
func BenchmarkPublish(b *testing.B) {
	data := []byte(`{"price":1.2345,"sym":"EURUSD"}`)
	b.Run("memory", func(b *testing.B) {
		m := wsgate.NewMemoryBroker(0)
		for i := 0; b.Loop(); i++ {
			if _, err := m.Publish("bench", data, hist); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("nats", func(b *testing.B) {
		s := startNATS(b, b.TempDir(), -1)
		defer s.Shutdown()
		nb := newBroker(b, s.ClientURL(), "bench", nil)
		for b.Loop() {
			if _, err := nb.Publish("bench", data, hist); err != nil {
				b.Fatal(err)
			}
		}
	})
	// Two nodes publishing to one channel at once: appends conflict and
	// are retried.
	b.Run("nats-2nodes-1channel", func(b *testing.B) {
		s := startNATS(b, b.TempDir(), -1)
		defer s.Shutdown()
		nodes := []*natsbroker.Broker{newBroker(b, s.ClientURL(), "a", nil), newBroker(b, s.ClientURL(), "b", nil)}
		var next atomic.Int32
		b.SetParallelism(2)
		b.RunParallel(func(pb *testing.PB) {
			nb := nodes[next.Add(1)%2]
			for pb.Next() {
				if _, err := nb.Publish("bench", data, hist); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// Two brokers linked as a cluster: each lists the other from its
// heartbeats, and a command broadcast by one runs on the other only.
func TestCluster(t *testing.T) {
	s := startNATS(t, t.TempDir(), -1)
	defer s.Shutdown()
	type ran struct{ method, body string }
	got := [2]chan ran{make(chan ran, 4), make(chan ran, 4)}
	bs := [2]*natsbroker.Broker{}
	for i := range bs {
		bs[i] = newBroker(t, s.ClientURL(), fmt.Sprint("n", i), nil)
		err := bs[i].RunCluster(func() wsgate.NodeInfo {
			return wsgate.NodeInfo{UID: fmt.Sprint("uid", i), Name: fmt.Sprint("n", i), NumClients: int64(10 + i)}
		}, func(method string, body []byte) []byte {
			got[i] <- ran{method, string(body)}
			return []byte(fmt.Sprintf(`{"node":%d}`, i))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return len(bs[0].Nodes()) == 1 && len(bs[1].Nodes()) == 1 })
	if n := bs[0].Nodes()[0]; n.Name != "n1" || n.NumClients != 11 {
		t.Fatalf("node 0 sees %+v", n)
	}
	if err := bs[0].Broadcast("disconnect", []byte(`{"user":"u"}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got[1]:
		if r.method != "disconnect" || r.body != `{"user":"u"}` {
			t.Fatalf("ran %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("command not run on the other node")
	}
	select {
	case r := <-got[0]:
		t.Fatalf("command ran on the sending node too: %+v", r)
	case <-time.After(100 * time.Millisecond):
	}
	answers, err := bs[1].Survey("channels", []byte(`{}`))
	if err != nil || len(answers) != 1 || string(answers[0]) != `{"node":0}` {
		t.Fatalf("survey from node 1: %q %v", answers, err)
	}
	if r := <-got[0]; r.method != "channels" {
		t.Fatalf("survey ran %+v", r)
	}
	bs[1].Close()
	waitFor(t, func() bool { return len(bs[0].Nodes()) == 0 })
}
