package pacing

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/sluice-media/sluice/internal/sfv"
)

func request(t *testing.T, query string, headers map[string]string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(http.MethodGet, "http://h/live.isml/tracks/v1/0.m4s"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		r.Header.Set(k, v)
	}
	return r
}

func TestParseCMCD(t *testing.T) {
	q := func(s string) string { return "?CMCD=" + url.QueryEscape(s) }
	for _, c := range []struct {
		name    string
		query   string
		headers map[string]string
		check   func(CMCD) bool
		err     string
	}{
		{"headers", "", map[string]string{
			"CMCD-Object":  "br=3200,d=4004,ot=v,tb=6000",
			"CMCD-Request": `bl=21300,dl=18500,mtp=48100,nor="..%2F300kbps%2Ftrack.m4v",su`,
			"CMCD-Session": `cid="movie",sf=d,sid="6e2f",st=v`,
			"CMCD-Status":  "bs,rtp=12000",
		}, func(c CMCD) bool {
			return c.BR == 3200 && c.D == 4004 && c.OT == "v" && c.TB == 6000 && c.BL == 21300 && c.DL == 18500 &&
				c.MTP == 48100 && c.NOR == "..%2F300kbps%2Ftrack.m4v" && c.SU && c.CID == "movie" && c.SF == "d" &&
				c.SID == "6e2f" && c.ST == "v" && c.BS && c.RTP == 12000 && c.Via == ViaHeader
		}, ""},
		{"query", q(`bl=2000,br=800,ot=v,rtp=4000,sid="s"`), nil, func(c CMCD) bool {
			return c.BL == 2000 && c.BR == 800 && c.RTP == 4000 && c.SID == "s" && c.Via == ViaQuery && !c.SU && c.D == -1
		}, ""},
		{"query among others", "?a=1&CMCD=" + url.QueryEscape("rtp=900") + "&b=2", nil, func(c CMCD) bool { return c.RTP == 900 }, ""},
		{"both", q("rtp=1000"), map[string]string{"CMCD-Request": "bl=500"}, func(c CMCD) bool {
			return c.RTP == 1000 && c.BL == 500 && c.Via == ViaHeader|ViaQuery
		}, ""},
		{"v2 lists", "", map[string]string{"CMCD-Request": "bl=(21300;v 900;a)", "CMCD-Object": "br=(3000;v 128;a)", "CMCD-Status": `nor=("a.m4s" "b.m4s")`},
			func(c CMCD) bool { return c.BL == 900 && c.BR == 3000 && c.NOR == "a.m4s" }, ""},
		{"decimal rounded", "", map[string]string{"CMCD-Status": "rtp=1500.6"}, func(c CMCD) bool { return c.RTP == 1501 }, ""},
		{"custom spec keys", q("com.sluice-burst=4,com.sluice-rate=3000,com.sluice-gap=2.5"), nil, func(c CMCD) bool {
			return c.Spec.Rate[PhaseAny] == 3000 && c.Spec.Burst[PhaseAny] == 4 && c.Spec.Gap[PhaseAny] == 2.5
		}, ""},
		{"other custom keys ignored", "", map[string]string{"CMCD-Request": "com.example-x=1,rtp=700"}, func(c CMCD) bool { return c.RTP == 700 }, ""},
		{"wrong type skipped", "", map[string]string{"CMCD-Status": `rtp="fast",bs`}, func(c CMCD) bool { return c.RTP == -1 && c.BS }, "rtp: string"},
		{"negative skipped", "", map[string]string{"CMCD-Request": "bl=-5"}, func(c CMCD) bool { return c.BL == -1 }, "non-negative"},
		{"syntax error keeps earlier members", "", map[string]string{"CMCD-Status": "rtp=800,bs=?7"}, func(c CMCD) bool { return c.RTP == 800 && !c.BS }, "bad boolean"},
		{"bad query escape", "?CMCD=rtp%3", nil, func(c CMCD) bool { return c.RTP == -1 }, "CMCD query"},
		{"bool as token", "", map[string]string{"CMCD-Request": "su=yes"}, func(c CMCD) bool { return !c.SU }, "su: token"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := request(t, c.query, c.headers)
			if !hasCMCD(r) {
				t.Fatal("hasCMCD false")
			}
			got, err := ParseCMCD(r)
			if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
				t.Fatalf("err %v, want %q", err, c.err)
			}
			if !c.check(got) {
				t.Fatalf("got %+v", got)
			}
		})
	}
	if hasCMCD(request(t, "?x=CMCD", map[string]string{"Accept": "*/*"})) {
		t.Fatal("hasCMCD true without CMCD")
	}
}

