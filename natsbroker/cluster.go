package natsbroker

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wsgate/wsgate"
)

// HeartbeatInterval is how often a node publishes its figures; a node
// not heard from for three intervals is left out of Nodes.
const HeartbeatInterval = time.Second

// control is the state of the control subjects: node heartbeats on
// <prefix>.ctl.info, server API commands on <prefix>.ctl.cmd.
type control struct {
	mu    sync.Mutex
	nodes map[string]seenNode
}

type seenNode struct {
	info wsgate.NodeInfo
	at   time.Time
}

type command struct {
	Method string          `json:"method"`
	Body   json.RawMessage `json:"body"`
}

// RunCluster implements wsgate.Cluster: it subscribes to the control
// subjects and publishes this node's figures every HeartbeatInterval.
// Commands from other nodes run on the subscription's goroutine, one at
// a time.
func (b *Broker) RunCluster(info func() wsgate.NodeInfo, run func(method string, body []byte)) error {
	b.ctl.nodes = map[string]seenNode{}
	_, err := b.nc.Subscribe(b.o.Prefix+".ctl.*", func(m *nats.Msg) {
		switch {
		case strings.HasSuffix(m.Subject, ".info"):
			var ni wsgate.NodeInfo
			if json.Unmarshal(m.Data, &ni) != nil || ni.UID == "" {
				return
			}
			b.ctl.mu.Lock()
			b.ctl.nodes[ni.UID] = seenNode{ni, time.Now()}
			b.ctl.mu.Unlock()
		case strings.HasSuffix(m.Subject, ".cmd"):
			var c command
			if json.Unmarshal(m.Data, &c) == nil {
				run(c.Method, c.Body)
			}
		}
	})
	if err != nil {
		return err
	}
	go func() {
		t := time.NewTicker(HeartbeatInterval)
		defer t.Stop()
		for {
			if b.nc.IsConnected() {
				if data, err := json.Marshal(info()); err == nil {
					_ = b.nc.Publish(b.o.Prefix+".ctl.info", data)
				}
			}
			b.ctl.mu.Lock()
			for id, s := range b.ctl.nodes {
				if time.Since(s.at) > 3*HeartbeatInterval {
					delete(b.ctl.nodes, id)
				}
			}
			b.ctl.mu.Unlock()
			select {
			case <-b.closed:
				return
			case <-t.C:
			}
		}
	}()
	return nil
}

// Nodes implements wsgate.Cluster: the other nodes heard from within
// three heartbeats, by name.
func (b *Broker) Nodes() []wsgate.NodeInfo {
	b.ctl.mu.Lock()
	defer b.ctl.mu.Unlock()
	out := make([]wsgate.NodeInfo, 0, len(b.ctl.nodes))
	for _, s := range b.ctl.nodes {
		if time.Since(s.at) <= 3*HeartbeatInterval {
			out = append(out, s.info)
		}
	}
	slices.SortFunc(out, func(a, b wsgate.NodeInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Broadcast implements wsgate.Cluster: the command is published once on
// the command subject, and flushed so that an error means NATS did not
// take it.
func (b *Broker) Broadcast(method string, body []byte) error {
	if !b.nc.IsConnected() {
		return ErrNotConnected
	}
	data, err := json.Marshal(command{Method: method, Body: body})
	if err != nil {
		return err
	}
	if err := b.nc.Publish(b.o.Prefix+".ctl.cmd", data); err != nil {
		return err
	}
	return b.nc.FlushTimeout(b.o.Timeout)
}
