package manifest

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"

	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/scte35"
	"github.com/sluice-media/sluice/internal/store"
)

// Events (store.View.Events: the emsg boxes ingest kept and the cues of the
// cues API) are signalled this way:
//
//   - DASH: SCTE-35 in a period-level EventStream of SCTE 214-1's
//     urn:scte:scte35:2014:xml+bin: each Event holds <Signal><Binary> with
//     the base64 splice_info_section (what dash.js and Shaka Player parse
//     and hand to the application); times are 90 kHz ticks on the media
//     timeline (presentationTimeOffset = the period's). Every other scheme
//     (ID3) stays in-band: the origin serves a fragment with the emsg
//     boxes stored with it, and the AdaptationSet of a track that has
//     them declares an InbandEventStream per scheme and value. SCTE-35
//     emsg boxes stay in the segments too, undeclared (players would
//     report each marker twice).
//   - HLS: EXT-X-DATERANGE (RFC 8216 4.4.5.1, 4.4.5.1.1) in every media
//     playlist, before the segment the event falls in, for SCTE-35 only:
//     SCTE35-OUT (splice_insert out of network), SCTE35-IN (splice_insert
//     back) or SCTE35-CMD (anything else), hex; START-DATE from the
//     program date time; PLANNED-DURATION from the event's duration; the
//     return of a known out shares its ID and START-DATE and says the
//     break's DURATION (see dateRange).

// dashSCTE35Scheme is the EventStream scheme of SCTE-35 in an MPD.
const dashSCTE35Scheme = "urn:scte:scte35:2014:xml+bin"

// eventTimescale is the timescale of DASH EventStreams.
const eventTimescale = 90000

// eventTime is the event's time on the media timeline.
func eventTime(e media.Emsg) time.Duration { return toDuration(e.Time, e.Timescale) }

// eventKey is a stable number for an event: its Event@id in DASH, the same
// in every MPD update, different for two events of one splice_event_id
// (the out and the in of a break).
func eventKey(e media.Emsg) uint32 {
	h := fnv.New32a()
	var b [16]byte
	binary.BigEndian.PutUint32(b[:], e.ID)
	binary.BigEndian.PutUint64(b[4:], uint64(eventTime(e)/time.Millisecond))
	h.Write(b[:12])
	h.Write([]byte(e.Scheme))
	h.Write([]byte(e.Value))
	h.Write(e.Data)
	return h.Sum32()
}

// dashEventStreams returns the EventStreams of the events that lie in
// [from, to) of the media timeline (to < 0: no end); pto is the period's
// presentationTimeOffset in a timescale.
func dashEventStreams(evs []media.Emsg, from, to time.Duration, pto func(uint32) uint64) []*mpd.EventStreamType {
	var out []*mpd.EventStreamType
	byKey := map[string]*mpd.EventStreamType{}
	for _, e := range evs {
		at := eventTime(e)
		if e.Timescale == 0 || e.Time < 0 || at < from || (to >= 0 && at >= to) {
			continue
		}
		if e.Scheme != media.SchemeSCTE35 {
			continue // in-band (dashInbandEventStreams)
		}
		scheme, value := dashSCTE35Scheme, ""
		k := scheme + "\x00" + value
		es := byKey[k]
		if es == nil {
			ts := uint32(eventTimescale)
			es = &mpd.EventStreamType{SchemeIdUri: mpd.AnyURI(scheme), Value: value, Timescale: &ts,
				PresentationTimeOffset: pto(eventTimescale)}
			byKey[k] = es
			out = append(out, es)
		}
		id := uint64(eventKey(e))
		ev := &mpd.EventType{PresentationTime: rescale(uint64(e.Time), uint64(e.Timescale), eventTimescale), Id: &id}
		if e.Duration != media.UnknownDuration {
			ev.Duration = rescale(uint64(e.Duration), uint64(e.Timescale), eventTimescale)
		}
		ev.Signal = mpd.NewSignal()
		ev.Signal.Binary = mpd.NewBinary(base64.StdEncoding.EncodeToString(e.Data))
		es.Events = append(es.Events, ev)
	}
	return out
}

