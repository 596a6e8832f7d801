package cluster

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/natsbroker"
)

// reviewWS is a bare JSON client of the gateway over a real socket.
type reviewWS struct {
	c  net.Conn
	br *bufio.Reader
}

func reviewDial(t *testing.T, addr string) *reviewWS {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET /connection/websocket HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", addr)
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if l == "\r\n" {
			break
		}
	}
	return &reviewWS{c: c, br: br}
}

func (w *reviewWS) send(t *testing.T, p string) {
	f := []byte{0x81}
	switch {
	case len(p) < 126:
		f = append(f, 0x80|byte(len(p)))
	default:
		f = append(f, 0x80|126, byte(len(p)>>8), byte(len(p)))
	}
	f = append(f, 0, 0, 0, 0) // mask key 0: the payload goes as it is
	if _, err := w.c.Write(append(f, p...)); err != nil {
		t.Fatal(err)
	}
}

// replies reads one message and returns its replies (JSON lines).
func (w *reviewWS) replies(t *testing.T) []map[string]json.RawMessage {
	var h [2]byte
	if _, err := io.ReadFull(w.br, h[:]); err != nil {
		t.Fatal(err)
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		io.ReadFull(w.br, b[:])
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		io.ReadFull(w.br, b[:])
		n = binary.BigEndian.Uint64(b[:])
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(w.br, p); err != nil {
		t.Fatal(err)
	}
	if h[0]&0x0f == 8 {
		t.Fatalf("closed: %q", p)
	}
	var out []map[string]json.RawMessage
	for _, l := range strings.Split(string(p), "\n") {
		var m map[string]json.RawMessage
		if json.Unmarshal([]byte(l), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// reply returns the reply with id (pushes and pings are skipped).
func (w *reviewWS) reply(t *testing.T, id int) map[string]json.RawMessage {
	for {
		for _, m := range w.replies(t) {
			if string(m["id"]) == fmt.Sprint(id) {
				return m
			}
		}
	}
}

// The load of TestReviewCmdqRecoverBusyChannelNATS.
var (
	reviewPublishers   = 4
	reviewPublishPause = time.Duration(0)
	reviewLinkDelay    = time.Duration(0)
)

// TestReviewCmdqRecoverBusyChannelNATS: with the NATS broker, a history
// read from a position costs one JetStream round trip per publication
// between the channel's newest and the position (History walks back from
// the last message). A recovering subscribe now reads with no lock held
// and reads again what was delivered meanwhile: when the channel gets
// more publications during a read than the read covered (here another
// node publishes ~10k/s, NATS on loopback; or ~1k/s with a 1-2 ms link to
// JetStream) each read is longer than the one before, the position falls
// past RecoveryMaxPublicationLimit and the subscribe is answered
// recovered: false (or error 100 after maxReadRounds): 5 publications
// back, well within history. Before the change the read was made under
// the channel's lock and always recovered. (The relay is left without
// delay: its per-chunk delay limits bandwidth and would blur the cause.)
func TestReviewCmdqRecoverBusyChannelNATS(t *testing.T) {
	s := startNATS(t, t.TempDir(), -1)
	defer s.Shutdown()
	r := newRelay(t, s.Addr().String())
	nb, err := natsbroker.New(natsbroker.Options{URL: "nats://" + r.addr(), Name: "gw", MaxHistorySize: 1000,
		Timeout: 5 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nb.Close)
	waitFor(t, func() bool { return nb.Ready() == nil })
	cfg := wsgate.Config{
		Client:  wsgate.ClientConfig{Token: wsgate.TokenConfig{HMACSecretKey: secret}, CommandRateLimit: -1},
		HTTPAPI: wsgate.HTTPAPIConfig{Key: "k"},
		Channel: wsgate.ChannelConfig{WithoutNamespace: wsgate.ChannelOptions{HistorySize: 1000,
			HistoryTTL: wsgate.Duration(time.Hour), ForceRecovery: true, AllowSubscribeForClient: true}},
	}
	n, err := wsgate.NewNode(cfg, wsgate.NodeOptions{Broker: nb, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	if err := n.Start(addr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Shutdown(t.Context()) })

	pub := newBroker(t, s.ClientURL(), "pub", nil)
	const ch = "hot"
	sp, err := pub.Publish(ch, []byte(`{"n":0}`), hist)
	if err != nil {
		t.Fatal(err)
	}
	epoch := sp.Epoch
	var top atomic.Uint64
	top.Store(sp.Offset)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range reviewPublishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if sp, err := pub.Publish(ch, []byte(`{"x":1}`), hist); err == nil {
					for {
						t := top.Load()
						if sp.Offset <= t || top.CompareAndSwap(t, sp.Offset) {
							break
						}
					}
				}
				time.Sleep(reviewPublishPause)
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	waitFor(t, func() bool { return top.Load() > 50 })
	t0, s0 := time.Now(), top.Load()
	time.Sleep(300 * time.Millisecond)
	t.Logf("publish rate %.0f/s", float64(top.Load()-s0)/time.Since(t0).Seconds())
	r.slow(reviewLinkDelay)
	defer r.slow(0)

	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "r"}).SignedString([]byte(secret))
	const tries = 4
	failed := 0
	var last string
	for range tries {
		w := reviewDial(t, addr)
		w.send(t, `{"id":1,"connect":{"token":"`+tok+`"}}`)
		w.reply(t, 1)
		w.send(t, fmt.Sprintf(`{"id":2,"subscribe":{"channel":%q,"recover":true,"epoch":%q,"offset":%d}}`, ch, epoch, top.Load()-5))
		m := w.reply(t, 2)
		var res struct {
			Recovered    bool `json:"recovered"`
			Publications []struct {
				Offset uint64 `json:"offset"`
			} `json:"publications"`
		}
		json.Unmarshal(m["subscribe"], &res)
		if m["error"] != nil || !res.Recovered {
			failed++
			last = fmt.Sprintf("error %s subscribe %s", m["error"], m["subscribe"])
		} else {
			t.Logf("recovered %d publications", len(res.Publications))
		}
		w.c.Close()
	}
	if failed > 0 {
		t.Fatalf("%d of %d recovering subscribes (5 publications back) failed; last: %s", failed, tries, last)
	}
}
