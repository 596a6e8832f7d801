package load

import (
	"math"
	"math/bits"
)

// Histogram records non-negative int64 values (nanoseconds here) in
// logarithmic buckets, in the manner of HdrHistogram: values below 128 get
// a bucket each, and every power-of-two range above is split into 64
// equal buckets, so a bucket is never wider than 1/64 of its lower bound
// and a percentile read from it is within 1.6% of the exact value. Count,
// Min, Max and Sum are exact.
//
// It costs one array of counts (about 30 KB) and Record does not allocate.
// It is not safe for concurrent use: keep one per event loop and Merge.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	min    int64
	max    int64
	sum    float64
}

const (
	histSubBits = 7                                      // 128 exact values, then 64 buckets per octave
	histHalf    = 1 << (histSubBits - 1)                 // 64
	histBuckets = (63-histSubBits)*histHalf + 2*histHalf // int64 values have at most 63 bits
)

// histIndex returns the bucket of v (v >= 0).
func histIndex(v int64) int {
	u := uint64(v)
	if u < 2*histHalf {
		return int(u)
	}
	shift := bits.Len64(u) - histSubBits // >= 1
	return shift*histHalf + int(u>>uint(shift))
}

// histBounds returns the smallest and largest value of bucket i.
func histBounds(i int) (lo, hi int64) {
	if i < 2*histHalf {
		return int64(i), int64(i)
	}
	shift := i/histHalf - 1
	top := uint64(i - shift*histHalf)
	l := top << uint(shift)
	h := (top+1)<<uint(shift) - 1
	if h > math.MaxInt64 {
		h = math.MaxInt64
	}
	return int64(l), int64(h)
}

// Record adds one value; a negative value counts as 0.
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	h.counts[histIndex(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

// Count returns the number of values recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Min returns the smallest value recorded, 0 if none.
func (h *Histogram) Min() int64 { return h.min }

// Max returns the largest value recorded, 0 if none.
func (h *Histogram) Max() int64 { return h.max }

// Mean returns the average of the values recorded, 0 if none.
func (h *Histogram) Mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}

// Percentile returns the value below or at which q percent of the values
// lie (0 < q <= 100): the value of rank ceil(q/100·Count) in sorted order,
// read as the upper bound of its bucket and clipped to [Min, Max].
// It returns 0 for an empty histogram.
func (h *Histogram) Percentile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q / 100 * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	if rank > h.n {
		rank = h.n
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i]
		if seen >= rank {
			_, hi := histBounds(i)
			return min(max(hi, h.min), h.max)
		}
	}
	return h.max
}

// Merge adds the values of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// HistData is the portable form of a Histogram: the non-empty buckets as
// index/count pairs, with the exact summary values. It is how workers hand
// their histograms to the coordinator.
type HistData struct {
	Buckets [][2]uint64 `json:"b,omitempty"`
	N       uint64      `json:"n"`
	Min     int64       `json:"min"`
	Max     int64       `json:"max"`
	Sum     float64     `json:"sum"`
}

// Data returns the portable form of h.
func (h *Histogram) Data() HistData {
	d := HistData{N: h.n, Min: h.min, Max: h.max, Sum: h.sum}
	for i, c := range h.counts {
		if c != 0 {
			d.Buckets = append(d.Buckets, [2]uint64{uint64(i), c})
		}
	}
	return d
}

// MergeData adds a histogram in portable form to h. Bucket indexes out of
// range are ignored.
func (h *Histogram) MergeData(d HistData) {
	if d.N == 0 {
		return
	}
	var o Histogram
	for _, b := range d.Buckets {
		if b[0] < histBuckets {
			o.counts[b[0]] += b[1]
		}
	}
	o.n, o.min, o.max, o.sum = d.N, d.Min, d.Max, d.Sum
	h.Merge(&o)
}
