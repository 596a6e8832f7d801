package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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
	page, err := os.ReadFile(filepath.Join("testdata", "shared_page.html"))
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan []byte, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	})
	mux.HandleFunc("POST /result", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 4<<20))
		select {
		case results <- body:
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	})
	hs := httptest.NewServer(mux)
	defer hs.Close()

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
	cmd := exec.Command(chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--disable-quic", "--no-first-run", "--no-default-browser-check",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-extensions", "--no-proxy-server", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
		"--user-data-dir="+t.TempDir(), hs.URL+"/?"+q.Encode())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}()
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
