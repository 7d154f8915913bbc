package importer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/store"
	"github.com/sluice-media/sluice/internal/texttrack"
)

// Sidecar is a timed text file (WebVTT, or TTML by its extension .ttml or
// .dfxp) imported with the media as a wvtt text track.
type Sidecar struct {
	Path string
	// Language is the track's language (BCP 47), "" when unknown.
	Language string
	// Role is the track's DASH role: subtitle (the default) or caption.
	Role string
}

// textTimescale is the timescale of the text tracks built from side-car
// files (WebVTT times are milliseconds).
const textTimescale = 1000

// sidecarLang matches the language part of a side-car file name.
var sidecarLang = regexp.MustCompile(`^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$`)

// sidecarExts are the side-car file types: WebVTT and TTML (IMSC1, DFXP).
var sidecarExts = []string{".vtt", ".ttml", ".dfxp"}

// FindSidecars lists the timed text files next to the media file at path
// that belong to it: <base><ext>, <base>.<lang><ext> and
// <base>.<lang>.<role><ext> (role subtitle, caption, cc or sdh, the last
// three counting as caption), where <base> is the media file's name
// without its extension, <lang> a BCP 47 tag (en, pt-BR, deu) and <ext>
// .vtt (WebVTT) or .ttml/.dfxp (TTML). They are sorted by name.
func FindSidecars(path string) ([]Sidecar, error) {
	dir, name := filepath.Split(path)
	base := strings.TrimSuffix(name, filepath.Ext(name))
	var matches []string
	for _, ext := range sidecarExts {
		m, err := filepath.Glob(filepath.Join(dir, globEscape(base)+"*"+ext))
		if err != nil {
			return nil, err
		}
		matches = append(matches, m...)
	}
	sort.Strings(matches)
	var out []Sidecar
	for _, m := range matches {
		rest := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(m), base), filepath.Ext(m))
		if rest == "" {
			out = append(out, Sidecar{Path: m})
			continue
		}
		parts := strings.Split(strings.TrimPrefix(rest, "."), ".")
		if !strings.HasPrefix(rest, ".") || len(parts) > 2 || !sidecarLang.MatchString(parts[0]) {
			continue // another file's side-car (movie-2.vtt)
		}
		sc := Sidecar{Path: m, Language: parts[0]}
		if len(parts) == 2 {
			switch parts[1] {
			case "subtitle", "subtitles":
			case "caption", "captions", "cc", "sdh":
				sc.Role = "caption"
			default:
				continue
			}
		}
		out = append(out, sc)
	}
	return out, nil
}

func globEscape(s string) string {
	return strings.NewReplacer(`*`, `\*`, `?`, `\?`, `[`, `\[`, `\`, `\\`).Replace(s)
}

// addSidecar stores a side-car WebVTT or TTML file as a wvtt text track of the
// asset (stream id streamID), in one fragment per fragment of the
// reference track (the first video track, else the first track), so that
// the subtitle segments line up with the video's; cues outside the asset's
// span are dropped. It returns the track's id and its number of fragments.
func addSidecar(point *store.Point, sc Sidecar, streamID string) (string, int, error) {
	cues, err := readSidecar(sc.Path)
	if err != nil {
		return "", 0, err
	}
	spans := referenceSpans(point.View(0))
	if len(spans) == 0 {
		return "", 0, errors.New("no fragment to align the text track with")
	}
	role := sc.Role
	if role == "" {
		role = "subtitle"
	}
	init, err := texttrack.WvttInit(textTimescale, sc.Language, role)
	if err != nil {
		return "", 0, err
	}
	body := bytes.NewBuffer(init)
	for i, sp := range spans {
		frag, err := texttrack.Fragment(uint32(i+1), texttrack.WvttSamples(cues, sp[0], sp[1], textTimescale))
		if err != nil {
			return "", 0, err
		}
		body.Write(frag)
	}
	// The same parser as a push, so the track is stored as an ingested one.
	parser := media.NewStreamParser(body, uint64(body.Len())+1, nil)
	var id string
	n := 0
	for {
		ev, err := parser.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", 0, fmt.Errorf("text track of %s: %w", sc.Path, err)
		}
		switch ev.Kind {
		case media.EventHeader:
			ids, err := point.SetHeader(streamID, ev.Header)
			if err != nil {
				return "", 0, fmt.Errorf("store text track header: %w", err)
			}
			id = ids[ev.Header.Tracks[0].TrackID]
		case media.EventFragment:
			if _, err := point.AddFragment(id, ev.Fragment); err != nil {
				return "", 0, fmt.Errorf("store text fragment %s@%d: %w", id, ev.Fragment.Info.Start, err)
			}
			n++
		}
	}
	if err := point.EndTrack(id); err != nil {
		return "", 0, fmt.Errorf("end track %s: %w", id, err)
	}
	return id, n, nil
}

// readSidecar reads and parses a WebVTT or (by its extension) TTML file
// (at most texttrack.MaxInput bytes).
func readSidecar(path string) ([]texttrack.Cue, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("side-car file: %w", err)
	}
	defer f.Close()
	doc, err := io.ReadAll(io.LimitReader(f, texttrack.MaxInput+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	parse := texttrack.ParseWebVTT
	if ext := strings.ToLower(filepath.Ext(path)); ext == ".ttml" || ext == ".dfxp" {
		parse = texttrack.ParseTTML
	}
	cues, err := parse(doc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cues, nil
}

// referenceSpans returns the media time spans of the fragments of the
// reference track (the first video track in View order, else the first
// track), each one ending where the next begins, the first from 0 (a cue
// before the first frame is shown with it).
func referenceSpans(v store.View) [][2]time.Duration {
	var ref *store.TrackView
	for i := range v.Tracks {
		if t := &v.Tracks[i]; len(t.Frags) > 0 && t.Info.Timescale > 0 && (ref == nil || t.Info.Kind == "video" && ref.Info.Kind != "video") {
			ref = t
		}
	}
	if ref == nil {
		return nil
	}
	ts := int64(ref.Info.Timescale)
	at := func(x int64) time.Duration {
		x = max(x, 0)
		return time.Duration(x/ts)*time.Second + time.Duration(x%ts)*time.Second/time.Duration(ts)
	}
	var out [][2]time.Duration
	for i, f := range ref.Frags {
		end := f.End()
		if i+1 < len(ref.Frags) {
			end = ref.Frags[i+1].Start
		}
		a, z := at(f.Start).Truncate(time.Millisecond), at(end).Truncate(time.Millisecond)
		if i == 0 {
			a = 0
		}
		if z > a {
			out = append(out, [2]time.Duration{a, z})
		}
	}
	return out
}
