package clusterauth

import (
	"encoding/hex"
	"fmt"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"
)

// BenchmarkNonceCacheFull fills a verifier's nonce cache to its default
// bound and reports the heap it holds (bytes/nonce and MB in all).
func BenchmarkNonceCacheFull(b *testing.B) {
	for range b.N {
		v := &Verifier{Keys: testKeys}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		now := time.Now()
		var nb [16]byte
		for i := 0; i < DefaultMaxNonces; i++ {
			nb[0], nb[1], nb[2], nb[3] = byte(i), byte(i>>8), byte(i>>16), byte(i>>24)
			if err := v.remember(hex.EncodeToString(nb[:]), now); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		held := float64(after.HeapAlloc) - float64(before.HeapAlloc)
		b.ReportMetric(held/DefaultMaxNonces, "B/nonce")
		b.ReportMetric(held/(1<<20), "MB")
		runtime.KeepAlive(v)
	}
}

// BenchmarkVerify is the server's cost of one signed request (a 64 KiB
// body).
func BenchmarkVerify(b *testing.B) {
	body := make([]byte, 64<<10)
	v := &Verifier{Keys: testKeys, MaxNonces: 1 << 30}
	for i := range b.N {
		r := httptest.NewRequest("PUT", fmt.Sprintf("http://s:1/internal/v1/blocks/p/t/%d", i), nil)
		r.Body = nil
		r2 := signed(b, testKeys, "PUT", r.URL.String(), body, time.Now())
		if err := v.Verify(r2); err != nil {
			b.Fatal(err)
		}
	}
}