// dashInbandEventStreams declares the in-band event schemes of a set's
// tracks other than SCTE-35 (which the MPD carries itself).
func dashInbandEventStreams(s *dashSet) []*mpd.EventStreamType {
	var out []*mpd.EventStreamType
	seen := map[store.EventScheme]bool{}
	for _, t := range s.tracks {
		for _, es := range t.Schemes {
			if es.Scheme == media.SchemeSCTE35 || seen[es] {
				continue
			}
			seen[es] = true
			out = append(out, &mpd.EventStreamType{SchemeIdUri: mpd.AnyURI(es.Scheme), Value: es.Value})
		}
	}
	return out
}

// hlsDateRanges are the EXT-X-DATERANGE tags of the SCTE-35 events, each
// with the index of the listed fragment (of fs, on timescale ts) it is
// written before: the one it falls in (an event before the first listed
// fragment is left out) or the last when it is later. Nothing without an
// anchor (no program date time).
func hlsDateRanges(evs []media.Emsg, fs []store.FragRef, ts uint32, anchor time.Time) map[int][]string {
	if anchor.IsZero() || len(fs) == 0 || ts == 0 {
		return nil
	}
	first := toDuration(fs[0].Start, ts)
	out := map[int][]string{}
	outs := map[uint32]media.Emsg{} // the latest break out per splice_event_id
	for _, e := range evs {
		if e.Scheme != media.SchemeSCTE35 || e.Timescale == 0 {
			continue
		}
		s, err := scte35.Decode(e.Data)
		insert := err == nil && s.Command == scte35.SpliceInsert && !s.Cancel
		var pair *media.Emsg
		if insert && !s.Out {
			if o, ok := outs[s.EventID]; ok {
				pair = &o
				delete(outs, s.EventID)
			}
		}
		if insert && s.Out {
			outs[s.EventID] = e
		}
		at := eventTime(e)
		if at < first {
			continue
		}
		i := len(fs) - 1
		for k, f := range fs {
			if toDuration(f.End(), ts) > at {
				i = k
				break
			}
		}
		out[i] = append(out[i], dateRange(e, s, insert, pair, anchor))
	}
	return out
}

// dateRange is the EXT-X-DATERANGE of one SCTE-35 event, whose section
// decoded to s (insert: a splice_insert that is no cancel). As RFC 8216
// 4.4.5.1.1 asks, the return (SCTE35-IN) of a break whose out is known
// (pair) carries the out's ID and START-DATE, and the break's DURATION;
// the out carries PLANNED-DURATION when the event has a duration.
func dateRange(e media.Emsg, s scte35.Splice, insert bool, pair *media.Emsg, anchor time.Time) string {
	at := eventTime(e)
	attr, kind := "SCTE35-CMD", "cmd"
	switch {
	case insert && s.Out:
		attr, kind = "SCTE35-OUT", ""
	case insert:
		attr, kind = "SCTE35-IN", "in"
	}
	id := "splice-" + strconv.FormatUint(uint64(e.ID), 10) + "-"
	if kind != "" {
		id += kind + "-"
	}
	start, extra := at, ""
	if pair != nil {
		start = eventTime(*pair)
		id = "splice-" + strconv.FormatUint(uint64(pair.ID), 10) + "-"
		extra = ",DURATION=" + seconds3((at - start).Seconds())
	} else if e.Duration != media.UnknownDuration {
		extra = ",PLANNED-DURATION=" + seconds3(toDuration(int64(e.Duration), e.Timescale).Seconds())
	}
	id += strconv.FormatInt(int64(start/time.Millisecond), 10)
	return fmt.Sprintf("#EXT-X-DATERANGE:ID=%s,START-DATE=%s%s,%s=0x%s", quote(id),
		quote(anchor.Add(start).Round(time.Millisecond).UTC().Format(pdtLayout)), extra, attr, hex.EncodeToString(e.Data))
}
