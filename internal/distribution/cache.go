package distribution

import (
	"container/list"
	"net/http"
	"sync"
	"time"
)

// entry is one cached response: status, the headers passed on, the body and
// its freshness.
type entry struct {
	key    string
	status int
	header http.Header
	body   []byte
	// date is when the response was generated upstream (receipt minus the
	// upstream Age); the Age sent to clients counts from it.
	date time.Time
	// expires ends the freshness lifetime (Cache-Control s-maxage/max-age).
	expires time.Time
	// point, frag and at place a media fragment on its channel's timeline
	// (seconds of media time), so that the live window can drop it.
	point string
	frag  bool
	at    float64
	// hasAt is false when the fragment's track was unknown.
	hasAt bool
	// manifest marks a manifest: its Cache-Control max-age is sent as
	// the lifetime it has left (see Proxy.writeEntry).
	manifest bool

	elem *list.Element
}

// entryOverhead approximates the memory of an entry besides its body.
const entryOverhead = 512

func (e *entry) size() int64 { return int64(len(e.body)) + int64(len(e.key)) + entryOverhead }

// fresh reports whether the entry may be served without asking upstream.
func (e *entry) fresh(now time.Time) bool { return now.Before(e.expires) }

// cache is an LRU of entries bounded by a byte budget.
type cache struct {
	mu      sync.Mutex
	max     int64
	bytes   int64
	items   map[string]*entry
	lru     *list.List // front: most recently used
	onEvict func(reason string, n int)
}

func newCache(maxBytes int64, onEvict func(reason string, n int)) *cache {
	if onEvict == nil {
		onEvict = func(string, int) {}
	}
	return &cache{max: maxBytes, items: map[string]*entry{}, lru: list.New(), onEvict: onEvict}
}

// get returns the entry of key (fresh or not) and marks it used.
func (c *cache) get(key string) *entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.items[key]
	if e != nil {
		c.lru.MoveToFront(e.elem)
	}
	return e
}

// put stores e, replacing an entry of the same key, and evicts the least
// recently used entries until the budget holds. An entry larger than the
// whole budget is not stored.
func (c *cache) put(e *entry) {
	if e.size() > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.items[e.key]; old != nil {
		c.unlink(old)
	}
	e.elem = c.lru.PushFront(e)
	c.items[e.key] = e
	c.bytes += e.size()
	n := 0
	for c.bytes > c.max {
		last := c.lru.Back()
		if last == nil {
			break
		}
		c.unlink(last.Value.(*entry))
		n++
	}
	if n > 0 {
		c.onEvict("budget", n)
	}
}

// unlink removes e; c.mu must be held.
func (c *cache) unlink(e *entry) {
	c.lru.Remove(e.elem)
	delete(c.items, e.key)
	c.bytes -= e.size()
}

// sweep removes every entry for which drop returns a non-empty reason and
// returns how many it removed.
func (c *cache) sweep(drop func(*entry) string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	counts := map[string]int{}
	for _, e := range c.items {
		if reason := drop(e); reason != "" {
			c.unlink(e)
			counts[reason]++
		}
	}
	total := 0
	for r, n := range counts {
		c.onEvict(r, n)
		total += n
	}
	return total
}

// stats returns the number of entries and their bytes.
func (c *cache) stats() (int, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items), c.bytes
}
