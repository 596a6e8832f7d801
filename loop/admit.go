//go:build !windows

package loop

import (
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Admission of TCP connections.
//
// gnet treats an accept(2) that fails with EMFILE or ENFILE as fatal: the
// event loop returns gnet's ErrAcceptSocket and the whole engine stops,
// dropping every connection it holds. A server on gnet must therefore never
// let its own connections take the process to RLIMIT_NOFILE, whatever its
// peers do: a client that opens sockets and never finishes the upgrade is
// enough to get there, and Options.MaxConns counts only upgraded
// connections.
//
// So every accepted TCP connection is admitted or refused in OnOpen, before
// anything is read from it. At most MaxTCPConns are held at once,
// handshaking or upgraded, and at most MaxHandshakes of them may still be
// in their upgrade. A refused connection is closed at once, unanswered, so
// it costs its descriptor only for the length of the callback.
//
// With SO_REUSEPORT (the default on Linux) each loop accepts one connection
// per readiness event and calls OnOpen before it accepts the next one, so
// the descriptors held for connections never exceed MaxTCPConns plus one
// per loop. Without it (Options.NoReusePort, or macOS and the BSDs with more
// than one loop) gnet's acceptor drains the whole listen backlog before the
// loops see the new connections, so the default MaxTCPConns also leaves
// room for a full backlog.

// admission counts the TCP connections a server holds. Its counters are
// written once per accept, upgrade and close, never per message.
type admission struct {
	maxTCP, maxHandshakes int64
	tcp, handshakes       atomic.Int64
	refused               atomic.Int64
}

// admit reserves a place for a new connection in its handshake; false
// means it must be refused.
func (a *admission) admit() bool {
	if a.tcp.Add(1) > a.maxTCP {
		a.tcp.Add(-1)
		a.refused.Add(1)
		return false
	}
	if a.handshakes.Add(1) > a.maxHandshakes {
		a.handshakes.Add(-1)
		a.tcp.Add(-1)
		a.refused.Add(1)
		return false
	}
	return true
}

// upgraded moves an admitted connection out of its handshake.
func (a *admission) upgraded() { a.handshakes.Add(-1) }

// release gives back an admitted connection's place; handshaking tells
// whether it had not upgraded.
func (a *admission) release(handshaking bool) {
	if handshaking {
		a.handshakes.Add(-1)
	}
	a.tcp.Add(-1)
}

// admissionLimits works out MaxTCPConns and MaxHandshakes where the
// options leave them to their defaults. MaxTCPConns: the soft
// RLIMIT_NOFILE, read by NewServer, less the descriptors the process holds
// then, those the engine will open (a listener, a poller and a wake-up
// descriptor per loop, and one accepted connection per loop in flight),
// a full listen backlog when the loops do not each accept for themselves,
// and FDReserve.
func admissionLimits(o *Options, loops int) (maxTCP, maxHandshakes int64) {
	maxTCP = int64(o.MaxTCPConns)
	if maxTCP == 0 {
		maxTCP = math.MaxInt32
		var rl unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err == nil && uint64(rl.Cur) < math.MaxInt32 {
			cur := int64(rl.Cur)
			reserve := int64(o.FDReserve)
			if reserve == 0 {
				reserve = min(DefaultFDReserve, cur/4)
			}
			engine := int64(4*loops + 1)
			if o.NoReusePort || runtime.GOOS != "linux" && loops > 1 {
				engine += listenBacklog()
			}
			maxTCP = max(1, cur-openDescriptors()-engine-reserve)
		}
	}
	maxHandshakes = int64(o.MaxHandshakes)
	if maxHandshakes == 0 {
		// Half the places at most, so that peers stuck in their handshake
		// never take every place of a small budget.
		maxHandshakes = min(DefaultMaxHandshakes, max(1, maxTCP/2))
	}
	return maxTCP, min(maxHandshakes, maxTCP)
}

// openDescriptors counts the descriptors the process holds (Linux; 16
// where /proc is not there to tell).
func openDescriptors() int64 {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 16
	}
	return int64(len(fds))
}

// listenBacklog is the most connections a listener queues: gnet listens
// with net.core.somaxconn (Linux); 128 elsewhere, the BSDs' and macOS's
// default kern.ipc.somaxconn.
func listenBacklog() int64 {
	b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err != nil {
		return 128
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n <= 0 {
		return 128
	}
	return n
}
