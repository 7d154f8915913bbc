package hostile

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"
)

func TestProc(t *testing.T) {
	m, err := Memory(os.Getpid())
	if err != nil || m.RSS <= 0 || m.HWM < m.RSS {
		t.Fatalf("%+v %v", m, err)
	}
	if n, err := Sockets(os.Getpid()); err != nil || n < 0 {
		t.Fatalf("%d %v", n, err)
	}
}

func TestBoxHeader(t *testing.T) {
	if b := BoxHeader(16, "free"); !bytes.Equal(b, []byte{0, 0, 0, 16, 'f', 'r', 'e', 'e'}) {
		t.Fatalf("%x", b)
	}
	if b := BoxHeader(1<<33, "mdat"); len(b) != 16 || binary.BigEndian.Uint32(b) != 1 || binary.BigEndian.Uint64(b[8:]) != 1<<33 {
		t.Fatalf("%x", b)
	}
}

// TestPushAnswerMidBody: the answer a server gives in the middle of a body
// that keeps coming is read, with its reason and Retry-After.
func TestPushAnswerMidBody(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.CopyN(io.Discard, r.Body, 1<<20)
		w.Header().Set("Retry-After", "5")
		http.Error(w, "enough", http.StatusServiceUnavailable)
	}))
	defer ts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a := Push(ctx, ts.URL+"/x", Repeat(make([]byte, 64<<10), 1<<12))
	if a.Status != 503 || a.Reason != "enough" || a.RetryAfter != "5" {
		t.Fatalf("%v", a)
	}
}
