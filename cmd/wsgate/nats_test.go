package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
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
	bin := buildCmd(t)
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

// TestNATSPasswordNotLogged: a NATS URL that cannot be used is logged
// with the password in its user information masked, in the URL and in
// the error that quotes it.
func TestNATSPasswordNotLogged(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	bin := buildCmd(t)
	for _, u := range []string{"nats://wsuser:SuperSecretPass@[::1", "nats://127.0.0.1:4222,nats://wsuser:SuperSecretPass@[::1"} {
		out, err := exec.Command(bin, "-nats", u, "-token-hmac-secret", "s", "-api-key", "k",
			"-addr", freeAddr(t), "-api-addr", freeAddr(t), "-admin", "").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "wsuser") {
			t.Fatalf("-nats %s: %v, want an error naming the URL:\n%s", u, err, out)
		}
		if strings.Contains(string(out), "SuperSecretPass") {
			t.Errorf("-nats %s: the password is in the log:\n%s", u, out)
		}
	}
}
