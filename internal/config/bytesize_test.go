package config

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestParseByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ByteSize
		bad  bool
	}{
		{"1048576", 1 << 20, false},
		{"10B", 10, false},
		{"512MiB", 512 << 20, false},
		{"512M", 512 << 20, false},
		{"512Mi", 512 << 20, false},
		{"512m", 512 << 20, false},
		{"2G", 2 << 30, false},
		{"2GiB", 2 << 30, false},
		{"2GB", 2_000_000_000, false},
		{"2gb", 2_000_000_000, false},
		{"64KiB", 64 << 10, false},
		{"64k", 64 << 10, false},
		{"300kB", 300_000, false},
		{"300KB", 300_000, false},
		{"1.5G", 3 << 29, false},
		{"1.5GB", 1_500_000_000, false},
		{"1T", 1 << 40, false},
		{" 8M ", 8 << 20, false},
		{"lots", 0, true},
		{"-1M", 0, true},
		{"1b", 0, true},
		{"1X", 0, true},
		{"M", 0, true},
		{"", 0, true},
		{"1e30T", 0, true},
	} {
		got, err := ParseByteSize(tc.in)
		if tc.bad != (err != nil) || got != tc.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d (error %v)", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

func TestByteSizeRoundTrip(t *testing.T) {
	for _, b := range []ByteSize{0, 1, 1000, 1 << 10, 512 << 20, 3 << 30, 1 << 40, 1_500_000_000} {
		got, err := ParseByteSize(b.String())
		if err != nil || got != b {
			t.Errorf("%d: String %q reads back as %d, %v", int64(b), b.String(), got, err)
		}
	}
}

func TestByteSizeYAML(t *testing.T) {
	var v struct {
		A, B, C ByteSize
	}
	if err := yaml.Unmarshal([]byte("a: 536870912\nb: 2G\nc: 2GB\n"), &v); err != nil {
		t.Fatal(err)
	}
	if v.A != 512<<20 || v.B != 2<<30 || v.C != 2e9 {
		t.Fatalf("decoded %+v", v)
	}
	if err := yaml.Unmarshal([]byte("a: lots\n"), &v); err == nil || !strings.Contains(err.Error(), "lots") {
		t.Fatalf("a bad size decoded: %v", err)
	}
}
