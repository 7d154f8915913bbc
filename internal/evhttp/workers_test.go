package evhttp

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

func TestWorkers(t *testing.T) {
	p := &workers{max: 2, idleFor: time.Minute}
	base := runtime.NumGoroutine()
	var wg sync.WaitGroup
	ids := make(chan int, 10)
	// Four at once: four goroutines, two stay.
	block := make(chan struct{})
	for i := range 4 {
		wg.Add(1)
		p.run(func() { <-block; ids <- i; wg.Done() })
	}
	close(block)
	wg.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for p.idleCount() != 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := p.idleCount(); n != 2 {
		t.Fatalf("%d idle workers, want max 2", n)
	}
	// Sequential work reuses them: no new goroutine.
	for range 20 {
		wg.Add(1)
		p.run(func() { wg.Done() })
		wg.Wait()
	}
	for runtime.NumGoroutine() > base+2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > base+2 {
		t.Fatalf("%d goroutines over the %d before, want the 2 workers", g-base, base)
	}
	p.trim(time.Now()) // not idle long enough
	if p.idleCount() != 2 {
		t.Fatal("trim ended fresh workers")
	}
	p.trim(time.Now().Add(2 * time.Minute))
	if p.idleCount() != 0 {
		t.Fatal("trim left idle workers")
	}
	for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > base {
		t.Fatalf("%d goroutines left after trim", g-base)
	}
}
