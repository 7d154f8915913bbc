// Package cluster is the contract between schedulers and senders (docs/cluster.md):
// block identity, placement, the batched internal API of
// a sender, and the signed session tokens that designate which client may
// fetch which block. Both sides import it; neither owns it.
//
// Internal HTTP API of a sender (every request is signed with a key derived
// from the cluster secret, for the sender it goes to: internal/clusterauth;
// the secret itself never travels; an unsigned, forged, replayed or stale
// request is 401):
//
//	POST /internal/v1/batch          Batch -> BatchResult (the binary encoding
//	                                 of codec.go, BatchContentType; JSON is
//	                                 still accepted and answered in JSON):
//	                                 look-ahead requests, cancels, send
//	                                 requests and the scheduler's lease
//	                                 renewal, in one request per sender per
//	                                 timeslot
//	PUT  /internal/v1/blocks/<point>/<track>/<start>   store a block (fragment bytes)
//	PUT  /internal/v1/init/<point>/<track>             store a track's CMAF header
//	GET  /internal/v1/stats          SenderStats (JSON)
//	POST /internal/v1/missing        HaveQuery -> HaveQuery (JSON): which of
//	                                 these blocks and track headers the
//	                                 sender lacks (the origin's rebalance)
//	POST /internal/v1/delete         DeleteRequest -> DeleteResult (JSON):
//	                                 delete blocks (retention, non-owner copies)
//	GET  /internal/v1/proof?c=<hex>  clusterauth.ProofAnswer (not signed): the
//	                                 sender proves it holds the cluster key
//
// Client URLs on a sender (what per-session manifests point at):
//
//	GET /b/<token>/<point>/<track>/<start>.m4s   a block, only with a valid token for it
//	GET /b/<token>/<point>/<track>/init.mp4      a track's CMAF header
//	GET /b/<token>/<point>/<track>/media.m3u8    the session's HLS media playlist (relative URIs)
//
// A sender serves a block it holds and answers a request for any other
// with a redirect to a live owner (Placement).
package cluster

import (
	"fmt"
	"strconv"
	"time"
)

// BlockID names one media data block: a fragment of a track of a point.
type BlockID struct {
	Point string `json:"p"`
	Track string `json:"t"`
	Start int64  `json:"s"`
}

// Key is the block's placement and map key: "<point>/<track>/<start>".
func (b BlockID) Key() string {
	return b.Point + "/" + b.Track + "/" + strconv.FormatInt(b.Start, 10)
}

func (b BlockID) String() string { return b.Key() }

// Pin is a look-ahead reservation: it belongs to one (scheduler, session,
// block), so a repeated request does not count twice and a scheduler's pins
// can be dropped exactly when its lease expires.
type Pin struct {
	Session string  `json:"sess"`
	Block   BlockID `json:"b"`
}

// Batch is everything one scheduler asks of one sender in one timeslot.
type Batch struct {
	Scheduler string `json:"sched"`
	// Lease renews the scheduler's lease: its pins live until now+Lease
	// unless renewed by the next batch.
	Lease     time.Duration `json:"lease"`
	LookAhead []Pin         `json:"lookahead,omitempty"` // increment + preload into RAM
	Cancel    []Pin         `json:"cancel,omitempty"`    // decrement
	Send      []Pin         `json:"send,omitempty"`      // stage for the designated session (also pins)
	// URL is the scheduler's base URL for the session media playlists a
	// sender serves its players on their pathways (it fetches
	// <URL>/s/<point>/~<session>/<track>/rel.m3u8 and answers with that).
	URL string `json:"url,omitempty"`
	// Grants make sessions valid at the sender, attributed to this
	// scheduler, for GrantTTL from now: their tokens are accepted and
	// their sends reported to it. A scheduler grants every session it
	// holds to every live sender when the session opens (or is adopted),
	// when the sender joins or restarts (BatchResult.Boot changes), and
	// again at least every third of GrantTTL while the session lives.
	Grants   []Grant       `json:"grants,omitempty"`
	GrantTTL time.Duration `json:"grant_ttl,omitempty"`
	// Ends void sessions of this scheduler at once: their tokens are
	// refused from then on.
	Ends []string `json:"ends,omitempty"`
	// Placement is the scheduler's view of the live senders and R: where
	// a sender redirects a player's request for a block it does not hold.
	// Sent when it changes and at least once per lease.
	Placement *Placement `json:"placement,omitempty"`
}

