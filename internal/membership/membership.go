// Package membership tells writers and schedulers which senders are alive
// (docs/cluster.md, "Membership"): a static list, or the keys the senders keep alive in etcd
// under a prefix with a lease. Both sit behind Set, so the placement writer
// and the scheduler do not care which one is configured.
//
// A sender registers itself with Register (a key "<prefix><id>" holding its
// Member as JSON, attached to a lease it keeps alive); a watcher made with
// Etcd lists the prefix and follows it with a watch. A sender that dies stops
// renewing its lease, etcd deletes its key when the TTL runs out, and every
// watcher sees it leave: cluster.Owners over the remaining IDs then names the
// replicas of its blocks.
package membership

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// Member is one sender of the cluster.
type Member struct {
	// ID is the sender's placement identity: cluster.Owners hashes it.
	ID string `json:"id"`
	// URL is the sender's base URL (http://host:port): its internal API,
	// block and init PUTs, and the client URLs schedulers hand out.
	URL string `json:"url"`
}

// Set is a live view of the senders of a cluster.
type Set interface {
	// Members returns the senders now in the set, sorted by ID (a copy).
	Members() []Member
	// Changed returns a channel that is closed at the next change of the
	// set; call Members (and Changed again) after it fires.
	Changed() <-chan struct{}
}

// IDs returns the IDs of ms in order: the argument for cluster.Owners.
func IDs(ms []Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// Lookup returns the member with the given ID.
func Lookup(ms []Member, id string) (Member, bool) {
	for _, m := range ms {
		if m.ID == id {
			return m, true
		}
	}
	return Member{}, false
}

// FromURL makes a member of a base URL; its ID is the URL's host:port, which
// is also what `sluice sender` uses as its ID by default.
func FromURL(raw string) (Member, error) {
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil {
		return Member{}, fmt.Errorf("sender URL %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return Member{}, fmt.Errorf("sender URL %q: want http(s)://host:port", raw)
	}
	return Member{ID: u.Host, URL: u.Scheme + "://" + u.Host + u.Path}, nil
}

// ParseList parses a comma-separated list of senders, each "url" or
// "id=url", e.g. "http://10.0.0.1:9001,b=http://10.0.0.2:9001".
func ParseList(s string) ([]Member, error) {
	var out []Member
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, raw, named := strings.Cut(part, "=")
		if !named {
			raw = part
		}
		m, err := FromURL(raw)
		if err != nil {
			return nil, err
		}
		if named {
			if id == "" {
				return nil, fmt.Errorf("sender %q: empty id", part)
			}
			m.ID = id
		}
		out = append(out, m)
	}
	return normalize(out)
}

// normalize sorts ms by ID and rejects duplicate IDs.
func normalize(ms []Member) ([]Member, error) {
	out := append([]Member(nil), ms...)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	for i := 1; i < len(out); i++ {
		if out[i].ID == out[i-1].ID {
			return nil, fmt.Errorf("sender id %q listed twice", out[i].ID)
		}
	}
	return out, nil
}

// static is a fixed set.
type static struct {
	ms      []Member
	changed chan struct{}
}

// Static returns a set that never changes. Members are sorted by ID.
func Static(ms ...Member) (Set, error) {
	if len(ms) == 0 {
		return nil, errors.New("static membership: no senders")
	}
	n, err := normalize(ms)
	if err != nil {
		return nil, err
	}
	return &static{ms: n, changed: make(chan struct{})}, nil
}

func (s *static) Members() []Member        { return append([]Member(nil), s.ms...) }
func (s *static) Changed() <-chan struct{} { return s.changed }
