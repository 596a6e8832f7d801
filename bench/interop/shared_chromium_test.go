package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/deflate"
	"github.com/wsgate/wsgate/loop"
)

// TestSharedStreamChromium: WebSockets of headless Chromium subscribe to
// a topic on a server with context takeover; every tick, compressed once
// per loop with the stream's history, must reach each of them byte for
// byte, inflated by the browser.
func TestSharedStreamChromium(t *testing.T) {
	t.Parallel()
	chromium := chromiumPath(t)
	hs, results := pageServer(t, "shared_page.html", 4<<20)

	h := newRecorder(t)
	var ts *testServer
	h.onMessage = func(c *loop.Conn, _ codec.OpCode, p []byte) {
		if string(p) == "ready" {
			_ = ts.Subscribe(c, "md")
		}
	}
	ts = startServer(t, h, loop.Options{AllowedOrigins: []string{hs.URL},
		Deflate: &deflate.Config{ServerContextTakeover: true}})
	const sockets, n = 6, 300
	q := url.Values{"url": {ts.url}, "n": {fmt.Sprint(sockets)}, "m": {fmt.Sprint(n)}}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	exited, stderr, stop := startChromium(t, chromium, hs.URL+"/?"+q.Encode())
	defer stop()
	for ts.Stats().Subscriptions < sockets {
		select {
		case err := <-exited:
			t.Fatalf("chromium exited: %v\n%s", err, stderr.tail(4000))
		case <-ctx.Done():
			t.Fatalf("%d of %d browser sockets subscribed\n%s", ts.Stats().Subscriptions, sockets, stderr.tail(4000))
		case <-time.After(10 * time.Millisecond):
		}
	}
	bytes0 := ts.Stats().BytesOut
	for i := range n {
		pm, err := ts.Prepare(codec.OpText, []byte(tick(i)), "")
		if err != nil {
			t.Fatal(err)
		}
		if err := ts.Publish("md", pm); err != nil {
			t.Fatal(err)
		}
		if i%20 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	var body []byte
	select {
	case body = <-results:
	case err := <-exited:
		t.Fatalf("chromium exited before reporting: %v\n%s", err, stderr.tail(4000))
	case <-ctx.Done():
		t.Fatalf("no result from the page\n%s", stderr.tail(4000))
	}
	var res struct {
		Extensions []string   `json:"extensions"`
		Msgs       [][]string `json:"msgs"`
		Errors     []string   `json:"errors"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatalf("page result: %v\n%.300s", err, body)
	}
	for _, e := range res.Errors {
		t.Errorf("page: %s", e)
	}
	if len(res.Msgs) != sockets {
		t.Fatalf("page reported %d sockets; want %d", len(res.Msgs), sockets)
	}
	for s, msgs := range res.Msgs {
		if e := res.Extensions[s]; !strings.Contains(e, "permessage-deflate") || strings.Contains(e, "server_no_context_takeover") {
			t.Errorf("socket %d: extensions %q; want permessage-deflate with server context takeover", s, e)
		}
		if len(msgs) != n {
			t.Errorf("socket %d: %d messages; want %d", s, len(msgs), n)
		}
		for i, m := range msgs {
			if m != tick(i) {
				t.Fatalf("socket %d: message %d = %.70q; want %.70q", s, i, m, tick(i))
			}
		}
	}
	var size int
	for i := range n {
		size += len(tick(i))
	}
	// The server's bytes out include the sockets' pongs and close frames
	// (a few bytes each).
	ratio := float64(ts.Stats().BytesOut-bytes0) / float64(size*sockets)
	t.Logf("%d browser subscribers: %.3f bytes on the wire per byte of tick", sockets, ratio)
	if ratio > 0.5 {
		t.Errorf("%.3f bytes out per byte of tick; want under 0.5 (shared history)", ratio)
	}
}
