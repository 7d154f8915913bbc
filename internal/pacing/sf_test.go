package pacing

import (
	"errors"
	"strings"
	"testing"
)

type member struct {
	key    string
	kind   itemKind
	val    string // integer/decimal as text, string/token/bytes contents, bool "1"/"0"
	params string
}

func collectDict(t *testing.T, s string) ([]member, error) {
	t.Helper()
	var out []member
	err := parseDict(s, func(key string, it item) error {
		out = append(out, member{key, it.kind, itemText(it), it.params})
		return nil
	})
	return out, err
}

func itemText(it item) string {
	switch it.kind {
	case kindInt:
		return string(appendSFInt(nil, it.i))
	case kindDec:
		return string(appendSFDec(nil, it.f))
	case kindBool:
		if it.b {
			return "1"
		}
		return "0"
	}
	return it.s
}

func TestParseDict(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []member
		err  string
	}{
		{"", nil, ""},
		{"   ", nil, ""},
		{"rtp=15000", []member{{"rtp", kindInt, "15000", ""}}, ""},
		{`bl=21300,br=3200,bs,cid="faec5fc2-ac30-11ea-bb37-0242ac130002",d=4004,dl=18500,mtp=48100,nor="..%2F300kbps%2Ftrack.m4v",ot=v,rtp=12000,sf=d,sid="6e2fb550-c457-11e9-bb97-0800200c9a66",st=v,su,tb=6000`,
			[]member{{"bl", kindInt, "21300", ""}, {"br", kindInt, "3200", ""}, {"bs", kindBool, "1", ""},
				{"cid", kindString, "faec5fc2-ac30-11ea-bb37-0242ac130002", ""}, {"d", kindInt, "4004", ""},
				{"dl", kindInt, "18500", ""}, {"mtp", kindInt, "48100", ""}, {"nor", kindString, "..%2F300kbps%2Ftrack.m4v", ""},
				{"ot", kindToken, "v", ""}, {"rtp", kindInt, "12000", ""}, {"sf", kindToken, "d", ""},
				{"sid", kindString, "6e2fb550-c457-11e9-bb97-0800200c9a66", ""}, {"st", kindToken, "v", ""},
				{"su", kindBool, "1", ""}, {"tb", kindInt, "6000", ""}}, ""},
		{"rate=4000;ss=8000;rec=2000, burst=4 ,\tgap=1.5", []member{{"rate", kindInt, "4000", ";ss=8000;rec=2000"},
			{"burst", kindInt, "4", ""}, {"gap", kindDec, "1.5", ""}}, ""},
		{`a=?0,b=?1,c=-12,d=0.001,e=:aGk=:,f="q\"uo\\te",g=*tok/x:y`, []member{{"a", kindBool, "0", ""}, {"b", kindBool, "1", ""},
			{"c", kindInt, "-12", ""}, {"d", kindDec, "0.001", ""}, {"e", kindBytes, "aGk=", ""}, {"f", kindString, `q"uo\te`, ""},
			{"g", kindToken, "*tok/x:y", ""}}, ""},
		{`br=(3000;v 128;a),nor=("a.m4s" "b.m4s";r="0-99")`, []member{{"br", kindInnerList, "3000;v 128;a", ""},
			{"nor", kindInnerList, `"a.m4s" "b.m4s";r="0-99"`, ""}}, ""},
		{"flag;p=1", []member{{"flag", kindBool, "1", ";p=1"}}, ""},
		{"com.sluice-rate=4000", []member{{"com.sluice-rate", kindInt, "4000", ""}}, ""},
		{"Rtp=1", nil, "expected a key"},
		{"rtp=", nil, "expected a value"},
		{"rtp=1,", []member{{"rtp", kindInt, "1", ""}}, "trailing ','"},
		{"rtp=1 x", []member{{"rtp", kindInt, "1", ""}}, "expected ','"},
		{"a=1234567890123456", nil, "15 digits"},
		{"a=1.2345", nil, "bad decimal"},
		{`a="unterminated`, nil, "unterminated string"},
		{`a="bad\n"`, nil, "bad escape"},
		{"a=(1 2", nil, "unterminated inner list"},
		{"a=?2", nil, "bad boolean"},
		{"a=:a*b:", nil, "bad base64"},
		{"a=%", nil, "unexpected character"},
	} {
		got, err := collectDict(t, c.in)
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%q: err %v, want %q", c.in, err, c.err)
			continue
		}
		if err != nil && !errors.Is(err, errSF) {
			t.Errorf("%q: error %v is not errSF", c.in, err)
		}
		if len(got) != len(c.want) {
			t.Errorf("%q: got %+v, want %+v", c.in, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%q member %d: got %+v, want %+v", c.in, i, got[i], c.want[i])
			}
		}
	}
}

func TestParseInnerAndParams(t *testing.T) {
	var vals []string
	if err := parseInner("3000;v 128;a", func(it item) error {
		vals = append(vals, itemText(it)+it.params)
		return nil
	}); err != nil || strings.Join(vals, "|") != "3000;v|128;a" {
		t.Fatalf("inner: %v %v", vals, err)
	}
	var ps []string
	if err := parseParams(";ss=8000;rec=2.5;x", func(k string, it item) error {
		ps = append(ps, k+"="+itemText(it))
		return nil
	}); err != nil || strings.Join(ps, "|") != "ss=8000|rec=2.5|x=1" {
		t.Fatalf("params: %v %v", ps, err)
	}
	if err := parseInner("1,2", func(item) error { return nil }); err == nil {
		t.Fatal("inner list with ',' accepted")
	}
}

func TestParseList(t *testing.T) {
	var ids []string
	err := parseList(`"cdn";etp=100, "sluice";etp=19387;rtt=44;com.sluice-loss=0.002;du`, func(it item) error {
		ids = append(ids, it.s+it.params)
		return nil
	})
	if err != nil || len(ids) != 2 || ids[1] != `sluice;etp=19387;rtt=44;com.sluice-loss=0.002;du` {
		t.Fatalf("%q %v", ids, err)
	}
}

func TestAppendSF(t *testing.T) {
	for _, c := range []struct {
		f    float64
		want string
	}{{0, "0.0"}, {0.0024, "0.002"}, {1.5, "1.5"}, {2.0005, "2.001"}, {-3.25, "-3.25"}, {1e20, "999999999999.0"}} {
		if got := string(appendSFDec(nil, c.f)); got != c.want {
			t.Errorf("dec %g: %q, want %q", c.f, got, c.want)
		}
	}
	if got := string(appendSFString(nil, "a\"b\\c\x01")); got != `"a\"b\\c?"` {
		t.Errorf("string: %s", got)
	}
	if got := string(appendSFInt(nil, 1e18)); got != "999999999999999" {
		t.Errorf("int: %s", got)
	}
	// Round trip through the parser.
	b := appendSFDec([]byte("x="), 12.345)
	got, err := collectDict(t, string(b))
	if err != nil || len(got) != 1 || got[0].val != "12.345" {
		t.Fatalf("round trip %q: %+v %v", b, got, err)
	}
}

func FuzzParseDict(f *testing.F) {
	for _, s := range []string{"rtp=15000,bl=2000,su", `a=("x";p 2);q=?1`, `nor="a%2Fb"`, "rate=1;ss=2, gap=0.5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		parseDict(s, func(key string, it item) error {
			if it.kind == kindInnerList {
				parseInner(it.s, func(item) error { return nil })
			}
			return parseParams(it.params, func(string, item) error { return nil })
		})
	})
}
