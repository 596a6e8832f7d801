//go:build !windows

package pprof

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/loop"
)

// Descriptions of the metrics; the ones after nodeDescs only exist for a
// gateway node.
var (
	descConns = prometheus.NewDesc("wsgate_connections",
		"TCP connections in their WebSocket handshake (state=handshaking) and upgraded ones (state=open).", []string{"state"}, nil)
	descRefused = prometheus.NewDesc("wsgate_connections_refused_total",
		"TCP connections closed at accept: beyond the TCP connection or handshake limits.", nil, nil)
	descRejected = prometheus.NewDesc("wsgate_handshake_rejections_total",
		"WebSocket handshakes refused, by HTTP status of the answer.", []string{"status"}, nil)
	descCloses = prometheus.NewDesc("wsgate_close_frames_total",
		"Close frames by direction (sent, received) and close code.", []string{"direction", "code"}, nil)
	descMsgsIn = prometheus.NewDesc("wsgate_messages_in_total",
		"WebSocket data messages received.", nil, nil)
	descMsgsOut = prometheus.NewDesc("wsgate_messages_out_total",
		"WebSocket data messages sent.", nil, nil)
	descBytesIn = prometheus.NewDesc("wsgate_bytes_in_total",
		"Bytes read from connections, handshakes included.", nil, nil)
	descBytesOut = prometheus.NewDesc("wsgate_bytes_out_total",
		"Bytes written to connections, handshake responses included.", nil, nil)
	descDelivered = prometheus.NewDesc("wsgate_deliveries_total",
		"Published messages queued to a subscribed connection (one per publication and subscriber).", nil, nil)
	descSubs = prometheus.NewDesc("wsgate_subscriptions",
		"Subscriptions of connections to channels.", nil, nil)
	descDropped = prometheus.NewDesc("wsgate_slow_consumer_drops_total",
		"Messages dropped for slow consumers.", nil, nil)
	descConflated = prometheus.NewDesc("wsgate_slow_consumer_conflations_total",
		"Queued messages of slow consumers replaced by a newer one with the same key.", nil, nil)
	descSlowClosed = prometheus.NewDesc("wsgate_slow_consumer_disconnects_total",
		"Connections closed as slow consumers.", nil, nil)
	descBudget = prometheus.NewDesc("wsgate_message_budget_used_bytes",
		"Bytes of the message budget reserved by messages being assembled.", nil, nil)
	descSendBudget = prometheus.NewDesc("wsgate_send_budget_used_bytes",
		"Bytes of the send budget held by connections that do not keep up.", nil, nil)

	descClients = prometheus.NewDesc("wsgate_clients",
		"Connections that completed the protocol's connect.", nil, nil)
	descChannels = prometheus.NewDesc("wsgate_channels",
		"Channels with subscribers on this node.", nil, nil)
	descConnects = prometheus.NewDesc("wsgate_connects_total",
		"Successful connect commands.", nil, nil)
	descDisconnects = prometheus.NewDesc("wsgate_disconnects_total",
		"Closed WebSocket connections by close code (the first close frame's, 1006 without one).", []string{"code"}, nil)
	descCommands = prometheus.NewDesc("wsgate_command_duration_seconds",
		"Durations of client commands by method.", []string{"method"}, nil)
	descAPI = prometheus.NewDesc("wsgate_api_request_duration_seconds",
		"Durations of server API requests by method.", []string{"method"}, nil)
	descPubs = prometheus.NewDesc("wsgate_publications_total",
		"Publications by source: handed to the broker from the API or a client, or delivered by the broker to a channel with subscribers here.", []string{"source"}, nil)
	descBrokerPub = prometheus.NewDesc("wsgate_broker_publish_duration_seconds",
		"Durations of publishes to the broker.", nil, nil)
	descHistoryPubs = prometheus.NewDesc("wsgate_history_publications",
		"Publications held in channel history by the broker.", nil, nil)
	descHistoryBytes = prometheus.NewDesc("wsgate_history_bytes",
		"Bytes of publication data held in channel history by the broker.", nil, nil)
)

