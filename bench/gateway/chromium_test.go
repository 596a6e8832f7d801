package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// centrifuge-js in headless Chromium: the test serves testdata/sdk_page.html,
// scenarios.mjs and the SDK's browser bundles from 127.0.0.1, proxies the
// page's /api/<method> calls to the target's HTTP API (which has no CORS),
// and checks the reports the page posts back.

// chromiumPath returns Debian's chromium, skipping the test when it is
// missing (failing in CI).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if inCI() {
		t.Fatal("chromium is not installed (CI=true: run .ci/deps.sh)")
	}
	t.Skip("chromium is not installed")
	return ""
}

// pageReport is what sdk_page.html posts to /result.
type pageReport struct {
	UserAgent     string            `json:"userAgent"`
	SecureContext bool              `json:"secureContext"`
	Results       []json.RawMessage `json:"results"`
	Errors        []string          `json:"errors"`
}

func TestChromiumSDK(t *testing.T) {
	chromium := chromiumPath(t)
	nodePath(t) // the bundles come from testdata/node_modules
	forEachTarget(t, func(t *testing.T, tg *Target) {
		apiURL, err := url.Parse(tg.API)
		if err != nil {
			t.Fatal(err)
		}
		proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host = apiURL.Scheme, apiURL.Host
			r.Out.Header.Set("X-API-Key", tg.Config.APIKey)
			r.Out.Header.Set("Content-Type", "application/json")
			r.Out.Header.Del("Origin")
		}}
		results := make(chan []byte, 1)
		mux := http.NewServeMux()
		mux.HandleFunc("GET /{$}", serveFile("sdk_page.html", "text/html; charset=utf-8"))
		mux.HandleFunc("GET /scenarios.mjs", serveFile("scenarios.mjs", "text/javascript"))
		mux.HandleFunc("GET /sdk/json.js", serveFile("node_modules/centrifuge/dist/centrifuge.js", "text/javascript"))
		mux.HandleFunc("GET /sdk/protobuf.js", serveFile("node_modules/centrifuge/dist/centrifuge.protobuf.js", "text/javascript"))
		mux.Handle("POST /api/{method}", proxy)
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

		q := url.Values{
			"ws": {tg.WS}, "secret": {tg.Config.Secret},
			"prefix": {strconv.FormatInt(time.Now().UnixNano(), 10)},
		}
		body, out := runChromium(t, chromium, hs.URL+"/?"+q.Encode(), results)
		var rep pageReport
		if err := json.Unmarshal(body, &rep); err != nil {
			t.Fatalf("page report: %v\n%s", err, body)
		}
		t.Logf("browser: %s (secure context %v)", rep.UserAgent, rep.SecureContext)
		for _, e := range rep.Errors {
			t.Errorf("page: %s", e)
		}
		if len(rep.Results) != len(formats) {
			t.Fatalf("page reported %d runs; want %d (json, protobuf)\nchromium:\n%s", len(rep.Results), len(formats), out)
		}
		for i, format := range formats {
			t.Run(format, func(t *testing.T) {
				var f struct {
					Format string `json:"format"`
				}
				json.Unmarshal(rep.Results[i], &f)
				if f.Format != format {
					t.Fatalf("run %d is %q; want %q", i, f.Format, format)
				}
				checkJSScenarios(t, rep.Results[i], true)
			})
		}
	})
}

func serveFile(name, contentType string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", contentType)
		w.Write(b)
	}
}

// runChromium opens page in a headless Chromium with a fresh profile and
// returns the first body posted to results, and the browser's output.
// flags are added to the command line.
func runChromium(t *testing.T, chromium, page string, results <-chan []byte, flags ...string) ([]byte, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--disable-quic", "--no-first-run", "--no-default-browser-check",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-extensions", "--no-proxy-server", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
		"--user-data-dir=" + t.TempDir()}, flags...)
	cmd := exec.Command(chromium, append(args, page)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its helpers are killed with it
	out := &tailBuffer{max: 16 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	var once sync.Once
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		once.Do(func() {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		})
	}
	defer stop()
	select {
	case body := <-results:
		return body, out.String()
	case err := <-exited:
		t.Fatalf("chromium exited before reporting: %v\n%s", err, out.String())
	case <-ctx.Done():
		t.Fatalf("no report from the page within 60 s\nchromium:\n%s", out.String())
	}
	return nil, ""
}
