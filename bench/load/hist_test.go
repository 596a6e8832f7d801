package load

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestHistBuckets(t *testing.T) {
	t.Parallel()
	// Buckets tile the int64 range without gaps or overlaps.
	prevHi := int64(-1)
	for i := range histBuckets {
		lo, hi := histBounds(i)
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, want %d", i, lo, prevHi+1)
		}
		if hi < lo {
			t.Fatalf("bucket %d: hi %d < lo %d", i, hi, lo)
		}
		if lo >= 128 && float64(hi-lo+1) > float64(lo)/64+1 {
			t.Fatalf("bucket %d [%d, %d] wider than 1/64 of its start", i, lo, hi)
		}
		for _, v := range []int64{lo, hi, lo + (hi-lo)/2} {
			if got := histIndex(v); got != i {
				t.Fatalf("histIndex(%d) = %d, want %d", v, got, i)
			}
		}
		prevHi = hi
	}
	if prevHi != math.MaxInt64 {
		t.Fatalf("last bucket ends at %d, want MaxInt64", prevHi)
	}
}

func TestHistPercentiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		gen  func(r *rand.Rand) int64
		n    int
	}{
		{"uniform small", func(r *rand.Rand) int64 { return r.Int64N(200) }, 1000},
		{"log-normal latencies", func(r *rand.Rand) int64 { return int64(math.Exp(r.NormFloat64()*1.5 + 11)) }, 100000},
		{"bimodal", func(r *rand.Rand) int64 {
			if r.IntN(100) == 0 {
				return 50e6 + r.Int64N(1e6)
			}
			return 200e3 + r.Int64N(50e3)
		}, 50000},
		{"single value", func(*rand.Rand) int64 { return 123456789 }, 10},
		{"one sample", func(*rand.Rand) int64 { return 777 }, 1},
		{"huge", func(r *rand.Rand) int64 { return math.MaxInt64 - r.Int64N(1<<60) }, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(1, 2))
			var h Histogram
			vals := make([]int64, tt.n)
			sum := 0.0
			for i := range vals {
				vals[i] = tt.gen(r)
				h.Record(vals[i])
				sum += float64(vals[i])
			}
			slices.Sort(vals)
			if h.Count() != uint64(tt.n) || h.Min() != vals[0] || h.Max() != vals[len(vals)-1] {
				t.Fatalf("count/min/max = %d/%d/%d, want %d/%d/%d", h.Count(), h.Min(), h.Max(), tt.n, vals[0], vals[len(vals)-1])
			}
			if d := math.Abs(h.Mean() - sum/float64(tt.n)); d > 1e-9*math.Abs(sum/float64(tt.n)) {
				t.Fatalf("mean = %g, want %g", h.Mean(), sum/float64(tt.n))
			}
			for _, q := range []float64{0.1, 1, 25, 50, 90, 99, 99.9, 99.99, 100} {
				rank := int(math.Ceil(q / 100 * float64(tt.n)))
				exact := vals[max(rank, 1)-1]
				got := h.Percentile(q)
				lo, hi := histBounds(histIndex(exact))
				if got < exact || got > hi || got < lo {
					t.Errorf("p%g = %d, exact %d (bucket [%d, %d])", q, got, exact, lo, hi)
				}
				if rel := float64(got-exact) / float64(exact+1); rel > 1.0/64 {
					t.Errorf("p%g = %d, exact %d: relative error %.4f > 1/64", q, got, exact, rel)
				}
			}
		})
	}
}

func TestHistMergeAndData(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	var a, b, all Histogram
	for i := range 10000 {
		v := r.Int64N(1e9)
		all.Record(v)
		if i%3 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	var m Histogram
	m.MergeData(a.Data())
	m.MergeData(b.Data())
	m.MergeData(HistData{}) // empty: no change
	if m.counts != all.counts || m.n != all.n || m.min != all.min || m.max != all.max {
		t.Fatal("merged histogram differs from the one recorded directly")
	}
	var e Histogram
	if e.Percentile(99) != 0 || e.Mean() != 0 {
		t.Fatal("empty histogram should report 0")
	}
	e.Record(-5)
	if e.Min() != 0 || e.Max() != 0 {
		t.Fatal("negative values should count as 0")
	}
}
