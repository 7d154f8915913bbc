package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/sluice-media/sluice/internal/archive"
)

const archiveSynopsis = `cut [flags] <point> <asset> --from T1 --to T2

Cuts the range [T1, T2) of a publishing point's archive into a new on-demand
asset (segmented archive) at fragment boundaries: the asset begins with the
first video fragment starting at or after T1 and ends with the last one
starting before T2; audio and text follow that span (fragments whose middle
lies in it). Fragment files are hard-linked, so a cut is instant and survives
the archive retention of the source.

Times are on the point's media timeline (the presentation time of its live
DASH MPD; Unix time for epoch-anchored channels such as 'sluice push'):
  seconds       1732550400 or 93.5
  a duration    90s, 1h30m (from media time zero)
  a wall clock  2026-11-25T14:00:00Z (mapped through the point's anchor)
  an ad marker  out:42, in:42 (the SCTE-35 splice_insert out of network, or
                the return, with splice_event_id 42, stored with the point)

With --data the cut is made directly in a data directory (a running server
on it picks the asset up at its first request). With --server it is made by
a running origin through its admin API (POST /api/points/<point>/cut), which
needs the server's admin token (--token or $SLUICE_ADMIN_TOKEN).

Examples:
  sluice archive cut live match-first-half --from 1732550400 --to 1732553100 --data ./data
  sluice archive cut news/ch1 news/ch1-0900 --from 2026-11-25T09:00:00Z --to 2026-11-25T10:00:00Z \
      --server http://origin-1:8080 --token "$TOKEN"`

// runArchive implements `sluice archive cut`.
func runArchive(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("archive", archiveSynopsis, stderr)
	from := fs.String("from", "", "start of the range (inclusive): seconds, a duration or an RFC 3339 time")
	to := fs.String("to", "", "end of the range (exclusive), in the same forms")
	data := fs.String("data", "", "data directory of the store (the same as the server's --data)")
	srvURL := fs.String("server", "", "base URL of a running origin or serve process to cut through its admin API instead")
	token := fs.String("token", "", "admin token for --server; when empty, $SLUICE_ADMIN_TOKEN is used")
	jsonOut := fs.Bool("json", false, "print the result as JSON")
	if len(args) == 0 || args[0] != "cut" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help") {
			fs.Usage()
			return nil
		}
		fs.Usage()
		return errors.New("want the subcommand cut")
	}
	pos, err := toolArgs(fs, args[1:], 2, "need a point and an asset name")
	if err != nil {
		return err
	}
	if *from == "" || *to == "" {
		return errors.New("need --from and --to")
	}
	if (*data == "") == (*srvURL == "") {
		return errors.New("give exactly one of --data and --server")
	}
	var res archive.CutResponse
	if *srvURL != "" {
		tok := *token
		if tok == "" {
			tok = os.Getenv("SLUICE_ADMIN_TOKEN")
		}
		if res, err = cutRemote(ctx, *srvURL, tok, pos[0], pos[1], *from, *to); err != nil {
			return err
		}
	} else {
		var err error
		if res, err = archive.CutDir(*data, pos[0], pos[1], *from, *to, toolLogger(stderr, false)); err != nil {
			return err
		}
	}
	if *jsonOut {
		return json.NewEncoder(stdout).Encode(res)
	}
	fmt.Fprintf(stdout, "cut %s [%.3f, %.3f) into %s: %.3f s, %d tracks, %d fragments, %d bytes\n",
		res.Source, res.Start, res.End, res.Asset, res.Duration, res.Tracks, res.Fragments, res.Bytes)
	fmt.Fprintf(stdout, "  DASH %s  HLS %s  Smooth %s\n", res.Manifests["dash"], res.Manifests["hls"], res.Manifests["smooth"])
	return nil
}

// cutRemote asks a server's admin API for the cut.
func cutRemote(ctx context.Context, base, token, src, asset, from, to string) (archive.CutResponse, error) {
	var res archive.CutResponse
	body, _ := json.Marshal(map[string]string{"asset": asset, "from": from, "to": to})
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(base, "/")+"/api/points/"+src+"/cut", bytes.NewReader(body))
	if err != nil {
		return res, fmt.Errorf("admin API request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return res, fmt.Errorf("admin API: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		var e struct {
			Error string `json:"error"`
		}
		json.Unmarshal(b, &e)
		if e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return res, fmt.Errorf("admin API: %s: %s", resp.Status, e.Error)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return res, fmt.Errorf("admin API answer: %w", err)
	}
	return res, nil
}
