package sfv

import (
	"errors"
	"strings"
	"testing"
)

type member struct {
	key    string
	kind   Kind
	val    string // integer/decimal as text, string/token/bytes contents, bool "1"/"0"
	params string
}

func collectDict(t *testing.T, s string) ([]member, error) {
	t.Helper()
	var out []member
	err := ParseDictionary(s, func(key string, it Item) error {
		out = append(out, member{key, it.Kind, it.Text(), it.Params})
		return nil
	})
	return out, err
}

func TestParseDict(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []member
		err  string
	}{
		{"", nil, ""},
		{"   ", nil, ""},
		{"rtp=15000", []member{{"rtp", Integer, "15000", ""}}, ""},
		{`bl=21300,br=3200,bs,cid="faec5fc2-ac30-11ea-bb37-0242ac130002",d=4004,dl=18500,mtp=48100,nor="..%2F300kbps%2Ftrack.m4v",ot=v,rtp=12000,sf=d,sid="6e2fb550-c457-11e9-bb97-0800200c9a66",st=v,su,tb=6000`,
			[]member{{"bl", Integer, "21300", ""}, {"br", Integer, "3200", ""}, {"bs", Boolean, "1", ""},
				{"cid", String, "faec5fc2-ac30-11ea-bb37-0242ac130002", ""}, {"d", Integer, "4004", ""},
				{"dl", Integer, "18500", ""}, {"mtp", Integer, "48100", ""}, {"nor", String, "..%2F300kbps%2Ftrack.m4v", ""},
				{"ot", Token, "v", ""}, {"rtp", Integer, "12000", ""}, {"sf", Token, "d", ""},
				{"sid", String, "6e2fb550-c457-11e9-bb97-0800200c9a66", ""}, {"st", Token, "v", ""},
				{"su", Boolean, "1", ""}, {"tb", Integer, "6000", ""}}, ""},
		{"rate=4000;ss=8000;rec=2000, burst=4 ,\tgap=1.5", []member{{"rate", Integer, "4000", ";ss=8000;rec=2000"},
			{"burst", Integer, "4", ""}, {"gap", Decimal, "1.5", ""}}, ""},
		{`a=?0,b=?1,c=-12,d=0.001,e=:aGk=:,f="q\"uo\\te",g=*tok/x:y`, []member{{"a", Boolean, "0", ""}, {"b", Boolean, "1", ""},
			{"c", Integer, "-12", ""}, {"d", Decimal, "0.001", ""}, {"e", Bytes, "aGk=", ""}, {"f", String, `q"uo\te`, ""},
			{"g", Token, "*tok/x:y", ""}}, ""},
		{`br=(3000;v 128;a),nor=("a.m4s" "b.m4s";r="0-99")`, []member{{"br", InnerList, "3000;v 128;a", ""},
			{"nor", InnerList, `"a.m4s" "b.m4s";r="0-99"`, ""}}, ""},
		{"flag;p=1", []member{{"flag", Boolean, "1", ";p=1"}}, ""},
		{"com.sluice-rate=4000", []member{{"com.sluice-rate", Integer, "4000", ""}}, ""},
		{"Rtp=1", nil, "expected a key"},
		{"rtp=", nil, "expected a value"},
		{"rtp=1,", []member{{"rtp", Integer, "1", ""}}, "trailing ','"},
		{"rtp=1 x", []member{{"rtp", Integer, "1", ""}}, "expected ','"},
		{"a=1234567890123456", nil, "15 digits"},
		{"a=1.2345", nil, "bad decimal"},
		{`a="unterminated`, nil, "unterminated string"},
		{`a="bad\n"`, nil, "bad escape"},
		{"a=(1 2", nil, "unterminated inner list"},
		{"a=(0A)", nil, "expected ' ' between inner-list items"},
		{`a=(1 "x)`, nil, "unterminated string"},
		{"a=?2", nil, "bad boolean"},
		{"a=:a*b:", nil, "bad base64"},
		{"a=%", nil, "unexpected character"},
	} {
		got, err := collectDict(t, c.in)
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%q: err %v, want %q", c.in, err, c.err)
			continue
		}
		if err != nil && !errors.Is(err, ErrSyntax) {
			t.Errorf("%q: error %v is not ErrSyntax", c.in, err)
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

// TestParseDictionaryKinds reads every kind in one dictionary, as the
// player reads Sluice-Pacing and CMSD-Static.
func TestParseDictionaryKinds(t *testing.T) {
	got := map[string]Item{}
	err := ParseDictionary(`rate=6000;ss=12000, burst=4, gap=7.5, off, s="a\"b", t=tok/x:y, b=?0, l=(1 2);p, bs=:AQID:`,
		func(key string, it Item) error {
			got[key] = it
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	num := func(it Item) float64 { f, _ := it.Number(); return f }
	var ss float64
	if err := ParseParams(got["rate"].Params, func(k string, it Item) error {
		if k == "ss" {
			ss = num(it)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if num(got["rate"]) != 6000 || ss != 12000 || num(got["burst"]) != 4 || num(got["gap"]) != 7.5 {
		t.Errorf("numbers: %+v", got)
	}
	if !got["off"].Bool || got["s"].Str != `a"b` || got["t"].Str != "tok/x:y" || got["b"].Bool || got["b"].Kind != Boolean {
		t.Errorf("bare items: %+v", got)
	}
	var inner []string
	if err := ParseInner(got["l"].Str, func(it Item) error { inner = append(inner, it.Text()); return nil }); err != nil {
		t.Fatal(err)
	}
	if got["l"].Kind != InnerList || strings.Join(inner, " ") != "1 2" || got["l"].Params != ";p" || got["bs"].Str != "AQID" {
		t.Errorf("inner list / bytes: %+v %+v", got["l"], got["bs"])
	}
	for _, bad := range []string{`a=`, `A=1`, `a=1,`, `a="x`, `a=1 b=2`, `a=?2`} {
		if err := ParseDictionary(bad, func(string, Item) error { return nil }); !errors.Is(err, ErrSyntax) {
			t.Errorf("%q: %v, want ErrSyntax", bad, err)
		}
	}
}

func TestParseInnerAndParams(t *testing.T) {
	var vals []string
	if err := ParseInner("3000;v 128;a", func(it Item) error {
		vals = append(vals, it.Text()+it.Params)
		return nil
	}); err != nil || strings.Join(vals, "|") != "3000;v|128;a" {
		t.Fatalf("inner: %v %v", vals, err)
	}
	var ps []string
	if err := ParseParams(";ss=8000;rec=2.5;x", func(k string, it Item) error {
		ps = append(ps, k+"="+it.Text())
		return nil
	}); err != nil || strings.Join(ps, "|") != "ss=8000|rec=2.5|x=1" {
		t.Fatalf("params: %v %v", ps, err)
	}
	if err := ParseInner("1,2", func(Item) error { return nil }); err == nil {
		t.Fatal("inner list with ',' accepted")
	}
}

func TestParseList(t *testing.T) {
	var ids []string
	err := ParseList(`"cdn";etp=100, "sluice";etp=19387;rtt=44;com.sluice-loss=0.002;du`, func(it Item) error {
		ids = append(ids, it.Str+it.Params)
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
		if got := string(AppendDecimal(nil, c.f)); got != c.want {
			t.Errorf("dec %g: %q, want %q", c.f, got, c.want)
		}
	}
	if got := string(AppendString(nil, "a\"b\\c\x01")); got != `"a\"b\\c?"` {
		t.Errorf("string: %s", got)
	}
	if got := string(AppendInt(nil, 1e18)); got != "999999999999999" {
		t.Errorf("int: %s", got)
	}
	// Round trip through the parser.
	b := AppendDecimal([]byte("x="), 12.345)
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
		err := ParseDictionary(s, func(key string, it Item) error {
			if it.Kind == InnerList {
				if err := ParseInner(it.Str, func(Item) error { return nil }); err != nil {
					t.Errorf("%s: inner list %q delivered but invalid: %v", key, it.Str, err)
				}
			}
			if err := ParseParams(it.Params, func(string, Item) error { return nil }); err != nil {
				t.Errorf("%s: parameters %q delivered but invalid: %v", key, it.Params, err)
			}
			return nil
		})
		if err != nil && !errors.Is(err, ErrSyntax) {
			t.Errorf("%q: error %v is not ErrSyntax", s, err)
		}
	})
}

func FuzzParseList(f *testing.F) {
	for _, s := range []string{`"sluice";etp=19387;rtt=44;com.sluice-loss=0.002;du`, `"cdn";etp=100, "o";n=?1`, `(1 2);p, a`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var n int
		err := ParseList(s, func(it Item) error {
			n++
			if it.Kind == InnerList {
				if err := ParseInner(it.Str, func(Item) error { return nil }); err != nil {
					t.Errorf("inner list %q delivered but invalid: %v", it.Str, err)
				}
			}
			if err := ParseParams(it.Params, func(string, Item) error { return nil }); err != nil {
				t.Errorf("parameters %q delivered but invalid: %v", it.Params, err)
			}
			return nil
		})
		if err != nil && !errors.Is(err, ErrSyntax) {
			t.Errorf("%q: error %v is not ErrSyntax", s, err)
		}
		if err == nil && n == 0 && strings.Trim(s, " ") != "" {
			t.Errorf("%q parsed to nothing", s)
		}
	})
}
