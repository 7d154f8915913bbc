// Command senderbench is the helper program of bench/sender-vs-nginx.sh
// (bench/origin-vs-nginx.sh with VS=sender): it plays the scheduler's part
// towards one `sluice sender`, so that wrk can load the sender's client URLs
// as players would.
//
//	senderbench urls  -blocks list.txt -base ""         # /b/<token>/<point>/<track>/<start>.m4s per block
//	senderbench hold  -sender URL -blocks list.txt -pin # pin every block, then renew the lease
//	senderbench stats -sender URL                       # one line of the sender's counters
//
// The block list holds one block a line as its path in a sender's block
// directory, "<point>/<track>/<start>.m4s". The cluster secret comes from
// -secret or $SLUICE_CLUSTER_SECRET.
//
// hold sends one batch that names the session of the tokens to the sender
// (look-ahead pins for every block with -pin, which preloads them into RAM;
// otherwise cancels of pins it does not hold, which pin nothing), checks that
// nothing was refused or missing, prints "READY ..." and then sends an empty
// batch every -every, as a scheduler does each timeslot: that renews its
// lease (so the pins stay) and collects the sender's sent-reports. On
// SIGINT/SIGTERM it prints how many reports it collected and exits.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/placement"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "senderbench:", err)
		stop()
		os.Exit(1)
	}
}

// Session is the prefix of the session every token and pin of a point
// names (sessionFor).
const Session = "bench"

// sessionFor is the bench session of a point: a token names one point, and
// a sender grants a session for one point.
func sessionFor(point string) string { return Session + ":" + point }

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: senderbench urls|hold|stats [flags]")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	secret := fs.String("secret", os.Getenv("SLUICE_CLUSTER_SECRET"), "cluster secret (default $SLUICE_CLUSTER_SECRET)")
	blocks := fs.String("blocks", "", "file with one block a line: <point>/<track>/<start>.m4s")
	sender := fs.String("sender", "", "base URL of the sender")
	base := fs.String("base", "", "urls: prefix of every URL (e.g. http://127.0.0.1:9001; default: paths only)")
	pin := fs.Bool("pin", false, "hold: pin every block (look-ahead, preloads it into RAM)")
	every := fs.Duration("every", 100*time.Millisecond, "hold: batch interval (the scheduler's timeslot)")
	lease := fs.Duration("lease", 10*time.Second, "hold: scheduler lease sent with every batch")
	sched := fs.String("scheduler", "senderbench", "hold: scheduler name")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *secret == "" {
		return errors.New("no cluster secret: -secret or $SLUICE_CLUSTER_SECRET")
	}
	needSender := func() error {
		if *sender == "" {
			return fmt.Errorf("%s needs -sender", args[0])
		}
		return nil
	}
	client := placement.NewClient([]byte(*secret), nil)
	switch args[0] {
	case "urls":
		ids, err := readBlocks(*blocks)
		if err != nil {
			return err
		}
		return printURLs(out, []byte(*secret), *base, ids)
	case "hold":
		if err := needSender(); err != nil {
			return err
		}
		ids, err := readBlocks(*blocks)
		if err != nil {
			return err
		}
		return hold(ctx, out, client, *sender, *sched, ids, *pin, *every, *lease)
	case "stats":
		if err := needSender(); err != nil {
			return err
		}
		st, err := client.Stats(ctx, *sender)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "sends_ram=%d sends_disk=%d blocks=%d pinned_blocks=%d pinned_bytes=%d ram_bytes=%d ram_budget=%d refused=%d lease_expiries=%d\n",
			st.SendsRAM, st.SendsDisk, st.Blocks, st.PinnedBlocks, st.PinnedBytes, st.RAMBytes, st.RAMBudget, st.Refused, st.LeaseExpiries)
		return nil
	}
	return fmt.Errorf("unknown command %q (urls, hold, stats)", args[0])
}

// readBlocks reads a block list file.
func readBlocks(name string) ([]cluster.BlockID, error) {
	if name == "" {
		return nil, errors.New("no -blocks file")
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("open block list: %w", err)
	}
	defer f.Close()
	var ids []cluster.BlockID
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		id, err := parseBlock(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
		ids = append(ids, id)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read block list: %w", err)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%s holds no blocks", name)
	}
	return ids, nil
}

