package main

import (
	"context"
	"testing"
	"time"

	"github.com/wsgate/wsgate/bench/load"
)

// runTakeover runs a fanout of 150-byte ticks (size bytes for size > 0)
// with the takeover offer against url and wants every message verified.
func runTakeover(t *testing.T, wsURL, statsURL string, size int) *load.Result {
	t.Helper()
	r, err := load.Run(context.Background(), load.Config{
		Scenario: load.ScenarioFanout, URL: wsURL, Deflate: true, Takeover: true,
		Conns: 20, Workers: 2, Loops: 1, Size: size, PubRate: 50,
		Duration: time.Second, Warmup: 300 * time.Millisecond, Timeout: 40 * time.Second,
		Stats: load.StatsSource{URL: statsURL},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", r.Counters)
	if r.Errors != 0 || r.Counters.HSFailed != 0 {
		t.Fatalf("%d errors, %d failed connections: %v", r.Errors, r.Counters.HSFailed, r.Samples)
	}
	// 50/s for 1.3 s to 20 subscribers and the publisher.
	if r.Counters.WinRecv < 20*40 {
		t.Errorf("%d deliveries verified in the window, want at least %d", r.Counters.WinRecv, 20*40)
	}
	return r
}

// TestTakeoverFanout reads wsgate's broadcast with server context
// takeover: every tick is inflated with its connection's window and
// verified, and the history makes the ticks far smaller than
// compression without it does (~1.0 of the payload at 150 bytes).
func TestTakeoverFanout(t *testing.T) {
	wsURL, statsURL := startWsgate(t, "-broadcast", "-deflate", "-deflate-takeover", "-loops", "2")
	r := runTakeover(t, wsURL, statsURL, 150)
	c := r.Counters
	if c.Takeover != c.Handshakes {
		t.Errorf("%d of %d handshakes kept the server's context, want all", c.Takeover, c.Handshakes)
	}
	if c.Compressed != c.Recv {
		t.Errorf("%d of %d messages arrived compressed, want all", c.Compressed, c.Recv)
	}
	ratio := float64(c.WinWire) / float64(c.WinBytes)
	t.Logf("wire/payload %.3f", ratio)
	if ratio <= 0.1 || ratio > 0.6 {
		t.Errorf("wire/payload %.3f, want within (0.1, 0.6]", ratio)
	}
}

// TestTakeoverDeclined offers takeover to wsgate without
// -deflate-takeover, which answers server_no_context_takeover: the
// client inflates each message on its own and still verifies all.
func TestTakeoverDeclined(t *testing.T) {
	wsURL, statsURL := startWsgate(t, "-broadcast", "-deflate", "-loops", "1")
	// 2000 bytes: over wsgate's threshold for compression without history.
	r := runTakeover(t, wsURL, statsURL, 2000)
	if c := r.Counters; c.Takeover != 0 || c.Compressed != c.Recv {
		t.Errorf("takeover kept by %d servers, %d of %d compressed; want 0 and all", c.Takeover, c.Compressed, c.Recv)
	}
}

func TestCompressionModes(t *testing.T) {
	got, err := compressionModes("off,takeover")
	if err != nil || len(got) != 2 || got[0] != (compression{}) || got[1] != (compression{deflate: true, takeover: true}) {
		t.Errorf("off,takeover: %+v, %v", got, err)
	}
	got, err = compressionModes("both")
	if err != nil || len(got) != 2 || got[0] != (compression{}) || got[1] != (compression{deflate: true}) {
		t.Errorf("both: %+v, %v", got, err)
	}
	for _, bad := range []string{"", "zstd", "on,x"} {
		if _, err := compressionModes(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	c := benchCase{Name: "fanout", Deflate: true, Takeover: true}
	if c.id() != "fanout-deflate-takeover" || c.label() != "fanout, deflate takeover" {
		t.Errorf("id %q, label %q", c.id(), c.label())
	}
}
