package wsgate

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"
)

// TestReviewCmdqStress: clients send mixed batches (subscribes that
// create or recover, unsubscribes, publishes, histories, pings, bad
// sub_refresh) while the broker's gate flaps and the server API
// subscribes, unsubscribes and disconnects them, and some reset their
// connections. Nothing deadlocks or panics, and once all are gone no
// worker, channel or goroutine is left.
func TestReviewCmdqStress(t *testing.T) {
	cfg := slowConfig()
	cfg.Client.CommandRateLimit = -1
	n, b := startGatedNode(t, cfg, NodeOptions{})
	runtime.GC()
	before := runtime.NumGoroutine()
	const clients = 24
	chans := []string{"slow:a", "slow:b", "chat:c", "chat:d", "slow:e"}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(i), 7))
			for {
				select {
				case <-stop:
					return
				default:
				}
				g := dialNode(t, n.addr, i%2 == 1)
				g.c.SetDeadline(time.Now().Add(30 * time.Second))
				g.send(&protocol.Command{Connect: &protocol.ConnectRequest{Token: token(t, jwt.MapClaims{"sub": fmt.Sprint("u", i%4)})}})
				for range 5 + rnd.IntN(10) {
					var cmds []*protocol.Command
					for range 1 + rnd.IntN(6) {
						ch := chans[rnd.IntN(len(chans))]
						var c *protocol.Command
						switch rnd.IntN(7) {
						case 0, 1:
							c = &protocol.Command{Subscribe: &protocol.SubscribeRequest{Channel: ch, Recover: rnd.IntN(2) == 0, Offset: uint64(rnd.IntN(5))}}
						case 2:
							c = &protocol.Command{Unsubscribe: &protocol.UnsubscribeRequest{Channel: ch}}
						case 3:
							c = &protocol.Command{Publish: &protocol.PublishRequest{Channel: ch, Data: []byte(`{"x":1}`)}}
						case 4:
							c = &protocol.Command{History: &protocol.HistoryRequest{Channel: ch, Limit: 3}}
						case 5:
							c = &protocol.Command{Ping: &protocol.PingRequest{}}
						default:
							c = &protocol.Command{SubRefresh: &protocol.SubRefreshRequest{Channel: ch, Token: "x"}}
						}
						cmds = append(cmds, c)
					}
					g.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
					if _, err := g.c.Write(nil); err != nil {
						break
					}
					func() {
						defer func() { recover() }()
						g.send(cmds...)
					}()
					time.Sleep(time.Duration(rnd.IntN(3)) * time.Millisecond)
				}
				if rnd.IntN(2) == 0 {
					g.c.(*net.TCPConn).SetLinger(0)
				}
				g.c.Close()
			}
		}()
	}
	wg.Add(2)
	go func() { // the gate flaps
		defer wg.Done()
		for {
			select {
			case <-stop:
				b.release()
				return
			case <-time.After(7 * time.Millisecond):
			}
			b.shut()
			time.Sleep(5 * time.Millisecond)
			b.release()
		}
	}()
	go func() { // the server API
		defer wg.Done()
		rnd := rand.New(rand.NewPCG(99, 1))
		for {
			select {
			case <-stop:
				return
			default:
			}
			user := fmt.Sprint("u", rnd.IntN(4))
			ch := chans[rnd.IntN(len(chans))]
			switch rnd.IntN(3) {
			case 0:
				n.apiRaw(t, "subscribe", gwAPIKey, map[string]any{"channel": ch, "user": user})
			case 1:
				n.apiRaw(t, "unsubscribe", gwAPIKey, map[string]any{"channel": ch, "user": user})
			default:
				if rnd.IntN(4) == 0 {
					n.apiRaw(t, "disconnect", gwAPIKey, map[string]any{"user": user})
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	time.Sleep(3 * time.Second)
	close(stop)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		buf := make([]byte, 1<<20)
		t.Fatalf("stuck:\n%s", buf[:runtime.Stack(buf, true)])
	}
	b.release()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		http.DefaultClient.CloseIdleConnections() // the API calls' keep-alive goroutines
		n.work.mu.Lock()
		busy := n.work.n
		n.work.mu.Unlock()
		if busy == 0 && n.NumChannels() == 0 && n.Server().Conns() == 0 && runtime.NumGoroutine() <= before+2 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	n.work.mu.Lock()
	busy := n.work.n
	n.work.mu.Unlock()
	if busy != 0 || n.NumChannels() != 0 || n.Server().Conns() != 0 || n.NumClients() != 0 {
		buf := make([]byte, 1<<20)
		t.Fatalf("left: workers %d channels %d conns %d clients %d\n%s", busy, n.NumChannels(), n.Server().Conns(), n.NumClients(), buf[:runtime.Stack(buf, true)])
	}
	if g := runtime.NumGoroutine(); g > before+2 {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines, %d before\n%s", g, before, buf[:runtime.Stack(buf, true)])
	}
}
