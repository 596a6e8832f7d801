package deflate

import "time"

// Config is the server's permessage-deflate policy. The zero value (and a
// nil *Config) is the cheapest safe setting: level 1, a 512-byte threshold,
// and no context takeover in either direction, so that a connection keeps
// no compression state at all. Functions copy the Config and fill in the
// defaults; they never modify the caller's struct.
type Config struct {
	// Level is the klauspost/compress/flate level, 1 (fastest) to 9.
	// 0 means 1. Each Compressor (one per event loop) lazily allocates
	// one flate.Writer of this level on the first compressed message:
	// about 0.8 MB at level 1, 1.2 MB at 2, 1.1 MB at 5, 1.4 MB at 9.
	// Levels 7–9 clear 640 KB of hash tables on every message, so they
	// are slow per message; stay at 1–6.
	Level int

	// Threshold is the size in bytes below which a message is sent
	// uncompressed. 0 selects the defaults: 512 for messages compressed
	// without history (they compress poorly: ~0.73 of the original at
	// ~170 B of JSON), 128 for messages compressed with a History (the
	// flate.Writer never looks for matches in an input under 128 bytes,
	// so shorter ones could only use the history through
	// flate.StatelessDeflate, which allocates len(history)+len(msg) per
	// message). A negative value compresses every message; then messages
	// under 128 bytes with a History take that allocating path (measured
	// ratio on 63-byte ticker JSON with a 4 KiB history: 0.33 instead of
	// 1.09; the first short message into an empty History is sent as a
	// stored block to start it). A message is otherwise sent uncompressed
	// when compressing it does not make it shorter.
	Threshold int

	// ServerContextTakeover lets the server reference earlier messages
	// when compressing (it omits server_no_context_takeover from its
	// answer unless the client asked for it). The server keeps no
	// flate.Writer per connection for this; it keeps a History, the last
	// 2^HistoryBits bytes sent compressed, allocated on the first message
	// and freed by History.Release (for example after idle time).
	// Package loop shares one History among the subscribers of a topic
	// that have received the same messages, and compresses each published
	// message once for them. Default false.
	ServerContextTakeover bool

	// HistoryBits is the size of a History, as a power of two: 8 to 15,
	// 0 means 12 (4 KiB). It is lowered to the server_max_window_bits a
	// client asks for. Memory: 2^HistoryBits bytes per connection that has
	// sent a compressed message since its last Release. CPU: compressing
	// with a history re-indexes it on every message (measured at ~170 B
	// JSON: 7.9 µs without history, 8.5 µs with 2 KiB, 9.7 µs with 4 KiB,
	// 15 µs with 8 KiB; the ratio was 0.29 for each size).
	HistoryBits int

	// HistoryIdle is how long a connection keeps its History after the
	// last message compressed with it; then the server releases it and
	// the next message starts without history. 0 means 30 s. Only the
	// server (package loop) uses it.
	HistoryIdle time.Duration

	// ClientContextTakeover lets the client reference its earlier messages
	// (the server omits client_no_context_takeover from its answer).
	// The server then keeps, per connection and for the connection's whole
	// life, a History of the last 2^ClientMaxWindowBits bytes it inflated:
	// unlike the server side it can never be released, because the
	// client's next message may refer to any of it. It is accepted only
	// when the offer carries client_max_window_bits (so the server can
	// bound the window it must keep) or when ClientMaxWindowBits is 15.
	// Default false: the answer carries client_no_context_takeover and the
	// server keeps no inflate state per connection.
	ClientContextTakeover bool

	// ClientMaxWindowBits bounds the window the client may use with
	// ClientContextTakeover, 8 to 15, 0 means 12 (4 KiB of memory per
	// connection). It is answered as client_max_window_bits, never unless
	// the client offered that parameter (RFC 7692 §7.1.2.2). 8 is taken as
	// 9, and an offer of client_max_window_bits=8 gets no client takeover:
	// zlib cannot compress raw DEFLATE with an 8-bit window and uses 9 bits
	// instead, so clients built on it would overrun a 256-byte history.
	ClientMaxWindowBits int
}

// Defaults, see Config.
const (
	defaultLevel       = 1
	defaultThreshold   = 512
	defaultHistThresh  = 128
	defaultHistoryBits = 12
	defaultClientBits  = 12
	minWindowBits      = 8
	maxWindowBits      = 15
)

// DefaultHistoryIdle is the HistoryIdle used when it is 0: the default
// ping interval of the server, so a release costs no extra timer.
const DefaultHistoryIdle = 30 * time.Second

// Validate reports whether the fields of c are in range. A nil *Config is
// valid. Negotiate does not validate: it replaces out-of-range values with
// their defaults.
func (c *Config) Validate() error {
	if c == nil {
		return nil
	}
	if c.Level != 0 && (c.Level < 1 || c.Level > 9) {
		return errLevel
	}
	if c.HistoryBits != 0 && (c.HistoryBits < minWindowBits || c.HistoryBits > maxWindowBits) {
		return errHistoryBits
	}
	if c.HistoryIdle < 0 {
		return errHistoryIdle
	}
	if c.ClientMaxWindowBits != 0 && (c.ClientMaxWindowBits < minWindowBits || c.ClientMaxWindowBits > maxWindowBits) {
		return errClientBits
	}
	return nil
}

// withDefaults returns a copy of c (zero for nil) with every field in range.
func (c *Config) withDefaults() Config {
	var n Config
	if c != nil {
		n = *c
	}
	if n.Level < 1 || n.Level > 9 {
		n.Level = defaultLevel
	}
	if n.HistoryBits < minWindowBits || n.HistoryBits > maxWindowBits {
		n.HistoryBits = defaultHistoryBits
	}
	if n.ClientMaxWindowBits < minWindowBits || n.ClientMaxWindowBits > maxWindowBits {
		n.ClientMaxWindowBits = defaultClientBits
	}
	return n
}

// thresholds returns the minimum sizes compressed without and with history.
func (c *Config) thresholds() (plain, hist int) {
	switch {
	case c.Threshold > 0:
		return c.Threshold, c.Threshold
	case c.Threshold < 0:
		return 0, 0
	}
	return defaultThreshold, defaultHistThresh
}
