package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

func sampleBatch() Batch {
	return Batch{
		Scheduler: "sched-1", Lease: 10 * time.Second,
		LookAhead: []Pin{{Session: "s1", Block: BlockID{Point: "live/a", Track: "v1", Start: 2000}}, {Session: "s1", Block: BlockID{Point: "live/a", Track: "v1", Start: 4000}}},
		Cancel:    []Pin{{Session: "s2", Block: BlockID{Point: "live/a", Track: "a", Start: -7}}},
		Send:      []Pin{{Session: "s2", Block: BlockID{Point: "vod", Track: "v2", Start: 1 << 40}}},
		URL:       "http://127.0.0.1:8080",
		Grants:    []Grant{{Session: "s1", Point: "live/a"}, {Session: "s3", Point: "vod"}},
		GrantTTL:  time.Minute,
		Ends:      []string{"s4", "s1"},
		Placement: &Placement{Replicas: 2, Senders: []PlacedSender{{ID: "a:1", URL: "http://a:1"}, {ID: "b:2", URL: "http://b:2"}}},
	}
}

func sampleResult() BatchResult {
	at := time.Unix(1700000000, 123456789)
	return BatchResult{
		Refused: []Pin{{Session: "s1", Block: BlockID{Point: "live/a", Track: "v1", Start: 2000}}},
		Missing: []BlockID{{Point: "live/a", Track: "v1", Start: 6000}},
		Sent: []SentReport{
			{Session: "s1", Block: BlockID{Point: "live/a", Track: "v1", Start: 2000}, At: at, Bytes: 200000, FromRAM: true, Next: "4000.m4s"},
			{Session: "s2", Block: BlockID{Point: "live/a", Track: "a", Start: 0}, Bytes: 0},
		},
		Boot:    "boot-xyz",
		Orphans: []Grant{{Session: "s9", Point: "live/a"}},
		Reloads: []Reload{{Session: "s1", Point: "live/a", Track: "v1", At: at}, {Session: "s3", Point: "live/a", Track: "a", At: at.Add(time.Second)}},
	}
}

func TestBatchCodecRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		b    Batch
	}{
		{"empty", Batch{}},
		{"full", sampleBatch()},
		{"placement without senders", Batch{Scheduler: "x", Placement: &Placement{Replicas: 3}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			enc := AppendBatch(nil, &tc.b)
			got, err := DecodeBatch(enc)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.b) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, tc.b)
			}
			// The same as the JSON encoding says.
			j, _ := json.Marshal(tc.b)
			var viaJSON Batch
			json.Unmarshal(j, &viaJSON)
			if !reflect.DeepEqual(got, viaJSON) {
				t.Fatalf("binary and JSON differ:\n bin %+v\njson %+v", got, viaJSON)
			}
		})
	}
}

func TestBatchResultCodecRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		r    BatchResult
	}{
		{"empty", BatchResult{}},
		{"full", sampleResult()},
		{"without reloads", BatchResult{Boot: "b", Sent: sampleResult().Sent}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			enc := AppendBatchResult(nil, &tc.r)
			got, err := DecodeBatchResult(enc)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Sent) != len(tc.r.Sent) {
				t.Fatalf("sent: %d reports, want %d", len(got.Sent), len(tc.r.Sent))
			}
			for i := range got.Sent {
				if !got.Sent[i].At.Equal(tc.r.Sent[i].At) || got.Sent[i].At.IsZero() != tc.r.Sent[i].At.IsZero() {
					t.Fatalf("sent[%d].At = %v, want %v", i, got.Sent[i].At, tc.r.Sent[i].At)
				}
				got.Sent[i].At = tc.r.Sent[i].At
			}
			for i := range got.Reloads {
				if i >= len(tc.r.Reloads) || !got.Reloads[i].At.Equal(tc.r.Reloads[i].At) {
					t.Fatalf("reloads[%d] = %+v, want %+v", i, got.Reloads[i], tc.r.Reloads)
				}
				got.Reloads[i].At = tc.r.Reloads[i].At
			}
			if !reflect.DeepEqual(got, tc.r) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, tc.r)
			}
		})
	}
}

func TestBatchCodecStringsOnce(t *testing.T) {
	b := Batch{Scheduler: "s"}
	for i := 0; i < 1000; i++ {
		b.LookAhead = append(b.LookAhead, Pin{Session: "a-long-session-identifier-0123456789", Block: BlockID{Point: "live/channel", Track: "video1", Start: int64(i) * 2000}})
	}
	enc := AppendBatch(nil, &b)
	j, _ := json.Marshal(b)
	if len(enc) > len(j)/8 {
		t.Errorf("binary batch %d bytes, JSON %d: strings not shared", len(enc), len(j))
	}
}

