package load

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestMain(m *testing.M) {
	if IsWorker() {
		WorkerMain()
	}
	os.Exit(m.Run())
}

type qitem struct {
	at    time.Time
	close []byte
	data  []byte
}

// slowFanout is a fan-out server whose per-connection FIFO write queue
// delivers every broadcast `delay` late (a server that is behind), and
// whose close reply is queued behind the backlog, like a real one.
type slowFanout struct {
	delay time.Duration
	mu    sync.Mutex
	conns map[chan qitem]struct{}
}

func (s *slowFanout) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{}
	c, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	q := make(chan qitem, 100000)
	s.mu.Lock()
	s.conns[q] = struct{}{}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for it := range q {
			time.Sleep(time.Until(it.at))
			if it.close != nil {
				_ = c.WriteMessage(websocket.CloseMessage, it.close)
				return
			}
			if c.WriteMessage(websocket.TextMessage, it.data) != nil {
				return
			}
		}
	}()
	c.SetCloseHandler(func(code int, text string) error {
		s.mu.Lock()
		delete(s.conns, q)
		s.mu.Unlock()
		q <- qitem{at: time.Now(), close: websocket.FormatCloseMessage(code, "")}
		return nil
	})
	for {
		op, p, err := c.ReadMessage()
		if err != nil {
			break
		}
		if op == websocket.TextMessage && bytes.HasPrefix(p, []byte("BCAST ")) {
			msg := append([]byte(nil), p[6:]...)
			at := time.Now().Add(s.delay)
			s.mu.Lock()
			for cq := range s.conns {
				cq <- qitem{at: at, data: msg}
			}
			s.mu.Unlock()
		}
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
	c.Close()
}

func TestFanoutBehindNotCountedTwice(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &slowFanout{delay: 3600 * time.Millisecond, conns: map[chan qitem]struct{}{}}
	go http.Serve(ln, srv)
	cfg := Config{
		Scenario: ScenarioFanout, URL: "ws://" + ln.Addr().String() + "/",
		Conns: 4, Workers: 1, PubRate: 20, Size: 64,
		Warmup: time.Second, Duration: time.Second, Loops: 1,
		Timeout: 60 * time.Second, Sources: []string{},
	}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := res.Counters
	subs := c.Open - 1
	t.Logf("broadcasts %d, subscribers %d: recv %d lost %d (recv+lost %d, possible %d), errors %d, samples %v",
		c.Sent, subs, c.Recv, c.Lost, c.Recv+c.Lost, subs*c.Sent, res.Errors, res.Samples)
	if c.Recv+c.Lost > subs*c.Sent {
		t.Errorf("messages counted both lost and received: %d", c.Recv+c.Lost-subs*c.Sent)
	}
}
