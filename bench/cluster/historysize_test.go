package cluster

import (
	"fmt"
	"testing"

	"github.com/wsgate/wsgate"
)

// TestHistorySize checks natsbroker's wsgate.HistorySizer against a real
// NATS server: publications with history are counted (by any node of the
// stream), ones without are not, and an unreachable NATS is an error.
func TestHistorySize(t *testing.T) {
	s := startNATS(t, t.TempDir(), -1)
	a := newBroker(t, s.ClientURL(), "a", nil)
	b := newBroker(t, s.ClientURL(), "b", nil)
	var hs wsgate.HistorySizer = b
	var data int64
	for i := range 8 {
		d := fmt.Sprintf(`{"n":%d}`, i)
		data += int64(len(d))
		if _, err := a.Publish(fmt.Sprint("ch", i%3), []byte(d), hist); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Publish("live", []byte(`{}`), wsgate.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	pubs, bytes, err := hs.HistorySize()
	if err != nil || pubs != 8 || bytes < data {
		t.Fatalf("HistorySize = %d publications, %d bytes, %v; want 8, at least %d", pubs, bytes, err, data)
	}
	s.Shutdown()
	s.WaitForShutdown()
	waitFor(t, func() bool { _, _, err := hs.HistorySize(); return err != nil })
}
