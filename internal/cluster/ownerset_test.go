package cluster

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestOwnerSetLabel(t *testing.T) {
	hashed := regexp.MustCompile(`^h[0-9a-f]{20}$`)
	for _, c := range []struct {
		ids  []string
		want string // "" = hashed
	}{
		{[]string{"sender-0", "sender-2"}, "sender-0--sender-2"},
		{[]string{"s2", "s0", "s1"}, "s2--s0--s1"},
		{[]string{"one"}, "one"},
		{[]string{"Sender-0", "s1"}, ""},                                 // upper case
		{[]string{"a--b", "c"}, ""},                                      // would be ambiguous
		{[]string{"s0", "s1.example"}, ""},                               // not one label
		{[]string{"-s0", "s1"}, ""},                                      // leading hyphen
		{[]string{"http://10.0.0.1:9001"}, ""},                           // a static list's URL as ID
		{[]string{strings.Repeat("a", 32), strings.Repeat("b", 32)}, ""}, // longer than a label
	} {
		got := OwnerSetLabel(c.ids)
		if c.want == "" {
			if !hashed.MatchString(got) {
				t.Errorf("%q: %q, want a hashed label", c.ids, got)
			}
			if got == OwnerSetLabel([]string{c.ids[0] + "x"}) {
				t.Errorf("%q: hashed label collides", c.ids)
			}
			continue
		}
		if got != c.want {
			t.Errorf("%q: %q, want %q", c.ids, got, c.want)
		}
	}
	if a, b := OwnerSetLabel([]string{"x", "y"}), OwnerSetLabel([]string{"y", "x"}); a == b {
		t.Errorf("order lost: %q", a)
	}
}

func TestOwnerSetMembers(t *testing.T) {
	for _, c := range []struct {
		host string
		want []string
	}{
		{"sender-0--sender-2.senders.example:9001", []string{"sender-0", "sender-2"}},
		{"s2--s0--s1.x", []string{"s2", "s0", "s1"}},
		{"s2--s0:9001", []string{"s2", "s0"}},
		{"s2--s0", []string{"s2", "s0"}},
		{"sender-0.senders.example", nil}, // one member
		{"127.0.0.11:9001", nil},
		{"h0123456789abcdef0123.senders.example", nil}, // hashed
		{"A--b.x", nil},
		{"a---b.x", nil},
		{"", nil},
	} {
		if got := OwnerSetMembers(c.host); !slices.Equal(got, c.want) {
			t.Errorf("%q: %q, want %q", c.host, got, c.want)
		}
	}
	ids := []string{"sender-1", "sender-0"}
	if got := OwnerSetMembers(OwnerSetLabel(ids) + ".senders.example"); !slices.Equal(got, ids) {
		t.Errorf("round trip: %q", got)
	}
}
