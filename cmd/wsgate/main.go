// Command wsgate runs a WebSocket gateway that echoes every message, or
// with -broadcast relays "BCAST <text>" messages to every connection.
// The admin address serves /debug/pprof/ and /stats.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/deflate"
	"github.com/wsgate/wsgate/loop"
	"github.com/wsgate/wsgate/pprof"
)

func main() {
	var (
		addr      = flag.String("addr", ":8080", "listen address for WebSocket upgrades")
		admin     = flag.String("admin", "127.0.0.1:6060", "admin address for /stats and /debug/pprof/ (empty: off)")
		broadcast = flag.Bool("broadcast", false, `a text message "BCAST <rest>" sends <rest> to every connection instead of echoing`)
		loops     = flag.Int("loops", 0, "event loops (0: one per CPU)")
		handshake = flag.Duration("handshake-timeout", 0, "handshake timeout (0: 5s)")
		ping      = flag.Duration("ping", 0, "ping interval for idle connections (0: 30s, <0: off)")
		idle      = flag.Duration("idle", 0, "close connections silent for this long (0: 2×ping, <0: off)")
		maxMsg    = flag.Int64("max-message", 0, "largest message accepted in bytes (0: 1 MiB)")
		maxConns  = flag.Int("max-conns", 0, "answer 503 beyond this many connections (0: no limit)")
		maxPend   = flag.Int("max-pending", 0, "bytes queued per connection before it is closed as a slow consumer (0: 4 MiB)")
		origins   = flag.String("origins", "", "comma-separated extra allowed Origin values (* for any)")
		compress  = flag.Bool("deflate", false, "negotiate permessage-deflate (no context takeover) with clients that offer it")
		takeover  = flag.Bool("deflate-takeover", false, "with -deflate: server context takeover (4 KiB history per connection, freed when idle)")
		slow      = flag.String("slow", "disconnect", "what a -broadcast does for a connection past -high-water: disconnect (1008), drop-newest or drop-oldest")
		highWater = flag.Int("high-water", 0, "queued bytes per connection past which -slow applies (0: max-pending/4)")
		verbose   = flag.Bool("v", false, "debug logging")
	)
	flag.Parse()

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	checkFileLimit(log, *maxConns)

	policy, ok := slowPolicies[*slow]
	if !ok {
		log.Error("bad -slow: want disconnect, drop-newest or drop-oldest", "slow", *slow)
		os.Exit(2)
	}

	h := &echo{broadcast: *broadcast}
	opts := loop.Options{
		Logger:           log,
		NumLoops:         *loops,
		HandshakeTimeout: *handshake,
		PingInterval:     *ping,
		IdleTimeout:      *idle,
		MaxMessageSize:   *maxMsg,
		MaxConns:         *maxConns,
		MaxPendingBytes:  *maxPend,
		SlowPolicy:       policy,
		HighWaterBytes:   *highWater,
	}
	if *compress {
		opts.Deflate = &deflate.Config{ServerContextTakeover: *takeover}
	}
	if *origins != "" {
		opts.AllowedOrigins = strings.Split(*origins, ",")
	}
	srv, err := loop.NewServer(h, opts)
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

	if *admin != "" {
		go func() {
			err := http.ListenAndServe(*admin, pprof.NewMux(srv.Conns, func() map[string]int64 {
				st := srv.Stats()
				return map[string]int64{
					"delivered": st.Delivered, "dropped": st.Dropped, "conflated": st.Conflated,
					"slow_closed": st.SlowClosed, "subscriptions": st.Subscriptions,
				}
			}))
			log.Error("admin server stopped", "addr", *admin, "err", err)
		}()
		log.Info("admin listening", "addr", *admin)
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case s := <-sig:
		log.Info("shutting down", "signal", s.String())
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			log.Warn("shutdown", "err", err)
		}
	case <-waitChan(srv):
		log.Error("server stopped")
		os.Exit(1)
	}
}

func waitChan(srv *loop.Server) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- srv.Wait() }()
	return ch
}

// echo sends every message back, or broadcasts "BCAST " messages.
type echo struct {
	loop.BuiltinHandler
	srv       *loop.Server
	broadcast bool
}

var bcast = []byte("BCAST ")

func (e *echo) OnMessage(c *loop.Conn, op codec.OpCode, p []byte) {
	if e.broadcast && op == codec.OpText && bytes.HasPrefix(p, bcast) {
		if err := e.srv.Broadcast(codec.OpText, p[len(bcast):]); err != nil {
			c.Close(codec.StatusInternalError, "broadcast failed")
		}
		return
	}
	if err := c.WriteMessage(op, p); err != nil && !errors.Is(err, loop.ErrClosed) {
		c.Close(codec.StatusInternalError, "")
	}
}

// checkFileLimit logs RLIMIT_NOFILE and warns when it cannot hold the
// configured number of connections.
func checkFileLimit(log *slog.Logger, maxConns int) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		log.Warn("cannot read the open-file limit", "err", err)
		return
	}
	log.Info("open-file limit", "soft", rl.Cur, "hard", rl.Max)
	if maxConns == 0 {
		log.Warn("no -max-conns: connections are bounded only by the open-file limit", "limit", rl.Cur)
	} else if uint64(maxConns)+64 > uint64(rl.Cur) { // int64 on FreeBSD, uint64 elsewhere
		log.Warn("open-file limit is below -max-conns", "limit", rl.Cur, "max_conns", maxConns)
	}
}

// slowPolicies are the -slow values. Conflation needs a key per message,
// which BCAST messages do not carry.
var slowPolicies = map[string]loop.SlowPolicy{
	"disconnect":  loop.SlowDisconnect,
	"drop-newest": loop.SlowDropNewest,
	"drop-oldest": loop.SlowDropOldest,
}
