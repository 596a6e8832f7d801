package wsgate

import "encoding/json"

// Cluster is an optional interface of a Broker that links the nodes of a
// deployment for the server API's node-wide operations: /api/info lists
// every node, and /api/disconnect, /api/unsubscribe and /api/subscribe
// reach the clients of every node. A Broker that does not implement it
// (MemoryBroker) serves one node.
type Cluster interface {
	// RunCluster starts exchanging with the other nodes: info returns
	// this node's figures (called periodically), and run executes a
	// server API command or query (method and JSON body) that another
	// node received, on this node's clients and channels only, and
	// returns its JSON result (what a Survey gets back).
	RunCluster(info func() NodeInfo, run func(method string, body []byte) []byte) error
	// Nodes returns the latest figures of the other nodes that are alive.
	Nodes() []NodeInfo
	// Broadcast sends a server API command to every other node.
	Broadcast(method string, body []byte) error
	// Survey sends a server API query to every other node and returns
	// the results that came back within the broker's timeout.
	Survey(method string, body []byte) ([][]byte, error)
}

// NodeInfo is one node's entry in /api/info.
type NodeInfo struct {
	UID         string `json:"uid"`
	Name        string `json:"name"`
	Version     string `json:"version"`
	NumClients  int64  `json:"num_clients"`
	NumUsers    int    `json:"num_users"`
	NumChannels int    `json:"num_channels"`
	Uptime      uint32 `json:"uptime"`
	NumSubs     int    `json:"num_subs"`
}

// clusterMethods are the server API methods that act on the clients of
// every node.
var clusterMethods = []string{"disconnect", "unsubscribe", "subscribe"}

// Info returns this node's figures.
func (n *Node) Info() NodeInfo {
	users := map[string]struct{}{}
	n.eachClient(func(c *session) {
		if c.state.Load() == stateConnected {
			users[c.user] = struct{}{}
		}
	})
	chans, subs := 0, 0
	for i := range n.channels {
		sh := &n.channels[i]
		sh.mu.Lock()
		chans += len(sh.m)
		for _, ch := range sh.m {
			subs += ch.refs
		}
		sh.mu.Unlock()
	}
	return NodeInfo{UID: n.id, Name: n.name, Version: Version, NumClients: n.nconn.Load(),
		NumUsers: len(users), NumChannels: chans, Uptime: n.clock(), NumSubs: subs}
}

// startCluster links the node to the others when its broker is a
// Cluster.
func (n *Node) startCluster() error {
	c, ok := n.broker.(Cluster)
	if !ok {
		return nil
	}
	return c.RunCluster(n.Info, func(method string, body []byte) []byte {
		var f func([]byte) (any, *apiError)
		switch method {
		case "disconnect":
			f = n.apiDisconnect
		case "unsubscribe":
			f = n.apiUnsubscribe
		case "subscribe":
			f = n.apiSubscribe
		case "channels":
			f = func(body []byte) (any, *apiError) { return n.localChannels(body) }
		default:
			n.log.Warn("unknown command from another node", "method", method)
			return nil
		}
		res, e := f(body)
		if e != nil {
			n.log.Warn("command from another node failed", "method", method, "err", e.Message)
			return nil
		}
		b, _ := json.Marshal(res)
		return b
	})
}

// clusterize makes the node-wide methods of the API also send the
// command to the other nodes when the broker is a Cluster.
func (n *Node) clusterize(methods map[string]func([]byte) (any, *apiError)) {
	c, ok := n.broker.(Cluster)
	if !ok {
		return
	}
	for _, name := range clusterMethods {
		local := methods[name]
		methods[name] = func(body []byte) (any, *apiError) {
			res, e := local(body)
			if e == nil {
				if err := c.Broadcast(name, body); err != nil {
					n.log.Warn("command not sent to the other nodes", "method", name, "err", err)
					return nil, apiErrInternal
				}
			}
			return res, e
		}
	}
}

// nodes returns this node's info and the other nodes'.
func (n *Node) nodes() []NodeInfo {
	out := []NodeInfo{n.Info()}
	if c, ok := n.broker.(Cluster); ok {
		out = append(out, c.Nodes()...)
	}
	return out
}
