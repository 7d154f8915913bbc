package sender

import (
	"context"
	"strconv"
	"sync"
	"time"
)

// SharedKey names a shared pathway playlist: the scheduler that rendered
// it (its base URL), the point, the track and the LL-HLS delivery
// directives asked for (playlistQuery: the players blocked on the same
// part wait for one answer).
type SharedKey struct {
	Scheduler, Point, Track, Query string
}

// SharedPlaylist is a scheduler's answer that the sender may give to every
// session of its point that lists the point's shared view.
type SharedPlaylist struct {
	Body                      []byte // never modified once stored
	ContentType, CacheControl string
}

// SharedPlaylists keeps the pathway playlists a scheduler marked as shared
// (cluster.SharedPlaylistHeader) for as long as it allowed, and coalesces
// the fetches of one that is missing or stale: while one request fetches
// it, the others of the same key wait for that answer instead of asking
// too. At 10 000 live sessions a scheduler then renders and sends a track's
// pathway playlist to each sender a few times a second instead of once per
// player reload. Safe for concurrent use; the zero value is not usable
// (NewSharedPlaylists).
type SharedPlaylists struct {
	now     func() time.Time
	mu      sync.Mutex
	entries map[SharedKey]*sharedEntry
}

type sharedEntry struct {
	p        SharedPlaylist
	until    time.Time     // zero: never stored
	fetching chan struct{} // closed when the fetch in flight ends; nil: none
}

// maxSharedEntries bounds the keys kept: past it, the expired ones are
// dropped when a new one comes.
const maxSharedEntries = 4096

// NewSharedPlaylists returns an empty set of shared playlists on a clock.
func NewSharedPlaylists(now func() time.Time) *SharedPlaylists {
	if now == nil {
		now = time.Now
	}
	return &SharedPlaylists{now: now, entries: map[SharedKey]*sharedEntry{}}
}

// Get returns the fresh shared playlist of k (ok). When there is none it
// waits for a fetch of k in flight (until ctx ends), and returns its
// answer if that was shared; otherwise it returns done (not ok): the
// caller fetches and must call done exactly once, with the answer and the
// time it may be shared for (0: not shared, nothing kept), which wakes the
// requests waiting for it.
func (c *SharedPlaylists) Get(ctx context.Context, k SharedKey) (p SharedPlaylist, ok bool, done func(SharedPlaylist, time.Duration)) {
	c.mu.Lock()
	e := c.entries[k]
	if e != nil && c.now().Before(e.until) {
		c.mu.Unlock()
		return e.p, true, nil
	}
	if e != nil && e.fetching != nil {
		ch := e.fetching
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		c.mu.Lock()
		if e := c.entries[k]; e != nil && c.now().Before(e.until) {
			c.mu.Unlock()
			return e.p, true, nil
		}
		c.mu.Unlock()
		// The fetch failed or was not shared: fetch alone, keep the
		// answer if it is shared.
		return SharedPlaylist{}, false, func(p SharedPlaylist, ttl time.Duration) { c.put(k, p, ttl, nil) }
	}
	if e == nil {
		if len(c.entries) >= maxSharedEntries {
			c.dropExpired()
		}
		e = &sharedEntry{}
		c.entries[k] = e
	}
	ch := make(chan struct{})
	e.fetching = ch
	c.mu.Unlock()
	var once sync.Once
	return SharedPlaylist{}, false, func(p SharedPlaylist, ttl time.Duration) {
		once.Do(func() { c.put(k, p, ttl, ch) })
	}
}

// Put keeps an answer shared for ttl (nothing when ttl <= 0), fetched
// without Get's coordination.
func (c *SharedPlaylists) Put(k SharedKey, p SharedPlaylist, ttl time.Duration) {
	c.put(k, p, ttl, nil)
}

// put stores a fetched answer shared for ttl (if > 0) and ends the fetch
// ch (if it is still the one in flight).
func (c *SharedPlaylists) put(k SharedKey, p SharedPlaylist, ttl time.Duration, ch chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[k]
	if e == nil {
		if ttl <= 0 {
			return
		}
		e = &sharedEntry{}
		c.entries[k] = e
	}
	if ttl > 0 {
		e.p, e.until = p, c.now().Add(ttl)
	}
	if ch != nil && e.fetching == ch {
		e.fetching = nil
		close(ch)
	}
	if e.fetching == nil && e.until.IsZero() {
		delete(c.entries, k)
	}
}

// dropExpired removes the entries that are stale and not being fetched.
// c.mu must be held.
func (c *SharedPlaylists) dropExpired() {
	now := c.now()
	for k, e := range c.entries {
		if e.fetching == nil && !now.Before(e.until) {
			delete(c.entries, k)
		}
	}
}

// Len is the number of keys kept.
func (c *SharedPlaylists) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// ParseSharedTTL reads a cluster.SharedPlaylistHeader value: the time a
// scheduler allows its answer to be shared for; 0 when it is absent or
// not a positive integer of milliseconds (at most a minute).
func ParseSharedTTL(v string) time.Duration {
	if v == "" {
		return 0
	}
	ms, err := strconv.Atoi(v)
	if err != nil || ms <= 0 {
		return 0
	}
	return time.Duration(min(ms, 60_000)) * time.Millisecond
}
