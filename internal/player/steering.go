package player

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"sync"
	"time"
)

// Content steering (HLS EXT-X-CONTENT-STEERING with PATHWAY-ID on the
// variants, DASH ContentSteering with BaseURL@serviceLocation): a
// manifest names the same media on several pathways (hosts), and a
// steering server says in which order to use them. The player follows it
// the way the browser players do:
//
//   - before the first segment it asks the steering server (DASH
//     queryBeforeStart, what Shaka does for HLS too) and uses the first
//     pathway of its PATHWAY-PRIORITY that the manifest has; without a
//     server or an answer, the manifest's default pathway, else the first;
//   - when a fragment (or init segment) fails at every attempt, it asks the
//     server again and moves to the first pathway of the new priority that
//     has not failed within pathwayPenalty (hls.js penalises a failed
//     pathway for 5 minutes, Shaka bans a failed host for 1), then fetches
//     the fragment there (session.failover);
//   - it does not poll the server otherwise: a pathway that is healthy is
//     kept (players switch back on a poll when the priority changes; this
//     one has no reason to).
//
// The steering request carries _HLS_pathway / _DASH_pathway (the current
// pathway) and the throughput parameter, as the browser players send them.

// pathwayPenalty is how long a pathway that failed is not chosen again
// (unless no other is left).
const pathwayPenalty = time.Minute

// steeringAnswer is the part of a steering manifest the player reads.
type steeringAnswer struct {
	Version  int      `json:"VERSION"`
	Priority []string `json:"PATHWAY-PRIORITY"`
}

// pathways chooses among a manifest's pathways. The zero value has none.
type pathways struct {
	mu       sync.Mutex
	ids      []string // in manifest order
	cur      string
	steering string // the steering server's URL, "" when none
	param    string // _HLS_pathway or _DASH_pathway
	priority []string
	failed   map[string]time.Time
	switches int
}

// setup records the pathways of a first manifest load and chooses the
// first pathway (asking the steering server when there is one).
func (p *pathways) setup(ctx context.Context, fetch fetchText, ids []string, def, steering, param string) {
	p.mu.Lock()
	p.ids, p.steering, p.param = slices.Clone(ids), steering, param
	p.failed = map[string]time.Time{}
	p.cur = ""
	if slices.Contains(ids, def) {
		p.cur = def
	} else if len(ids) > 0 {
		p.cur = ids[0]
	}
	p.mu.Unlock()
	if len(ids) > 1 && steering != "" {
		p.ask(ctx, fetch)
		p.mu.Lock()
		if c := p.best(); c != "" {
			p.cur = c
		}
		p.mu.Unlock()
	}
}

// current returns the pathway in use ("" when the manifest has none).
func (p *pathways) current() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur
}

// known reports whether setup ran.
func (p *pathways) known() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failed != nil
}

// next marks pathway from failed, asks the steering server again and moves
// to the best pathway that has not failed lately. It reports whether the
// pathway in use is now another than from (another stream may have moved
// already).
func (p *pathways) next(ctx context.Context, fetch fetchText, from string) bool {
	p.mu.Lock()
	if len(p.ids) < 2 {
		p.mu.Unlock()
		return false
	}
	if p.cur != from {
		p.mu.Unlock()
		return true
	}
	p.failed[p.cur] = time.Now()
	steering := p.steering
	p.mu.Unlock()
	if steering != "" {
		p.ask(ctx, fetch)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.best()
	if c == "" || c == p.cur {
		return false
	}
	p.cur = c
	p.switches++
	return true
}

// best is the first pathway of the priority (then of the manifest) that
// has not failed within pathwayPenalty; when every one has, the one other
// than the current whose failure is the oldest (a fragment missing at
// every pathway for a moment must not leave the player on a pathway that
// died since); "" when there is none. p.mu must be held.
func (p *pathways) best() string {
	order := make([]string, 0, len(p.ids))
	for _, id := range p.priority {
		if slices.Contains(p.ids, id) && !slices.Contains(order, id) {
			order = append(order, id)
		}
	}
	if len(order) == 0 {
		order = p.ids
	}
	now := time.Now()
	for _, id := range order {
		if at, ok := p.failed[id]; ok && now.Sub(at) < pathwayPenalty {
			continue
		}
		return id
	}
	oldest := ""
	for _, id := range order {
		if id != p.cur && (oldest == "" || p.failed[id].Before(p.failed[oldest])) {
			oldest = id
		}
	}
	return oldest
}

// ask fetches the steering manifest and keeps its priority (an error
// keeps the previous one).
func (p *pathways) ask(ctx context.Context, fetch fetchText) {
	p.mu.Lock()
	u, err := url.Parse(p.steering)
	cur, param := p.cur, p.param
	p.mu.Unlock()
	if err != nil {
		return
	}
	q := u.Query()
	q.Set(param, cur)
	q.Set(param[:len(param)-len("pathway")]+"throughput", "0")
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	body, err := fetch(ctx, u.String())
	if err != nil {
		return
	}
	var a steeringAnswer
	if json.Unmarshal(body, &a) != nil || a.Version != 1 {
		return
	}
	p.mu.Lock()
	p.priority = a.Priority
	p.mu.Unlock()
}

// pathwaySwitcher is a manifest source whose manifests name several
// pathways.
type pathwaySwitcher interface {
	// switchPathway moves to another pathway after a failure on pathway
	// from and reports whether the pathway in use is now another one.
	switchPathway(ctx context.Context, from string) bool
	// pathwaySwitches is how many times it did.
	pathwaySwitches() int
}
