package load

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// Merge across "workers" through the JSON pipe, compare to exact ranks.
func TestHistMergeJSONBounds(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 9))
	var all []int64
	var agg Histogram
	for w := 0; w < 5; w++ {
		var h Histogram
		for i := 0; i < 20000*(w+1); i++ {
			v := int64(math.Exp(r.NormFloat64()*2 + float64(8+w)))
			if w == 4 && i%1000 == 0 {
				v = math.MaxInt64 - r.Int64N(10)
			}
			h.Record(v)
			all = append(all, v)
		}
		d := h.Data()
		b, _ := json.Marshal(Event{E: "result", Lat: &d})
		var ev Event
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Fatal(err)
		}
		agg.MergeData(*ev.Lat)
	}
	slices.Sort(all)
	if agg.Count() != uint64(len(all)) || agg.Min() != all[0] || agg.Max() != all[len(all)-1] {
		t.Fatalf("count/min/max %d %d %d vs %d %d %d", agg.Count(), agg.Min(), agg.Max(), len(all), all[0], all[len(all)-1])
	}
	worst := 0.0
	for _, q := range []float64{1, 10, 50, 90, 99, 99.9, 99.99, 100} {
		rank := int(math.Ceil(q / 100 * float64(len(all))))
		exact := all[rank-1]
		got := agg.Percentile(q)
		rel := float64(got-exact) / float64(exact)
		if got < exact || rel > 1.0/64 {
			t.Errorf("q%g: got %d exact %d rel %g", q, got, exact, rel)
		}
		worst = max(worst, rel)
	}
	t.Logf("worst relative error %.5f", worst)
}
