// Command wsgate runs the gateway: Centrifugo's client protocol on
// WebSocket at /connection/websocket, its server HTTP API under /api/, and
// the admin endpoints (/metrics, /healthz, /readyz, /debug/pprof/, /stats).
// Its subcommands check and generate a configuration and sign a token to
// try it; "wsgate echo" runs the echo server of the benchmarks instead.
//
//	wsgate [-config FILE] [-addr HOST:PORT] [-api-addr HOST:PORT] [-admin HOST:PORT] ...
//	wsgate checkconfig [-config FILE]
//	wsgate genconfig
//	wsgate gentoken -user ID [-ttl D] [-config FILE]
//	wsgate echo [-addr HOST:PORT] [-broadcast] ...
//
// The configuration comes from flags, WSGATE_* environment variables and
// a JSON or YAML file, in that order of strength (config.go). Without
// -config the embedded default configuration is used (the file genconfig
// prints), with a random HMAC secret and API key unless given; a token
// for user "test" is printed at start. With broker.nats.url (-nats),
// nodes on the same NATS server share channels, history (JetStream) and
// the node-wide API operations; GET /ready on the API address and GET
// /readyz on the admin address answer 503 while NATS is unreachable, and
// while the node drains.
//
// SIGTERM or SIGINT drains the node (wsgate.Node.Drain): readiness off,
// new connections refused, the clients disconnected with 3001 "shutdown"
// spread over shutdown.drain_period; the process exits within
// shutdown.timeout, or at once on a second signal.
//
// The gateway runs its garbage collector at GOGC=20 (gatewayGCPercent)
// unless GOGC is set in the environment. Its heap is mostly connection
// state that lives as long as the connections, and fan-out to idle
// subscribers allocates nothing per delivery, so garbage comes from
// commands, handshakes and API requests: a low target bounds the heap
// near what the clients hold at a small cost per connect. The echo server
// keeps Go's default, as the peers it is benchmarked against do.
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/natsbroker"
	"github.com/wsgate/wsgate/pprof"
)

// demoPage is the walk-through page served at / on the API address;
// {{WSPORT}} becomes the WebSocket port.
//
//go:embed demo.html
var demoPage string

// gatewayGCPercent is the gateway's GOGC when the environment sets none.
// Measured with 10,000 clients connecting with a JWT and subscribing to
// one channel, then 20 API publishes/s of 256 B (wsbench gateway
// scenario, 2 cores shared with other work, load 1-11): RSS per
// subscribed client 1,578-1,659 B at GOGC=100, 1,029-1,179 at 20 (wsbench
// compare; 925-1,062 against the command directly), 1,008-1,057 at 10
// (about 100 B of it is code paged in by the first clients, paid once);
// server CPU per connect 115-147 µs at 100, 120-152 at 20; CPU per
// delivery 3.30-4.04 µs at 100, 3.20-4.62 at 20.
//
// Ten is not taken: five runs of wsbench compare at each (two of them
// alternated on an otherwise idle machine) gave RSS per client 956-1,048 B
// (median 993) at 10 against 996-1,051 (median 1,025) at 20, but a
// delivery p99 of 473-654 ms against 318-503 ms, and 4.78-5.15 µs of
// server CPU per delivery against 4.61-4.98. 32 B per client is not worth
// a p99 40 % longer.
const gatewayGCPercent = 20

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "echo":
			runEcho(os.Args[2:])
			return
		case "checkconfig":
			os.Exit(runCheckConfig(os.Args[2:], os.Environ(), os.Stdout, os.Stderr))
		case "genconfig":
			os.Exit(runGenConfig(os.Args[2:], os.Stdout, os.Stderr))
		case "gentoken":
			os.Exit(runGenToken(os.Args[2:], os.Environ(), os.Stdout, os.Stderr))
		}
	}
	var (
		config = flag.String("config", "", "configuration `file`, JSON or YAML (.yaml, .yml) (default: the embedded one, which genconfig prints)")
		logf   = addLogFlags(flag.CommandLine)
	)
	keys := bindKeyFlags(flag.CommandLine)
	flag.Usage = usage
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "wsgate: unknown command %q\n\n", flag.Arg(0))
		usage()
		os.Exit(exitUsage)
	}
	log := logf.mustLogger()
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gatewayGCPercent)
	}

	st, made, err := loadSettings(*config, os.Environ(), keys, true)
	if err != nil {
		log.Error("bad configuration", "err", err)
		os.Exit(2)
	}
	cfg := st.Config
	// Read through pointers, as the flags these keys were before.
	addr, apiAddr, admin, name := &st.Listen.WebSocket, &st.Listen.API, &st.Listen.Admin, &st.Node.Name
	natsURL := &st.Broker.NATS.URL
	checkFileLimit(log, cfg.Client.ConnectionLimit)

	if *name == "" {
		*name, _ = os.Hostname()
	}
	opts := wsgate.NodeOptions{Logger: log, Name: *name}
	ready := func() error { return nil } // the broker's readiness
	if *natsURL != "" {
		b, err := natsbroker.New(natsbroker.Options{URL: *natsURL, Name: *name,
			MaxHistorySize: maxHistorySize(cfg), Logger: log})
		if err != nil {
			log.Error("nats", "url", maskPassword(*natsURL), "err", maskPassword(err.Error()))
			os.Exit(2)
		}
		defer b.Close()
		opts.Broker, ready = b, b.Ready
	}
	n, err := wsgate.NewNode(cfg, opts)
	if err != nil {
		log.Error("bad configuration", "err", err)
		os.Exit(2)
	}
	if err := n.Start(*addr); err != nil {
		log.Error("cannot listen", "addr", *addr, "err", err)
		os.Exit(1)
	}
	log.Info("websocket listening", "addr", *addr, "path", wsgate.WebSocketPath)

	mux := http.NewServeMux()
	apiHandler := n.APIHandler()
	mux.Handle("/api/", apiHandler)
	mux.Handle("/api", apiHandler)
	mux.Handle("GET /ready", pprof.ReadyHandler(n.Ready, ready))
	_, wsPort, _ := net.SplitHostPort(*addr)
	page := strings.ReplaceAll(demoPage, "{{WSPORT}}", wsPort)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, page)
	})
	api := &http.Server{Addr: *apiAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	// Bound before "api listening" is logged: whoever waits for the line
	// can connect.
	apiLn, err := limitListen(*apiAddr, maxAPIConns)
	if err != nil {
		log.Error("cannot listen", "addr", *apiAddr, "err", err)
		os.Exit(1)
	}
	go func() {
		if err := api.Serve(apiLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("api server stopped", "addr", *apiAddr, "err", err)
			os.Exit(1)
		}
	}()
	log.Info("api listening", "addr", *apiAddr, "walk-through page", "http://"+*apiAddr+"/")
	if made.apiKey {
		log.Info("default configuration: generated API key", "api_key", cfg.HTTPAPI.Key)
	}
	if made.secret {
		// Only for a secret of our own, to try the gateway: a token made
		// with the operator's secret would be a credential in the logs.
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": "test", "exp": time.Now().Add(24 * time.Hour).Unix()}).SignedString([]byte(cfg.Client.Token.HMACSecretKey))
		if err == nil {
			log.Info("default configuration: test token", "user", "test", "valid", "24h", "token", tok)
		}
	}
	serveAdmin(log, *admin, n.Server(), n, n.Ready, ready)
	// The drain disconnects the clients spread over the drain period; the
	// API serves until the node has stopped, so that publications still
	// reach the clients not yet disconnected.
	waitSignal(log, time.Duration(st.Shutdown.Timeout), func(ctx context.Context) error {
		log.Info("draining", "clients", n.NumClients(), "drain_period", time.Duration(st.Shutdown.DrainPeriod))
		err := n.Drain(ctx, time.Duration(st.Shutdown.DrainPeriod))
		_ = api.Shutdown(ctx)
		return err
	}, n.Wait)
}

