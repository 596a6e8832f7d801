package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"strings"
	"time"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/deflate"
	"github.com/wsgate/wsgate/loop"
)

// runEcho is "wsgate echo": a server that echoes every message, or with
// -broadcast relays "BCAST <text>" messages to every connection (the
// benchmarks' peer).
func runEcho(args []string) {
	fs := flag.NewFlagSet("wsgate echo", flag.ExitOnError)
	var (
		addr      = fs.String("addr", ":8080", "listen address for WebSocket upgrades")
		admin     = fs.String("admin", "127.0.0.1:6060", "admin address for /metrics, /healthz, /readyz, /stats and /debug/pprof/ (empty: off)")
		broadcast = fs.Bool("broadcast", false, `a text message "BCAST <rest>" sends <rest> to every connection instead of echoing`)
		loops     = fs.Int("loops", 0, "event loops (0: one per CPU)")
		handshake = fs.Duration("handshake-timeout", 0, "handshake timeout (0: 5s)")
		ping      = fs.Duration("ping", 0, "ping interval for idle connections (0: 30s, <0: off)")
		idle      = fs.Duration("idle", 0, "close connections silent for this long (0: 2×ping, <0: off)")
		maxMsg    = fs.Int64("max-message", 0, "largest message accepted in bytes (0: 1 MiB)")
		maxConns  = fs.Int("max-conns", 0, "answer 503 beyond this many connections (0: no limit)")
		maxPend   = fs.Int("max-pending", 0, "bytes queued per connection before it is closed as a slow consumer (0: 4 MiB)")
		origins   = fs.String("origins", "", "comma-separated extra allowed Origin values (* for any)")
		compress  = fs.Bool("deflate", false, "negotiate permessage-deflate (no context takeover) with clients that offer it")
		takeover  = fs.Bool("deflate-takeover", false, "with -deflate: server context takeover (4 KiB history per connection, freed when idle)")
		ratio     = fs.Int("inflate-ratio", 0, "with -deflate: a message may inflate to this many times its compressed size, past 4 KiB (0: 64, <0: no limit)")
		slow      = fs.String("slow", "disconnect", "what a -broadcast does for a connection past -high-water: disconnect (1008), drop-newest or drop-oldest")
		highWater = fs.Int("high-water", 0, "queued bytes per connection past which -slow applies (0: max-pending/4)")
		logf      = addLogFlags(fs)
	)
	_ = fs.Parse(args)
	log := logf.mustLogger()
	checkFileLimit(log, *maxConns)

	policy, ok := slowPolicies[*slow]
	if !ok {
		log.Error("bad -slow: want disconnect, drop-newest or drop-oldest", "slow", *slow)
		os.Exit(2)
	}
	o := loop.Options{
		Logger: log, NumLoops: *loops,
		HandshakeTimeout: *handshake, PingInterval: *ping, IdleTimeout: *idle,
		MaxMessageSize: *maxMsg, MaxConns: *maxConns, MaxPendingBytes: *maxPend,
		SlowPolicy: policy, HighWaterBytes: *highWater, InflateRatio: *ratio,
	}
	if *compress {
		o.Deflate = &deflate.Config{ServerContextTakeover: *takeover}
	}
	if *origins != "" {
		o.AllowedOrigins = strings.Split(*origins, ",")
	}
	h := &echo{broadcast: *broadcast}
	srv, err := loop.NewServer(h, o)
	if err != nil {
		log.Error("bad configuration", "err", err)
		os.Exit(2)
	}
	h.srv = srv
	if err := srv.Start(*addr); err != nil {
		log.Error("cannot listen", "addr", *addr, "err", err)
		os.Exit(1)
	}
	log.Info("wsgate listening", "addr", *addr, "broadcast", *broadcast)
	serveAdmin(log, *admin, srv, nil)
	waitSignal(log, 10*time.Second, srv.Shutdown, srv.Wait)
}

// echo sends every message back, or broadcasts "BCAST " messages.
type echo struct {
	srv       *loop.Server
	broadcast bool
}

var bcast = []byte("BCAST ")

func (e *echo) OnOpen(*loop.Conn)         {}
func (e *echo) OnClose(*loop.Conn, error) {}

func (e *echo) OnMessage(c *loop.Conn, op codec.OpCode, p []byte) {
	if e.broadcast && op == codec.OpText && bytes.HasPrefix(p, bcast) {
		if err := e.srv.Broadcast(codec.OpText, p[len(bcast):]); err != nil {
			_ = c.Close(codec.StatusInternalError, "broadcast failed")
		}
		return
	}
	if err := c.WriteMessage(op, p); err != nil && !errors.Is(err, loop.ErrClosed) {
		_ = c.Close(codec.StatusInternalError, "")
	}
}

// slowPolicies are the -slow values. Conflation needs a key per message,
// which BCAST messages do not carry.
var slowPolicies = map[string]loop.SlowPolicy{
	"disconnect":  loop.SlowDisconnect,
	"drop-newest": loop.SlowDropNewest,
	"drop-oldest": loop.SlowDropOldest,
}
