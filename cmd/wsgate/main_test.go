package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start runs the built command with args and waits for a log line
// containing want on stderr; it returns the lines seen so far. The
// process is killed when the test ends.
func start(t *testing.T, bin string, want string, args ...string) []string {
	t.Helper()
	return run(t, bin, want, args...).snapshot()
}

// TestCLI runs the gateway with the documented flags and the echo
// subcommand, over real sockets.
func TestCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	bin := buildCmd(t)
	ws, api := freeAddr(t), freeAddr(t)
	start(t, bin, "api listening", "-addr", ws, "-api-addr", api, "-admin", "", "-token-hmac-secret", "s", "-api-key", "k")
	post := func(key string) int {
		return postAPI(t, "http://"+api+"/api/info", key, `{}`)
	}
	if st := post("k"); st != 200 {
		t.Fatalf("api with -api-key: %d", st)
	}
	if st := post("other"); st != 401 {
		t.Fatalf("api with a wrong key: %d", st)
	}
	// The older single endpoint is served too (not redirected to /api/).
	if st := postAPI(t, "http://"+api+"/api", "k", `{"method":"info","params":{}}`); st != 200 {
		t.Fatalf("POST /api: %d", st)
	}
	// The WebSocket path upgrades.
	c, err := net.Dial("tcp", ws)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /connection/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	c.SetDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}

	// Without flags the embedded configuration runs and prints a token.
	lines := start(t, bin, "test token", "-addr", freeAddr(t), "-api-addr", freeAddr(t), "-admin", "")
	if !strings.Contains(strings.Join(lines, "\n"), "generated API key") {
		t.Fatalf("no generated key logged: %q", lines)
	}

	// wsgate echo keeps the old flags.
	start(t, bin, "wsgate listening", "echo", "-addr", freeAddr(t), "-broadcast", "-admin", "")

	// A config file with an unknown key is refused, naming it.
	cfg := filepath.Join(t.TempDir(), "c.json")
	writeFile(t, cfg, `{"client":{"token":{"hmac_secret_key":"s"},"nope":1},"http_api":{"key":"k"}}`)
	out, err := exec.Command(bin, "-config", cfg, "-addr", freeAddr(t), "-api-addr", freeAddr(t), "-admin", "").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "nope") {
		t.Fatalf("unknown key: %v %s", err, out)
	}
}

func writeFile(t *testing.T, name, s string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestTestTokenOnlyForGeneratedSecret: the token for user "test" that the
// gateway prints at start is signed with its HMAC secret, so it is a
// working credential; it is printed only when that secret is the random
// one of the embedded configuration, never for an operator's secret
// (from the file, a WSGATE_* variable or a flag), which would put a
// 24-hour token into the logs of every deployment.
func TestTestTokenOnlyForGeneratedSecret(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	bin := buildCmd(t)
	addrs := func() []string {
		return []string{"-addr", freeAddr(t), "-api-addr", freeAddr(t), "-admin", freeAddr(t)}
	}
	cfg := configFile(t, "c.yaml", "client:\n  token: {hmac_secret_key: operator-secret}\nhttp_api: {key: k}\n")
	for _, c := range []struct {
		name string
		args []string
	}{
		{"file", append([]string{"-config", cfg}, addrs()...)},
		{"flag", append([]string{"-token-hmac-secret", "operator-secret"}, addrs()...)},
	} {
		lines := start(t, bin, "admin listening", c.args...)
		if l := strings.Join(lines, "\n"); strings.Contains(l, "test token") {
			t.Errorf("secret from the %s: a test token was printed:\n%s", c.name, l)
		}
	}
	t.Setenv("WSGATE_CLIENT_TOKEN_HMAC_SECRET_KEY", "operator-secret")
	if l := strings.Join(start(t, bin, "admin listening", addrs()...), "\n"); strings.Contains(l, "test token") {
		t.Errorf("secret from the environment: a test token was printed:\n%s", l)
	}
	os.Unsetenv("WSGATE_CLIENT_TOKEN_HMAC_SECRET_KEY")
	// The generated secret's token is printed: it is the only way to use it.
	if l := strings.Join(start(t, bin, "admin listening", addrs()...), "\n"); !strings.Contains(l, "test token") {
		t.Errorf("generated secret: no test token printed:\n%s", l)
	}
}

// postAPI posts body to url with the API key and returns the status; a
// redirect is not followed.
func postAPI(t *testing.T, url, key, body string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("X-API-Key", key)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
