package membership

import (
	"strings"
	"testing"
)

func TestParseList(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []Member
		err  string
	}{
		{"http://127.0.0.1:9002,http://127.0.0.1:9001/", []Member{{"127.0.0.1:9001", "http://127.0.0.1:9001"}, {"127.0.0.1:9002", "http://127.0.0.1:9002"}}, ""},
		{"b=http://h:1, a=https://h:2", []Member{{"a", "https://h:2"}, {"b", "http://h:1"}}, ""},
		{"http://h:1,http://h:1", nil, "twice"},
		{"h:1", nil, "http(s)"},
		{"=http://h:1", nil, "empty id"},
		{"", nil, ""},
	} {
		got, err := ParseList(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: err %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || len(got) != len(c.want) {
			t.Errorf("%q: %v %v", c.in, got, err)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%q: %v, want %v", c.in, got, c.want)
			}
		}
	}
}

func TestStatic(t *testing.T) {
	if _, err := Static(); err == nil {
		t.Error("empty static set accepted")
	}
	s, err := Static(Member{"b", "http://b:1"}, Member{"a", "http://a:1"})
	if err != nil {
		t.Fatal(err)
	}
	ms := s.Members()
	if ids := IDs(ms); strings.Join(ids, ",") != "a,b" {
		t.Errorf("ids %v", ids)
	}
	ms[0].ID = "changed"
	if s.Members()[0].ID != "a" {
		t.Error("Members returned the set's own slice")
	}
	if m, ok := Lookup(s.Members(), "b"); !ok || m.URL != "http://b:1" {
		t.Errorf("lookup %v %v", m, ok)
	}
	select {
	case <-s.Changed():
		t.Error("a static set changed")
	default:
	}
}
