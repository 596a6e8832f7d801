package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wsgate/wsgate/deflate"
	"github.com/wsgate/wsgate/loop"
)

// Headless Chromium (Debian's chromium package, installed by .ci/deps.sh)
// loads testdata/deflate_page.html from a net/http server on 127.0.0.1;
// the page's WebSockets go through sniffers to wsgate servers with
// deflate on (no takeover, takeover), off, and one that does not allow the
// page's origin. The page posts its results back; the sniffers show what
// went over the wire.

// chromiumPath returns the browser, skipping the test when it is missing,
// except in CI (CI=true), where that is a failure.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed (CI=true: run .ci/deps.sh, which installs Debian's chromium)")
	}
	t.Skip("chromium is not installed (.ci/deps.sh installs it)")
	return ""
}

// pageServer serves testdata/page at / from a net/http server on
// 127.0.0.1, closed with the test; the first body the page posts to
// /result (up to limit bytes) comes out of results.
func pageServer(t *testing.T, page string, limit int64) (hs *httptest.Server, results <-chan []byte) {
	t.Helper()
	html, err := os.ReadFile(filepath.Join("testdata", page))
	if err != nil {
		t.Fatal(err)
	}
	res := make(chan []byte, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(html)
	})
	mux.HandleFunc("POST /result", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, limit))
		select {
		case res <- body:
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	})
	hs = httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return hs, res
}

// startChromium starts headless Chromium on pageURL with a fresh profile
// and no network but 127.0.0.1. exited reports the browser's end; stop
// kills it with its helpers and waits for it (also after exited was
// read).
func startChromium(t *testing.T, chromium, pageURL string) (exited <-chan error, stderr *lockedBuffer, stop func()) {
	t.Helper()
	cmd := exec.Command(chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--disable-quic", "--no-first-run", "--no-default-browser-check",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-extensions", "--no-proxy-server", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
		"--user-data-dir="+t.TempDir(), pageURL)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its helpers are killed with it
	stderr = new(lockedBuffer)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	ex := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		ex <- cmd.Wait()
		close(done)
	}()
	return ex, stderr, func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// browserTarget is one target's result, as the page reports it.
type browserTarget struct {
	Name        string   `json:"name"`
	URL         string   `json:"url"`
	Opened      bool     `json:"opened"`
	Extensions  *string  `json:"extensions"`
	Planned     int      `json:"planned"`
	RoundTrips  int      `json:"roundTrips"`
	Bytes       int      `json:"bytes"`
	CloseCode   int      `json:"closeCode"`
	CloseReason string   `json:"closeReason"`
	WasClean    bool     `json:"wasClean"`
	Millis      float64  `json:"ms"`
	Errors      []string `json:"errors"`
}

type browserResult struct {
	UserAgent string          `json:"userAgent"`
	Millis    float64         `json:"ms"` // from navigation start to the result
	Targets   []browserTarget `json:"targets"`
	Errors    []string        `json:"errors"`
}

// browserMessages is the number of messages the page round-trips per
// target (see plan() in the page).
const browserMessages = 17

