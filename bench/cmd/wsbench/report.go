package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/wsgate/wsgate/bench/load"
)

// metric is one number read from a record, with how to show it.
type metric struct {
	name   string
	unit   string // shown in the column header
	better string // "lower" or "higher"
	get    func(r *load.Result) (float64, bool)
	format func(v float64) string
}

var (
	mHeapPerConn = metric{"heap/conn", "B", "lower", func(r *load.Result) (float64, bool) {
		return srv(r, func(s *load.ServerFigures) float64 { return s.HeapPerConn })
	}, fmtInt}
	mRSSPerConn = metric{"RSS/conn", "B", "lower", func(r *load.Result) (float64, bool) {
		return srv(r, func(s *load.ServerFigures) float64 { return s.RSSPerConn })
	}, fmtInt}
	mRSSPerAdded = metric{"RSS/added client", "B", "lower", func(r *load.Result) (float64, bool) {
		return srv(r, func(s *load.ServerFigures) float64 { return s.RSSPerAdded })
	}, fmtInt}
	mHandshakes = metric{"handshakes/s", "", "higher", func(r *load.Result) (float64, bool) {
		return r.HandshakesPerSec, r.HandshakesPerSec > 0
	}, fmtInt}
	mHSP99 = metric{"handshake p99", "µs", "", func(r *load.Result) (float64, bool) {
		return r.HandshakeP99, r.Counters.Handshakes > 0
	}, fmtInt}
	mMsgsPerSec = metric{"msgs/s", "", "higher", func(r *load.Result) (float64, bool) {
		return r.MsgsPerSec, r.Counters.WinRecv > 0
	}, fmtInt}
	mDeliveries = metric{"deliveries/s", "", "higher", mMsgsPerSec.get, fmtInt}
	mP50        = metric{"p50", "µs", "lower", func(r *load.Result) (float64, bool) {
		return r.LatP50, r.Counters.WinRecv > 0
	}, fmtInt}
	mP99 = metric{"p99", "µs", "lower", func(r *load.Result) (float64, bool) {
		return r.LatP99, r.Counters.WinRecv > 0
	}, fmtInt}
	mP999 = metric{"p99.9", "µs", "lower", func(r *load.Result) (float64, bool) {
		return r.LatP999, r.Counters.WinRecv > 0
	}, fmtInt}
	mCPUPerMsg = metric{"server CPU/msg", "µs", "lower", func(r *load.Result) (float64, bool) {
		if r.Counters.WinRecv == 0 && r.Counters.WinHandshakes == 0 {
			return 0, false // no messages: no figure (not a best one of 0)
		}
		return srv(r, func(s *load.ServerFigures) float64 { return s.CPUPerMsgUs })
	}, fmtFloat}
	mCPUPerDelivery  = metric{"server CPU/delivery", "µs", "lower", mCPUPerMsg.get, fmtFloat}
	mCPUPerHandshake = metric{"server CPU/handshake", "µs", "lower", mCPUPerMsg.get, fmtFloat}
	mCores           = metric{"server cores", "", "", func(r *load.Result) (float64, bool) {
		return srv(r, func(s *load.ServerFigures) float64 { return s.CPUUtilization })
	}, fmtFloat}
	mRSS = metric{"server RSS", "MiB", "", func(r *load.Result) (float64, bool) {
		return srv(r, func(s *load.ServerFigures) float64 { return float64(s.After.RSSBytes) / (1 << 20) })
	}, fmtFloat}
	mFailures = metric{"failures", "", "", func(r *load.Result) (float64, bool) {
		return float64(r.Counters.WinHSFailed), true
	}, fmtInt}
	mOpen = metric{"open", "", "", func(r *load.Result) (float64, bool) {
		return float64(r.Counters.Open), true
	}, fmtInt}
	mErrors = metric{"errors", "", "", func(r *load.Result) (float64, bool) {
		return float64(r.Errors), true
	}, fmtInt}
	mCompressed = metric{"compressed", "%", "", func(r *load.Result) (float64, bool) {
		if r.Counters.Recv == 0 {
			return 0, false
		}
		return 100 * float64(r.Counters.Compressed) / float64(r.Counters.Recv), true
	}, fmtInt}
	mWireRatio = metric{"wire/payload", "", "", func(r *load.Result) (float64, bool) {
		if r.Counters.WinBytes == 0 {
			return 0, false
		}
		return float64(r.Counters.WinWire) / float64(r.Counters.WinBytes), true
	}, func(v float64) string { return fmt.Sprintf("%.3f", v) }}
)

func srv(r *load.Result, f func(*load.ServerFigures) float64) (float64, bool) {
	if r == nil || r.Server == nil {
		return 0, false
	}
	return f(r.Server), true
}

