package llhls

import (
	"os"
	"strings"
	"testing"
)

func golden(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../../manifest/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCheck: the renderer's golden low-latency playlists pass, and each
// broken rule is found.
func TestCheck(t *testing.T) {
	for _, name := range []string{"lowlatency.video_3000000.m3u8", "lowlatency.video_1500000.m3u8", "lowlatency.audio_128000.m3u8", "lowlatency-skip.video_3000000.m3u8"} {
		if err := Check(golden(t, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	good := string(golden(t, "lowlatency.video_3000000.m3u8"))
	for _, c := range []struct {
		name, old, new, want string
	}{
		{"part over the target", "PART-TARGET=0.500", "PART-TARGET=0.400", "over PART-TARGET"},
		{"no blocking", "CAN-BLOCK-RELOAD=YES,", "", "CAN-BLOCK-RELOAD"},
		{"hold back too short", "PART-HOLD-BACK=1.500", "PART-HOLD-BACK=0.600", "PART-HOLD-BACK"},
		{"hint not the next part", `PRELOAD-HINT:TYPE=PART,URI="part-10170000000.m4s"`, `PRELOAD-HINT:TYPE=PART,URI="part-10175000000.m4s"`, "preload hint"},
		{"no hint", "#EXT-X-PRELOAD-HINT", "#EXT-X-NOT-A-HINT", "no EXT-X-PRELOAD-HINT"},
		{"a part missing", "#EXT-X-PART:DURATION=0.500,URI=\"part-10145000000.m4s\"\n", "", "does not start where"},
	} {
		bad := strings.Replace(good, c.old, c.new, 1)
		if bad == good {
			t.Fatalf("%s: nothing replaced", c.name)
		}
		if err := Check([]byte(bad)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error about %q", c.name, err, c.want)
		}
	}
	if err := CheckDelta(golden(t, "lowlatency.video_3000000.m3u8"), golden(t, "lowlatency-skip.video_3000000.m3u8")); err != nil {
		t.Errorf("delta update: %v", err)
	}
	if err := CheckDelta(golden(t, "lowlatency.video_3000000.m3u8"), golden(t, "lowlatency.video_3000000.m3u8")); err == nil {
		t.Error("a full playlist passed as a delta update")
	}
}
