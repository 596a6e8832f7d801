package main

import (
	"encoding/binary"
	"testing"
)

// TestMetricsPeerCloseCodes: close codes are peers' to choose (3000–4999
// are valid on the wire), so a label per code would let any client add
// series to /metrics: 300 clients closing with 300 different codes must
// not make 300 series of any metric: they are counted under
// code="other".
func TestMetricsPeerCloseCodes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	bin := buildCmd(t)
	ws, admin := freeAddr(t), freeAddr(t)
	run(t, bin, "admin listening", "-addr", ws, "-api-addr", freeAddr(t), "-admin", admin, "-token-hmac-secret", "s", "-api-key", "k")
	const clients = 300
	for i := range clients {
		c := dialWS(t, ws)
		if err := c.write(8, binary.BigEndian.AppendUint16(nil, uint16(4200+i))); err != nil {
			t.Fatal(err)
		}
		if _, code, err := c.read(); err != nil || code != 4200+i {
			t.Fatalf("client %d: echo %d %v", i, code, err)
		}
		c.c.Close()
	}
	waitFor(t, "the closes in /metrics", func() bool {
		v, _ := value(scrape(t, admin), "wsgate_connections", "state", "open")
		return v == 0
	})
	mfs := scrape(t, admin)
	for _, name := range []string{"wsgate_disconnects_total", "wsgate_close_frames_total"} {
		mf := mfs[name]
		if mf == nil {
			t.Fatalf("no %s", name)
		}
		if n := len(mf.Metric); n > 20 {
			t.Errorf("%s has %d series after %d peers closed with codes of their choice", name, n, clients)
		}
	}
	// They are counted, under code="other".
	for _, m := range [][]string{{"wsgate_disconnects_total", "code", "other"},
		{"wsgate_close_frames_total", "direction", "received", "code", "other"},
		{"wsgate_close_frames_total", "direction", "sent", "code", "other"}} {
		if v, _ := value(mfs, m[0], m[1:]...); v != clients {
			t.Errorf("%s%v = %v, want %d", m[0], m[1:], v, clients)
		}
	}
}
