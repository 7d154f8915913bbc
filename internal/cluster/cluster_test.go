package cluster

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestToken(t *testing.T) {
	secret := []byte("k")
	now := time.Unix(1_800_000_000, 0)
	b := BlockID{Point: "ch", Track: "video_800000", Start: 42}
	tok := Sign(secret, Token{Session: "s1", Point: "ch", Track: "video_800000", Expires: now.Add(time.Minute)})
	if got, err := Verify(secret, tok, b, now); err != nil || got.Session != "s1" {
		t.Fatalf("valid token: %v %+v", err, got)
	}
	for name, c := range map[string]struct {
		secret []byte
		tok    string
		b      BlockID
		now    time.Time
	}{
		"forged":      {[]byte("other"), tok, b, now},
		"expired":     {secret, tok, b, now.Add(2 * time.Minute)},
		"other track": {secret, tok, BlockID{Point: "ch", Track: "audio", Start: 42}, now},
		"other point": {secret, tok, BlockID{Point: "x", Track: "video_800000", Start: 42}, now},
		"garbage":     {secret, "a.b", b, now},
		"tampered":    {secret, "x" + tok, b, now},
	} {
		if _, err := Verify(c.secret, c.tok, c.b, c.now); !errors.Is(err, ErrToken) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestOwnersStableAndSpread(t *testing.T) {
	ids := []string{"a", "b", "c"}
	count := map[string]int{}
	moved := 0
	for i := 0; i < 3000; i++ {
		k := fmt.Sprintf("ch/v/%d", i)
		o := Owners(k, ids, 2)
		if len(o) != 2 || o[0] == o[1] {
			t.Fatalf("owners %v", o)
		}
		count[o[0]]++
		// Removing c moves only blocks c held.
		o2 := Owners(k, []string{"a", "b"}, 1)
		if o[0] != "c" && o2[0] != o[0] {
			moved++
		}
	}
	for id, n := range count {
		if n < 800 || n > 1200 {
			t.Errorf("%s is primary for %d of 3000", id, n)
		}
	}
	if moved != 0 {
		t.Errorf("%d blocks moved that were not on the removed sender", moved)
	}
}