// parseBlock parses "<point>/<track>/<start>.m4s" (the point may have
// several segments).
func parseBlock(p string) (cluster.BlockID, error) {
	p = strings.TrimPrefix(p, "/")
	rest, file, ok1 := cutLast(p)
	point, track, ok2 := cutLast(rest)
	start, err := strconv.ParseInt(strings.TrimSuffix(file, ".m4s"), 10, 64)
	if !ok1 || !ok2 || point == "" || !strings.HasSuffix(file, ".m4s") || err != nil {
		return cluster.BlockID{}, fmt.Errorf("want <point>/<track>/<start>.m4s, got %q", p)
	}
	return cluster.BlockID{Point: point, Track: track, Start: start}, nil
}

func cutLast(s string) (string, string, bool) {
	i := strings.LastIndexByte(s, '/')
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

// printURLs writes one client URL per block, each with a token for the
// bench session of its point, signed as a scheduler signs it (valid while
// hold grants the session).
func printURLs(out io.Writer, secret []byte, base string, ids []cluster.BlockID) error {
	w := bufio.NewWriter(out)
	for _, id := range ids {
		tok := cluster.Sign(secret, cluster.Token{Session: sessionFor(id.Point), Point: id.Point})
		fmt.Fprintln(w, placement.ClientURL(base, tok, id))
	}
	return w.Flush()
}

// hold names the session (and pins the blocks with pin), then renews the
// lease every interval until ctx ends.
func hold(ctx context.Context, out io.Writer, c *placement.Client, sender, sched string,
	ids []cluster.BlockID, pin bool, every, lease time.Duration) error {
	pins := make([]cluster.Pin, len(ids))
	var grants []cluster.Grant
	granted := map[string]bool{}
	for i, id := range ids {
		pins[i] = cluster.Pin{Session: sessionFor(id.Point), Block: id}
		if !granted[id.Point] {
			granted[id.Point] = true
			grants = append(grants, cluster.Grant{Session: sessionFor(id.Point), Point: id.Point})
		}
	}
	// The grants make the tokens valid (for an hour, renewed with every
	// batch).
	first := cluster.Batch{Scheduler: sched, Lease: lease, Grants: grants, GrantTTL: time.Hour}
	if pin {
		first.LookAhead = pins
	} else {
		// A cancel of a pin that is not held changes no counter but names
		// the session, so the sender queues sent-reports for it.
		first.Cancel = pins
	}
	res, err := c.Batch(ctx, sender, first)
	if err != nil {
		return fmt.Errorf("first batch: %w", err)
	}
	if len(res.Refused) > 0 || len(res.Missing) > 0 {
		return fmt.Errorf("first batch: %d pins refused (RAM budget too small?), %d blocks missing (not loaded?)",
			len(res.Refused), len(res.Missing))
	}
	if pin {
		if err := waitPinned(ctx, c, sender, len(ids)); err != nil {
			return err
		}
	}
	st, err := c.Stats(ctx, sender)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "READY blocks=%d pinned_blocks=%d pinned_bytes=%d ram_bytes=%d\n",
		len(ids), st.PinnedBlocks, st.PinnedBytes, st.RAMBytes)
	var reports, fromRAM, bytes, batches int64
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintf(out, "DONE batches=%d reports=%d from_ram=%d bytes=%d\n", batches, reports, fromRAM, bytes)
			return nil
		case <-t.C:
		}
		bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		res, err := c.Batch(bctx, sender, cluster.Batch{Scheduler: sched, Lease: lease, Grants: grants, GrantTTL: time.Hour})
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				continue
			}
			return fmt.Errorf("batch: %w", err)
		}
		batches++
		for _, r := range res.Sent {
			reports++
			bytes += r.Bytes
			if r.FromRAM {
				fromRAM++
			}
		}
	}
}

// waitPinned waits up to 30 s until the sender holds n pinned blocks.
func waitPinned(ctx context.Context, c *placement.Client, sender string, n int) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		st, err := c.Stats(ctx, sender)
		if err != nil {
			return fmt.Errorf("stats: %w", err)
		}
		if st.PinnedBlocks >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d blocks pinned after 30 s", st.PinnedBlocks, n)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
