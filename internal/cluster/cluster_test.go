package cluster

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestToken(t *testing.T) {
	secret := []byte("k")
	b := BlockID{Point: "ch", Track: "video_800000", Start: 42}
	tok := Sign(secret, Token{Session: "s1", Point: "ch"})
	if tok != Sign(secret, Token{Session: "s1", Point: "ch"}) {
		t.Fatal("a token is not the same string every time")
	}
	if got, err := Verify(secret, tok, b); err != nil || got.Session != "s1" || got.Point != "ch" {
		t.Fatalf("valid token: %v %+v", err, got)
	}
	// Any track of the point.
	if _, err := Verify(secret, tok, BlockID{Point: "ch", Track: "audio", Start: 7}); err != nil {
		t.Fatalf("other track of the point: %v", err)
	}
	for name, c := range map[string]struct {
		secret []byte
		tok    string
		b      BlockID
	}{
		"forged":      {[]byte("other"), tok, b},
		"other point": {secret, tok, BlockID{Point: "x", Track: "video_800000", Start: 42}},
		"garbage":     {secret, "a.b", b},
		"three parts": {secret, tok + ".x", b},
		"tampered":    {secret, "x" + tok, b},
		"empty":       {secret, "", b},
	} {
		if _, err := Verify(c.secret, c.tok, c.b); !errors.Is(err, ErrToken) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestSessionID(t *testing.T) {
	secret := []byte("k")
	opened := time.Unix(1_800_000_123, 0)
	labels := []string{PathwayLabel("sender-0"), PathwayLabel("sender-2")}
	id, err := NewSessionID(secret, opened, labels)
	if err != nil {
		t.Fatal(err)
	}
	info, err := ParseSessionID(secret, id)
	if err != nil || !info.Opened.Equal(opened) || len(info.Pathways) != 2 || info.Pathways[0] != labels[0] || info.Pathways[1] != labels[1] {
		t.Fatalf("parse %q: %+v %v", id, info, err)
	}
	other, _ := NewSessionID(secret, opened, labels)
	if other == id {
		t.Fatal("two session IDs are the same")
	}
	if _, err := NewSessionID(secret, opened, []string{"xyz"}); err == nil {
		t.Error("a bad label was accepted")
	}
	for name, bad := range map[string]string{
		"other secret": func() string { s, _ := NewSessionID([]byte("other"), opened, labels); return s }(),
		"tampered":     id[:5] + map[bool]string{true: "1", false: "0"}[id[5] == '0'] + id[6:],
		"short":        id[:20],
		"odd length":   id[:len(id)-1],
		"upper":        strings.ToUpper(id),
		"empty":        "",
	} {
		if _, err := ParseSessionID(secret, bad); !errors.Is(err, ErrSession) {
			t.Errorf("%s: %q: %v", name, bad, err)
		}
	}
	if l := PathwayLabel("a"); len(l) != 6 || l == PathwayLabel("b") {
		t.Errorf("labels %q %q", l, PathwayLabel("b"))
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

// TestCompactToken: a session ID of hex gives the short form — its bytes,
// a point tag and the MAC in base64 — whose length does not depend on the
// point's name: 52 characters for one pathway, 80 for eight (they were
// 86 and 142 with a 4-letter point). It verifies like the long form, which
// is still accepted.
func TestCompactToken(t *testing.T) {
	secret := []byte("k")
	opened := time.Unix(1_800_000_123, 0)
	for _, n := range []int{1, 8} {
		labels := make([]string, n)
		for i := range labels {
			labels[i] = PathwayLabel(fmt.Sprint("sender-", i))
		}
		id, err := NewSessionID(secret, opened, labels)
		if err != nil {
			t.Fatal(err)
		}
		for _, point := range []string{"live", "movies/some-long-name/with-parts"} {
			tok := Sign(secret, Token{Session: id, Point: point})
			want := map[int]int{1: 52, 8: 80}[n]
			if strings.Contains(tok, ".") || len(tok) != want {
				t.Errorf("%d pathways, point %q: token %q (%d characters), want the compact form of %d", n, point, tok, len(tok), want)
			}
			b := BlockID{Point: point, Track: "video_800000", Start: 42}
			if got, err := Verify(secret, tok, b); err != nil || got.Session != id || got.Point != point {
				t.Fatalf("compact token: %v %+v", err, got)
			}
			other := BlockID{Point: point + "x", Track: "video_800000", Start: 42}
			if _, err := Verify(secret, tok, other); !errors.Is(err, ErrToken) || !strings.Contains(err.Error(), "another publishing point") {
				t.Errorf("other point: %v", err)
			}
			if _, err := Verify([]byte("other"), tok, b); !errors.Is(err, ErrToken) || !strings.Contains(err.Error(), "bad signature") {
				t.Errorf("forged: %v", err)
			}
			for _, bad := range []string{"x" + tok, tok[:len(tok)-1], tok[:10], "!" + tok[1:]} {
				if _, err := Verify(secret, bad, b); !errors.Is(err, ErrToken) {
					t.Errorf("tampered %q: %v", bad, err)
				}
			}
			// The long form of the same token.
			payload := []byte(id + "\x00" + point)
			long := b64.EncodeToString(payload) + "." + b64.EncodeToString(tokenMAC(secret, payload))
			if got, err := Verify(secret, long, b); err != nil || got.Session != id {
				t.Errorf("long form: %v %+v", err, got)
			}
		}
	}
	// A session ID that is not hex keeps the long form.
	if tok := Sign(secret, Token{Session: "s1", Point: "ch"}); !strings.Contains(tok, ".") {
		t.Errorf("non-hex session: %q", tok)
	}
}
