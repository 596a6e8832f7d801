package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/loop"
	"github.com/wsgate/wsgate/pprof"
)

// serveAdmin serves the admin endpoints on addr (empty: off):
// /debug/pprof/, /stats, /metrics (Prometheus), /healthz and /readyz.
// n is the gateway node of srv, or nil for a plain loop server. /readyz
// answers 503 while one of ready returns an error.
func serveAdmin(log *slog.Logger, addr string, srv *loop.Server, n *wsgate.Node, ready ...func() error) {
	if addr == "" {
		return
	}
	counters := []func() map[string]int64{func() map[string]int64 {
		st := srv.Stats()
		return map[string]int64{
			"delivered": st.Delivered, "dropped": st.Dropped, "conflated": st.Conflated,
			"slow_closed": st.SlowClosed, "subscriptions": st.Subscriptions,
			"tcp_conns": st.TCPConns, "handshakes": st.Handshakes, "refused": st.Refused,
			"message_budget_used": st.MessageBudgetUsed, "send_budget_used": st.SendBudgetUsed,
		}
	}}
	if n != nil {
		counters = append(counters, func() map[string]int64 {
			return map[string]int64{"clients": n.NumClients(), "channels": int64(n.NumChannels())}
		})
	}
	mux := pprof.NewMux(srv.Conns, counters...)
	metrics, err := pprof.MetricsHandler(pprof.NewCollector(srv, n))
	if err != nil {
		log.Error("metrics", "err", err)
		return
	}
	mux.Handle("GET /metrics", metrics)
	pprof.HandleHealth(mux, ready...)
	ln, err := limitListen(addr, maxAdminConns)
	if err != nil {
		// The admin endpoints are optional: serve without them.
		log.Error("admin server stopped", "addr", addr, "err", err)
		return
	}
	go func() {
		err := http.Serve(ln, mux)
		log.Error("admin server stopped", "addr", addr, "err", err)
	}()
	log.Info("admin listening", "addr", addr)
}

// logFlags are the logging flags of both commands.
type logFlags struct {
	format, level *string
	verbose       *bool
}

func addLogFlags(fs *flag.FlagSet) *logFlags {
	return &logFlags{
		format:  fs.String("log-format", "text", "log format: text or json"),
		level:   fs.String("log-level", "info", "log level: debug, info, warn or error"),
		verbose: fs.Bool("v", false, "debug logging (-log-level debug)"),
	}
}

var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError,
}

// logger returns the logger the flags ask for, writing to stderr.
func (f *logFlags) logger() (*slog.Logger, error) {
	level, ok := logLevels[*f.level]
	if !ok {
		return nil, fmt.Errorf("bad -log-level %q: want debug, info, warn or error", *f.level)
	}
	if *f.verbose {
		level = slog.LevelDebug
	}
	o := &slog.HandlerOptions{Level: level}
	switch *f.format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, o)), nil
	}
	return nil, fmt.Errorf("bad -log-format %q: want text or json", *f.format)
}

// mustLogger is logger, exiting with status 2 on a bad flag.
func (f *logFlags) mustLogger() *slog.Logger {
	log, err := f.logger()
	if err != nil {
		fmt.Fprintln(os.Stderr, "wsgate:", err)
		os.Exit(2)
	}
	return log
}
