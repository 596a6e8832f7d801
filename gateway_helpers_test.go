package wsgate

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/loop"
)

const (
	gwSecret = "test-secret"
	gwAPIKey = "test-api-key"
)

// gwConfig is the configuration of the tests: HS256 tokens with
// gwSecret, and namespaces for each permission case.
func gwConfig() Config {
	hist := ChannelOptions{HistorySize: 100, HistoryTTL: Duration(time.Minute), ForceRecovery: true,
		AllowSubscribeForClient: true, AllowHistoryForSubscriber: true}
	pub := hist
	pub.AllowPublishForClient = true
	return Config{
		Client: ClientConfig{Token: TokenConfig{HMACSecretKey: gwSecret}},
		Channel: ChannelConfig{
			WithoutNamespace: hist,
			Namespaces: []Namespace{
				{Name: "chat", ChannelOptions: pub},
				{Name: "private", ChannelOptions: ChannelOptions{HistorySize: 10, HistoryTTL: Duration(time.Minute), ForceRecovery: true}},
				{Name: "plain", ChannelOptions: ChannelOptions{AllowSubscribeForClient: true}},
			},
		},
		HTTPAPI: HTTPAPIConfig{Key: gwAPIKey},
	}
}

type gwNode struct {
	*Node
	addr string // WebSocket
	api  string // base URL of the API
}

// startNode starts a node for cfg on free loopback addresses, with the
// API served by net/http, and stops both when the test ends.
func startNode(t testing.TB, cfg Config) *gwNode {
	t.Helper()
	return startNodeWith(t, cfg, NodeOptions{})
}

// startNodeWith is startNode with node options (a broker, engine options);
// logs are discarded.
func startNodeWith(t testing.TB, cfg Config, o NodeOptions) *gwNode {
	t.Helper()
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	n, err := NewNode(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	addr := freeLoopback(t)
	if err := n.Start(addr); err != nil {
		t.Fatal(err)
	}
	al, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: n.APIHandler()}
	go hs.Serve(al)
	t.Cleanup(func() {
		hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Shutdown(ctx)
	})
	return &gwNode{Node: n, addr: addr, api: "http://" + al.Addr().String()}
}