func TestBatchCodecErrors(t *testing.T) {
	full := AppendBatch(nil, func() *Batch { b := sampleBatch(); return &b }())
	res := AppendBatchResult(nil, func() *BatchResult { r := sampleResult(); return &r }())
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"json", []byte(`{"sched":"x"}`)},
		{"result as batch", res},
		{"truncated", full[:len(full)-1]},
		{"trailing", append(append([]byte{}, full...), 0)},
		{"huge count", append(append([]byte{}, batchMagic[:]...), 0, 1, 'x', 0, 0xff, 0xff, 0xff, 0xff, 0x0f)},
		{"dangling reference", append(append([]byte{}, batchMagic[:]...), 5)},
		{"huge string", append(append([]byte{}, batchMagic[:]...), 0, 0xff, 0xff, 0xff, 0xff, 0x0f)},
		{"overlong varint", append(append([]byte{}, batchMagic[:]...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeBatch(tc.in)
			if !errors.Is(err, ErrCodec) {
				t.Fatalf("DecodeBatch: err = %v, want ErrCodec", err)
			}
		})
	}
	if _, err := DecodeBatchResult(full); !errors.Is(err, ErrCodec) {
		t.Fatalf("DecodeBatchResult of a batch: err = %v", err)
	}
	if _, err := DecodeBatchResult(res[:len(res)-2]); !errors.Is(err, ErrCodec) {
		t.Fatalf("DecodeBatchResult of a truncated result: err = %v", err)
	}
}

// FuzzDecodeBatch: any input decodes to a batch that encodes and decodes
// to itself, or fails with ErrCodec; never a panic.
func FuzzDecodeBatch(f *testing.F) {
	b := sampleBatch()
	f.Add(AppendBatch(nil, &b))
	f.Add(AppendBatch(nil, &Batch{}))
	f.Add([]byte("SLB1"))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := DecodeBatch(in)
		if err != nil {
			if !errors.Is(err, ErrCodec) {
				t.Fatalf("error %v does not wrap ErrCodec", err)
			}
			return
		}
		again, err := DecodeBatch(AppendBatch(nil, &got))
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("re-encoding: %v\n got %+v\nwant %+v", err, again, got)
		}
	})
}

// FuzzDecodeBatchResult is FuzzDecodeBatch for a BatchResult.
func FuzzDecodeBatchResult(f *testing.F) {
	r := sampleResult()
	f.Add(AppendBatchResult(nil, &r))
	f.Add(AppendBatchResult(nil, &BatchResult{}))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := DecodeBatchResult(in)
		if err != nil {
			if !errors.Is(err, ErrCodec) {
				t.Fatalf("error %v does not wrap ErrCodec", err)
			}
			return
		}
		again, err := DecodeBatchResult(AppendBatchResult(nil, &got))
		if err != nil || len(again.Sent) != len(got.Sent) {
			t.Fatalf("re-encoding: %v", err)
		}
		for i := range got.Sent {
			if !again.Sent[i].At.Equal(got.Sent[i].At) {
				t.Fatalf("sent[%d].At %v != %v", i, again.Sent[i].At, got.Sent[i].At)
			}
			again.Sent[i].At = got.Sent[i].At
		}
		for i := range got.Reloads {
			if i >= len(again.Reloads) || !again.Reloads[i].At.Equal(got.Reloads[i].At) {
				t.Fatalf("reloads[%d] differ", i)
			}
			again.Reloads[i].At = got.Reloads[i].At
		}
		if !reflect.DeepEqual(again, got) {
			t.Fatalf("re-encoding:\n got %+v\nwant %+v", again, got)
		}
	})
}

func BenchmarkBatchCodec(b *testing.B) {
	batch := Batch{Scheduler: "s", Lease: time.Second}
	res := BatchResult{Boot: "x"}
	// As a scheduler's batch at 10 000 live sessions: 2 000 pins of about
	// 1 000 sessions (IDs as long as real ones), two tracks of one point.
	for i := 0; i < 2000; i++ {
		sess := fmt.Sprintf("s%07d-0123456789abcdef0123456789abcdef", i/2)
		blk := BlockID{Point: "live", Track: []string{"video_1000", "audio_128"}[i%2], Start: int64(i) * 2000}
		batch.LookAhead = append(batch.LookAhead, Pin{Session: sess, Block: blk})
		res.Sent = append(res.Sent, SentReport{Session: sess, Block: blk, At: time.Now(), Bytes: 200000, FromRAM: true})
	}
	b.Run("binary", func(b *testing.B) {
		var buf []byte
		for i := 0; i < b.N; i++ {
			buf = AppendBatch(buf[:0], &batch)
			DecodeBatch(buf)
			buf = AppendBatchResult(buf[:0], &res)
			DecodeBatchResult(buf)
		}
	})
	b.Run("json", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			j, _ := json.Marshal(batch)
			var bb Batch
			json.Unmarshal(j, &bb)
			j, _ = json.Marshal(res)
			var rr BatchResult
			json.Unmarshal(j, &rr)
		}
	})
}

// TestBatchResultWithoutReloadsIsTheOldEncoding: a result without reloads
// is encoded exactly as before they existed (a scheduler that predates
// them decodes it), and a decoder reads such an encoding.
func TestBatchResultWithoutReloadsIsTheOldEncoding(t *testing.T) {
	r := sampleResult()
	withReloads := AppendBatchResult(nil, &r)
	r.Reloads = nil
	old := AppendBatchResult(nil, &r)
	if len(withReloads) <= len(old) || string(withReloads[:len(old)]) != string(old) {
		t.Fatalf("reloads are not a trailing section: %d vs %d bytes", len(withReloads), len(old))
	}
	got, err := DecodeBatchResult(old)
	if err != nil || got.Reloads != nil || got.Boot != r.Boot {
		t.Fatalf("decoding the old encoding: %v %+v", err, got)
	}
	// A truncated reloads section is an error, not a shorter list.
	if _, err := DecodeBatchResult(withReloads[:len(withReloads)-2]); !errors.Is(err, ErrCodec) {
		t.Fatalf("truncated reloads: %v", err)
	}
}
