// Command gorilla is the github.com/gorilla/websocket peer server of the
// benchmark harness: the classic net/http server with one goroutine per
// connection. It follows the contract in bench/peers/internal/peer.
//
// Configuration, from gorilla/websocket v1.5.3's package doc and Upgrader
// field docs:
//   - Upgrader with ReadBufferSize/WriteBufferSize 0, so the buffers the
//     HTTP server allocated are reused, and a WriteBufferPool, which the
//     field doc recommends for "a modest volume of writes across a large
//     number of connections".
//   - One reader goroutine per connection (the doc's concurrency rule: one
//     concurrent reader, one concurrent writer). Since -broadcast writes
//     from other goroutines, every data write holds the connection's write
//     mutex.
//   - SetReadLimit 16 MiB (gorilla has no default limit).
//   - The default close handler answers a close frame; the default ping
//     handler answers with a pong.
//   - -deflate: Upgrader.EnableCompression; gorilla negotiates no context
//     takeover and compresses at level 1 by default.
//   - -broadcast: a registry of connections; the broadcasting goroutine
//     writes one PreparedMessage (the doc's way to send one payload to
//     many connections: framed and compressed once per variant) to each
//     connection under its write mutex.
//
// -loops has no meaning for gorilla and is ignored.
package main

import (
	"net"
	"net/http"
	"sync"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/bench/peers/internal/peer"
)

const (
	name      = "gorilla"
	readLimit = 16 << 20
)

func main() {
	cfg := peer.ParseFlags(name)

	s := &server{
		broadcast: cfg.Broadcast,
		conns:     peer.NewConns[*conn](cfg.Broadcast),
		upgrader: websocket.Upgrader{
			WriteBufferPool:   &sync.Pool{},
			EnableCompression: cfg.Deflate,
		},
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		peer.Fatalf(name, "listen %s: %v", cfg.Addr, err)
	}
	peer.ServeAdmin(name, cfg.Admin, s.conns.Load)
	peer.Logf(name, "listening on %s (broadcast=%v deflate=%v)", ln.Addr(), cfg.Broadcast, cfg.Deflate)

	failed := make(chan error, 1)
	go func() { failed <- http.Serve(ln, s) }()
	peer.WaitSignal(name, failed)
}

type server struct {
	upgrader  websocket.Upgrader
	conns     *peer.Conns[*conn]
	broadcast bool
}

// conn is a connection with the mutex that serialises its writers.
type conn struct {
	ws *websocket.Conn
	mu sync.Mutex
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade has answered with an HTTP error
	}
	c := &conn{ws: ws}
	ws.SetReadLimit(readLimit)
	s.conns.Open(c)
	s.serve(c)
	_ = ws.Close()
	s.conns.Close(c)
}

// serve echoes until the connection fails or closes. ReadMessage returns
// an error after the default close handler has answered a close frame.
func (s *server) serve(c *conn) {
	for {
		mt, p, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		if s.broadcast && mt == websocket.TextMessage {
			if rest, ok := peer.BroadcastPayload(p); ok {
				if s.fanOut(rest) != nil {
					return
				}
				continue
			}
		}
		c.mu.Lock()
		err = c.ws.WriteMessage(mt, p)
		c.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// fanOut writes p to every registered connection from this goroutine,
// outside the registry lock so that a slow reader delays only this
// broadcast. A failed write is left to that connection's reader to notice.
func (s *server) fanOut(p []byte) error {
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, p)
	if err != nil {
		return err
	}
	var targets []*conn // written to outside the set's lock: writes block
	s.conns.Each(func(m *conn) { targets = append(targets, m) })
	for _, m := range targets {
		m.mu.Lock()
		_ = m.ws.WritePreparedMessage(pm)
		m.mu.Unlock()
	}
	return nil
}