// token signs claims with HS256 and gwSecret.
func token(t testing.TB, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(gwSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// gwClient is a minimal WebSocket client speaking the protocol over a
// real socket: masked frames out, frames in.
type gwClient struct {
	t     testing.TB
	c     net.Conn
	br    *bufio.Reader
	pb    bool
	id    uint32
	queue []*protocol.Reply
}

// closedError is a close frame received.
type closedError struct {
	code   uint16
	reason string
}

func (e closedError) Error() string { return fmt.Sprintf("closed %d %q", e.code, e.reason) }

func dialNode(t testing.TB, addr string, protobuf bool) *gwClient {
	t.Helper()
	return dialPath(t, addr, WebSocketPath, protobuf)
}

func dialPath(t testing.TB, addr, path string, protobuf bool) *gwClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	if protobuf {
		req += "Sec-WebSocket-Protocol: " + ProtobufSubprotocol + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade of %s: status %d", path, resp.StatusCode)
	}
	if protobuf && resp.Header.Get("Sec-WebSocket-Protocol") != ProtobufSubprotocol {
		t.Fatalf("subprotocol %q", resp.Header.Get("Sec-WebSocket-Protocol"))
	}
	return &gwClient{t: t, c: c, br: br, pb: protobuf}
}

// writeFrame sends one masked frame.
func (g *gwClient) writeFrame(op codec.OpCode, p []byte) {
	g.t.Helper()
	var h []byte
	h = append(h, 0x80|byte(op))
	switch {
	case len(p) < 126:
		h = append(h, 0x80|byte(len(p)))
	case len(p) < 1<<16:
		h = append(h, 0x80|126, byte(len(p)>>8), byte(len(p)))
	default:
		h = append(h, 0x80|127)
		h = binary.BigEndian.AppendUint64(h, uint64(len(p)))
	}
	mask := [4]byte{1, 2, 3, 4}
	h = append(h, mask[:]...)
	m := make([]byte, len(p))
	for i := range p {
		m[i] = p[i] ^ mask[i%4]
	}
	if _, err := g.c.Write(append(h, m...)); err != nil {
		g.t.Fatal(err)
	}
}

// encode frames commands in the client's format.
func (g *gwClient) encode(cmds ...*protocol.Command) []byte {
	var out []byte
	for i, cmd := range cmds {
		if g.pb {
			b, err := cmd.MarshalCF()
			if err != nil {
				g.t.Fatal(err)
			}
			out = binary.AppendUvarint(out, uint64(len(b)))
			out = append(out, b...)
			continue
		}
		b, err := protocol.NewJSONCommandEncoder().Encode(cmd)
		if err != nil {
			g.t.Fatal(err)
		}
		if i > 0 {
			out = append(out, '\n')
		}
		out = append(out, b...)
	}
	return out
}

// send sends commands in one message, numbering those without an id.
func (g *gwClient) send(cmds ...*protocol.Command) {
	g.t.Helper()
	for _, c := range cmds {
		if c.Id == 0 && !isPong(c) {
			g.id++
			c.Id = g.id
		}
	}
	op := codec.OpText
	if g.pb {
		op = codec.OpBinary
	}
	g.writeFrame(op, g.encode(cmds...))
}

// readMessage reads one message (answering nothing; server pings of the
// WebSocket layer are off in the gateway); a close frame gives
// closedError.
func (g *gwClient) readMessage() ([]byte, error) {
	var msg []byte
	for {
		var h [2]byte
		if _, err := io.ReadFull(g.br, h[:]); err != nil {
			return nil, err
		}
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var b [2]byte
			io.ReadFull(g.br, b[:])
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			io.ReadFull(g.br, b[:])
			n = binary.BigEndian.Uint64(b[:])
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(g.br, p); err != nil {
			return nil, err
		}
		op := codec.OpCode(h[0] & 0x0f)
		if op == codec.OpClose {
			var ce closedError
			if len(p) >= 2 {
				ce.code = binary.BigEndian.Uint16(p)
				ce.reason = string(p[2:])
			}
			return nil, ce
		}
		if op == codec.OpPing || op == codec.OpPong {
			continue
		}
		msg = append(msg, p...)
		if h[0]&0x80 != 0 {
			return msg, nil
		}
	}
}

// next returns the next reply (pings included).
func (g *gwClient) next() (*protocol.Reply, error) {
	g.t.Helper()
	for len(g.queue) == 0 {
		m, err := g.readMessage()
		if err != nil {
			return nil, err
		}
		var d protocol.ReplyDecoder
		if g.pb {
			d = protocol.NewProtobufReplyDecoder(m)
		} else {
			d = protocol.NewJSONReplyDecoder(m)
		}
		for {
			r, err := d.Decode()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				g.t.Fatalf("bad reply %q: %v", m, err)
			}
			g.queue = append(g.queue, r)
		}
	}
	r := g.queue[0]
	g.queue = g.queue[1:]
	return r, nil
}

// reply returns the next reply that is not a server ping.
func (g *gwClient) reply() *protocol.Reply {
	g.t.Helper()
	for {
		r, err := g.next()
		if err != nil {
			g.t.Fatalf("reading a reply: %v", err)
		}
		if r.Id != 0 || r.Push != nil || r.Error != nil {
			return r
		}
	}
}

// call sends cmd and returns its reply (pushes before it are kept).
func (g *gwClient) call(cmd *protocol.Command) *protocol.Reply {
	g.t.Helper()
	g.send(cmd)
	var pushes []*protocol.Reply
	for {
		r := g.reply()
		if r.Id == cmd.Id {
			g.queue = append(pushes, g.queue...)
			return r
		}
		pushes = append(pushes, r)
	}
}