func TestDeflateChromium(t *testing.T) {
	t.Parallel()
	chromium := chromiumPath(t)
	hs, results := pageServer(t, "deflate_page.html", 1<<20)
	origin := hs.URL

	type target struct {
		name      string
		ts        *testServer
		sn        *sniffer
		ext       string // the Sec-WebSocket-Extensions answer on the wire
		takeover  bool
		threshold int
		denied    bool
	}
	targets := []*target{
		{name: "deflate", ext: extNoTakeover, threshold: thresholdNoTakeover},
		{name: "takeover", ext: extTakeover, takeover: true, threshold: thresholdTakeover},
		{name: "plain", threshold: 1 << 30},
		{name: "denied", denied: true},
	}
	q := url.Values{}
	for _, tg := range targets {
		var opts loop.Options
		switch tg.name {
		case "deflate", "denied":
			opts.Deflate = &deflate.Config{}
		case "takeover":
			opts.Deflate = &deflate.Config{ServerContextTakeover: true}
		}
		if !tg.denied {
			opts.AllowedOrigins = []string{origin}
		}
		tg.ts = startServer(t, nil, opts)
		tg.sn = startSniffer(t, tg.ts.addr)
		q.Add(tg.name, "ws://"+tg.sn.addr+"/")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	launched := time.Now()
	exited, stderr, stop := startChromium(t, chromium, origin+"/?"+q.Encode())

	var body []byte
	select {
	case body = <-results:
		stop()
	case err := <-exited:
		t.Fatalf("chromium exited before reporting: %v\n%s", err, stderr.tail(4000))
	case <-ctx.Done():
		stop()
		t.Fatalf("no result from the page within 90 s\nchromium output:\n%s", stderr.tail(4000))
	}

	var res browserResult
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatalf("page result: %v\n%s", err, body)
	}
	t.Logf("browser: %s; %.0f ms from navigation to result, %v from launch", res.UserAgent, res.Millis, time.Since(launched).Round(time.Millisecond))
	for _, e := range res.Errors {
		t.Errorf("page: %s", e)
	}
	byName := map[string]browserTarget{}
	for _, r := range res.Targets {
		byName[r.Name] = r
	}
	if len(res.Targets) != len(targets) || len(byName) != len(targets) {
		t.Fatalf("page reported %d targets; want %d: %s", len(res.Targets), len(targets), body)
	}
	for _, tg := range targets {
		got := byName[tg.name]
		t.Run(tg.name, func(t *testing.T) {
			for _, e := range got.Errors {
				t.Errorf("page: %s", e)
			}
			ext := "<none>"
			if got.Extensions != nil {
				ext = *got.Extensions
			}
			t.Logf("opened %v, ws.extensions %q, %d/%d round trips (%d bytes) in %.0f ms, close %d %q clean %v; wire answer %q",
				got.Opened, ext, got.RoundTrips, got.Planned, got.Bytes, got.Millis, got.CloseCode, got.CloseReason, got.WasClean,
				tg.sn.conn(0).wireExtensions())
			rec := tg.sn.conn(0)
			req, resp, _, _, _ := rec.snapshot()
			if req != nil {
				t.Logf("Chromium offered %q", req.Header.Get("Sec-WebSocket-Extensions"))
				if o := req.Header.Get("Origin"); o != origin {
					t.Errorf("Origin %q; want %q", o, origin)
				}
			}
			if tg.denied {
				if got.Opened || got.CloseCode != 1006 {
					t.Errorf("origin not allowed: opened %v, close %d; want a failed open (1006)", got.Opened, got.CloseCode)
				}
				if resp == nil || resp.StatusCode != http.StatusForbidden {
					t.Errorf("origin not allowed: server answered %v; want 403", resp)
				}
				if n := tg.ts.h.opens.Load(); n != 0 {
					t.Errorf("origin not allowed: %d OnOpen; want 0", n)
				}
				return
			}
			if !got.Opened || got.Planned != browserMessages || got.RoundTrips != browserMessages {
				t.Fatalf("opened %v, %d of %d planned round trips; want %d", got.Opened, got.RoundTrips, got.Planned, browserMessages)
			}
			if got.CloseCode != 1000 || !got.WasClean {
				t.Errorf("close %d, wasClean %v; want 1000, clean", got.CloseCode, got.WasClean)
			}
			expectClose(t, tg.ts.h.nextClose(t), 1000, "browser done", true)
			if tg.ext == "" {
				if ext != "" {
					t.Errorf("ws.extensions %q with deflate off; want \"\"", ext)
				}
			} else if !strings.Contains(ext, "permessage-deflate") {
				t.Errorf("ws.extensions %q; want permessage-deflate", ext)
			}
			if w := rec.wireExtensions(); w != tg.ext {
				t.Errorf("wire: Sec-WebSocket-Extensions %q; want %q", w, tg.ext)
			}

			s := decodeSniffed(t, rec, tg.takeover, 0)
			checkEchoes(t, s, nil)
			if len(s.toClient) != browserMessages {
				t.Errorf("wire: %d server messages; want %d", len(s.toClient), browserMessages)
			}
			up := 0
			for _, m := range s.toServer {
				if m.compressed {
					up++
				}
			}
			down := checkServerCompression(t, s, tg.threshold)
			t.Logf("Chromium compressed %d of %d messages, the server %d; server sent %d bytes of messages as %d",
				up, len(s.toServer), down, byteTotal(s.fromServer), wireTotal(s.toClient))
			if tg.ext == "" {
				if up != 0 || down != 0 {
					t.Errorf("deflate off: %d client and %d server messages compressed; want none", up, down)
				}
				return
			}
			if up == 0 {
				t.Errorf("Chromium sent no compressed message: the test does not exercise inflate")
			}
			if down < 7 {
				t.Errorf("server compressed %d messages to Chromium; want at least the 7 large compressible ones", down)
			}
		})
	}
}

// lockedBuffer collects a child's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.b.Bytes()
	return string(b[max(0, len(b)-n):])
}