// maxHistorySize is the largest history size of the configuration's
// namespaces: what JetStream keeps per channel.
func maxHistorySize(cfg wsgate.Config) int {
	m := cfg.Channel.WithoutNamespace.HistorySize
	for _, ns := range cfg.Channel.Namespaces {
		m = max(m, ns.HistorySize)
	}
	return m
}

// waitSignal waits for SIGINT/SIGTERM, then calls shutdown, or for the
// server to stop on its own (then exits 1). The process exits within
// timeout after the signal, and at once on a second signal; shutdown's
// context ends a little earlier (a quarter of timeout, 5 s at most), so
// that what it does after waiting (stopping the engine) fits in.
func waitSignal(log *slog.Logger, timeout time.Duration, shutdown func(context.Context) error, wait func() error) {
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	stopped := make(chan error, 1)
	go func() { stopped <- wait() }()
	select {
	case s := <-sig:
		start := time.Now()
		log.Info("shutting down", "signal", s.String(), "timeout", timeout)
		time.AfterFunc(timeout, func() {
			log.Error("shutdown timed out: exiting", "timeout", timeout)
			os.Exit(1)
		})
		go func() {
			s := <-sig
			log.Warn("second signal: exiting now", "signal", s.String())
			os.Exit(1)
		}()
		ctx, cancel := context.WithTimeout(context.Background(), drainDeadline(timeout))
		defer cancel()
		if err := shutdown(ctx); err != nil {
			log.Warn("shutdown", "err", err)
		}
		log.Info("stopped", "after", time.Since(start).Round(time.Millisecond))
	case <-stopped:
		log.Error("server stopped")
		os.Exit(1)
	}
}

// userinfoPassword matches the password of a URL's user information
// ("scheme://user:password@"), up to the last "@" before the host.
var userinfoPassword = regexp.MustCompile(`(://[^/?#@:\s]*:)[^/?#\s]*@`)

// maskPassword hides the passwords of the URLs in s, for a log.
func maskPassword(s string) string {
	return userinfoPassword.ReplaceAllString(s, "${1}xxxxx@")
}

// drainDeadline is when, after the signal, the drain's context ends for a
// shutdown timeout: a quarter of it (5 s at most) is kept for stopping.
func drainDeadline(timeout time.Duration) time.Duration {
	return timeout - min(timeout/4, 5*time.Second)
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
	if maxConns != 0 && uint64(maxConns)+64 > uint64(rl.Cur) { // int64 on FreeBSD, uint64 elsewhere
		log.Warn("open-file limit is below the connection limit", "limit", rl.Cur, "max_conns", maxConns)
	}
}