// expectClose reads until the close frame and checks its code.
func (g *gwClient) expectClose(code uint16) {
	g.t.Helper()
	for {
		_, err := g.next()
		var ce closedError
		if errors.As(err, &ce) {
			if ce.code != code {
				g.t.Fatalf("closed with %d %q, want %d", ce.code, ce.reason, code)
			}
			return
		}
		if err != nil {
			g.t.Fatalf("want close %d, got %v", code, err)
		}
	}
}

func (g *gwClient) connect(tok string) *protocol.ConnectResult {
	g.t.Helper()
	r := g.call(&protocol.Command{Connect: &protocol.ConnectRequest{Token: tok}})
	if r.Error != nil || r.Connect == nil {
		g.t.Fatalf("connect: %+v", r)
	}
	return r.Connect
}

func (g *gwClient) subscribe(req *protocol.SubscribeRequest) *protocol.Reply {
	g.t.Helper()
	return g.call(&protocol.Command{Subscribe: req})
}

// pub returns the next publication push of channel.
func (g *gwClient) pub(channel string) *protocol.Publication {
	g.t.Helper()
	for {
		r := g.reply()
		if r.Push != nil && r.Push.Pub != nil && r.Push.Channel == channel {
			return r.Push.Pub
		}
		g.t.Fatalf("want a publication of %s, got %+v", channel, r)
	}
}

// api calls the server API method with body and decodes the reply.
func (n *gwNode) apiCall(t *testing.T, method string, body any) map[string]any {
	t.Helper()
	status, out := n.apiRaw(t, method, gwAPIKey, body)
	if status != 200 {
		t.Fatalf("%s: status %d %s", method, status, out)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("%s: %s: %v", method, out, err)
	}
	return m
}

func (n *gwNode) apiRaw(t *testing.T, method, key string, body any) (int, []byte) {
	t.Helper()
	var b []byte
	switch v := body.(type) {
	case string:
		b = []byte(v)
	default:
		b, _ = json.Marshal(v)
	}
	req, _ := http.NewRequest("POST", n.api+"/api/"+method, bytes.NewReader(b))
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func (n *gwNode) publishAPI(t *testing.T, channel, data string) uint64 {
	t.Helper()
	m := n.apiCall(t, "publish", map[string]any{"channel": channel, "data": json.RawMessage(data)})
	res, ok := m["result"].(map[string]any)
	if !ok {
		t.Fatalf("publish: %v", m)
	}
	off, _ := res["offset"].(float64)
	return uint64(off)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// httpStatusOfUpgrade returns the status answering an upgrade on path.
func httpStatusOfUpgrade(t *testing.T, addr, path string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: "+addr+"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	c.SetDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode
}

// freeLoopback returns a free 127.0.0.1 address.
func freeLoopback(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// loopOptionsForSlow makes a connection that stops reading slow quickly:
// a small socket send buffer and a low high-water mark.
func loopOptionsForSlow() loop.Options {
	return loop.Options{SocketSendBuffer: 4096, MaxPendingBytes: 1 << 20, HighWaterBytes: 16 << 10}
}

// publishLoop publishes {"x":1} to ch through the API, pausing pause
// after each publication, until stop is called (stop waits for the
// publisher to end); top holds the offset of the last publication that
// succeeded.
func (n *gwNode) publishLoop(ch string, pause time.Duration) (top *atomic.Uint64, stop func()) {
	top = new(atomic.Uint64)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if sp, err := n.publish(pubAPI, ch, []byte(`{"x":1}`), PublishOptions{}); err == nil {
				top.Store(sp.Offset)
			}
			time.Sleep(pause)
		}
	}()
	return top, func() { close(done); wg.Wait() }
}

// postLegacy posts body to the older single endpoint, POST /api, with
// the API key, and returns the status and the answer (a redirect is not
// followed).
func (n *gwNode) postLegacy(t *testing.T, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", n.api+"/api", strings.NewReader(body))
	req.Header.Set("X-API-Key", gwAPIKey)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}
