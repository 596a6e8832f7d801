package main

import (
	"fmt"
	"html"
	"math"
	"strings"

	"github.com/wsgate/wsgate/bench/load"
)

// chartNames are the SVG files compare writes.
var chartNames = []string{"memory-per-conn.svg", "msgs-per-sec.svg", "p99-latency.svg", "cpu-per-msg.svg"}

// serverColors gives every server the same colour in every chart.
var serverColors = map[string]string{
	"wsgate":      "#1f77b4",
	"gws":         "#ff7f0e",
	"nbio":        "#2ca02c",
	"gorilla":     "#9467bd",
	"gobwas-gnet": "#8c564b",
}

// chartSeries is one server's bars, one value per group.
type chartSeries struct {
	name   string
	values []float64
	ok     []bool
}

// charts draws the four comparison charts from a report.
func charts(rep *report) map[string]string {
	find := func(server string, c benchCase) *load.Result {
		for _, r := range rep.Records {
			if r.Server == server && r.Case.id() == c.id() {
				return r.Result
			}
		}
		return nil
	}
	var idle, traffic []benchCase
	seen := map[string]bool{}
	for _, r := range rep.Records {
		c := r.Case
		if seen[c.id()] {
			continue
		}
		seen[c.id()] = true
		switch c.Scenario {
		case load.ScenarioIdle:
			idle = append(idle, c)
		case load.ScenarioEcho, load.ScenarioFanout:
			traffic = append(traffic, c)
		}
	}
	build := func(cases []benchCase, metrics []metric) ([]string, []chartSeries) {
		var groups []string
		for _, c := range cases {
			for _, m := range metrics {
				g := c.label()
				if len(metrics) > 1 {
					g = m.name + ", " + g
				}
				groups = append(groups, g)
			}
		}
		var ss []chartSeries
		for _, s := range rep.Servers {
			cs := chartSeries{name: s}
			for _, c := range cases {
				res := find(s, c)
				for _, m := range metrics {
					v, ok := 0.0, false
					if res != nil {
						v, ok = m.get(res)
					}
					cs.values = append(cs.values, v)
					cs.ok = append(cs.ok, ok)
				}
			}
			ss = append(ss, cs)
		}
		return groups, ss
	}
	out := map[string]string{}
	g, s := build(idle, []metric{mHeapPerConn, mRSSPerConn})
	out["memory-per-conn.svg"] = barChart(fmt.Sprintf("Server memory per idle connection (%s conns), bytes — lower is better", fmtInt(float64(rep.Settings.IdleConns))), g, s)
	g, s = build(traffic, []metric{mMsgsPerSec})
	out["msgs-per-sec.svg"] = barChart("Messages/s (echo round trips, fanout deliveries) — higher is better", g, s)
	g, s = build(traffic, []metric{mP99})
	out["p99-latency.svg"] = barChart("p99 latency (echo round trip, fanout publish-to-receive), µs — lower is better", g, s)
	g, s = build(traffic, []metric{mCPUPerMsg})
	out["cpu-per-msg.svg"] = barChart("Server CPU per message (µs; echo round trip, fanout delivery) — lower is better", g, s)
	return out
}

// barChart draws a grouped bar chart: one group per label, one bar per
// series in each group, on a shared linear axis from zero.
func barChart(title string, groups []string, ss []chartSeries) string {
	const (
		width   = 900
		height  = 440
		left    = 70
		right   = 20
		top     = 70
		bottom  = 90
		plotW   = width - left - right
		plotH   = height - top - bottom
		fontFam = "font-family=\"Helvetica,Arial,sans-serif\""
	)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" %s>`+"\n", width, height, width, height, fontFam)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="15" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(title))
	// Legend.
	x := left
	for _, s := range ss {
		fmt.Fprintf(&b, `<rect x="%d" y="38" width="12" height="12" fill="%s"/>`, x, color(s.name))
		fmt.Fprintf(&b, `<text x="%d" y="49" font-size="12">%s</text>`+"\n", x+16, html.EscapeString(s.name))
		x += 24 + 8*len(s.name)
	}
	maxV := 0.0
	for _, s := range ss {
		for i, v := range s.values {
			if s.ok[i] && v > maxV {
				maxV = v
			}
		}
	}
	if len(groups) == 0 || maxV <= 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="13">no data</text>`+"\n", left, top+plotH/2)
		b.WriteString("</svg>\n")
		return b.String()
	}
	step := niceStep(maxV / 5)
	topV := math.Ceil(maxV/step) * step
	y := func(v float64) float64 { return top + plotH - v/topV*plotH }
	// Grid and axis labels.
	for v := 0.0; v <= topV+step/2; v += step {
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#dddddd"/>`, left, left+plotW, y(v), y(v))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-size="11" text-anchor="end">%s</text>`+"\n", left-6, y(v)+4, short(v))
	}
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#333333"/>`+"\n", left, left+plotW, top+plotH, top+plotH)
	groupW := float64(plotW) / float64(len(groups))
	barW := groupW * 0.8 / float64(max(len(ss), 1))
	for gi, g := range groups {
		gx := float64(left) + float64(gi)*groupW + groupW*0.1
		for si, s := range ss {
			bx := gx + float64(si)*barW
			cx := bx + barW/2
			if !s.ok[gi] {
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="9" fill="#999999" text-anchor="start" transform="rotate(-90 %.1f %.1f)">n/a</text>`+"\n",
					cx+3, float64(top+plotH)-4, cx+3, float64(top+plotH)-4)
				continue
			}
			v := s.values[gi]
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s, %s: %s</title></rect>`+"\n",
				bx, y(v), math.Max(barW-2, 1), float64(top+plotH)-y(v), color(s.name),
				html.EscapeString(s.name), html.EscapeString(g), short(v))
			ly := y(v) - 3
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="9" text-anchor="start" transform="rotate(-90 %.1f %.1f)">%s</text>`+"\n",
				cx+3, ly, cx+3, ly, short(v))
		}
		// Group label, wrapped at ", ".
		lines := strings.SplitN(g, ", ", 3)
		for li, l := range lines {
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="11" text-anchor="middle">%s</text>`+"\n",
				float64(left)+float64(gi)*groupW+groupW/2, top+plotH+16+14*li, html.EscapeString(l))
		}
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func color(name string) string {
	if c, ok := serverColors[name]; ok {
		return c
	}
	return "#7f7f7f"
}

// niceStep rounds x up to 1, 2 or 5 times a power of ten.
func niceStep(x float64) float64 {
	if x <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= x {
			return m * p
		}
	}
	return 10 * p
}

// short formats v compactly: 950, 1.2k, 34k, 1.5M.
func short(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e6:
		return trimZero(fmt.Sprintf("%.1f", v/1e6)) + "M"
	case a >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case a >= 1e3:
		return trimZero(fmt.Sprintf("%.1f", v/1e3)) + "k"
	case a >= 10 || a == 0:
		return fmt.Sprintf("%.0f", v)
	case a >= 1:
		return trimZero(fmt.Sprintf("%.1f", v))
	}
	return trimZero(fmt.Sprintf("%.2f", v))
}

func trimZero(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}
