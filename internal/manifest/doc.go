// Package manifest renders the client manifests of a publishing point —
// Smooth Streaming, MPEG-DASH and HLS — from one consistent copy of its index
// (a store.View). All three list the same stored fragments; every URL in them
// is relative to /<pp>.isml/, where the origin serves:
//
//	/<pp>.isml/Manifest                        Smooth client manifest (Smooth)
//	/<pp>.isml/QualityLevels(<bitrate>)/Fragments(<name>=<t>)
//	                                           Smooth fragment (the origin adds tfrf)
//	/<pp>.isml/manifest.mpd                    DASH MPD (DASH)
//	/<pp>.isml/master.m3u8                     HLS master playlist (HLSMaster)
//	/<pp>.isml/tracks/<id>/media.m3u8          HLS media playlist (HLSMedia)
//	/<pp>.isml/tracks/<id>/init.mp4            CMAF header of a track (DASH and HLS)
//	/<pp>.isml/tracks/<id>/<t>.m4s             fragment (DASH and HLS)
//
// <t> is the start time of a fragment in its track's timescale, exactly as
// stored (FragRef.Start); <id> is TrackView.ID; <name> is TrackInfo.Name and
// <bitrate> is SmoothBitrate (TrackInfo.Bitrate, else measured).
//
// # Live and static
//
// A presentation is live (see Live) unless it is an on-demand asset or every
// track has ended. Live manifests are dynamic (DASH type="dynamic", Smooth
// IsLive="TRUE", HLS without EXT-X-ENDLIST); afterwards they turn static and
// list everything the View holds. Time is an input (Options.Now), so the
// output is a pure function of the View and the Options.
//
// # What is listed
//
// The manifests list the same fragments (see list in listing.go):
//
//   - The presentation starts where its video does: the latest start of the
//     first listable fragment over the video tracks (from the track extents
//     while live, so that it never moves as the DVR window slides; from the
//     first listed fragments of a static presentation), and at media time
//     zero at the latest: manifests list no negative time (tfdt, Smooth c@t,
//     DASH S@t are unsigned).
//   - An audio fragment that ends at or before that start is not listed; one
//     that straddles it is listed from the start, with the remaining
//     duration, under the URL of that time, and the origin serves it cut
//     there (Trimmed, media.TrimFront). This lists the AAC priming fragment
//     ffmpeg writes before zero without -avoid_negative_ts, and lines the
//     audio up with the video where priming or a B-frame delay made it begin
//     a few milliseconds earlier — so both HLS playlists carry the same
//     EXT-X-PROGRAM-DATE-TIME. An audio track that began more than half a
//     second before the video is listed from its own start. The stored
//     fragment is kept whole, and served whole under its own URL.
//   - Other tracks (video: the samples before a cut would include a key
//     frame) list no fragment that starts before zero.
//   - Callers whose URLs name stored fragments (Options.URLs with Segment
//     or Stored: the scheduler's senders serve stored blocks, on every
//     pathway) cannot serve a cut copy:
//     for them nothing is cut, and what straddles zero is left out.
//   - A fragment whose times cannot be rendered (zero duration, an end that
//     overflows, beyond 2^33 seconds) is left out; the store refuses those
//     anyway (store.ErrImplausibleTime).
//   - A fragment that starts before the previous listed one ends (an
//     overlap: misaligned redundant encoders) shortens that one's listed
//     duration to end where it starts, so every timeline is strictly
//     increasing and free of overlaps.
//
// Left-out fragments shift the HLS media sequence of the first listed
// segment to TrackView.First plus the number left out before it.
//
// # Gaps
//
// A fragment that does not start where the previous one ended is a gap (or an
// overlap); gaps are shown, never papered over: Smooth puts an explicit c@t on
// the fragment after it, DASH an explicit S@t, and HLS an
// EXT-X-DISCONTINUITY tag followed by a fresh EXT-X-PROGRAM-DATE-TIME (HLS
// marks overlaps too, as store.Gaps counts them for
// EXT-X-DISCONTINUITY-SEQUENCE). Program date times are Meta.Anchor plus the
// listed start, to the millisecond: one mapping for every track.
//
// # Smooth look-ahead
//
// Live Smooth clients need, in every fragment, a tfrf box announcing the next
// Options.LookAhead fragments; the origin inserts it when serving. So a live
// Smooth manifest lists only fragments whose LookAhead successors exist: it
// holds back the last LookAhead fragments of every track that has not ended.
// DASH and HLS list every fragment.
package manifest
