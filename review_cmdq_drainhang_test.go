package wsgate

import (
	"context"
	"testing"
	"time"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"
)

// TestReviewCmdqDrainBrokerNeverAnswers: Drain with commands waiting for
// a broker that never answers returns once its context ends (with its
// error), not when the broker answers.
func TestReviewCmdqDrainBrokerNeverAnswers(t *testing.T) {
	n, b := startGatedNode(t, slowConfig(), NodeOptions{})
	for i := range 3 {
		g := dialNode(t, n.addr, i == 1)
		g.connect(token(t, jwt.MapClaims{"sub": "d"}))
		if i == 0 {
			b.shut()
		}
		g.send(&protocol.Command{Publish: &protocol.PublishRequest{Channel: "slow:p", Data: []byte(`{}`)}},
			&protocol.Command{Subscribe: &protocol.SubscribeRequest{Channel: "slow:n"}})
	}
	waitUntil(t, "publishes waiting", func() bool { return b.nwaiting() == 3 })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- n.Drain(ctx, 0) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Drain returned nil while broker calls were under way")
		}
		t.Logf("Drain returned after %v: %v", time.Since(start).Round(time.Millisecond), err)
	case <-time.After(8 * time.Second):
		t.Fatal("Drain did not return after its context ended")
	}
}
