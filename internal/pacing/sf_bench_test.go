package pacing

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/dunglas/httpsfv"
)

// BenchmarkSFParse compares, in one run, the two ways of reading the side
// channel of one media request: this package's parser (the path ParseCMCD
// and ParseSpec take, including storing every key) against
// github.com/dunglas/httpsfv v1.1.2 (UnmarshalDictionary of every header
// plus the least work a caller must do with its result: look each member up
// and take its value and parameters apart). The inputs are what pacing
// parses per request: the four CMCD headers dash.js sends, CMCD in the
// query, and Sluice-Pacing with per-phase parameters. docs/pacing.md §9
// records the numbers and the decision they led to.
func BenchmarkSFParse(b *testing.B) {
	hdr := http.Header{}
	hdr.Set("CMCD-Object", "br=3200,d=4004,ot=v,tb=6000")
	hdr.Set("CMCD-Request", "bl=21300,dl=18500,mtp=48100,nor=\"..%2F300kbps%2Fsegment35.m4v\",su")
	hdr.Set("CMCD-Session", `cid="faec5fc2-ac30-11ea-bb37-0242ac130002",sf=d,sid="6e2fb550-c457-11e9-bb97-0800200c9a66",st=v`)
	hdr.Set("CMCD-Status", "rtp=12000")
	query := "CMCD=" + url.QueryEscape(`bl=21300,br=3200,d=4004,mtp=48100,ot=v,rtp=12000,sid="6e2fb550-c457-11e9-bb97-0800200c9a66"`)
	pacingHdr := http.Header{}
	pacingHdr.Set(HeaderName, "rate=4000;ss=8000;rec=2000, burst=4, gap=1.5")

	mk := func(h http.Header, q string) *http.Request {
		return &http.Request{Header: h, URL: &url.URL{Path: "/v/1.m4s", RawQuery: q}}
	}
	cases := []struct {
		name string
		r    *http.Request
	}{
		{"cmcd-headers", mk(hdr, "")},
		{"cmcd-query", mk(http.Header{}, query)},
		{"sluice-pacing", mk(pacingHdr, "")},
	}
	for _, c := range cases {
		vals := sideChannelValues(c.r)
		b.Run(c.name+"/internal", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if c.r.Header.Get(HeaderName) != "" {
					if _, _, err := ParseSpec(c.r); err != nil {
						b.Fatal(err)
					}
					continue
				}
				if _, err := ParseCMCD(c.r); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/httpsfv", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				n := 0
				for _, v := range vals {
					d, err := httpsfv.UnmarshalDictionary([]string{v})
					if err != nil {
						b.Fatal(err)
					}
					for _, k := range d.Names() {
						m, _ := d.Get(k)
						it, ok := m.(httpsfv.Item)
						if !ok {
							continue
						}
						switch it.Value.(type) {
						case int64, float64, bool, string, httpsfv.Token:
							n++
						}
						for _, pk := range it.Params.Names() {
							if _, ok := it.Params.Get(pk); ok {
								n++
							}
						}
					}
				}
				if n == 0 {
					b.Fatal("nothing parsed")
				}
			}
		})
	}
}

// sideChannelValues returns the structured-field values of r the way
// ParseCMCD and ParseSpec find them (headers, then the unescaped query).
func sideChannelValues(r *http.Request) []string {
	var out []string
	for _, h := range cmcdHeaders {
		out = append(out, r.Header[h]...)
	}
	out = append(out, r.Header[headerKey]...)
	if raw, ok := r.URL.Query()["CMCD"]; ok {
		out = append(out, raw...)
	}
	return out
}
