package player

import (
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ObjectType is the CMCD object type (ot) of a request.
type ObjectType string

// CMCD object types (CTA-5004 §3.3).
const (
	ObjectManifest ObjectType = "m"
	ObjectInit     ObjectType = "i"
	ObjectVideo    ObjectType = "v"
	ObjectAudio    ObjectType = "a"
	ObjectMuxed    ObjectType = "av"
)

// RequestInfo describes a request about to be sent together with the player
// state at that moment. Request hooks (CMCD now, a pacing request engine
// later) decorate the request from it.
type RequestInfo struct {
	SessionID string
	Format    Format
	Live      bool
	Object    ObjectType
	Kind      Kind // media kind of a fragment or init segment; "" for manifests
	// Rendition is the ID of the rendition the object belongs to.
	Rendition string
	// Bitrate is the encoded bitrate of the rendition, bits/s (0 unknown);
	// TopBitrate the highest the player may choose.
	Bitrate, TopBitrate int64
	// Duration is the media duration of the object (0 for init, manifest).
	Duration time.Duration
	// Size is the object's size in bytes when the request names it (a
	// closed byte range), 0 unknown.
	Size int64
	// Buffer is the buffer level of Kind; BufferTarget the level the player
	// fills up to. For a live fragment it is at most the level plus the
	// media the manifest lists after the fragment: at the live edge the
	// buffer is as full as it can get.
	Buffer, BufferTarget time.Duration
	// Throughput is the player's throughput estimate, bits/s (0 unknown).
	Throughput float64
	// Startup is true while the player is starting or recovering from a
	// stall: the object is needed urgently.
	Startup bool
	// Starved is true when the buffer of Kind ran dry since the previous
	// request of that kind.
	Starved bool
	// EncodedRate is the instantaneous encoding rate of the previous
	// fragment of Kind (size / duration), bits/s, 0 unknown: a pacing
	// engine derives its rate from it.
	EncodedRate float64
	// Next is the absolute URL (and byte range) of the object the player
	// will request after this one, "" if unknown.
	Next, NextRange string
}

// RequestHook decorates an outgoing request, typically with headers. It is
// called for every manifest, init and fragment request, retries included.
type RequestHook func(req *http.Request, info RequestInfo)

// ResponseHook observes a completed request: the response headers (CMSD, a
// pacing report), the body size and how long the download took. It is called
// for every response that arrived, whatever its status.
type ResponseHook func(resp *http.Response, info RequestInfo, bytes int64, elapsed time.Duration)

// CMCDHook returns a hook that sends Common Media Client Data (CTA-5004) in
// header mode: CMCD-Object (br, d, ot, tb), CMCD-Request (bl, mtp, nor, su),
// CMCD-Session (sf, sid, st) and CMCD-Status (bs).
func CMCDHook() RequestHook {
	return func(req *http.Request, info RequestInfo) {
		for name, v := range CMCDHeaders(info, req.URL) {
			req.Header.Set(name, v)
		}
	}
}

// CMCDHeaders renders the CMCD header values for a request to reqURL. Keys
// are sorted, strings quoted, booleans written as the bare key (CTA-5004
// §3.2); empty headers are left out.
func CMCDHeaders(info RequestInfo, reqURL *url.URL) map[string]string {
	obj, req, sess, status := map[string]string{}, map[string]string{}, map[string]string{}, map[string]string{}
	media := info.Object == ObjectVideo || info.Object == ObjectAudio || info.Object == ObjectMuxed
	if info.Object != "" {
		obj["ot"] = string(info.Object)
	}
	if info.Bitrate > 0 && info.Object != ObjectManifest {
		obj["br"] = strconv.FormatInt(int64(math.Round(float64(info.Bitrate)/1000)), 10)
	}
	if info.TopBitrate > 0 && info.Object != ObjectManifest {
		obj["tb"] = strconv.FormatInt(int64(math.Round(float64(info.TopBitrate)/1000)), 10)
	}
	if info.Duration > 0 && media {
		obj["d"] = strconv.FormatInt(info.Duration.Round(time.Millisecond).Milliseconds(), 10)
	}
	if media {
		// bl: milliseconds rounded to the nearest 100 ms.
		bl := int64(math.Round(float64(info.Buffer.Milliseconds())/100) * 100)
		req["bl"] = strconv.FormatInt(bl, 10)
	}
	if info.Throughput > 0 {
		// mtp: kbit/s rounded to the nearest 100 kbit/s.
		req["mtp"] = strconv.FormatInt(int64(math.Round(info.Throughput/100_000)*100), 10)
	}
	if info.Next != "" && reqURL != nil {
		if next, err := url.Parse(info.Next); err == nil {
			req["nor"] = cmcdString(encodeURIComponent(relativeURL(reqURL, next)))
		}
	}
	if info.Startup && info.Object != ObjectManifest {
		req["su"] = ""
	}
	if info.Starved && media {
		status["bs"] = ""
	}
	if info.SessionID != "" {
		sess["sid"] = cmcdString(info.SessionID)
	}
	switch info.Format {
	case FormatDASH:
		sess["sf"] = "d"
	case FormatHLS:
		sess["sf"] = "h"
	case FormatSmooth:
		sess["sf"] = "s"
	}
	if info.Live {
		sess["st"] = "l"
	} else {
		sess["st"] = "v"
	}
	out := map[string]string{}
	for name, kv := range map[string]map[string]string{
		"CMCD-Object": obj, "CMCD-Request": req, "CMCD-Session": sess, "CMCD-Status": status,
	} {
		if s := cmcdJoin(kv); s != "" {
			out[name] = s
		}
	}
	return out
}

// cmcdJoin serialises key/value pairs in key order; an empty value is a
// true boolean and is written as the bare key.
func cmcdJoin(kv map[string]string) string {
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		if kv[k] == "" {
			parts = append(parts, k)
		} else {
			parts = append(parts, k+"="+kv[k])
		}
	}
	return strings.Join(parts, ",")
}

// cmcdString quotes a CMCD string value, escaping quotes and backslashes.
func cmcdString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// relativeURL expresses target relative to the directory of base: a path
// such as "../a/b.m4s", or the absolute URL when host or scheme differ.
func relativeURL(base, target *url.URL) string {
	if base.Scheme != target.Scheme || base.Host != target.Host {
		return target.String()
	}
	from := strings.Split(base.Path, "/")
	to := strings.Split(target.Path, "/")
	from = from[:len(from)-1] // directory of base
	i := 0
	for i < len(from) && i < len(to)-1 && from[i] == to[i] {
		i++
	}
	var b strings.Builder
	for range len(from) - i {
		b.WriteString("../")
	}
	b.WriteString(strings.Join(to[i:], "/"))
	if target.RawQuery != "" {
		b.WriteString("?" + target.RawQuery)
	}
	return b.String()
}

// encodeURIComponent escapes s as JavaScript's encodeURIComponent does,
// which is how CTA-5004 expects nor to be encoded.
func encodeURIComponent(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') ||
			strings.IndexByte("-_.!~*'()", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteString("%" + strings.ToUpper(strconv.FormatInt(int64(c)|0x100, 16)[1:]))
	}
	return b.String()
}
