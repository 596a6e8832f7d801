// Package pprof serves wsgate's admin endpoints: the runtime profiles under
// /debug/pprof/, a JSON snapshot of the process under /stats, Prometheus
// metrics (MetricsHandler, NewCollector) and health checks (HandleHealth).
//
// It imports net/http/pprof, which registers handlers as a side effect, so
// only commands import it, never the library.
package pprof

import (
	"encoding/json"
	"net/http"
	httppprof "net/http/pprof"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// Stats is the /stats document.
type Stats struct {
	Conns      int     `json:"conns"`       // open upgraded connections
	HeapInuse  uint64  `json:"heap_inuse"`  // runtime.MemStats.HeapInuse
	HeapSys    uint64  `json:"heap_sys"`    // runtime.MemStats.HeapSys
	RSSBytes   int64   `json:"rss_bytes"`   // resident set, from /proc/self/statm
	Goroutines int     `json:"goroutines"`  // runtime.NumGoroutine
	NumGC      uint32  `json:"num_gc"`      // completed GC cycles
	PID        int     `json:"pid"`         // this process
	CPUSeconds float64 `json:"cpu_seconds"` // user+system CPU time of the process

	// Counters are the server's own counters (for wsgate: delivered,
	// dropped, conflated, slow_closed, subscriptions), if it has any.
	Counters map[string]int64 `json:"counters,omitempty"`
}

// NewMux returns a mux serving /debug/pprof/ and /stats. conns reports the
// number of open connections, and counters, if given, the server's own
// counters. GET /stats?gc=1 runs a GC first, so that the heap figures
// count live memory only.
func NewMux(conns func() int, counters ...func() map[string]int64) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", httppprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", httppprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", httppprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", httppprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", httppprof.Trace)
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("gc") == "1" {
			runtime.GC()
		}
		w.Header().Set("Content-Type", "application/json")
		st := Read(conns())
		for _, f := range counters {
			if st.Counters == nil {
				st.Counters = make(map[string]int64)
			}
			for k, v := range f() {
				st.Counters[k] = v
			}
		}
		_ = json.NewEncoder(w).Encode(st)
	})
	return mux
}

// Read takes a snapshot of the process.
func Read(conns int) Stats {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return Stats{
		Conns:      conns,
		HeapInuse:  ms.HeapInuse,
		HeapSys:    ms.HeapSys,
		RSSBytes:   rss(),
		Goroutines: runtime.NumGoroutine(),
		NumGC:      ms.NumGC,
		PID:        os.Getpid(),
		CPUSeconds: cpuSeconds(),
	}
}

// rss reads the resident set size from /proc/self/statm (second field, in
// pages); -1 where there is no /proc.
func rss() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return -1
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return -1
	}
	return pages * int64(os.Getpagesize())
}

// cpuSeconds reads utime+stime from /proc/self/stat; -1 where unavailable.
// The clock tick is 100 Hz on Linux (USER_HZ).
func cpuSeconds() float64 {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return -1
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces
	if i < 0 {
		return -1
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 { // fields 14 and 15 of stat are 12 and 13 here
		return -1
	}
	u, err1 := strconv.ParseFloat(f[11], 64)
	k, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return (u + k) / 100
}