// Grant names a session and the point its tokens are for.
type Grant struct {
	Session string `json:"sess"`
	Point   string `json:"p"`
}

// Placement is the live sender set as a scheduler sees it: each sender's
// ID and the base URL players use for it, and the replication factor.
type Placement struct {
	Replicas int            `json:"r"`
	Senders  []PlacedSender `json:"senders"`
}

// PlacedSender is one sender of a Placement.
type PlacedSender struct {
	ID  string `json:"id"`
	URL string `json:"url"`
}

// BatchResult is a sender's answer to a Batch.
type BatchResult struct {
	// Refused look-aheads and sends: RAM is full of pinned blocks (the
	// scheduler uses a replica or serves the session without pins).
	Refused []Pin `json:"refused,omitempty"`
	// Missing blocks this sender does not hold (not written to it).
	Missing []BlockID `json:"missing,omitempty"`
	// Sent reports what this sender sent for this scheduler's sessions since
	// the previous batch.
	Sent []SentReport `json:"sent,omitempty"`
	// Boot names this run of the sender process: a sender that restarted
	// has lost every grant, and a scheduler that sees Boot change grants
	// all its sessions again.
	Boot string `json:"boot,omitempty"`
	// Orphans are sessions valid here whose scheduler stopped renewing
	// them (its lease expired, or their grant is overdue) while players
	// still fetch with their tokens: the scheduler that gets them adopts
	// them (and grants them again, everywhere).
	Orphans []Grant `json:"orphans,omitempty"`
	// Reloads are this scheduler's sessions whose players reloaded a
	// pathway playlist that the sender answered from a shared copy
	// (SharedPlaylistHeader) since the previous batch, without asking
	// the scheduler: what the scheduler would have learnt from the
	// request (the session is in use, on that track).
	Reloads []Reload `json:"reloads,omitempty"`
}

// Reload is one player's reload of a session's pathway playlist.
type Reload struct {
	Session string    `json:"sess"`
	Point   string    `json:"p"`
	Track   string    `json:"track"`
	At      time.Time `json:"at"`
}

// SharedPlaylistHeader is set by a scheduler on a session's pathway
// playlist (rel.m3u8) that is not the session's own but the shared one of
// its point and track (every session of the point without a deep-link
// position lists the same): its value is how long (integer milliseconds)
// the sender may answer the reloads of that track by any session whose
// latest answer carried it with this copy instead of asking again,
// reporting them in BatchResult.Reloads.
const SharedPlaylistHeader = "Sluice-Shared-Playlist"

// SentReport says a block was sent to a session.
type SentReport struct {
	Session string    `json:"sess"`
	Block   BlockID   `json:"b"`
	At      time.Time `json:"at"`
	Bytes   int64     `json:"bytes"`
	FromRAM bool      `json:"ram"`
	// Next is the player's next object request as it announced it with
	// this request (CMCD nor, from the CMCD-Request header or the CMCD
	// query argument, percent-decoded: a URL relative to the request's or
	// absolute), when it sent one. Schedulers move the session's regions
	// there before its next request (a bitrate switch, a seek). Optional.
	Next string `json:"nor,omitempty"`
}

// HaveQuery asks a sender which blocks and track headers it lacks
// (POST /internal/v1/missing); the answer is a HaveQuery listing only the
// missing ones. A writer uses it to give a sender that joined, or came
// back, the blocks it now owns but does not hold.
type HaveQuery struct {
	Blocks []BlockID `json:"blocks,omitempty"`
	// Inits are tracks, "<point>/<track>".
	Inits []string `json:"inits,omitempty"`
}

// SenderStats are a sender's counters (also exported in /metrics).
type SenderStats struct {
	ID            string `json:"id"`
	Blocks        int    `json:"blocks"`
	RAMBytes      int64  `json:"ram_bytes"`
	RAMBudget     int64  `json:"ram_budget"`
	PinnedBlocks  int    `json:"pinned_blocks"`
	PinnedBytes   int64  `json:"pinned_bytes"`
	SendsRAM      int64  `json:"sends_ram"`
	SendsDisk     int64  `json:"sends_disk"`
	Refused       int64  `json:"refused"`
	LeaseExpiries int64  `json:"lease_expiries"`
	// Sessions are the sessions valid at the sender (granted by a
	// scheduler and not expired); 0 from a sender that predates it.
	Sessions int `json:"sessions,omitempty"`
}

// ErrToken is returned for tokens that are malformed, forged or for another
// publishing point.
var ErrToken = fmt.Errorf("invalid session token")