func fmtInt(v float64) string { return groupDigits(fmt.Sprintf("%.0f", v)) }

func fmtFloat(v float64) string {
	switch {
	case v >= 100:
		return fmtInt(v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// groupDigits puts thousands separators into an integer string.
func groupDigits(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// columns returns the metrics of a scenario's table; those with a
// "better" direction get a ratio column against wsgate.
func columns(scenario string, deflate bool) []metric {
	var m []metric
	switch scenario {
	case load.ScenarioIdle:
		m = []metric{mOpen, mHeapPerConn, mRSSPerConn, mHandshakes, mHSP99, mErrors}
	case load.ScenarioEcho:
		m = []metric{mMsgsPerSec, mP50, mP99, mP999, mCPUPerMsg, mCores, mErrors}
	case load.ScenarioFanout:
		m = []metric{mDeliveries, mP50, mP99, mCPUPerDelivery, mCores, mRSS, mErrors}
	case load.ScenarioStorm:
		m = []metric{mHandshakes, mHSP99, mFailures, mCPUPerHandshake, mCores, mErrors}
	case load.ScenarioGateway:
		m = []metric{mDeliveries, mP50, mP99, mCPUPerDelivery, mCores, mRSSPerConn, mRSSPerAdded, mRSS, mErrors}
	}
	if deflate && scenario != load.ScenarioIdle && scenario != load.ScenarioStorm {
		m = append(m, mCompressed, mWireRatio)
	}
	return m
}

// ratioed are the metrics that get a "×wsgate" column.
var ratioed = map[string]bool{
	"heap/conn": true, "RSS/conn": true, "RSS/added client": true, "msgs/s": true, "deliveries/s": true,
	"p99": true, "server CPU/msg": true, "server CPU/delivery": true,
	"handshakes/s": true, "server CPU/handshake": true,
}

// markdown renders the report: the setup, then one table per case.
func markdown(rep *report) string {
	var b strings.Builder
	st := rep.Settings
	b.WriteString("# wsgate vs peers\n\n")
	fmt.Fprintf(&b, "Command: `%s`  \nReproduce: `cd bench && go run ./cmd/%s`  \nDate: %s (%s)\n\n", rep.Command, rep.Command, rep.Date, rep.Elapsed)
	b.WriteString("Machine:\n\n```\n")
	keys := make([]string, 0, len(rep.Machine))
	for k := range rep.Machine {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := rep.Machine[k]
		if strings.Contains(v, "\n") {
			fmt.Fprintf(&b, "$ %s\n%s\n", k, v)
		} else {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	b.WriteString("```\n\n")
	fmt.Fprintf(&b, "Sizes: idle %d connections (opened at %s/s, held %v); echo %d connections × %d in flight, sizes %v B; "+
		"fanout %d subscribers, one publisher at %s broadcasts/s of %d B; storm %d connections in flight; "+
		"windows of %v after %v warm-up; servers with -loops %d.\n\n",
		st.IdleConns, fmtInt(st.DialRate), st.Hold, st.EchoConns, st.InFlight, st.EchoSizes,
		st.FanoutSubs, fmtFloat(st.FanoutRate), st.FanoutSize, st.StormConns, st.Duration, st.Warmup, st.ServerLoops)
	b.WriteString("Client and servers share the machine. Server CPU is the server process's own user+system time " +
		"(`/stats` cpu_seconds, from /proc) over the measuring window, divided by the messages (echo round trips, " +
		"fanout deliveries, storm handshakes) completed in it; it is the fairest figure when the load generator " +
		"competes for the same cores. Memory per idle connection is the growth of the server's Go heap in use " +
		"(after a forced GC) and of its RSS from before the first connection to after the last, divided by the " +
		"connections open. ×wsgate is the server's figure divided by wsgate's. Every message is verified " +
		"(length, sequence, every byte); errors counts wrong, reordered, lost or unexpectedly closed. " +
		"With permessage-deflate, wire/payload is the compression ratio of what the server sent: the payload " +
		"bytes received (compressed size for compressed messages) over the message bytes, in the window.\n\n")
	if len(rep.Missing) > 0 {
		b.WriteString("Not compared:\n\n")
		for _, name := range sortedKeys(rep.Missing) {
			fmt.Fprintf(&b, "- %s: %s\n", name, rep.Missing[name])
		}
		b.WriteString("\n")
	}
	// One table per case, in run order.
	var order []benchCase
	seen := map[string]bool{}
	for _, r := range rep.Records {
		if !seen[r.Case.id()] {
			seen[r.Case.id()] = true
			order = append(order, r.Case)
		}
	}
	for _, c := range order {
		fmt.Fprintf(&b, "## %s\n\n", caseTitle(c, st))
		cols := columns(c.Scenario, c.Deflate)
		var base *load.Result
		for _, r := range rep.Records {
			if r.Case.id() == c.id() && r.Server == "wsgate" {
				base = r.Result
			}
		}
		b.WriteString("| server |")
		for _, m := range cols {
			h := m.name
			if m.unit != "" {
				h += " (" + m.unit + ")"
			}
			fmt.Fprintf(&b, " %s |", h)
			if ratioed[m.name] {
				fmt.Fprintf(&b, " ×wsgate (%s is better) |", m.better)
			}
		}
		b.WriteString("\n|---|")
		for _, m := range cols {
			b.WriteString("---:|")
			if ratioed[m.name] {
				b.WriteString("---:|")
			}
		}
		b.WriteString("\n")
		var notes []string
		for _, r := range rep.Records {
			if r.Case.id() != c.id() {
				continue
			}
			fmt.Fprintf(&b, "| %s |", r.Server)
			if r.Result == nil {
				why := r.Skipped
				if why == "" {
					why = "failed"
				}
				for _, m := range cols {
					b.WriteString(" – |")
					if ratioed[m.name] {
						b.WriteString(" – |")
					}
				}
				notes = append(notes, fmt.Sprintf("%s: %s%s", r.Server, why, errSuffix(r.Error)))
				b.WriteString("\n")
				continue
			}
			for _, m := range cols {
				v, ok := m.get(r.Result)
				if ok {
					fmt.Fprintf(&b, " %s |", m.format(v))
				} else {
					b.WriteString(" – |")
				}
				if ratioed[m.name] {
					bv, bok := 0.0, false
					if base != nil {
						bv, bok = m.get(base)
					}
					if ok && bok && bv != 0 {
						fmt.Fprintf(&b, " %.2f |", v/bv)
					} else {
						b.WriteString(" – |")
					}
				}
			}
			b.WriteString("\n")
			if r.Error != "" {
				notes = append(notes, fmt.Sprintf("%s: %s", r.Server, r.Error))
			}
			if rc := r.Result.Counters; r.Result.Errors > 0 || rc.HSFailed > 0 {
				notes = append(notes, fmt.Sprintf("%s: %d errors, %d failed connection attempts: %s",
					r.Server, r.Result.Errors, rc.HSFailed, strings.Join(r.Result.Samples, "; ")))
			}
		}
		b.WriteString("\n")
		for _, n := range notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		if len(notes) > 0 {
			b.WriteString("\n")
		}
	}
	b.WriteString("Charts: ")
	for i, name := range chartNames {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "[%s](%s)", name, name)
	}
	b.WriteString(".\n")
	return b.String()
}

func errSuffix(e string) string {
	if e == "" {
		return ""
	}
	return " (" + e + ")"
}

func caseTitle(c benchCase, st compareSettings) string {
	z := "compression off"
	if c.Deflate {
		z = "permessage-deflate"
	}
	if c.Takeover {
		z = "permessage-deflate with server context takeover offered (results.json counters.takeover: connections whose server kept it)"
	}
	switch c.Scenario {
	case load.ScenarioIdle:
		return fmt.Sprintf("Idle: %s connections, %s", fmtInt(float64(st.IdleConns)), z)
	case load.ScenarioEcho:
		return fmt.Sprintf("Echo %s: %d connections × %d in flight, %s", sizeName(c.Size), st.EchoConns, st.InFlight, z)
	case load.ScenarioFanout:
		stalled := ""
		if c.Stalled > 0 {
			stalled = fmt.Sprintf(" (%s of them stalled: they never read)", fmtInt(float64(c.Stalled)))
		}
		return fmt.Sprintf("Fanout: %s subscribers%s, %s broadcasts/s of %s, %s", fmtInt(float64(st.FanoutSubs)), stalled, fmtFloat(st.FanoutRate), sizeName(c.Size), z)
	case load.ScenarioStorm:
		return fmt.Sprintf("Storm: connect/close churn, %d in flight, %s", st.StormConns, z)
	case load.ScenarioGateway:
		return fmt.Sprintf("Gateway: %s clients connected with a JWT and subscribed to %s; %s HTTP API publishes/s of %s "+
			"(up to 8 requests in flight, not batched); wsgate row: the library's raw broadcast (wsgate echo -broadcast) "+
			"of %s messages, the size of the gateway's pushes; RSS/conn: RSS growth per subscribed client, from before "+
			"the first connection to the last subscription; RSS/added client: the growth per client of the second half, "+
			"which connects after the first half subscribed (what one more client costs, without what the first ones paid once)",
			fmtInt(float64(st.FanoutSubs)), gatewayChannel, fmtFloat(st.FanoutRate), sizeName(c.Size), sizeName(gatewayPushSize(c.Size)))
	}
	return c.label()
}

func sortedKeys(m map[string]string) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}
