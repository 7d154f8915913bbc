package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCrosses(t *testing.T) {
	stalls := [][2]int64{{100, 200}, {150, 900}, {5000, 5010}}
	for _, c := range []struct {
		a, b int64
		want bool
	}{
		{0, 99, false},
		{0, 100, true},
		{300, 400, true}, // inside the second, which starts before
		{901, 4999, false},
		{4000, 6000, true}, // around the third
		{5011, 9000, false},
	} {
		if got := crosses(stalls, c.a, c.b); got != c.want {
			t.Errorf("[%d, %d]: %v, want %v", c.a, c.b, got, c.want)
		}
	}
	if crosses(nil, 0, 1) {
		t.Error("no stalls crossed")
	}
}

func TestReadStalls(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stalls.txt")
	if err := os.WriteFile(path, []byte("500 600\n100 200\nbad\n9 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := readStalls(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != [2]int64{100, 200} || got[1] != [2]int64{500, 600} {
		t.Fatalf("stalls %v", got)
	}
}
