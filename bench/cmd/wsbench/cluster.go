package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/wsgate/wsgate/bench/load"
)

// The cluster scenario is the gateway scenario against several nodes of
// one deployment (wsgate -nats): -url lists the nodes' WebSocket URLs,
// comma-separated, and the clients are spread evenly over them (one node
// per worker process in turn); -api is one node's API, so that every
// publication enters through that node and reaches the others through
// NATS. Each client checks what any gateway client checks: the data, and
// offsets exactly one apart (a gap counts as lost, a repeat or going
// back as order). With -nats-monitor (nats-server's monitoring base,
// http://host:8222) the run reports the NATS messages in and out per
// publication from /varz; with -pids (the nodes' process ids) the nodes'
// CPU per delivery from /proc.
//
//	wsbench -scenario cluster -url ws://127.0.0.1:8001/connection/websocket,ws://127.0.0.1:8002/connection/websocket,ws://127.0.0.1:8003/connection/websocket \
//	    -api http://127.0.0.1:9001/api -api-key K -secret S -conns 9000 -rate 100 \
//	    -nats-monitor http://127.0.0.1:8222 -pids 101,102,103
const scenarioCluster = "cluster"

// clusterProbe reads the figures of a cluster run from outside the nodes.
type clusterProbe struct {
	natsMonitor string
	pids        []int
}

// clusterSnap is the probe's reading at one time.
type clusterSnap struct {
	inMsgs, outMsgs int64
	cpu             time.Duration // user+system of every node
}

func newClusterProbe(natsMonitor, pids string) (*clusterProbe, error) {
	p := &clusterProbe{natsMonitor: strings.TrimSuffix(natsMonitor, "/")}
	for _, s := range strings.Split(pids, ",") {
		if s == "" {
			continue
		}
		pid, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("-pids: %v", err)
		}
		p.pids = append(p.pids, pid)
	}
	return p, nil
}

func (p *clusterProbe) snap() (clusterSnap, error) {
	var s clusterSnap
	if p.natsMonitor != "" {
		resp, err := http.Get(p.natsMonitor + "/varz")
		if err != nil {
			return s, err
		}
		var v struct {
			InMsgs  int64 `json:"in_msgs"`
			OutMsgs int64 `json:"out_msgs"`
		}
		err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&v)
		resp.Body.Close()
		if err != nil {
			return s, fmt.Errorf("nats /varz: %v", err)
		}
		s.inMsgs, s.outMsgs = v.InMsgs, v.OutMsgs
	}
	for _, pid := range p.pids {
		cpu, err := procCPU(pid)
		if err != nil {
			return s, err
		}
		s.cpu += cpu
	}
	return s, nil
}

// procCPU is a process's user and system time from /proc/pid/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The fields after the command name (in parentheses, which may hold
	// spaces): state is field 3, utime 14, stime 15.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, errors.New("/proc stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("/proc stat: too few fields")
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100, nil // USER_HZ is 100 on Linux
}

// printCluster writes the cluster figures of a run: nodes, publications,
// deliveries, loss and duplicates, and what the probe measured between
// before and after.
func printCluster(w io.Writer, r *load.Result, p *clusterProbe, before, after clusterSnap) {
	c := r.Counters
	nodes := strings.Count(r.URL, ",") + 1
	fmt.Fprintf(w, "cluster    %d nodes, %d clients subscribed (spread evenly: %d per node), publishing through one node's API\n",
		nodes, c.Subscribed, c.Subscribed/int64(nodes))
	fmt.Fprintf(w, "cluster    %d publications, %d deliveries (want %d), %.0f deliveries/s, p99 %s, lost %d, duplicates or out of order %d\n",
		r.Published, c.Recv, r.Published*c.Subscribed, r.MsgsPerSec, fmtUs(r.LatP99), c.Lost, c.BadOrder)
	if p.natsMonitor != "" && r.Published > 0 {
		in, out := after.inMsgs-before.inMsgs, after.outMsgs-before.outMsgs
		fmt.Fprintf(w, "cluster    NATS %d messages in, %d out = %.2f in, %.2f out per publication (heartbeats included)\n",
			in, out, float64(in)/float64(r.Published), float64(out)/float64(r.Published))
	}
	if len(p.pids) > 0 && c.Recv > 0 {
		cpu := after.cpu - before.cpu
		fmt.Fprintf(w, "cluster    nodes' CPU %.2fs over the whole run = %.2f µs per delivery\n",
			cpu.Seconds(), float64(cpu.Microseconds())/float64(c.Recv))
	}
}
