package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/bench/gateway"
	"github.com/wsgate/wsgate/bench/load"
)

// TestGatewaySmoke runs the gateway scenario at a tiny size against each
// gateway target (GATEWAY_TARGETS; a missing binary skips, except with
// CI=true) and checks that every publication reached every client.
func TestGatewaySmoke(t *testing.T) {
	for _, kind := range gateway.Kinds() {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			bin, err := gateway.LookBinary(kind, dir)
			if err != nil {
				if os.Getenv("CI") == "true" {
					t.Fatal(err)
				}
				t.Skip(err)
			}
			tg, err := gateway.Start(kind, bin, gateway.DefaultConfig(100), dir)
			if err != nil {
				t.Fatal(err)
			}
			defer tg.Close()
			const conns = 20
			res, err := load.Run(context.Background(), load.Config{
				Scenario: load.ScenarioGateway,
				URL:      tg.WS,
				Gateway: &load.GatewayTarget{
					API: tg.API, APIKey: tg.Config.APIKey, Secret: tg.Config.Secret, Channel: gatewayChannel,
				},
				Conns:    conns,
				Size:     128,
				PubRate:  20,
				Duration: 2 * time.Second,
				Warmup:   200 * time.Millisecond,
				Stats:    load.StatsSource{PID: tg.PID()},
				Stderr:   os.Stderr,
			})
			if err != nil {
				t.Fatalf("%v\nserver:\n%s", err, tg.Output())
			}
			var out bytes.Buffer
			printResult(&out, res)
			t.Logf("\n%s", out.String())
			c := res.Counters
			// A publish tick skipped because every request slot was busy
			// is the machine's load, not a delivery error (it is counted
			// in Errors too): every publication made must reach every
			// client, in order, once.
			for _, e := range res.PubErrors {
				if !strings.Contains(e, "every request slot busy") {
					t.Errorf("publish failed: %s", e)
				}
			}
			if res.Errors-res.PubFailed != 0 || c.Subscribed != conns || res.Published < 20 {
				t.Errorf("errors %d (%v; publisher %v), %d subscribed, %d published, %d skipped; want 0 delivery errors, %d, at least 20",
					res.Errors, res.Samples, res.PubErrors, c.Subscribed, res.Published, res.PubFailed, conns)
			}
			if c.Recv != res.Published*conns {
				t.Errorf("%d deliveries; want %d publications × %d clients", c.Recv, res.Published, conns)
			}
			if s := res.Server; s == nil || s.RSSPerConn <= 0 || s.CPUPerMsgUs <= 0 {
				t.Errorf("server figures %+v; want RSS per client and CPU per delivery", s)
			} else if s.Step == nil || s.StepClients != conns/2 || s.Step.RSSBytes <= s.Baseline.RSSBytes {
				t.Errorf("server figures %+v, step %+v; want the server read once the first %d clients subscribed", s, s.Step, conns/2)
			}
			if !strings.Contains(out.String(), "concurrent, not batched") {
				t.Errorf("summary does not say how publishing was done:\n%s", out.String())
			}
		})
	}
}
