package cluster

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"
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
