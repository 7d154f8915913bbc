// Package urls parses the REST paths Sluice serves under a publishing point:
// /<pp>.isml/<rest> (also .ism for on-demand assets).
package urls

import (
	"strconv"
	"strings"
)

// Split separates "/<pp>.isml/<rest>" into the point name and the rest.
// ok is false when the path names no publishing point.
func Split(path string) (point, rest string, ok bool) {
	p := strings.TrimPrefix(path, "/")
	for _, ext := range []string{".isml/", ".ism/"} {
		if i := strings.Index(p, ext); i > 0 {
			return p[:i], p[i+len(ext):], true
		}
	}
	for _, ext := range []string{".isml", ".ism"} {
		if strings.HasSuffix(p, ext) && len(p) > len(ext) {
			return strings.TrimSuffix(p, ext), "", true
		}
	}
	return "", "", false
}

// call parses "Name(arg)" and returns arg.
func call(s, name string) (string, bool) {
	if !strings.HasPrefix(s, name+"(") || !strings.HasSuffix(s, ")") {
		return "", false
	}
	return s[len(name)+1 : len(s)-1], true
}

// Stream parses an ingest path rest: [Events(e)/]Streams(id)[/StartTime(t)].
// hasStart reports whether a StartTime was given.
func Stream(rest string) (id string, start int64, hasStart, ok bool) {
	parts := strings.Split(rest, "/")
	if len(parts) > 0 {
		if _, isEv := call(parts[0], "Events"); isEv {
			parts = parts[1:]
		}
	}
	if len(parts) == 0 || len(parts) > 2 {
		return "", 0, false, false
	}
	id, ok = call(parts[0], "Streams")
	if !ok || id == "" {
		return "", 0, false, false
	}
	if len(parts) == 2 {
		ts, ok := call(parts[1], "StartTime")
		if !ok {
			return "", 0, false, false
		}
		t, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			return "", 0, false, false
		}
		return id, t, true, true
	}
	return id, 0, false, true
}

// SmoothFragment parses "QualityLevels(<bitrate>[,k=v...])/Fragments(<name>=<time>)".
func SmoothFragment(rest string) (bitrate int, name string, t int64, ok bool) {
	ql, frag, found := strings.Cut(rest, "/")
	if !found {
		return 0, "", 0, false
	}
	arg, ok := call(ql, "QualityLevels")
	if !ok {
		return 0, "", 0, false
	}
	br, _, _ := strings.Cut(arg, ",")
	bitrate, err := strconv.Atoi(br)
	if err != nil || bitrate < 0 {
		return 0, "", 0, false
	}
	arg, ok = call(frag, "Fragments")
	if !ok {
		return 0, "", 0, false
	}
	name, ts, found := strings.Cut(arg, "=")
	if !found || name == "" {
		return 0, "", 0, false
	}
	t, err = strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return 0, "", 0, false
	}
	return bitrate, name, t, true
}

// TrackFile parses "tracks/<id>/<file>".
func TrackFile(rest string) (track, file string, ok bool) {
	p, ok := strings.CutPrefix(rest, "tracks/")
	if !ok {
		return "", "", false
	}
	track, file, ok = strings.Cut(p, "/")
	if !ok || track == "" || file == "" || strings.Contains(file, "/") {
		return "", "", false
	}
	return track, file, true
}
