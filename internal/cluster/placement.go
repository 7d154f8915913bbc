package cluster

import (
	"hash/fnv"
	"sort"
)

// Owners returns the r senders (of ids) that hold block key, by rendezvous
// (highest-random-weight) hashing: the first is the primary, the rest are
// replicas. Removing a sender moves only the blocks it held.
func Owners(key string, ids []string, r int) []string {
	type scored struct {
		id    string
		score uint64
	}
	s := make([]scored, 0, len(ids))
	for _, id := range ids {
		h := fnv.New64a()
		h.Write([]byte(id))
		h.Write([]byte{0})
		h.Write([]byte(key))
		s = append(s, scored{id, mix(h.Sum64())})
	}
	sort.Slice(s, func(i, j int) bool {
		if s[i].score != s[j].score {
			return s[i].score > s[j].score
		}
		return s[i].id < s[j].id
	})
	if r > len(s) {
		r = len(s)
	}
	out := make([]string, r)
	for i := range out {
		out[i] = s[i].id
	}
	return out
}

// mix is a 64-bit finaliser (splitmix64) that spreads FNV's output.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