var (
	serverDescs = []*prometheus.Desc{descConns, descRefused, descRejected, descCloses, descMsgsIn, descMsgsOut,
		descBytesIn, descBytesOut, descDelivered, descSubs, descDropped, descConflated, descSlowClosed, descBudget, descSendBudget}
	nodeDescs = []*prometheus.Desc{descClients, descChannels, descConnects, descDisconnects, descCommands, descAPI,
		descPubs, descBrokerPub, descHistoryPubs, descHistoryBytes}
)

// collector turns the counters of a loop.Server, and of a gateway node if
// there is one, into metrics at each scrape. It keeps no state of its own:
// the counters are read where the server and node keep them.
type collector struct {
	srv  *loop.Server
	node *wsgate.Node // nil: a plain loop server
}

// NewCollector returns a Prometheus collector of the wsgate_* metrics of
// srv, and of node when it is not nil (node.Server() must then be srv).
func NewCollector(srv *loop.Server, node *wsgate.Node) prometheus.Collector {
	return &collector{srv: srv, node: node}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range serverDescs {
		ch <- d
	}
	if c.node != nil {
		for _, d := range nodeDescs {
			ch <- d
		}
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	var srv loop.Stats
	var conns int64
	if c.node != nil {
		st := c.node.Stats()
		srv, conns = st.Server, st.Conns
		collectNode(ch, &st)
	} else {
		srv, conns = c.srv.Stats(), int64(c.srv.Conns())
	}
	gauge := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(descConns, srv.Handshakes, "handshaking")
	gauge(descConns, conns, "open")
	counter(descRefused, srv.Refused)
	for status, v := range srv.Rejected {
		counter(descRejected, v, strconv.Itoa(status))
	}
	for code, v := range srv.ClosesSent {
		counter(descCloses, v, "sent", strconv.Itoa(int(code)))
	}
	for code, v := range srv.ClosesReceived {
		counter(descCloses, v, "received", strconv.Itoa(int(code)))
	}
	counter(descMsgsIn, srv.MessagesIn)
	counter(descMsgsOut, srv.MessagesOut)
	counter(descBytesIn, srv.BytesIn)
	counter(descBytesOut, srv.BytesOut)
	counter(descDelivered, srv.Delivered)
	gauge(descSubs, srv.Subscriptions)
	counter(descDropped, srv.Dropped)
	counter(descConflated, srv.Conflated)
	counter(descSlowClosed, srv.SlowClosed)
	gauge(descBudget, srv.MessageBudgetUsed)
	gauge(descSendBudget, srv.SendBudgetUsed)
}

func collectNode(ch chan<- prometheus.Metric, st *wsgate.Stats) {
	ch <- prometheus.MustNewConstMetric(descClients, prometheus.GaugeValue, float64(st.Clients))
	ch <- prometheus.MustNewConstMetric(descChannels, prometheus.GaugeValue, float64(st.Channels))
	ch <- prometheus.MustNewConstMetric(descConnects, prometheus.CounterValue, float64(st.Connects))
	for code, v := range st.Disconnects {
		ch <- prometheus.MustNewConstMetric(descDisconnects, prometheus.CounterValue, float64(v), strconv.Itoa(int(code)))
	}
	for m, h := range st.Commands {
		ch <- constHistogram(descCommands, h, m)
	}
	for m, h := range st.API {
		ch <- constHistogram(descAPI, h, m)
	}
	for src, v := range st.Publications {
		ch <- prometheus.MustNewConstMetric(descPubs, prometheus.CounterValue, float64(v), src)
	}
	ch <- constHistogram(descBrokerPub, st.BrokerPublish)
	if st.HistoryPublications >= 0 {
		ch <- prometheus.MustNewConstMetric(descHistoryPubs, prometheus.GaugeValue, float64(st.HistoryPublications))
		ch <- prometheus.MustNewConstMetric(descHistoryBytes, prometheus.GaugeValue, float64(st.HistoryBytes))
	}
}

// constHistogram turns a wsgate.Histogram into a histogram in seconds.
func constHistogram(d *prometheus.Desc, h wsgate.Histogram, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.Buckets))
	for i, b := range wsgate.DurationBuckets {
		buckets[b.Seconds()] = h.Buckets[i]
	}
	return prometheus.MustNewConstHistogram(d, h.Count, h.Sum.Seconds(), buckets, labels...)
}
