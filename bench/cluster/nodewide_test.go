package cluster

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/centrifugal/centrifuge-go"
	"github.com/golang-jwt/jwt/v5"
)

// /api/channels called on one node lists the channels subscribed on
// every node, with their client counts summed (as Centrifugo's).
func TestChannelsAcrossNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	dir := t.TempDir()
	gateBin := build(t, dir, "wsgate", "github.com/wsgate/wsgate/cmd/wsgate")
	cfgFile := writeConfig(t, dir)
	s := startNATS(t, filepath.Join(dir, "js"), -1)
	defer s.Shutdown()
	a := startNode(t, dir, gateBin, cfgFile, s.ClientURL(), "a")
	b := startNode(t, dir, gateBin, cfgFile, s.ClientURL(), "b")
	clients := []*client{
		newClient(t, "ws://"+a.ws+"/connection/websocket", "u1", "only-on-a", false),
		newClient(t, "ws://"+b.ws+"/connection/websocket", "u2", "both", true),
		newClient(t, "ws://"+a.ws+"/connection/websocket", "u3", "both", false),
	}
	waitUntil(t, "clients subscribed", 10*time.Second, func() bool { return allSubscribed(clients) })
	waitUntil(t, "nodes see each other", 10*time.Second, func() bool {
		r, err := api(b, "info", struct{}{})
		var inf info
		return err == nil && json.Unmarshal(r["result"], &inf) == nil && len(inf.Nodes) == 2
	})

	r, err := api(b, "channels", map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Channels map[string]struct {
			NumClients int `json:"num_clients"`
		} `json:"channels"`
	}
	if err := json.Unmarshal(r["result"], &res); err != nil {
		t.Fatal(err)
	}
	if res.Channels["only-on-a"].NumClients != 1 || res.Channels["both"].NumClients != 2 || len(res.Channels) != 2 {
		t.Errorf("/api/channels on node b: %s; want only-on-a with 1 client, both with 2", r["result"])
	}
}

// /api/subscribe called on one node subscribes a user connected to
// another node (a server-side subscription), which then gets the
// channel's publications.
func TestServerSubscribeAcrossNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	dir := t.TempDir()
	gateBin := build(t, dir, "wsgate", "github.com/wsgate/wsgate/cmd/wsgate")
	cfgFile := writeConfig(t, dir)
	s := startNATS(t, filepath.Join(dir, "js"), -1)
	defer s.Shutdown()
	a := startNode(t, dir, gateBin, cfgFile, s.ClientURL(), "a")
	b := startNode(t, dir, gateBin, cfgFile, s.ClientURL(), "b")
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "srv"}).SignedString([]byte(secret))
	c := centrifuge.NewJsonClient("ws://"+b.ws+"/connection/websocket", centrifuge.Config{Token: tok})
	subscribed := make(chan string, 4)
	pubs := make(chan uint64, 16)
	c.OnSubscribed(func(e centrifuge.ServerSubscribedEvent) { subscribed <- e.Channel })
	c.OnPublication(func(e centrifuge.ServerPublicationEvent) { pubs <- e.Offset })
	connected := make(chan struct{})
	c.OnConnected(func(centrifuge.ConnectedEvent) { close(connected) })
	if err := c.Connect(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-connected
	waitUntil(t, "nodes see each other", 10*time.Second, func() bool {
		r, err := api(a, "info", struct{}{})
		var inf info
		return err == nil && json.Unmarshal(r["result"], &inf) == nil && len(inf.Nodes) == 2
	})
	if _, err := api(a, "subscribe", map[string]any{"user": "srv", "channel": "srv-ch"}); err != nil {
		t.Fatal(err)
	}
	select {
	case ch := <-subscribed:
		if ch != "srv-ch" {
			t.Fatalf("subscribed to %q", ch)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("user on node b not subscribed through node a's API")
	}
	if _, err := api(a, "publish", map[string]any{"channel": "srv-ch", "data": 1}); err != nil {
		t.Fatal(err)
	}
	select {
	case o := <-pubs:
		if o != 1 {
			t.Fatalf("publication offset %d", o)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server-side subscriber on node b got no publication")
	}
}
