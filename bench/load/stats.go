package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// ServerStats is the /stats document of cmd/wsgate and the peer servers
// (github.com/wsgate/wsgate/pprof.Stats), or what /proc tells about a
// process (then HeapInuse, HeapSys, Goroutines and NumGC are 0 and Conns
// is -1).
type ServerStats struct {
	Conns      int     `json:"conns"`
	HeapInuse  uint64  `json:"heap_inuse"`
	HeapSys    uint64  `json:"heap_sys"`
	RSSBytes   int64   `json:"rss_bytes"`
	Goroutines int     `json:"goroutines"`
	NumGC      uint32  `json:"num_gc"`
	PID        int     `json:"pid"`
	CPUSeconds float64 `json:"cpu_seconds"`
}

// StatsSource reads a server's memory and CPU: from a /stats URL, or from
// /proc/<PID> on this machine. The zero value has neither and reads
// nothing.
type StatsSource struct {
	URL string // http://host:port/stats
	PID int
}

// Available reports whether s can read anything.
func (s StatsSource) Available() bool { return s.URL != "" || s.PID > 0 }

// HasHeap reports whether s reports Go heap figures (only /stats does).
func (s StatsSource) HasHeap() bool { return s.URL != "" }

// Read takes a snapshot. With gc set, a /stats server collects garbage
// first so the heap figures count live memory.
func (s StatsSource) Read(ctx context.Context, gc bool) (ServerStats, error) {
	if s.URL != "" {
		u := s.URL
		if gc {
			if strings.Contains(u, "?") {
				u += "&gc=1"
			} else {
				u += "?gc=1"
			}
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return ServerStats{}, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return ServerStats{}, fmt.Errorf("stats: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return ServerStats{}, fmt.Errorf("stats: %s: %s", u, resp.Status)
		}
		var st ServerStats
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil {
			return ServerStats{}, fmt.Errorf("stats: %s: %w", u, err)
		}
		return st, nil
	}
	if s.PID > 0 {
		return ReadProc(s.PID)
	}
	return ServerStats{}, errors.New("stats: no -stats URL or -pid")
}

// ReadProc reads the RSS and CPU time of process pid from /proc.
func ReadProc(pid int) (ServerStats, error) {
	st := ServerStats{PID: pid, Conns: -1}
	cpu, err := procCPU(pid)
	if err != nil {
		return st, err
	}
	st.CPUSeconds = cpu
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return st, err
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return st, errors.New("stats: short statm")
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return st, err
	}
	st.RSSBytes = pages * int64(os.Getpagesize())
	return st, nil
}

// procCPU returns utime+stime of pid in seconds (USER_HZ is 100 on Linux).
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("stats: bad /proc stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("stats: short /proc stat")
	}
	u, err1 := strconv.ParseFloat(f[11], 64)
	k, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("stats: bad /proc stat times")
	}
	return (u + k) / 100, nil
}

// FetchProfile saves a profile from a pprof admin endpoint: base is the
// /debug/pprof/ URL, name e.g. "profile?seconds=5" or "heap".
func FetchProfile(ctx context.Context, base, name, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/"+name, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profile %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile %s: %s", name, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
