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
// <bitrate> is TrackInfo.Bitrate.
//
// # Live and static
//
// A presentation is live (see Live) unless it is an on-demand asset or every
// track has ended. Live manifests are dynamic (DASH type="dynamic", Smooth
// IsLive="TRUE", HLS without EXT-X-ENDLIST); afterwards they turn static and
// list everything the View holds. Time is an input (Options.Now), so the
// output is a pure function of the View and the Options.
//
// # Negative start times
//
// Fragments whose start time is negative (AAC priming written by ffmpeg
// without -avoid_negative_ts: a tfxd time of 2^64-213333) are kept in the
// archive but listed in no manifest: tfdt, Smooth c@t, DASH S@t and the HLS
// timeline are all unsigned. Such fragments can only precede the others, so
// skipping them shifts the HLS media sequence of the first listed segment to
// TrackView.First plus the number skipped.
//
// # Gaps
//
// A fragment that does not start where the previous one ended is a gap (or an
// overlap); gaps are shown, never papered over: Smooth puts an explicit c@t on
// the fragment after it, DASH an explicit S@t, and HLS an
// EXT-X-DISCONTINUITY tag followed by a fresh EXT-X-PROGRAM-DATE-TIME. HLS
// media playlists carry no EXT-X-DISCONTINUITY-SEQUENCE: a View does not say
// how many gaps lie before its first fragment, so the tag could not be kept
// consistent as the DVR window slides; players align on the program date
// times instead.
//
// # Smooth look-ahead
//
// Live Smooth clients need, in every fragment, a tfrf box announcing the next
// Options.LookAhead fragments; the origin inserts it when serving. So a live
// Smooth manifest lists only fragments whose LookAhead successors exist: it
// holds back the last LookAhead fragments of every track that has not ended.
// DASH and HLS list every fragment.
package manifest
