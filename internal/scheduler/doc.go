// Package scheduler is the scheduler role of the distributed sending cluster
// (docs/architecture.md, docs/cluster.md): it owns client sessions, renders
// per-session DASH and HLS manifests whose segment URLs point straight at
// the sender that holds each block, and looks ahead along every session to
// reserve the blocks it will fetch next, so that senders send them from RAM.
// Nothing but manifests passes through a scheduler; players fetch every
// segment from a sender, which checks the signed token in the URL
// (cluster.Sign / cluster.Verify).
//
// # Client URLs
//
//	GET /s/<point>/manifest.mpd               open a session: DASH MPD
//	GET /s/<point>/master.m3u8                open a session: HLS master playlist
//	GET /s/<point>/~<session>/manifest.mpd    the session's MPD (reloads)
//	GET /s/<point>/~<session>/master.m3u8     the session's master playlist
//	GET /s/<point>/~<session>/<track>/media.m3u8  a media playlist on the direct pathway
//	GET /s/<point>/~<session>/<track>/rel.m3u8    a media playlist with relative URIs (for the senders)
//	GET /s/<point>/~<session>/steering.json       the session's content steering manifest
//
// The first request opens a session; the session then lives in the URL the
// player reloads: the MPD carries it in MPD@Location (players reload from
// there), the master playlist lists media playlists under ~<session>/. A
// session segment starts with '~', which no publishing point segment can,
// so point names of several segments parse unambiguously. Session IDs carry a
// MAC under the cluster secret: a scheduler that does not know a session
// (another scheduler died, a load balancer moved the player) adopts it, and
// the player continues with the same URLs. ?start=<seconds> on the opening
// request of an on-demand asset starts the session there (a deep link): the
// manifest lists the asset from that fragment on, and the first blocks are
// reserved before the manifest is answered.
//
// Every sender live when the session opened is a pathway of it (content
// steering, tokens.go and steering.go): a DASH BaseURL with a
// serviceLocation, a copy of each HLS variant with its PATHWAY-ID whose media
// playlists the sender passes on; segments are relative to them, and a
// sender redirects a request for a block it does not hold. The steering
// manifest lists the session's pathways with dead senders left out. With
// Config.OwnerSetURL the HLS master also has a direct pathway whose segment
// URLs name each block's owner set. A listed URL never changes: the token
// (session and point) and the pathways are the session's for its whole life,
// and a block's direct URL is fixed when it is first listed.
//
// # Regions
//
// Per session and media kind the scheduler knows the active track (the
// track of the newest block a sender reported sent to the session, the
// media playlist the player loads, or, before either, every track of the
// kind) and the next position: the end of the newest sent block (before any,
// the session's start: the deep-link position, the asset start, or
// Config.LiveStart fragments behind the live edge). From the first fragment
// at or after that position, on the active track:
//
//   - current region, 1 block: a send request at its sender;
//   - alternative-send region, Config.AltSend blocks: send requests at the
//     sender and at the next owner (a replica), so a retry or a dead sender
//     costs nothing;
//   - look-ahead region, Config.LookAhead blocks: look-ahead requests (the
//     sender increments the block's usage counter and preloads it into RAM).
//
// The other tracks of a kind get look-ahead requests for Config.Guard
// blocks, so that the first block after a bitrate switch is in RAM too. A
// refused or missing reservation moves to the next owner; when every owner
// refused, the block is served without a pin. A block that leaves the
// regions is cancelled at once unless it was sent to the session, in which
// case the cancel waits for Config.RetryPeriod after the send (the player
// may fetch it again). Seeking moves the regions (the next sent report
// names the new position) and the old reservations are cancelled.
//
// # Batches and leases
//
// All control traffic to a sender goes in one cluster.Batch per timeslot
// (Config.Tick): look-aheads, sends, cancels and the lease renewal; the
// answer carries refusals, missing blocks and what the sender sent to this
// scheduler's sessions since the previous batch. Each sender has a worker
// with at most one batch in flight, so a slow sender delays nobody else. A
// sender that cannot be reached leaves the live set at once (connection
// refused) or after three failed batches over at least three batch
// timeouts (timeouts; never the last sender that answered), and every manifest
// rendered afterwards points its blocks at their replicas; a sender that
// comes back is addressed under a new scheduler incarnation
// (<id>.<n>), so that whatever it still held for the old one is dropped when
// that lease runs out. When the scheduler dies, its lease expires at every
// sender and its pins are released there; its sessions stay granted for
// Config.TokenTTL, and a sender offers those still used to the next
// scheduler it hears from, which adopts them.
package scheduler
