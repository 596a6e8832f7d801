package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNATSUnreachable runs the gateway with -nats pointing at a port
// nobody listens on: it starts, GET /ready answers 503, a publish with
// history answers the API's internal error, and /api/info names the node
// with -name; on the admin address /readyz answers 503 and /healthz 200.
// Without -nats, /ready answers 200.
func TestNATSUnreachable(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	bin := filepath.Join(t.TempDir(), "wsgate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	call := func(method, url, body string) (int, string) {
		var resp *http.Response
		var err error
		// "api listening" is logged as the listener starts: retry a
		// refused connection for a while.
		for i := 0; i < 100; i++ {
			req, _ := http.NewRequest(method, url, strings.NewReader(body))
			req.Header.Set("X-API-Key", "k")
			if resp, err = http.DefaultClient.Do(req); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	ws, api, admin := freeAddr(t), freeAddr(t), freeAddr(t)
	start(t, bin, "admin listening", "-addr", ws, "-api-addr", api, "-admin", admin, "-api-key", "k",
		"-nats", "nats://"+freeAddr(t), "-name", "edge-1")
	if code, body := call("GET", "http://"+api+"/ready", ""); code != http.StatusServiceUnavailable {
		t.Fatalf("/ready with NATS unreachable: %d %s", code, body)
	}
	if code, body := call("GET", "http://"+admin+"/readyz", ""); code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "not ready: ") {
		t.Fatalf("/readyz with NATS unreachable: %d %s", code, body)
	}
	if code, body := call("GET", "http://"+admin+"/healthz", ""); code != 200 {
		t.Fatalf("/healthz with NATS unreachable: %d %s", code, body)
	}
	if code, body := call("POST", "http://"+api+"/api/publish", `{"channel":"news:a","data":{}}`); code != 200 || !strings.Contains(body, `"code":100`) {
		t.Fatalf("publish with NATS unreachable: %d %s", code, body)
	}
	code, body := call("POST", "http://"+api+"/api/info", `{}`)
	var info struct {
		Result struct {
			Nodes []struct {
				Name string `json:"name"`
			} `json:"nodes"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(body), &info); code != 200 || err != nil || len(info.Result.Nodes) != 1 || info.Result.Nodes[0].Name != "edge-1" {
		t.Fatalf("/api/info: %d %s", code, body)
	}

	ws2, api2 := freeAddr(t), freeAddr(t)
	start(t, bin, "api listening", "-addr", ws2, "-api-addr", api2, "-admin", "", "-api-key", "k")
	if code, body := call("GET", "http://"+api2+"/ready", ""); code != 200 {
		t.Fatalf("/ready without NATS: %d %s", code, body)
	}
}