func TestParseSpec(t *testing.T) {
	for _, c := range []struct {
		name, hdr string
		check     func(Spec) bool
		err       string
	}{
		{"rate", "rate=4000", func(s Spec) bool { return s.Rate[PhaseAny] == 4000 && !s.PerPhase() && s.Present() }, ""},
		{"full", "rate=4000;ss=8000;ca=4000;rec=2000, burst=4;ss=10, gap=1.5;rec=3",
			func(s Spec) bool {
				r, b, g := s.For(PhaseSlowStart)
				r2, b2, g2 := s.For(PhaseRecovery)
				return s.PerPhase() && r == 8000 && b == 10 && g == 1.5 && r2 == 2000 && b2 == 4 && g2 == 3
			}, ""},
		{"phase only", "rate=0;ss=6000", func(s Spec) bool {
			r, _, _ := s.For(PhaseCongAvoid)
			r2, _, _ := s.For(PhaseSlowStart)
			return r == 0 && r2 == 6000
		}, ""},
		{"off", "off", func(s Spec) bool { return s.Off && s.Present() }, ""},
		{"unknown members ignored", "rate=100, future=?1, x=(1 2)", func(s Spec) bool { return s.Rate[PhaseAny] == 100 }, ""},
		{"bad rate skipped", "rate=fast, burst=4", func(s Spec) bool { return s.Rate[PhaseAny] == 0 && s.Burst[PhaseAny] == 4 }, "rate: token"},
		{"fractional burst", "burst=2.5", func(s Spec) bool { return s.Burst[PhaseAny] == 0 }, "whole number"},
		{"zero phase value", "rate=1000;ss=0", func(s Spec) bool { return s.Rate[PhaseAny] == 1000 && s.Rate[PhaseSlowStart] == 0 }, "rate;ss"},
		{"negative", "gap=-1", func(s Spec) bool { return !s.Present() }, "positive"},
		{"garbage", "}}}", func(s Spec) bool { return !s.Present() }, "expected a key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, ok, err := ParseSpec(request(t, "", map[string]string{HeaderName: c.hdr}))
			if !ok {
				t.Fatal("header not seen")
			}
			if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
				t.Fatalf("err %v, want %q", err, c.err)
			}
			if !c.check(s) {
				t.Fatalf("got %+v", s)
			}
		})
	}
	if _, ok, _ := ParseSpec(request(t, "", nil)); ok {
		t.Fatal("absent header reported")
	}
}

func TestSpecRate(t *testing.T) {
	for _, c := range []struct {
		hdr  string
		ph   Phase
		mss  uint32
		want uint64
	}{
		{"rate=4000", PhaseAny, 1448, 500_000},
		{"burst=10, gap=10", PhaseAny, 1448, 1_448_000},
		{"rate=4000, burst=10, gap=10", PhaseAny, 1448, 500_000},    // rate lower
		{"rate=40000, burst=10, gap=10", PhaseAny, 1448, 1_448_000}, // burst/gap lower
		{"burst=10", PhaseAny, 1448, 0},
		{"rate=4000;ss=8000", PhaseSlowStart, 1448, 1_000_000},
		{"rate=4000;ss=8000", PhaseRecovery, 1448, 500_000},
	} {
		s, _, err := ParseSpec(request(t, "", map[string]string{HeaderName: c.hdr}))
		if err != nil {
			t.Fatal(err)
		}
		if got := specRate(&s, c.ph, c.mss); got != c.want {
			t.Errorf("%q %v: %d, want %d", c.hdr, c.ph, got, c.want)
		}
	}
}

func TestStaticHeader(t *testing.T) {
	for _, c := range []struct {
		ot   string
		br   int
		dur  uint64
		ts   uint32
		want string
	}{
		{ObjectType("video"), 800_000, 20_000_000, 10_000_000, "br=800,d=2000,ot=v"},
		{ObjectType("audio"), 128_000, 96_000, 48_000, "br=128,d=2000,ot=a"},
		{"i", 800_000, 0, 0, "br=800,ot=i"},
		{ObjectType("text"), 0, 2000, 1000, "d=2000,ot=tt"},
		{ObjectType("data"), 0, 0, 0, "ot=o"},
	} {
		got := StaticHeader(c.ot, c.br, c.dur, c.ts)
		if got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
		if err := sfv.ParseDictionary(got, func(string, sfv.Item) error { return nil }); err != nil {
			t.Errorf("%q is not an sf-dictionary: %v", got, err)
		}
	}
}
