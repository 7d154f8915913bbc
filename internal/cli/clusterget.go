package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/sluice-media/sluice/internal/clusterauth"
)

const clusterGetSynopsis = `[flags] <url>

GETs an internal URL of the cluster with a request signed with the cluster key (the secret
itself is never sent; docs/cluster.md, "Internal authentication") and prints the body, e.g.
a sender's stats, an origin's index, or the owner-set listing of a scheduler started with
--owner-set-url (GET /internal/v1/owner-sets), for a hosts file:

  SLUICE_CLUSTER_SECRET=S sluice cluster-get http://10.0.0.11:9001/internal/v1/stats
  sluice cluster-get --cluster-secret S http://10.0.0.12:9001/internal/v1/stats`

// runClusterGet implements `sluice cluster-get`.
func runClusterGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("cluster-get", clusterGetSynopsis, stderr)
	secretFlag := fs.String("cluster-secret", "", "cluster secret (default $SLUICE_CLUSTER_SECRET)")
	pos, err := toolArgs(fs, args, 1, "name one URL")
	if err != nil {
		return err
	}
	secret := *secretFlag
	if secret == "" {
		secret = os.Getenv("SLUICE_CLUSTER_SECRET")
	}
	if secret == "" {
		return errors.New("a cluster secret is required: --cluster-secret or $SLUICE_CLUSTER_SECRET")
	}
	c := &http.Client{Timeout: 30 * time.Second, Transport: clusterauth.NewTransport(clusterauth.NewKeys([]byte(secret)), nil)}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, pos[0], nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("%s: %s: %s", pos[0], resp.Status, b)
	}
	_, err = io.Copy(stdout, resp.Body)
	return err
}
