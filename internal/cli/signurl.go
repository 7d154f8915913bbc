package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/sluice-media/sluice/internal/urlsign"
)

const signURLSynopsis = `[flags] <url>...

Prints each URL signed for players of an origin, a distribution server or a scheduler that
requires signed URLs (--signed-urls; docs/origin.md): a token in the query (?st=) naming a
path prefix and an expiry, HMAC-signed with the key of --key-file (or $SLUICE_URL_KEY).
The server answers the first request with a cookie for the prefix, so that a player's
further requests (segments, playlists, session reloads) need no query.

The prefix defaults to the point's directory: /<point>.isml/ for origin and distribution
URLs, /s/<point>/ for scheduler sessions.

  sluice sign-url --key-file url.key --ttl 2h http://origin:8080/live.isml/manifest.mpd
  sluice sign-url --key-file url.key http://sched:8090/s/live/master.m3u8`

// runSignURL implements `sluice sign-url`.
func runSignURL(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("sign-url", signURLSynopsis, stderr)
	keyFile := fs.String("key-file", "", "file holding the signing key (default $SLUICE_URL_KEY)")
	ttl := fs.Duration("ttl", time.Hour, "how long the URL stays valid")
	prefix := fs.String("prefix", "", "path prefix the token covers (default: the point's directory)")
	pos, err := parseToolArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		fs.Usage()
		return errors.New("name a URL to sign")
	}
	if *ttl <= 0 {
		return errors.New("--ttl must be positive")
	}
	key, err := urlsign.LoadKey(*keyFile)
	if err != nil {
		return err
	}
	exp := time.Now().Add(*ttl)
	for _, raw := range pos {
		p := *prefix
		if p == "" {
			u, err := url.Parse(raw)
			if err != nil {
				return err
			}
			p = pointPrefix(u.Path)
		}
		signed, err := key.SignURL(raw, p, exp)
		if err != nil {
			return fmt.Errorf("%s: %w", raw, err)
		}
		fmt.Fprintln(stdout, signed)
	}
	return nil
}

// pointPrefix is the default prefix of a URL path: up to ".isml/" (or
// ".ism/") of an origin path, /s/<point>/ of a scheduler path, else the
// path's directory.
func pointPrefix(p string) string {
	for _, ext := range []string{".isml/", ".ism/"} {
		if i := strings.Index(p, ext); i > 0 {
			return p[:i+len(ext)]
		}
	}
	if rest, ok := strings.CutPrefix(p, "/s/"); ok {
		if i := strings.Index(rest, "/~"); i >= 0 {
			return "/s/" + rest[:i+1]
		}
		if i := strings.LastIndexByte(rest, '/'); i >= 0 {
			return "/s/" + rest[:i+1]
		}
	}
	return p[:strings.LastIndexByte(p, '/')+1]
}
