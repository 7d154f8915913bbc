// Package placement puts blocks where the cluster expects them (docs/cluster.md,
// "Blocks and placement"): each block on its R owners by rendezvous hashing
// (cluster.Owners over the live senders' IDs), each track's CMAF header on
// every sender. Writer does it for a live origin (fed by the store's
// fragment hook) and for `sluice sender-load` (an existing VOD asset);
// Client is the HTTP client of a sender's internal API, which schedulers use
// for their batches too.
package placement

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/clusterauth"
	"github.com/sluice-media/sluice/internal/membership"
)

// Client calls the internal API of senders, every request signed with
// the cluster key for the sender it goes to (internal/clusterauth; the
// secret itself is never sent).
type Client struct {
	keys clusterauth.Keys
	http *http.Client
}

// NewClient returns a client for the cluster secret. hc may be nil (a client
// with a 10 s timeout and keep-alive connections to every sender).
func NewClient(secret []byte, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second,
		}}
	}
	return &Client{keys: clusterauth.NewKeys(secret), http: hc}
}

func (c *Client) do(ctx context.Context, method, url, ctype string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if err := c.keys.Sign(req, time.Now()); err != nil {
		return 0, nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%s %s: read response: %w", method, url, err)
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, b, fmt.Errorf("%s %s: %s: %.200s", method, url, resp.Status, strings.TrimSpace(string(b)))
	}
	return resp.StatusCode, b, nil
}

// BlockURL is the internal URL of a block on a sender.
func BlockURL(base string, id cluster.BlockID) string {
	return strings.TrimRight(base, "/") + "/internal/v1/blocks/" + id.Point + "/" + id.Track + "/" + strconv.FormatInt(id.Start, 10)
}

// PutBlock stores a block on the sender at base and reports whether it was
// new there.
func (c *Client) PutBlock(ctx context.Context, base string, id cluster.BlockID, data []byte) (bool, error) {
	code, _, err := c.do(ctx, http.MethodPut, BlockURL(base, id), "application/octet-stream", data)
	if err != nil {
		return false, fmt.Errorf("put block %s: %w", id, err)
	}
	return code == http.StatusCreated, nil
}

// PutInit stores a track's CMAF header (with its content type, e.g.
// video/mp4) on the sender at base.
func (c *Client) PutInit(ctx context.Context, base, point, track string, data []byte, contentType string) error {
	url := strings.TrimRight(base, "/") + "/internal/v1/init/" + point + "/" + track
	if _, _, err := c.do(ctx, http.MethodPut, url, contentType, data); err != nil {
		return fmt.Errorf("put init %s/%s: %w", point, track, err)
	}
	return nil
}

// Batch sends one scheduler batch to the sender at base.
func (c *Client) Batch(ctx context.Context, base string, b cluster.Batch) (cluster.BatchResult, error) {
	body, err := json.Marshal(b)
	if err != nil {
		return cluster.BatchResult{}, err
	}
	_, resp, err := c.do(ctx, http.MethodPost, strings.TrimRight(base, "/")+"/internal/v1/batch", "application/json", body)
	if err != nil {
		return cluster.BatchResult{}, fmt.Errorf("batch: %w", err)
	}
	var res cluster.BatchResult
	if err := json.Unmarshal(resp, &res); err != nil {
		return res, fmt.Errorf("batch result from %s: %w", base, err)
	}
	return res, nil
}

// Missing asks the sender at base which of q's blocks and track headers it
// lacks.
func (c *Client) Missing(ctx context.Context, base string, q cluster.HaveQuery) (cluster.HaveQuery, error) {
	body, err := json.Marshal(q)
	if err != nil {
		return cluster.HaveQuery{}, err
	}
	_, resp, err := c.do(ctx, http.MethodPost, strings.TrimRight(base, "/")+"/internal/v1/missing", "application/json", body)
	if err != nil {
		return cluster.HaveQuery{}, fmt.Errorf("missing: %w", err)
	}
	var res cluster.HaveQuery
	if err := json.Unmarshal(resp, &res); err != nil {
		return res, fmt.Errorf("missing from %s: %w", base, err)
	}
	return res, nil
}

// Delete asks the sender at base to delete blocks (at most
// cluster.MaxDeleteBlocks) from its mass storage and RAM.
func (c *Client) Delete(ctx context.Context, base string, ids []cluster.BlockID) (cluster.DeleteResult, error) {
	body, err := json.Marshal(cluster.DeleteRequest{Blocks: ids})
	if err != nil {
		return cluster.DeleteResult{}, err
	}
	_, resp, err := c.do(ctx, http.MethodPost, strings.TrimRight(base, "/")+"/internal/v1/delete", "application/json", body)
	if err != nil {
		return cluster.DeleteResult{}, fmt.Errorf("delete: %w", err)
	}
	var res cluster.DeleteResult
	if err := json.Unmarshal(resp, &res); err != nil {
		return res, fmt.Errorf("delete result from %s: %w", base, err)
	}
	return res, nil
}

// Stats fetches a sender's counters.
func (c *Client) Stats(ctx context.Context, base string) (cluster.SenderStats, error) {
	_, resp, err := c.do(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/internal/v1/stats", "", nil)
	if err != nil {
		return cluster.SenderStats{}, fmt.Errorf("stats: %w", err)
	}
	var st cluster.SenderStats
	if err := json.Unmarshal(resp, &st); err != nil {
		return st, fmt.Errorf("stats from %s: %w", base, err)
	}
	return st, nil
}

// Owners returns the r members that hold block id, primary first
// (cluster.Owners over the members' IDs).
func Owners(ms []membership.Member, id cluster.BlockID, r int) []membership.Member {
	ids := cluster.Owners(id.Key(), membership.IDs(ms), r)
	out := make([]membership.Member, 0, len(ids))
	for _, o := range ids {
		if m, ok := membership.Lookup(ms, o); ok {
			out = append(out, m)
		}
	}
	return out
}

// ClientURL is the URL a player fetches a block from at a sender:
// <base>/b/<token>/<point>/<track>/<start>.m4s.
func ClientURL(base, token string, id cluster.BlockID) string {
	return strings.TrimRight(base, "/") + "/b/" + token + "/" + id.Point + "/" + id.Track + "/" + strconv.FormatInt(id.Start, 10) + ".m4s"
}

// InitURL is the URL of a track's CMAF header at a sender:
// <base>/b/<token>/<point>/<track>/init.mp4.
func InitURL(base, token, point, track string) string {
	return strings.TrimRight(base, "/") + "/b/" + token + "/" + point + "/" + track + "/init.mp4"
}
