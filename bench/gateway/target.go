package gateway

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Kinds of Target.
const (
	Centrifugo = "centrifugo"
	Wsgate     = "wsgate"
)

// Namespaces of DefaultConfig, used by the tests and by wsbench.
const (
	// NSChat keeps history, forces recovery and lets clients publish.
	NSChat = "chat"
	// NSFeed keeps history and forces recovery; clients may not publish.
	NSFeed = "feed"
)

// ChannelOptions are the channel options both servers are configured
// with, under Centrifugo v6's keys.
type ChannelOptions struct {
	HistorySize             int    `json:"history_size,omitempty"`
	HistoryTTL              string `json:"history_ttl,omitempty"`
	ForceRecovery           bool   `json:"force_recovery,omitempty"`
	AllowSubscribeForClient bool   `json:"allow_subscribe_for_client,omitempty"`
	AllowPublishForClient   bool   `json:"allow_publish_for_client,omitempty"`
}

// Namespace is one entry of channel.namespaces.
type Namespace struct {
	Name string `json:"name"`
	ChannelOptions
}

// Config is the configuration both servers get: the part of Centrifugo
// v6's configuration that wsgate's gateway reads. Listen addresses are not
// in it (Centrifugo gets them in its own keys, wsgate as flags).
type Config struct {
	Secret           string
	APIKey           string
	AllowedOrigins   []string
	WithoutNamespace ChannelOptions
	Namespaces       []Namespace
}

// DefaultConfig returns the configuration of the SDK tests and the bench:
// a random HMAC secret and API key, every origin allowed (the browser test
// serves its page from another port), channels without namespace that
// clients may subscribe to, and NSChat and NSFeed with a history of
// history entries kept for five minutes.
func DefaultConfig(history int) Config {
	return Config{
		Secret:           randomHex(16),
		APIKey:           randomHex(16),
		AllowedOrigins:   []string{"*"},
		WithoutNamespace: ChannelOptions{AllowSubscribeForClient: true},
		Namespaces: []Namespace{
			{Name: NSChat, ChannelOptions: ChannelOptions{
				HistorySize: history, HistoryTTL: "300s", ForceRecovery: true,
				AllowSubscribeForClient: true, AllowPublishForClient: true,
			}},
			{Name: NSFeed, ChannelOptions: ChannelOptions{
				HistorySize: history, HistoryTTL: "300s", ForceRecovery: true,
				AllowSubscribeForClient: true,
			}},
		},
	}
}

// configJSON returns the configuration file for kind, listening on ws
// and api (host:port) for Centrifugo.
func (c Config) configJSON(kind, ws, api string) ([]byte, error) {
	namespaces := c.Namespaces
	if namespaces == nil {
		namespaces = []Namespace{}
	}
	client := map[string]any{"token": map[string]any{"hmac_secret_key": c.Secret}}
	if len(c.AllowedOrigins) > 0 {
		client["allowed_origins"] = c.AllowedOrigins
	}
	doc := map[string]any{
		"client":   client,
		"http_api": map[string]any{"key": c.APIKey},
		"channel": map[string]any{
			"without_namespace": c.WithoutNamespace,
			"namespaces":        namespaces,
		},
	}
	if kind == Centrifugo {
		wsHost, wsPort, err := net.SplitHostPort(ws)
		if err != nil {
			return nil, err
		}
		apiHost, apiPort, err := net.SplitHostPort(api)
		if err != nil {
			return nil, err
		}
		port, err := strconv.Atoi(wsPort)
		if err != nil {
			return nil, err
		}
		doc["http_server"] = map[string]any{
			"address": wsHost, "port": port,
			"internal_address": apiHost, "internal_port": apiPort,
		}
		doc["log"] = map[string]any{"level": "warn"}
	}
	return json.MarshalIndent(doc, "", "  ")
}

// Target is a running server that speaks Centrifugo's client protocol
// and server HTTP API: Centrifugo itself or wsgate's gateway.
type Target struct {
	Kind   string
	Config Config
	// WS is the client endpoint, ws://host:port/connection/websocket.
	WS string
	// API is the HTTP API's base, http://host:port/api; methods are
	// POSTed to API+"/"+method.
	API string
	// ConfigFile is the configuration file the server was started with.
	ConfigFile string

	cmd    *exec.Cmd
	exited chan struct{}
	output *tailBuffer
	http   *http.Client
}

