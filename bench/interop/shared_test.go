package interop

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/deflate"
	"github.com/wsgate/wsgate/loop"
)

// tick is the i-th market-data tick of TestSharedStreamClients: 100–200
// bytes of JSON, too short to compress without history.
func tick(i int) string {
	sym := [...]string{"BTC-USD", "ETH-USD", "SOL-USD"}[i%3]
	return fmt.Sprintf(`{"ch":"md.crypto","seq":%d,"type":"quote","s":"%s","bid":"%d.%02d","bq":"%d.%04d","ask":"%d.%02d","t":%d}`,
		i, sym, 60000+i*7%300, i%100, i%9, i*37%10000, 60001+i*7%300, (i*3)%100, int64(1764925200123)+int64(i)*41)
}

// TestSharedStreamClients: subscribers that inflate with other libraries'
// code, with context takeover (coder/websocket, Node's ws) and without
// (gorilla via coder's no-takeover mode), some subscribed from the start
// and one joining half-way, get every tick of a topic byte for byte while
// the server compresses each tick once per loop with the stream's history;
// a coder client that is also written to directly leaves the stream and
// comes back. The wire bytes per tick of the takeover subscribers are
// logged.
func TestSharedStreamClients(t *testing.T) {
	node := ensureNodeWS(t)
	h := newRecorder(t)
	h.onMessage = func(c *loop.Conn, op codec.OpCode, p []byte) {}
	ts := startServer(t, h, loop.Options{Deflate: &deflate.Config{ServerContextTakeover: true}})
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()

	const n = 400
	type sub struct {
		name string
		from int // the first tick it gets
		conn *loop.Conn
		read func() (string, error)
		wsc  *websocket.Conn
	}
	var subs []*sub
	dialCoder := func(name string, mode websocket.CompressionMode, from int) *sub {
		c, _, err := websocket.Dial(ctx, ts.url, &websocket.DialOptions{CompressionMode: mode})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Cleanup(func() { c.CloseNow() })
		s := &sub{name: name, from: from, conn: h.nextOpen(t), wsc: c}
		s.read = func() (string, error) {
			_, p, err := c.Read(ctx)
			return string(p), err
		}
		if err := ts.Subscribe(s.conn, "md"); err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
		return s
	}
	for i := range 4 {
		dialCoder(fmt.Sprintf("coder-takeover-%d", i), websocket.CompressionContextTakeover, 0)
	}
	dialCoder("coder-no-takeover", websocket.CompressionNoContextTakeover, 0)
	direct := dialCoder("coder-direct", websocket.CompressionContextTakeover, 0)

	// Node's ws, with its defaults (context takeover both ways offered).
	cmd := exec.CommandContext(ctx, node, filepath.Join("testdata", "node_sub.mjs"), ts.url, fmt.Sprint(n))
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	nodeOut := bufio.NewReader(out)
	if line, err := nodeOut.ReadString('\n'); err != nil || line != "open\n" {
		t.Fatalf("node: %q %v", line, err)
	}
	if err := ts.Subscribe(h.nextOpen(t), "md"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "subscriptions", func() bool { return ts.Stats().Subscriptions == int64(len(subs)+1) })

	var wg sync.WaitGroup
	errs := make(chan error, 16)
	reader := func(s *sub) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := s.from
			for next < n {
				p, err := s.read()
				if err != nil {
					errs <- fmt.Errorf("%s: after tick %d: %v", s.name, next-1, err)
					return
				}
				if strings.HasPrefix(p, "direct ") {
					continue
				}
				if p != tick(next) {
					errs <- fmt.Errorf("%s: got %.70q; want tick %d %.70q", s.name, p, next, tick(next))
					return
				}
				next++
			}
		}()
	}
	for _, s := range subs {
		reader(s)
	}
	bytes0 := ts.Stats().BytesOut
	for i := range n {
		if i == n/2 {
			reader(dialCoder("coder-late", websocket.CompressionContextTakeover, n/2))
		}
		pm, err := ts.Prepare(codec.OpText, []byte(tick(i)), "")
		if err != nil {
			t.Fatal(err)
		}
		if err := ts.Publish("md", pm); err != nil {
			t.Fatal(err)
		}
		if i%40 == 7 {
			msg := "direct " + strings.Repeat(tick(i), 2)
			if err := direct.conn.WriteMessage(codec.OpText, []byte(msg)); err != nil {
				t.Fatal(err)
			}
		}
		if i%20 == 0 {
			time.Sleep(time.Millisecond) // not one burst
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var sum struct {
		OK         bool     `json:"ok"`
		Error      string   `json:"error"`
		Extensions string   `json:"extensions"`
		Msgs       []string `json:"msgs"`
	}
	line, err := nodeOut.ReadString('\n')
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	if err := json.Unmarshal([]byte(line), &sum); err != nil {
		t.Fatalf("node: %v in %.200q", err, line)
	}
	if !sum.OK {
		t.Errorf("node: %s", sum.Error)
	}
	if !strings.Contains(sum.Extensions, "permessage-deflate") || strings.Contains(sum.Extensions, "server_no_context_takeover") {
		t.Errorf("node negotiated %q; want permessage-deflate with server context takeover", sum.Extensions)
	}
	for i, m := range sum.Msgs {
		if m != tick(i) {
			t.Fatalf("node: message %d = %.70q; want %.70q", i, m, tick(i))
		}
	}
	if len(sum.Msgs) != n {
		t.Errorf("node: %d messages; want %d", len(sum.Msgs), n)
	}
	var size int
	for i := range n {
		size += len(tick(i))
	}
	ratio := float64(ts.Stats().BytesOut-bytes0) / float64(size*(len(subs)+1))
	t.Logf("%d subscribers; %d bytes out for ticks of %d bytes in all (%.2f per subscriber and tick, mixing takeover, no takeover and direct writes)",
		len(subs)+1, ts.Stats().BytesOut-bytes0, size, ratio)
	// Ticks this short go out whole without history (1.04 with their
	// headers); six of the eight subscribers share the stream's history.
	if ratio > 0.6 {
		t.Errorf("%.2f bytes out per byte of tick and subscriber; want under 0.6", ratio)
	}
}
