package main

import (
	"strings"
	"testing"

	"github.com/wsgate/wsgate/bench/load"
)

func TestMarkdownRatios(t *testing.T) {
	t.Parallel()
	echo := benchCase{Name: "echo 64 B", Scenario: load.ScenarioEcho, Size: 64}
	res := func(msgs, cpu float64) *load.Result {
		return &load.Result{
			Scenario: load.ScenarioEcho, MsgsPerSec: msgs, LatP50: 100, LatP99: 1000,
			Counters: load.Counters{WinRecv: 10},
			Server:   &load.ServerFigures{CPUPerMsgUs: cpu},
		}
	}
	rep := &report{
		Servers: []string{"wsgate", "gws", "gorilla"},
		Records: []record{
			{Server: "wsgate", Case: echo, Result: res(1000, 10)},
			{Server: "gws", Case: echo, Result: res(500, 25)},
			{Server: "gorilla", Case: echo, Skipped: "deflate unsupported"},
		},
		Missing: map[string]string{"nbio": "no Go package"},
	}
	md := markdown(rep)
	for _, want := range []string{
		"| wsgate | 1,000 | 1.00 | 100 | 1,000 | 1.00 |",
		"| gws | 500 | 0.50 | 100 | 1,000 | 1.00 |",
		"| 25.0 | 2.50 |",
		"- gorilla: deflate unsupported",
		"- nbio: no Go package",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	svgs := charts(rep)
	if len(svgs) != len(chartNames) {
		t.Fatalf("%d charts", len(svgs))
	}
	if !strings.Contains(svgs["msgs-per-sec.svg"], "gws, echo 64 B: 500") {
		t.Error("msgs/s chart lacks gws's bar")
	}
}

func TestNiceNumbers(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in, want float64
	}{{0.7, 1}, {1, 1}, {1.1, 2}, {3, 5}, {7, 10}, {23, 50}, {180, 200}} {
		if got := niceStep(tt.in); got != tt.want {
			t.Errorf("niceStep(%g) = %g, want %g", tt.in, got, tt.want)
		}
	}
	for _, tt := range []struct {
		in   float64
		want string
	}{{0, "0"}, {0.25, "0.25"}, {3.5, "3.5"}, {950, "950"}, {1200, "1.2k"}, {34000, "34k"}, {1.5e6, "1.5M"}} {
		if got := short(tt.in); got != tt.want {
			t.Errorf("short(%g) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if g := groupDigits("1234567"); g != "1,234,567" {
		t.Errorf("groupDigits = %q", g)
	}
}

// A server with no message in the window has no CPU figure per message:
// not a "best" 0 in the table, and no bar in the chart.
func TestNoMessagesNoCPUFigure(t *testing.T) {
	echo := benchCase{Name: "echo 64 B", Scenario: load.ScenarioEcho, Size: 64}
	ok := &load.Result{Scenario: "echo", MsgsPerSec: 1000, LatP99: 1000, Counters: load.Counters{WinRecv: 10000},
		Server: &load.ServerFigures{CPUSeconds: 0.1, CPUPerMsgUs: 10, CPUUtilization: 0.01}}
	dead := &load.Result{Scenario: "echo", Counters: load.Counters{Dropped: 100}, Errors: 100,
		Server: &load.ServerFigures{CPUSeconds: 0.5, CPUUtilization: 0.05}}
	rep := &report{Servers: []string{"wsgate", "gws"}, Records: []record{
		{Server: "wsgate", Case: echo, Result: ok}, {Server: "gws", Case: echo, Result: dead}}}
	for _, l := range strings.Split(markdown(rep), "\n") {
		if strings.HasPrefix(l, "| gws") && strings.Contains(l, "| 0.00 |") {
			t.Errorf("row with no messages shows a CPU figure of 0: %s", l)
		}
	}
	if svg := charts(rep)["cpu-per-msg.svg"]; strings.Contains(svg, "gws, echo 64 B") {
		t.Error("cpu-per-msg.svg draws a bar for a server with no messages")
	}
}

func TestMarkdownWireRatio(t *testing.T) {
	t.Parallel()
	echo := benchCase{Name: "echo 4 KiB", Scenario: load.ScenarioEcho, Size: 4096, Deflate: true}
	rep := &report{
		Servers: []string{"wsgate"},
		Records: []record{{Server: "wsgate", Case: echo, Result: &load.Result{
			Scenario: load.ScenarioEcho, MsgsPerSec: 10, LatP50: 100, LatP99: 1000,
			Counters: load.Counters{Recv: 10, WinRecv: 10, Compressed: 10, WinBytes: 10 * 4096, WinWire: 10 * 1147},
			Server:   &load.ServerFigures{CPUPerMsgUs: 40},
		}}},
	}
	md := markdown(rep)
	for _, want := range []string{"compressed (%) | wire/payload |", "| 100 | 0.280 |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}
