package placement

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/membership"
	"github.com/sluice-media/sluice/internal/store"
)

// Parts of live fragments in progress (low latency, docs/cluster.md "Low
// latency"): every part goes to every sender, not to a block's R owners. A
// player's pathway sender serves the parts of the live edge itself, so a
// part never costs a redirect (a round trip per half second of media), and
// a preload hint, which names a part before anyone knows which fragment it
// will begin, resolves wherever it is asked. The complete fragment still
// goes to its R owners (WriteBlock); the parts are kept in RAM only, the
// open fragment and the three before it per track.

// partQueueLen bounds the part events waiting for one sender: a sender
// that falls further behind loses parts (counted), never the origin's
// time.
const partQueueLen = 512

// partJob is one part, or one fragment's end, for one sender.
type partJob struct {
	ev   store.PartEvent
	init func() ([]byte, string, error)
}

// PartHook returns a store.OnPart hook that forwards every part, and every
// fragment's end, to every sender of the set, in order per sender (one
// queue and one worker per sender). It needs Run to be running; events
// before it are dropped. Track headers go first, as for blocks.
func (w *Writer) PartHook(st *store.Store) func(store.PartEvent) {
	return func(ev store.PartEvent) {
		init := func() ([]byte, string, error) { return TrackInit(st, ev.Point, ev.Track) }
		for _, m := range w.o.Members.Members() {
			if w.isDown(m.ID) {
				continue // it gets whole blocks when it answers again
			}
			q := w.partQueue(m)
			if q == nil {
				return
			}
			select {
			case q <- partJob{ev: ev, init: init}:
			default:
				w.partsDropped.Add(1)
			}
		}
	}
}

// partQueue returns the queue of a sender's part worker, starting the
// worker the first time (nil before Run).
func (w *Writer) partQueue(m membership.Member) chan partJob {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.runCtx == nil {
		return nil
	}
	q := w.partQueues[m.ID]
	if q == nil {
		q = make(chan partJob, partQueueLen)
		w.partQueues[m.ID] = q
		go w.partWorker(w.runCtx, m, q)
	}
	return q
}

// partWorker sends a sender's part events in order until ctx ends.
func (w *Writer) partWorker(ctx context.Context, m membership.Member, q chan partJob) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-q:
			if w.isDown(m.ID) {
				continue
			}
			ev := j.ev
			key := ev.Point + "/" + ev.Track
			if !w.HasInit(ev.Point, ev.Track) {
				if data, ct, err := j.init(); err == nil {
					w.mu.Lock()
					w.inits[key] = initRec{data: data, contentType: ct}
					w.mu.Unlock()
				}
			}
			if err := w.pushInit(ctx, []membership.Member{m}, key, false); err != nil {
				w.log.Debug("track header for a part", "sender", m.ID, "track", key, "err", err)
			}
			err := w.put(ctx, m, func(ctx context.Context) error {
				if ev.Complete {
					return w.o.Client.EndParts(ctx, m.URL, cluster.BlockID{Point: ev.Point, Track: ev.Track, Start: ev.FragStart}, ev.End)
				}
				return w.o.Client.PutPart(ctx, m.URL, cluster.BlockID{Point: ev.Point, Track: ev.Track, Start: ev.FragStart}, ev.Index, ev.Data)
			})
			if err != nil {
				w.partFailures.Add(1)
				w.log.Debug("forward part", "sender", m.ID, "track", key, "fragment", ev.FragStart, "index", ev.Index, "err", err)
				continue
			}
			if !ev.Complete {
				w.parts.Add(1)
			}
		}
	}
}

// partsURL is the URL of a fragment's parts at a sender.
func partsURL(base string, id cluster.BlockID) string {
	return strings.TrimRight(base, "/") + "/internal/v1/parts/" + id.Point + "/" + id.Track + "/" + strconv.FormatInt(id.Start, 10)
}

// PutPart gives the sender at base part index of the fragment id names
// (in progress), to keep in RAM.
func (c *Client) PutPart(ctx context.Context, base string, id cluster.BlockID, index int, data []byte) error {
	_, _, err := c.do(ctx, http.MethodPut, partsURL(base, id)+"/"+strconv.Itoa(index), "application/octet-stream", data)
	return err
}

// EndParts tells the sender at base that the fragment id names was stored
// complete, ending at end.
func (c *Client) EndParts(ctx context.Context, base string, id cluster.BlockID, end int64) error {
	_, _, err := c.do(ctx, http.MethodPut, partsURL(base, id)+"/end?at="+strconv.FormatInt(end, 10), "", nil)
	return err
}
