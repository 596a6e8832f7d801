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
// <prefix>.ctl.info, server API commands on <prefix>.ctl.cmd, server
// API queries (answered by every other node) on <prefix>.ctl.survey.
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
// Commands and queries from other nodes run on the subscription's
// goroutine, one at a time; a query's result is the reply.
func (b *Broker) RunCluster(info func() wsgate.NodeInfo, run func(method string, body []byte) []byte) error {
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
		case strings.HasSuffix(m.Subject, ".survey"):
			var c command
			if json.Unmarshal(m.Data, &c) == nil && m.Reply != "" {
				_ = m.Respond(run(c.Method, c.Body))
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

// Survey implements wsgate.Cluster: the query is published once on the
// survey subject with a reply inbox, and the answers are gathered until
// every node listed by Nodes has answered or Options.Timeout has passed.
func (b *Broker) Survey(method string, body []byte) ([][]byte, error) {
	if !b.nc.IsConnected() {
		return nil, ErrNotConnected
	}
	data, err := json.Marshal(command{Method: method, Body: body})
	if err != nil {
		return nil, err
	}
	want := len(b.Nodes())
	if want == 0 {
		return nil, nil
	}
	inbox := b.nc.NewInbox()
	sub, err := b.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := b.nc.PublishRequest(b.o.Prefix+".ctl.survey", inbox, data); err != nil {
		return nil, err
	}
	var out [][]byte
	deadline := time.Now().Add(b.o.Timeout)
	for len(out) < want {
		m, err := sub.NextMsg(time.Until(deadline))
		if err != nil {
			break // the nodes that did not answer in time are left out
		}
		out = append(out, m.Data)
	}
	return out, nil
}
