// Command nbio is the github.com/lesismal/nbio peer server of the benchmark
// harness. It follows the contract in bench/peers/internal/peer.
//
// Configuration, from nbio v1.6.12's README ("1M Websocket Connections
// Benchmark", "Different IOMod") and the nbio_nonblocking server of
// lesismal/go-websocket-benchmark that the README links:
//   - nbhttp.Engine with IOMod = IOModNonBlocking: every connection is
//     served by the epoll pollers, no goroutine per connection; this is the
//     mode the README measures at 1M connections.
//   - NPoller = -loops, default GOMAXPROCS (nbio's own default is
//     NumCPU/4; one poller per CPU matches wsgate's one loop per CPU).
//   - ReleaseWebsocketPayload true: the payload buffer goes back to nbio's
//     pool after OnMessage (the benchmark server sets it, and so does
//     websocket.DefaultEngine).
//   - Upgrader.KeepaliveTime = 0: no read deadline on upgraded connections
//     (the default is 120 s, which would drop idle connections; the
//     benchmark server clears the deadline after Upgrade).
//   - -deflate: Upgrader.EnableCompression(true) with SetCompressionLevel(1),
//     nbio's default level; nbio answers no context takeover, also to
//     -deflate-takeover (it has no server context takeover).
//   - -broadcast: WriteMessage to every registered connection; nbio's
//     writes never block (they queue on the connection).
//   - Read limit: nbio's default MessageLengthLimit, 4 MiB.
package main

import (
	"compress/flate"
	"net/http"
	"runtime"

	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/wsgate/wsgate/bench/peers/internal/peer"
)

const name = "nbio"

func main() {
	cfg := peer.ParseFlags(name)

	s := &server{broadcast: cfg.Broadcast, conns: peer.NewConns[*websocket.Conn](cfg.Broadcast)}

	u := websocket.NewUpgrader()
	u.KeepaliveTime = 0
	if cfg.Deflate {
		u.EnableCompression(true)
		if err := u.SetCompressionLevel(flate.BestSpeed); err != nil {
			peer.Fatalf(name, "compression level: %v", err)
		}
	}
	u.OnOpen(s.onOpen)
	u.OnClose(s.onClose)
	u.OnMessage(s.onMessage)

	loops := cfg.Loops
	if loops == 0 {
		loops = runtime.GOMAXPROCS(0)
	}
	engine := nbhttp.NewEngine(nbhttp.Config{
		Network:                 "tcp",
		Addrs:                   []string{cfg.Addr},
		IOMod:                   nbhttp.IOModNonBlocking,
		NPoller:                 loops,
		ReleaseWebsocketPayload: true,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Upgrade has answered the client when it fails.
			_, _ = u.Upgrade(w, r, nil)
		}),
	})
	if err := engine.Start(); err != nil {
		peer.Fatalf(name, "listen %s: %v", cfg.Addr, err)
	}
	peer.ServeAdmin(name, cfg.Admin, s.conns.Load)
	// Start resolves the address in place (a port of 0 becomes the real one).
	peer.Logf(name, "listening on %s (pollers=%d broadcast=%v deflate=%v)", engine.Addrs[0], loops, cfg.Broadcast, cfg.Deflate)
	if cfg.Takeover {
		peer.Logf(name, "-deflate-takeover: nbio has no server context takeover; it answers server_no_context_takeover")
	}

	peer.WaitSignal(name, nil)
}

type server struct {
	conns     *peer.Conns[*websocket.Conn]
	broadcast bool
}

func (s *server) onOpen(c *websocket.Conn) {
	s.conns.Open(c)
}

func (s *server) onClose(c *websocket.Conn, _ error) {
	s.conns.Close(c)
}

func (s *server) onMessage(c *websocket.Conn, mt websocket.MessageType, p []byte) {
	if s.broadcast && mt == websocket.TextMessage {
		if rest, ok := peer.BroadcastPayload(p); ok {
			s.conns.Each(func(m *websocket.Conn) { _ = m.WriteMessage(websocket.TextMessage, rest) })
			return
		}
	}
	// A failed write closes the connection inside nbio.
	_ = c.WriteMessage(mt, p)
}
