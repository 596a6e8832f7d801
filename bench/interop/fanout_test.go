package interop

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	gorilla "github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/deflate"
	"github.com/wsgate/wsgate/loop"
)

// fanClient is one subscriber, whatever the library.
type fanClient struct {
	name  string
	read  func() (string, error)
	write func(string) error
	ext   string // the Sec-WebSocket-Extensions answer it got
}

// pubMsg is the i-th published message: market-data JSON whose size
// varies from ~60 B to ~6 KB, so some go out compressed and some not.
func pubMsg(i int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{"pub":%d,"sym":"BTC-USD","levels":[`, i)
	for j := range (i * 7) % 90 {
		if j > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"px":%d.%02d,"qty":%d}`, 60000+j, (i+j)%100, j*3+i%7)
	}
	b.WriteString("]}")
	return b.String()
}

// Broadcasts compressed once reach subscribers with server context
// takeover (coder), without it (gorilla), and without compression, and
// each decodes every message, interleaved with echoes of its own messages
// that the server compresses per connection with its History.
func TestFanoutTakeoverAndPlain(t *testing.T) {
	t.Parallel()
	h := newRecorder(t)
	ts := startServer(t, h, loop.Options{Deflate: &deflate.Config{ServerContextTakeover: true}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var clients []*fanClient
	{ // coder/websocket with context takeover
		c, resp, err := websocket.Dial(ctx, ts.url, &websocket.DialOptions{CompressionMode: websocket.CompressionContextTakeover})
		if err != nil {
			t.Fatalf("coder dial: %v", err)
		}
		c.SetReadLimit(1 << 20)
		t.Cleanup(func() { c.CloseNow() })
		clients = append(clients, &fanClient{
			name: "coder-takeover", ext: resp.Header.Get("Sec-WebSocket-Extensions"),
			read: func() (string, error) {
				_, p, err := c.Read(ctx)
				return string(p), err
			},
			write: func(s string) error { return c.Write(ctx, websocket.MessageText, []byte(s)) },
		})
	}
	for _, compress := range []bool{true, false} { // gorilla, with and without permessage-deflate
		d := gorilla.Dialer{EnableCompression: compress}
		c, resp, err := d.DialContext(ctx, ts.url, http.Header{})
		if err != nil {
			t.Fatalf("gorilla dial: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		clients = append(clients, &fanClient{
			name: fmt.Sprintf("gorilla-compress=%v", compress), ext: resp.Header.Get("Sec-WebSocket-Extensions"),
			read: func() (string, error) {
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, p, err := c.ReadMessage()
				return string(p), err
			},
			write: func(s string) error { return c.WriteMessage(gorilla.TextMessage, []byte(s)) },
		})
	}
	// What was negotiated.
	if e := clients[0].ext; !strings.Contains(e, "permessage-deflate") || strings.Contains(e, "server_no_context_takeover") {
		t.Fatalf("coder negotiated %q; want permessage-deflate with server context takeover", e)
	}
	if e := clients[1].ext; !strings.Contains(e, "permessage-deflate") {
		t.Fatalf("gorilla with compression negotiated %q; want permessage-deflate", e)
	}
	if e := clients[2].ext; e != "" {
		t.Fatalf("gorilla without compression got extensions %q; want none", e)
	}
	for range clients {
		if err := ts.Subscribe(h.nextOpen(t), "md"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "subscriptions", func() bool { return ts.Stats().Subscriptions == int64(len(clients)) })

	const n = 300
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() { // read everything; check publishes and echoes each arrive in order, byte-exact
			defer wg.Done()
			pubs, echoes := 0, 0
			for pubs < n || echoes < n/10 {
				s, err := c.read()
				if err != nil {
					t.Errorf("%s: read after %d publishes, %d echoes: %v", c.name, pubs, echoes, err)
					return
				}
				if strings.HasPrefix(s, "echo ") {
					if want := echoMsg(echoes); s != want {
						t.Errorf("%s: echo %d = %.60q…; want %.60q…", c.name, echoes, s, want)
						return
					}
					echoes++
					continue
				}
				if want := pubMsg(pubs); s != want {
					t.Errorf("%s: publish %d = %.60q… (%d B); want %.60q… (%d B)", c.name, pubs, s, len(s), want, len(want))
					return
				}
				pubs++
			}
		}()
	}
	for i := range n {
		pm, err := ts.Prepare(codec.OpText, []byte(pubMsg(i)), "")
		if err != nil {
			t.Fatal(err)
		}
		if err := ts.Publish("md", pm); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			for _, c := range clients {
				if err := c.write(echoMsg(i / 10)); err != nil {
					t.Fatalf("%s: write: %v", c.name, err)
				}
			}
		}
	}
	wg.Wait()
	if st := ts.Stats(); st.Delivered != int64(n*len(clients)) || st.Dropped != 0 {
		t.Errorf("stats = %+v; want %d delivered, none dropped", st, n*len(clients))
	}
}

// echoMsg is the i-th message a client sends (and gets back): repetitive,
// so that the server compresses it, with its History where it may.
func echoMsg(i int) string {
	return fmt.Sprintf("echo %d %s", i, strings.Repeat(`{"ping":"pong","n":`+fmt.Sprint(i)+`}`, 40))
}
