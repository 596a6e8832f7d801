// Command wsgate runs the gateway: Centrifugo's client protocol on
// WebSocket at /connection/websocket, its server HTTP API under /api/, and
// the admin endpoints (/metrics, /healthz, /readyz, /debug/pprof/, /stats).
// "wsgate echo" runs the echo server of the benchmarks instead.
//
//	wsgate [-config FILE] [-addr HOST:PORT] [-api-addr HOST:PORT] [-admin HOST:PORT]
//	       [-token-hmac-secret S] [-api-key K] [-nats URL] [-name NAME]
//	       [-log-format text|json] [-log-level debug|info|warn|error] [-v]
//	wsgate echo [-addr HOST:PORT] [-broadcast] ...
//
// Without -config the embedded default configuration is used, with a
// random HMAC secret and API key unless given by flags; a token for user
// "test" is printed at start. With -nats, nodes on the same NATS server
// share channels, history (JetStream) and the node-wide API operations;
// GET /ready on the API address and GET /readyz on the admin address
// answer 503 while NATS is unreachable.
package main

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/natsbroker"
	"github.com/wsgate/wsgate/pprof"
)

//go:embed default_config.json
var defaultConfig []byte

// demoPage is the walk-through page served at / on the API address;
// {{WSPORT}} becomes the WebSocket port.
//
//go:embed demo.html
var demoPage string

func main() {
	if len(os.Args) > 1 && os.Args[1] == "echo" {
		runEcho(os.Args[2:])
		return
	}
	var (
		config  = flag.String("config", "", "JSON config file in Centrifugo v6 key format (default: embedded)")
		addr    = flag.String("addr", ":8000", "WebSocket listen address (path "+wsgate.WebSocketPath+")")
		apiAddr = flag.String("api-addr", ":9000", "server HTTP API listen address (/api/<method>)")
		admin   = flag.String("admin", "127.0.0.1:6060", "admin address for /metrics, /healthz, /readyz, /stats and /debug/pprof/ (empty: off)")
		secret  = flag.String("token-hmac-secret", "", "HMAC secret of connection tokens (overrides client.token.hmac_secret_key)")
		apiKey  = flag.String("api-key", "", "server API key (overrides http_api.key)")
		logf    = addLogFlags(flag.CommandLine)
		natsURL = flag.String("nats", "", "NATS server URL(s), comma-separated: channels, history and node-wide API operations shared by every node on it (JetStream needed; empty: this node alone)")
		name    = flag.String("name", "", "node name in /api/info (default: the host name)")
	)
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: wsgate [flags]   (the gateway)\n       wsgate echo [flags]   (the echo server of the benchmarks; wsgate echo -h)\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	log := logf.mustLogger()

	var cfg wsgate.Config
	var err error
	var generated, genSecret bool
	if *config != "" {
		cfg, err = wsgate.LoadConfig(*config)
	} else {
		cfg, err = wsgate.ParseConfig(defaultConfig)
		if err == nil && *secret == "" {
			cfg.Client.Token.HMACSecretKey = random()
			genSecret = true
		}
		if err == nil && *apiKey == "" {
			cfg.HTTPAPI.Key = random()
			generated = true
		}
	}
	if err != nil {
		log.Error("bad configuration", "err", err)
		os.Exit(2)
	}
	if *secret != "" {
		cfg.Client.Token.HMACSecretKey = *secret
	}
	if *apiKey != "" {
		cfg.HTTPAPI.Key = *apiKey
	}
	checkFileLimit(log, cfg.Client.ConnectionLimit)

	if *name == "" {
		*name, _ = os.Hostname()
	}
	opts := wsgate.NodeOptions{Logger: log, Name: *name}
	var ready func() error
	if *natsURL != "" {
		b, err := natsbroker.New(natsbroker.Options{URL: *natsURL, Name: *name,
			MaxHistorySize: maxHistorySize(cfg), Logger: log})
		if err != nil {
			log.Error("nats", "url", *natsURL, "err", err)
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
	mux.Handle("/api/", n.APIHandler())
	mux.Handle("GET /ready", pprof.ReadyHandler(ready))
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
	if generated {
		log.Info("default configuration: generated API key", "api_key", cfg.HTTPAPI.Key)
	}
	if genSecret {
		// Only for a secret of our own, to try the gateway: a token made
		// with the operator's secret would be a credential in the logs.
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": "test", "exp": time.Now().Add(24 * time.Hour).Unix()}).SignedString([]byte(cfg.Client.Token.HMACSecretKey))
		if err == nil {
			log.Info("default configuration: test token", "user", "test", "valid", "24h", "token", tok)
		}
	}
	serveAdmin(log, *admin, n.Server(), n, ready)
	waitSignal(log, func(ctx context.Context) error {
		_ = api.Shutdown(ctx)
		return n.Shutdown(ctx)
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

func random() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// waitSignal waits for SIGINT/SIGTERM (then shuts down) or for the server
// to stop on its own (then exits 1).
func waitSignal(log *slog.Logger, shutdown func(context.Context) error, wait func() error) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	stopped := make(chan error, 1)
	go func() { stopped <- wait() }()
	select {
	case s := <-sig:
		log.Info("shutting down", "signal", s.String())
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := shutdown(ctx); err != nil {
			log.Warn("shutdown", "err", err)
		}
	case <-stopped:
		log.Error("server stopped")
		os.Exit(1)
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
	if maxConns != 0 && uint64(maxConns)+64 > uint64(rl.Cur) { // int64 on FreeBSD, uint64 elsewhere
		log.Warn("open-file limit is below the connection limit", "limit", rl.Cur, "max_conns", maxConns)
	}
}