// Start runs bin as a server of kind with cfg on free ports of 127.0.0.1
// and returns when its HTTP API answers. dir holds its configuration file.
// extra is appended to the command line. A start that fails because
// another process took a port is retried.
func Start(kind, bin string, cfg Config, dir string, extra ...string) (*Target, error) {
	var err error
	for range 3 {
		var t *Target
		t, err = start(kind, bin, cfg, dir, extra)
		if err == nil {
			return t, nil
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, err
}

func start(kind, bin string, cfg Config, dir string, extra []string) (*Target, error) {
	ws, err := freeAddr()
	if err != nil {
		return nil, err
	}
	api, err := freeAddr()
	if err != nil {
		return nil, err
	}
	conf, err := cfg.configJSON(kind, ws, api)
	if err != nil {
		return nil, err
	}
	file := filepath.Join(dir, kind+".json")
	if err := os.WriteFile(file, conf, 0o600); err != nil {
		return nil, err
	}
	var args []string
	switch kind {
	case Centrifugo:
		args = []string{"--config", file}
	case Wsgate:
		// No drain spread: a target stops at once, as Centrifugo does.
		args = []string{"-config", file, "-addr", ws, "-api-addr", api, "-drain-period", "0s"}
	default:
		return nil, fmt.Errorf("unknown target kind %q", kind)
	}
	t := &Target{
		Kind: kind, Config: cfg, ConfigFile: file,
		WS:     "ws://" + ws + "/connection/websocket",
		API:    "http://" + api + "/api",
		exited: make(chan struct{}),
		output: &tailBuffer{max: 64 << 10},
		http:   &http.Client{Timeout: 10 * time.Second},
	}
	t.cmd = exec.Command(bin, append(args, extra...)...)
	t.cmd.Dir = dir
	t.cmd.Stdout, t.cmd.Stderr = t.output, t.output
	t.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := t.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		t.cmd.Wait()
		close(t.exited)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-t.exited:
			return nil, fmt.Errorf("%s exited at start (%v):\n%s", kind, t.cmd.ProcessState, t.output.String())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := t.Call(ctx, "info", struct{}{}, nil)
		cancel()
		if err == nil {
			if c, err := net.DialTimeout("tcp", ws, time.Second); err == nil {
				c.Close()
				return t, nil
			}
		}
		if time.Now().After(deadline) {
			t.Close()
			return nil, fmt.Errorf("%s: API not answering after 20 s (%v):\n%s", kind, err, t.output.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// PID is the server's process id.
func (t *Target) PID() int { return t.cmd.Process.Pid }

// Output returns the tail of the server's stdout and stderr.
func (t *Target) Output() string { return t.output.String() }

// Close stops the server (SIGTERM, then SIGKILL after 5 s).
func (t *Target) Close() error {
	select {
	case <-t.exited:
		return nil
	default:
	}
	syscall.Kill(-t.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-t.exited:
	case <-time.After(5 * time.Second):
		syscall.Kill(-t.cmd.Process.Pid, syscall.SIGKILL)
		<-t.exited
	}
	return nil
}

// Claims are the connection token claims the tests use.
type Claims struct {
	Sub      string          `json:"sub"`
	Exp      int64           `json:"exp,omitempty"`
	Info     json.RawMessage `json:"info,omitempty"`
	Channels []string        `json:"channels,omitempty"`
}

// Token returns an HS256 connection token for c signed with the target's
// secret.
func (t *Target) Token(c Claims) string { return HS256(t.Config.Secret, c) }

// HS256 returns a JWT with claims signed with HMAC-SHA256 and secret.
func HS256(secret string, claims any) string {
	enc := base64.RawURLEncoding
	header := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	body, err := json.Marshal(claims)
	if err != nil {
		panic(err)
	}
	signed := header + "." + enc.EncodeToString(body)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(signed))
	return signed + "." + enc.EncodeToString(mac.Sum(nil))
}

// APIError is the error object of an HTTP API reply.
type APIError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *APIError) Error() string { return fmt.Sprintf("api error %d: %s", e.Code, e.Message) }

// StatusError is an HTTP API answer other than 200.
type StatusError struct {
	Status int
	Body   string
}

func (e *StatusError) Error() string { return fmt.Sprintf("api: HTTP %d: %s", e.Status, e.Body) }

// Call POSTs req as JSON to the API method and decodes the reply's result
// into res (unless nil). An error object in the reply is an *APIError, an
// HTTP status other than 200 a *StatusError.
func (t *Target) Call(ctx context.Context, method string, req, res any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, t.API+"/"+method, bytes.NewReader(body))
	if err != nil {
		return err
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("X-API-Key", t.Config.APIKey)
	resp, err := t.http.Do(hr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return &StatusError{Status: resp.StatusCode, Body: string(b)}
	}
	var reply struct {
		Result json.RawMessage `json:"result"`
		Error  *APIError       `json:"error"`
	}
	if err := json.Unmarshal(b, &reply); err != nil {
		return fmt.Errorf("api %s: reply %q: %w", method, b, err)
	}
	if reply.Error != nil {
		return reply.Error
	}
	if res == nil {
		return nil
	}
	if len(reply.Result) == 0 {
		return fmt.Errorf("api %s: reply without result: %q", method, b)
	}
	return json.Unmarshal(reply.Result, res)
}

// PublishResult is the result of the publish method.
type PublishResult struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

// Publish publishes data (JSON) to channel through the HTTP API.
func (t *Target) Publish(ctx context.Context, channel string, data json.RawMessage) (PublishResult, error) {
	var res PublishResult
	err := t.Call(ctx, "publish", map[string]any{"channel": channel, "data": data}, &res)
	return res, err
}

// LookBinary returns the path of the server binary of kind: $CENTRIFUGO
// or $WSGATE when set, else for Centrifugo the one `go install` put in
// GOPATH/bin (see .ci/centrifugo.sh) or on PATH, and for wsgate a build of
// cmd/wsgate from the module root into dir.
func LookBinary(kind, dir string) (string, error) {
	switch kind {
	case Centrifugo:
		if p := os.Getenv("CENTRIFUGO"); p != "" {
			return p, nil
		}
		gopath, err := exec.Command("go", "env", "GOPATH").Output()
		if err == nil {
			p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "centrifugo")
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
		if p, err := exec.LookPath("centrifugo"); err == nil {
			return p, nil
		}
		return "", errors.New("centrifugo is not installed (bash .ci/centrifugo.sh installs v6.9.1)")
	case Wsgate:
		if p := os.Getenv("WSGATE"); p != "" {
			return p, nil
		}
		out := filepath.Join(dir, "wsgate")
		// Built in the root module (its go.mod has the gateway's
		// requirements), wherever in bench the test runs.
		root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/wsgate/wsgate").Output()
		if err != nil {
			return "", fmt.Errorf("find the wsgate module: %v", err)
		}
		cmd := exec.Command("go", "build", "-o", out, "./cmd/wsgate")
		cmd.Dir = strings.TrimSpace(string(root))
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build cmd/wsgate: %v\n%s", err, b)
		}
		return out, nil
	}
	return "", fmt.Errorf("unknown target kind %q", kind)
}

// Kinds returns the target kinds named in $GATEWAY_TARGETS (comma
// separated), by default both.
func Kinds() []string {
	v := os.Getenv("GATEWAY_TARGETS")
	if v == "" {
		return []string{Centrifugo, Wsgate}
	}
	var kinds []string
	for k := range strings.SplitSeq(v, ",") {
		if k = strings.TrimSpace(k); k != "" {
			kinds = append(kinds, k)
		}
	}
	return kinds
}

// freeAddr returns a 127.0.0.1 address with a port the kernel had free.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (w *tailBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	if len(w.b) > w.max {
		w.b = append(w.b[:0], w.b[len(w.b)-w.max:]...)
	}
	return len(p), nil
}

func (w *tailBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.b)
}
