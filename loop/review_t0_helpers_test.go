//go:build !windows

package loop

import (
	"bytes"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/codec"
)

// t0Client is a real client (zClient: it inflates with its own window)
// read by a goroutine that records every data message and ends at the
// server's close frame, answering it when the server closed first, and
// then checks that nothing follows it.
type t0Client struct {
	z      *zClient
	mu     sync.Mutex
	got    []zMsg
	closed bool // the close frame was read
	err    error
	done   chan struct{}
	echo   bool // answer the server's close frame
}

func newT0Client(t testing.TB, addr, ext string) *t0Client {
	t.Helper()
	r := &t0Client{z: dialZ(t, addr, ext, 0), done: make(chan struct{}), echo: true}
	go r.run()
	return r
}

func (r *t0Client) run() {
	defer close(r.done)
	for {
		m, err := r.z.next(60 * time.Second)
		if err != nil {
			r.mu.Lock()
			r.err = err
			r.mu.Unlock()
			return
		}
		if m.op == codec.OpPing {
			continue
		}
		r.mu.Lock()
		if m.op != codec.OpClose {
			r.got = append(r.got, m)
			r.mu.Unlock()
			continue
		}
		r.closed = true
		echo := r.echo
		r.mu.Unlock()
		if echo {
			_, _ = r.z.c.Write(cf(true, codec.OpClose, m.p))
		}
		err = afterClose(r.z.c, r.z.br)
		r.mu.Lock()
		r.err = err
		r.mu.Unlock()
		return
	}
}

// ids returns the ids of the data messages read so far.
func (r *t0Client) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]string, len(r.got))
	for i, m := range r.got {
		ids[i] = m.String()
	}
	return ids
}

// send writes a masked text frame with p to the server.
func (r *t0Client) send(t testing.TB, p string) {
	t.Helper()
	if _, err := r.z.c.Write(cf(true, codec.OpText, []byte(p))); err != nil {
		t.Fatalf("send %q: %v", p, err)
	}
}

// closeByClient sends the client's close frame first: the server's
// answer is not answered.
func (r *t0Client) closeByClient(t testing.TB, code codec.StatusCode) {
	t.Helper()
	r.mu.Lock()
	r.echo = false
	r.mu.Unlock()
	if _, err := r.z.c.Write(cf(true, codec.OpClose, codec.AppendClose(nil, code, ""))); err != nil {
		t.Fatalf("client close: %v", err)
	}
}

// reset ends the TCP connection with a RST (SO_LINGER 0).
func (r *t0Client) reset(t testing.TB) {
	t.Helper()
	if err := r.z.c.(*net.TCPConn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	r.z.c.Close()
}

// t0Payload is the payload of the message id: "id|" then text that is a
// function of id, compressible, of a size that depends on id.
func t0Payload(id string) []byte {
	n := 20 + len(id)*13%180
	return stageMsg(id, n)
}

// t0Wait waits until client r has read len(want) data messages and
// checks that they are want, whole and in order (the last of want being
// a broadcast sentinel published after everything else, any extra
// message comes before it and shows). what names the client in errors.
func t0Wait(t *testing.T, r *t0Client, want []string, what string, log func() string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r.mu.Lock()
		n := len(r.got)
		err := r.err
		r.mu.Unlock()
		if n >= len(want) {
			break
		}
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("%s: read %d messages of %d (err %v):\n got %v\nwant %v\n%s",
				what, n, len(want), err, r.ids(), want, log())
		}
		time.Sleep(2 * time.Millisecond)
	}
	r.mu.Lock()
	got := append([]zMsg(nil), r.got...)
	r.mu.Unlock()
	ids := make([]string, len(got))
	for i, m := range got {
		ids[i] = m.String()
		if !bytes.Equal(m.p, t0Payload(ids[i])) {
			t.Fatalf("%s: message %d (%s) damaged", what, i, ids[i])
		}
	}
	if fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Fatalf("%s:\n got %v\nwant %v\n%s", what, ids, want, log())
	}
}

// t0Check checks, on every loop, the subscription structures against
// the model: subs[c] is the set of topics c is subscribed to, for every
// open connection c of the model; dead are closed connections, which
// must be in no topic and hold no topic. Every topic's subscriber at
// position i holds a ref to it with i; every ref of an open connection
// is to a live topic of its loop that holds it at that position; a
// connection without a first topic holds no other; Stats().Subscriptions
// is the model's count.
func t0Check(t *testing.T, s *Server, subs map[*Conn][]string, dead []*Conn) {
	t.Helper()
	var mu sync.Mutex
	var bad []string
	fail := func(f string, a ...any) {
		mu.Lock()
		bad = append(bad, fmt.Sprintf(f, a...))
		mu.Unlock()
	}
	seen := map[*Conn][]string{}
	onLoops(s, func(ls *loopState) {
		for name, tp := range ls.topics {
			if tp.name != name || len(tp.subs) == 0 {
				fail("topic %q (named %q) has %d subscribers", name, tp.name, len(tp.subs))
			}
			for i, c := range tp.subs {
				if c.ls != ls || c.state != stateOpen {
					fail("topic %q: subscriber %d is on another loop or not open (state %d)", name, i, c.state)
				}
				r := c.ref(tp)
				if r == nil || int(r.i) != i {
					fail("topic %q: subscriber %d has ref %+v", name, i, r)
				}
			}
		}
		for _, c := range dead {
			if c.ls != ls {
				continue
			}
			if c.t0.t != nil || c.ext != nil {
				fail("a closed connection holds t0 %v and ext %v", c.t0.t != nil, c.ext != nil)
			}
		}
		ls.wheel.each(func(c *Conn) {
			if c.state != stateOpen {
				return
			}
			var refs []topicRef
			if c.t0.t != nil {
				refs = append(refs, c.t0)
			}
			if c.ext != nil {
				if c.t0.t == nil && len(c.ext.topics) > 0 {
					fail("a connection without t0 holds %d other topics", len(c.ext.topics))
				}
				refs = append(refs, c.ext.topics...)
			}
			var names []string
			for _, r := range refs {
				if r.t == nil {
					fail("a nil topic in a connection's refs")
					continue
				}
				if ls.topics[r.t.name] != r.t {
					fail("a connection refers to topic %q, gone from its loop", r.t.name)
				}
				if int(r.i) >= len(r.t.subs) || r.t.subs[r.i] != c {
					fail("topic %q: ref index %d does not hold the connection", r.t.name, r.i)
				}
				names = append(names, r.t.name)
			}
			sort.Strings(names)
			mu.Lock()
			seen[c] = names
			mu.Unlock()
		})
	})
	var n int64
	for c, want := range subs {
		n += int64(len(want))
		w := append([]string(nil), want...)
		sort.Strings(w)
		if got := seen[c]; strings.Join(got, ",") != strings.Join(w, ",") {
			fail("a connection is subscribed to %v; want %v", got, w)
		}
	}
	if got := s.Stats().Subscriptions; got != n {
		fail("Stats().Subscriptions = %d; want %d", got, n)
	}
	for _, b := range bad {
		t.Error(b)
	}
	if len(bad) > 0 {
		t.FailNow()
	}
}

// t0Publish publishes message id (see t0Payload) to topic tp.
func t0Publish(t *testing.T, s *Server, tp, id string) {
	t.Helper()
	pm, err := s.Prepare(codec.OpText, t0Payload(id), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(tp, pm); err != nil {
		t.Fatal(err)
	}
}
