// Command gws is the github.com/lxzan/gws peer server of the benchmark
// harness. It follows the contract in bench/peers/internal/peer.
//
// Configuration, from gws v1.8.9's README and examples:
//   - gws.NewServer(...).RunListener: gws's own accept loop (README "Quick
//     Start"), one goroutine per connection running ReadLoop, a pooled 4 KiB
//     bufio.Reader; the setup lesismal/go-websocket-benchmark uses for gws.
//   - ParallelEnabled false: messages of a connection are handled in order
//     on its ReadLoop goroutine, with no extra goroutines (the option
//     doc: "Parallel message processing"; an echo must keep order).
//     ReadAsyncEnabled no longer exists in v1.8.9.
//   - CheckUtf8Enabled true and OnPing answering with the ping's payload, as
//     examples/echo does (BuiltinEventHandler's OnPing sends an empty pong).
//   - -deflate: PermessageDeflate{Enabled: true} with gws's defaults: no
//     context takeover (option.go: with takeover "each connection takes up
//     more memory"), level 1, 512 B threshold, 32 shared deflaters.
//   - -deflate-takeover: ServerContextTakeover true (gws then uses a 4 KiB
//     window, server_max_window_bits=12, and compresses every message).
//   - -broadcast: gws.NewBroadcaster (README "Broadcast"), which compresses
//     once and queues the frame on each connection's write queue. Its
//     frame is compressed without the connections' windows (writer.go:
//     "broadcast mode ... can't use a dictionary"), so with
//     -deflate-takeover each connection is sent the message with
//     WriteAsync instead, compressed with its own window.
//   - Read limit: gws's default ReadMaxPayloadSize, 16 MiB.
//
// -loops has no meaning for gws and is ignored.
package main

import (
	"bytes"
	"net"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"

	"github.com/wsgate/wsgate/bench/peers/internal/peer"
)

const name = "gws"

func main() {
	cfg := peer.ParseFlags(name)

	h := &handler{broadcast: cfg.Broadcast, takeover: cfg.Deflate && cfg.Takeover, conns: peer.NewConns[*gws.Conn](cfg.Broadcast)}
	srv := gws.NewServer(h, &gws.ServerOption{
		ParallelEnabled:   false,
		CheckUtf8Enabled:  true,
		PermessageDeflate: gws.PermessageDeflate{Enabled: cfg.Deflate, ServerContextTakeover: h.takeover},
	})
	// The default OnError logs every failed handshake (which gws has
	// already answered with 400) and every accept error. RunListener retries
	// a failed Accept at once, so at the open-file limit it would log in a
	// tight loop: log accept errors at most once a second, handshakes never.
	var lastLog atomic.Int64
	srv.OnError = func(c net.Conn, err error) {
		now := time.Now().UnixNano()
		if last := lastLog.Load(); c == nil && now-last > int64(time.Second) && lastLog.CompareAndSwap(last, now) {
			peer.Logf(name, "accept: %v", err)
		}
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		peer.Fatalf(name, "listen %s: %v", cfg.Addr, err)
	}
	peer.ServeAdmin(name, cfg.Admin, h.conns.Load)
	peer.Logf(name, "listening on %s (broadcast=%v deflate=%v takeover=%v)", ln.Addr(), cfg.Broadcast, cfg.Deflate, h.takeover)

	failed := make(chan error, 1)
	go func() { failed <- srv.RunListener(ln) }()
	peer.WaitSignal(name, failed)
}

type handler struct {
	gws.BuiltinEventHandler
	conns     *peer.Conns[*gws.Conn]
	broadcast bool
	takeover  bool
}

func (h *handler) OnOpen(c *gws.Conn) {
	h.conns.Open(c)
}

func (h *handler) OnClose(c *gws.Conn, _ error) {
	h.conns.Close(c)
}

func (h *handler) OnPing(c *gws.Conn, payload []byte) {
	_ = c.WritePong(payload)
}

func (h *handler) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	p := m.Bytes()
	if h.broadcast && m.Opcode == gws.OpcodeText {
		if rest, ok := peer.BroadcastPayload(p); ok {
			h.fanOut(rest)
			return
		}
	}
	// Errors are handled inside gws (README "Attention"): a failed write
	// closes the connection and ends its ReadLoop.
	_ = c.WriteMessage(m.Opcode, p)
}

// fanOut sends p to every open connection through one Broadcaster.
func (h *handler) fanOut(p []byte) {
	// The Broadcaster and WriteAsync read the payload from the write
	// queues after OnMessage has returned and m.Close recycled m's
	// buffer: copy it.
	p = bytes.Clone(p)
	if h.takeover {
		h.conns.Each(func(c *gws.Conn) { c.WriteAsync(gws.OpcodeText, p, nil) })
		return
	}
	b := gws.NewBroadcaster(gws.OpcodeText, p)
	h.conns.Each(func(c *gws.Conn) { _ = b.Broadcast(c) })
	_ = b.Close()
}
