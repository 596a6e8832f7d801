// Package peer holds what every peer server in bench/peers shares: the
// command-line contract, the /stats admin listener, the open-connection
// counter, the "BCAST " rule and the signal handling.
//
// The contract, which cmd/wsgate follows too and the load generator relies
// on:
//
//	-addr host:port    WebSocket listener; upgrades on any path
//	-admin host:port   GET /stats (pprof.Stats JSON) and /debug/pprof/; empty: off
//	-broadcast         a text message "BCAST <rest>" sends <rest> as a text
//	                   message to every open connection, the sender included
//	-deflate           permessage-deflate on, where the library supports it
//	-deflate-takeover  with -deflate: server context takeover, where the
//	                   library supports it (else the answer declines it)
//	-loops N           event loops or pollers, where meaningful (0: GOMAXPROCS)
//
// Every other message is echoed with its opcode. The process logs its
// listen address to stderr and exits 0 on SIGINT or SIGTERM.
package peer

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"

	debugsrv "github.com/wsgate/wsgate/pprof"
)

// Config is the parsed command line.
type Config struct {
	Name      string // binary name, used as the log prefix
	Addr      string // WebSocket listen address, host:port
	Admin     string // admin listen address; empty: no admin server
	Broadcast bool   // "BCAST <rest>" fans <rest> out instead of echoing
	Deflate   bool   // negotiate permessage-deflate
	Takeover  bool   // with Deflate: keep the server's compression context
	Loops     int    // event loops/pollers; 0: the peer's default (GOMAXPROCS)
}

// ParseFlags parses the contract flags from os.Args.
func ParseFlags(name string) Config {
	c := Config{Name: name}
	flag.StringVar(&c.Addr, "addr", ":8080", "listen address for WebSocket upgrades")
	flag.StringVar(&c.Admin, "admin", "127.0.0.1:6060", "admin address for /stats and /debug/pprof/ (empty: off)")
	flag.BoolVar(&c.Broadcast, "broadcast", false, `a text message "BCAST <rest>" sends <rest> to every connection instead of echoing`)
	flag.BoolVar(&c.Deflate, "deflate", false, "negotiate permessage-deflate (no context takeover)")
	flag.BoolVar(&c.Takeover, "deflate-takeover", false, "with -deflate: server context takeover, where the library supports it")
	flag.IntVar(&c.Loops, "loops", 0, "event loops or pollers (0: GOMAXPROCS)")
	flag.Parse()
	if c.Loops < 0 {
		Fatalf(c.Name, "-loops must be >= 0, got %d", c.Loops)
	}
	return c
}

// Logf writes one line to stderr. Cold paths only.
func Logf(name, format string, args ...any) {
	fmt.Fprintf(os.Stderr, name+": "+format+"\n", args...)
}

// Fatalf logs and exits with status 1.
func Fatalf(name, format string, args ...any) {
	Logf(name, format, args...)
	os.Exit(1)
}

// Counter counts open upgraded connections. Safe for concurrent use.
type Counter struct{ n atomic.Int64 }

// Inc records an upgraded connection.
func (c *Counter) Inc() { c.n.Add(1) }

// Dec records the close of an upgraded connection.
func (c *Counter) Dec() { c.n.Add(-1) }

// Load returns the number of open connections; it fits pprof.NewMux.
func (c *Counter) Load() int { return int(c.n.Load()) }

// ServeAdmin listens on addr and serves pprof.NewMux(conns) in the
// background. An empty addr turns the admin server off.
func ServeAdmin(name, addr string, conns func() int) {
	if addr == "" {
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		Fatalf(name, "admin listen %s: %v", addr, err)
	}
	Logf(name, "admin listening on %s", ln.Addr())
	go func() {
		err := http.Serve(ln, debugsrv.NewMux(conns))
		Fatalf(name, "admin server stopped: %v", err)
	}()
}

var bcast = []byte("BCAST ")

// BroadcastPayload reports whether a text message p is a broadcast request
// and returns the part to fan out. The result aliases p.
func BroadcastPayload(p []byte) ([]byte, bool) {
	if !bytes.HasPrefix(p, bcast) {
		return nil, false
	}
	return p[len(bcast):], true
}

// WaitSignal blocks until SIGINT or SIGTERM, or until a value arrives on
// failed (a server loop that returned). It exits 0 on a signal and 1 on
// failure.
func WaitSignal(name string, failed <-chan error) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case s := <-sig:
		Logf(name, "%v: exiting", s)
		os.Exit(0)
	case err := <-failed:
		Fatalf(name, "server stopped: %v", err)
	}
}

// Conns is a peer's set of upgraded connections: the count the /stats
// contract reports and, with -broadcast, the members a BCAST reaches.
// Safe for concurrent use.
type Conns[C comparable] struct {
	Counter
	mu  sync.Mutex
	set map[C]struct{} // nil without -broadcast
}

// NewConns returns a Conns that keeps its members only for broadcast.
func NewConns[C comparable](broadcast bool) *Conns[C] {
	s := &Conns[C]{}
	if broadcast {
		s.set = make(map[C]struct{})
	}
	return s
}

// Open records an upgraded connection.
func (s *Conns[C]) Open(c C) {
	s.Inc()
	if s.set != nil {
		s.mu.Lock()
		s.set[c] = struct{}{}
		s.mu.Unlock()
	}
}

// Close records the close of an upgraded connection.
func (s *Conns[C]) Close(c C) {
	if s.set != nil {
		s.mu.Lock()
		delete(s.set, c)
		s.mu.Unlock()
	}
	s.Dec()
}

// Each calls fn for every member, under the set's lock.
func (s *Conns[C]) Each(fn func(C)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.set {
		fn(c)
	}
}
