package ingest_test

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/testkit"
	"github.com/sluice-media/sluice/internal/testmedia"
)

// uuidTfxd is the Smooth tfxd extended type.
var uuidTfxd = []byte{0x6d, 0x1d, 0x9b, 0x05, 0x42, 0xd5, 0x44, 0xe6, 0x80, 0xe2, 0x14, 0x1d, 0xaf, 0xf7, 0x57, 0xb2}

// withTfxdByte returns a copy of a moof whose tfxd fragment time has byte i
// (0: the most significant) set to b: what one corrupted byte on the wire,
// or a hostile encoder, does.
func withTfxdByte(t *testing.T, moof []byte, i int, b byte) []byte {
	t.Helper()
	k := bytes.Index(moof, uuidTfxd)
	if k < 0 {
		t.Fatal("moof without tfxd")
	}
	ver := k + len(uuidTfxd)
	if moof[ver] != 1 {
		t.Fatalf("tfxd version %d, want the 64-bit version 1", moof[ver])
	}
	out := append([]byte(nil), moof...)
	out[ver+4+i] = b
	return out
}

// TestAbsurdTimeRefused: a fragment of a real ffmpeg push whose tfxd time
// has one byte changed (the high byte: a DASH S t="9151314442897061205" seen in the field;
// the fifth: seven minutes ahead) gets 400 with the reason, a log line and a
// count; nothing stored changes, and the correct fragments pushed after it
// are listed in every manifest — nothing is hidden behind the outlier.
func TestAbsurdTimeRefused(t *testing.T) {
	a, _ := fixtures(t)
	boxes := testmedia.Boxes(t, a)
	var hdr, frags []media.Box
	for _, b := range boxes {
		switch b.Type {
		case "ftyp", "uuid", "moov":
			hdr = append(hdr, b)
		case "moof", "mdat":
			frags = append(frags, b)
		}
	}
	if len(frags) < 12 {
		t.Fatalf("fixture has %d fragment boxes", len(frags))
	}
	for _, c := range []struct {
		name string
		i    int
		b    byte
	}{{"high byte", 0, 0x7f}, {"fifth byte", 3, 0x01}} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			// The first fragments, live (no mfra).
			head := frags[:6]
			e.mustPush("first part", append(testmedia.Join(hdr), testmedia.Join(head)...))
			before := e.snapshot("live")
			n := fragCount(e.view("live"))

			bad := withTfxdByte(t, frags[6].Raw, c.i, c.b)
			body := append(testmedia.Join(hdr), bad...)
			body = append(body, frags[7].Raw...)
			body = append(body, testmedia.Join(frags[8:])...)
			code, msg := e.post("/live.isml/Streams(s1)", body, nil)
			if code != http.StatusBadRequest || !strings.Contains(msg, "implausible fragment time") {
				t.Fatalf("absurd time: %d %q, want 400 implausible fragment time", code, msg)
			}
			if !strings.Contains(e.logs.String(), "ingest refused") || !strings.Contains(e.logs.String(), "implausible") {
				t.Errorf("no log line:\n%s", e.logs.String())
			}
			if got := testkit.Sum(t, e.srv.Metrics.Registry, "sluice_ingest_errors_total", "status=400"); got != 1 {
				t.Errorf("sluice_ingest_errors_total{status=400} = %v", got)
			}
			if !testkit.SameFragments(before, e.snapshot("live")) {
				t.Fatal("the refused push changed what was stored")
			}

			// The encoder goes on with correct fragments: all of them are
			// stored and listed.
			e.mustPush("the rest", append(testmedia.Join(hdr), testmedia.Join(frags[6:])...))
			v := e.view("live")
			if got := fragCount(v); got != n+len(frags[6:])/2 {
				t.Fatalf("%d fragments stored, want %d", got, n+len(frags[6:])/2)
			}
			for _, tr := range v.Tracks {
				last := tr.Frags[len(tr.Frags)-1]
				for _, path := range []string{"/live.isml/manifest.mpd", "/live.isml/tracks/" + tr.ID + "/media.m3u8"} {
					resp, err := http.Get(e.ts.URL + path)
					if err != nil {
						t.Fatal(err)
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 || bytes.Contains(b, []byte("9151314442897061205")) {
						t.Fatalf("%s: %d\n%s", path, resp.StatusCode, b)
					}
					if strings.HasSuffix(path, ".m3u8") && !bytes.Contains(b, []byte(strconv.FormatInt(last.Start, 10)+".m4s")) {
						t.Errorf("%s does not list the last fragment %d:\n%s", path, last.Start, b)
					}
				}
			}
		})
	}
}
