package wsgate

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// hsStateTokens are tokens of the three hashes, of sizes on both sides
// of hsBufMax, valid, expired, forged and malformed, with the claims
// verify must give for each (nil unless valid) and its outcome.
func hsStateTokens(t *testing.T, r *hsRef) (toks []string, want []*claims, outs []int) {
	hdrs := []string{
		b64(`{"alg":"HS256","typ":"JWT"}`), b64(`{"typ":"JWT","alg":"HS384"}`), b64(`{"alg":"HS512"}`),
	}
	for i := range 60 {
		alg := i % 3
		h := hdrs[alg]
		exp := int64(4102444800)
		if i%5 == 4 {
			exp = 1
		}
		size := []int{0, 100, 3000, 6000, 20000}[i%5]
		p := b64(fmt.Sprintf(`{"sub":"user-%d","exp":%d,"info":{"n":%d,"pad":%q},"channels":["c%d","d%d"],"b64info":"eA=="}`,
			i, exp, i, strings.Repeat(string(rune('a'+i%26)), size), i, i))
		tok := h + "." + p + "." + hsSign(alg, []byte(gwSecret), h+"."+p)
		switch i % 7 {
		case 5:
			tok = h + "." + p + "." + hsSign(alg, []byte("forged"), h+"."+p)
		case 6:
			tok = h + "." + p[:len(p)-3] + "." + hsSign(alg, []byte(gwSecret), h+"."+p)
		}
		c, o := r.verify(tok)
		if fast, _ := r.v.verifyHS(tok, new(claims)); !fast {
			t.Fatalf("token %d did not take verifyHS", i)
		}
		toks, want, outs = append(toks, tok), append(want, c), append(outs, o)
	}
	n := [3]int{}
	for _, o := range outs {
		n[o]++
	}
	if n[0] == 0 || n[1] == 0 || n[2] == 0 {
		t.Fatalf("outcomes %v: want some of each", n)
	}
	return toks, want, outs
}

// TestReviewHSConcurrent verifies tokens of every hash and size from many
// goroutines at once through one verifier (its pools shared): every
// answer must be the parser's, and the claims kept from early answers
// must not change while later tokens go through the pooled buffers.
func TestReviewHSConcurrent(t *testing.T) {
	r := newHSRef(t, gwSecret, nil, nil, "", "")
	toks, want, outs := hsStateTokens(t, r)
	const workers, rounds = 16, 300
	var wg sync.WaitGroup
	kept := make([][]*claims, workers)
	errc := make(chan string, workers)
	for w := range workers {
		wg.Go(func() {
			for k := range rounds {
				i := (w*7 + k*13) % len(toks)
				c, err := r.v.verify(toks[i])
				o := 0
				if err == errTokenExpired {
					o = 1
				} else if err != nil {
					o = 2
				}
				if o != outs[i] || (o == 0 && !reflect.DeepEqual(c, want[i])) {
					errc <- fmt.Sprintf("worker %d token %d: outcome %d, want %d; claims %+v", w, i, o, outs[i], c)
					return
				}
				if o == 0 && k%10 == 0 {
					kept[w] = append(kept[w], c)
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for e := range errc {
		t.Fatal(e)
	}
	n := 0
	for _, cs := range kept {
		for _, c := range cs {
			i := strings.TrimPrefix(c.Subject, "user-")
			var j int
			fmt.Sscan(i, &j)
			if !reflect.DeepEqual(c, want[j]) {
				t.Fatalf("claims of token %d changed after later verifications: %+v", j, c)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("no claims kept")
	}
}

// TestReviewHSClaimsOwnMemory verifies a token, then many other tokens of
// the same hash and size through the same pool: the first token's
// claims must stay as they were.
func TestReviewHSClaimsOwnMemory(t *testing.T) {
	r := newHSRef(t, gwSecret, nil, nil, "", "")
	mk := func(sub, fill string) string {
		h := b64(`{"alg":"HS256","typ":"JWT"}`)
		p := b64(`{"sub":"` + sub + `","info":{"k":"` + strings.Repeat(fill, 64) + `"},"channels":["` + fill + `"],"b64info":"` + fill + `"}`)
		return h + "." + p + "." + hsSign(0, []byte(gwSecret), h+"."+p)
	}
	first := mk("first", "A")
	want, _ := r.verify(first)
	got, err := r.v.verify(first)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if _, err := r.v.verify(mk("other", string(rune('B'+i%20)))); err != nil {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("claims changed by later verifications: %+v, want %+v (info %s)", got, want, got.Info)
	}
}

// TestReviewHSPoolBounded verifies tokens larger than hsBufMax: the
// states the pools hold afterwards keep at most hsBufMax of buffers.
func TestReviewHSPoolBounded(t *testing.T) {
	r := newHSRef(t, gwSecret, nil, nil, "", "")
	for alg, h := range []string{b64(`{"alg":"HS256","typ":"JWT"}`), b64(`{"alg":"HS384","typ":"JWT"}`), b64(`{"alg":"HS512","typ":"JWT"}`)} {
		for _, size := range []int{hsBufMax, 4 * hsBufMax, 16 * hsBufMax} {
			p := b64(`{"sub":"u","info":"` + strings.Repeat("x", size) + `"}`)
			for _, tok := range []string{
				h + "." + p + "." + hsSign(alg, []byte(gwSecret), h+"."+p),
				h + "." + b64(`{}`) + "." + strings.Repeat("A", size), // a huge signature
				h + "." + p + "!." + hsSign(alg, []byte(gwSecret), h+"."+p),
			} {
				for range 10 {
					r.v.verify(tok)
					st := r.v.macs[alg].Get().(*hsState)
					if cap(st.in) > hsBufMax || cap(st.out) > hsBufMax {
						t.Fatalf("alg %d, %d-byte token: pooled state keeps %d and %d bytes", alg, len(tok), cap(st.in), cap(st.out))
					}
					r.v.macs[alg].Put(st)
				}
			}
		}
	}
}
