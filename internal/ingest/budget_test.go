package ingest

import (
	"errors"
	"testing"
	"time"
)

// TestBudget: grants within the limit; over it the push that holds the most
// is cut and the requester gets its memory once that push lets go; a
// requester that holds the most itself is refused.
func TestBudget(t *testing.T) {
	b := newBudget(100)
	small := b.open(func() { t.Error("the small push was cut") })
	cut := make(chan struct{})
	var big *hold
	big = b.open(func() {
		close(cut)
		go func() {
			time.Sleep(10 * time.Millisecond)
			big.close() // the cut push ends and returns its memory
		}()
	})
	if err := big.Grow(70); err != nil {
		t.Fatal(err)
	}
	if err := small.Grow(20); err != nil {
		t.Fatal(err)
	}
	if err := small.Grow(20); err != nil {
		t.Fatalf("the small push needing more: %v", err)
	}
	select {
	case <-cut:
	default:
		t.Fatal("the push holding the most was not cut")
	}
	if !big.wasCut() {
		t.Error("wasCut false")
	}
	if b.Used() != 40 {
		t.Fatalf("used %d, want 40", b.Used())
	}
	// Now the requester holds the most: refused, nothing cut.
	other := b.open(func() { t.Error("a smaller push was cut") })
	if err := other.Grow(10); err != nil {
		t.Fatal(err)
	}
	if err := small.Grow(60); !errors.Is(err, ErrOverBudget) {
		t.Fatalf("err %v, want ErrOverBudget", err)
	}
	small.Release(40)
	other.close()
	small.close()
	if b.Used() != 0 {
		t.Fatalf("used %d after every push ended", b.Used())
	}
}

// TestBudgetVictimNeverLetsGo: a cut push that does not let go within
// evictWait leaves the requester refused, not blocked.
func TestBudgetVictimNeverLetsGo(t *testing.T) {
	b := newBudget(100)
	big := b.open(func() {})
	if err := big.Grow(90); err != nil {
		t.Fatal(err)
	}
	small := b.open(func() {})
	start := time.Now()
	if err := small.Grow(20); !errors.Is(err, ErrOverBudget) {
		t.Fatalf("err %v", err)
	}
	if d := time.Since(start); d > evictWait+time.Second {
		t.Fatalf("waited %v", d)
	}
}
