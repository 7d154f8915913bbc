package scheduler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
)

// OwnersPlaceholder is the placeholder of Config.OwnerSetURL that an owner
// set's host label replaces.
const OwnersPlaceholder = "{owners}"

// ownerSetTpl is a parsed Config.OwnerSetURL:
// scheme://prefix{owners}suffix[:port].
type ownerSetTpl struct {
	scheme, prefix, suffix, port string
}

// parseOwnerSetURL parses an owner-set URL template: an http(s) URL of a
// host name that contains OwnersPlaceholder once, and an optional port;
// no path, query or user.
func parseOwnerSetURL(tpl string) (ownerSetTpl, error) {
	bad := func(why string) (ownerSetTpl, error) {
		return ownerSetTpl{}, fmt.Errorf("owner-set URL %q: %s", tpl, why)
	}
	scheme, rest, ok := strings.Cut(tpl, "://")
	if !ok || (scheme != "http" && scheme != "https") {
		return bad("it must start with http:// or https://")
	}
	rest = strings.TrimSuffix(rest, "/")
	if strings.ContainsAny(rest, "/?#@") {
		return bad("only a host and a port are allowed after the scheme")
	}
	host, port := rest, ""
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.Contains(rest[i:], OwnersPlaceholder) {
		host, port = rest[:i], rest[i+1:]
		if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
			return bad("the port must be a number from 1 to 65535")
		}
	}
	if strings.Count(host, OwnersPlaceholder) != 1 {
		return bad("the host must contain " + OwnersPlaceholder + " exactly once")
	}
	prefix, suffix, _ := strings.Cut(host, OwnersPlaceholder)
	for _, c := range []byte(prefix + suffix) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return bad("the host name may hold letters, digits, '-' and '.' only")
		}
	}
	return ownerSetTpl{scheme: scheme, prefix: strings.ToLower(prefix), suffix: strings.ToLower(suffix), port: port}, nil
}

// CheckOwnerSetURL validates an owner-set URL template (Config.OwnerSetURL).
func CheckOwnerSetURL(tpl string) error {
	_, err := parseOwnerSetURL(tpl)
	return err
}

// host is the host name of an owner set.
func (t ownerSetTpl) host(ids []string) string {
	return t.prefix + cluster.OwnerSetLabel(ids) + t.suffix
}

// base is the base URL of an owner set.
func (t ownerSetTpl) base(ids []string) string {
	b := t.scheme + "://" + t.host(ids)
	if t.port != "" {
		b += ":" + t.port
	}
	return b
}

// ownerSetOrder is the order a client tries the owners of a block: the
// sender chosen for it first, then the other owners by ID. Sorting the
// rest keeps the number of distinct names at N × C(N-1, R-1).
func ownerSetOrder(first string, owners []string) []string {
	out := make([]string, 0, len(owners))
	out = append(out, first)
	rest := make([]string, 0, len(owners))
	for _, o := range owners {
		if o != first {
			rest = append(rest, o)
		}
	}
	slices.Sort(rest)
	return append(out, rest...)
}

// ownerSetBase is the base URL of the owner set of a block fetched first
// from the sender first (Config.OwnerSetURL).
func (s *Scheduler) ownerSetBase(first string, owners []string) string {
	return s.ownerTpl.base(ownerSetOrder(first, owners))
}

// maxOwnerSetNames bounds the listing of OwnerSetHosts.
const maxOwnerSetNames = 200000

// OwnerSetHosts answers, for the cluster secret only, the owner-set host
// names the scheduler can put in segment URLs for the live senders, in
// hosts(5) format: one line per name and member address, in the order a
// client should try them (the first member's line first). It is what a
// DNS zone or a hosts file behind Config.OwnerSetURL must resolve
// (docs/cluster.md, "Owner-set host names"). 404 when no template is
// set; 401 for a request not signed with the cluster key
// (internal/clusterauth).
func (s *Scheduler) OwnerSetHosts(w http.ResponseWriter, r *http.Request) {
	if s.cfg.OwnerSetURL == "" {
		http.Error(w, "no owner-set URL template (--owner-set-url) is configured", http.StatusNotFound)
		return
	}
	if err := s.verifier.Verify(r); err != nil {
		s.verifier.Refuse(w, r, err)
		return
	}
	s.mu.Lock()
	ids := append([]string(nil), s.liveIDs...)
	urls := make(map[string]string, len(ids))
	for _, id := range ids {
		if sc := s.senders[id]; sc != nil {
			urls[id] = sc.m.URL
		}
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	addrs := make(map[string]string, len(ids))
	for _, id := range ids {
		a, err := memberAddr(ctx, urls[id])
		if err != nil {
			s.log.Warn("owner-set listing: no address for a sender", "sender", id, "err", err)
			continue
		}
		addrs[id] = a
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := writeOwnerSetHosts(w, s.ownerTpl, ids, addrs, s.cfg.Replicas); err != nil {
		s.log.Warn("owner-set listing", "err", err)
	}
}

// writeOwnerSetHosts writes the hosts(5) lines of every owner set of r (or
// fewer, when fewer are live) of ids: each ID first, then every
// combination of the others in ID order (ownerSetOrder).
func writeOwnerSetHosts(w io.Writer, t ownerSetTpl, ids []string, addrs map[string]string, r int) error {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	k := min(r, len(ids))
	names := 0
	if _, err := fmt.Fprintf(w, "# sluice owner-set host names: %d live senders, R=%d\n", len(ids), r); err != nil {
		return err
	}
	var comb func(set []string, others []string) error
	comb = func(set []string, others []string) error {
		if len(set) == k {
			if names++; names > maxOwnerSetNames {
				return errors.New("too many owner-set names to list")
			}
			name := t.host(set)
			for _, id := range set {
				if a, ok := addrs[id]; ok {
					if _, err := fmt.Fprintf(w, "%s %s\n", a, name); err != nil {
						return err
					}
				}
			}
			return nil
		}
		for i, o := range others {
			if err := comb(append(slices.Clip(set), o), others[i+1:]); err != nil {
				return err
			}
		}
		return nil
	}
	for _, first := range ids {
		others := slices.DeleteFunc(slices.Clone(ids), func(o string) bool { return o == first })
		if err := comb([]string{first}, others); err != nil {
			return err
		}
	}
	return nil
}

// memberAddr is the IP address of a member URL's host (resolved when it
// is a name).
func memberAddr(ctx context.Context, raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	h := u.Hostname()
	if ip := net.ParseIP(h); ip != nil {
		return ip.String(), nil
	}
	as, err := net.DefaultResolver.LookupHost(ctx, h)
	if err != nil {
		return "", err
	}
	if len(as) == 0 {
		return "", fmt.Errorf("%s: no address", h)
	}
	return as[0], nil
}

// Zone is the DNS zone of the owner-set names: the template's host after
// {owners} without its leading dot (e.g. "senders.example"); "" when no
// template is set or the names have no common suffix.
func (s *Scheduler) Zone() string {
	if s.cfg.OwnerSetURL == "" {
		return ""
	}
	return strings.TrimPrefix(s.ownerTpl.suffix, ".")
}

// LookupOwnerSet answers an owner-set host name for the DNS responder
// (internal/dns): the addresses of the set's live senders, in the name's
// order (senders that stopped answering batches or left the set are left
// out, so a client that resolves after a death is not sent to the dead one
// at all), and whether the name exists: a readable label
// (cluster.OwnerSetIDs) of at most R distinct IDs, one of them a sender
// this scheduler knows. A name with a sender that left exists with the
// others' addresses: manifests from before still name it.
// Senders must advertise IP addresses (a host name is not resolved here).
func (s *Scheduler) LookupOwnerSet(name string) ([]netip.Addr, bool) {
	t := s.ownerTpl
	if s.cfg.OwnerSetURL == "" || !strings.HasPrefix(name, t.prefix) || !strings.HasSuffix(name, t.suffix) ||
		len(name) <= len(t.prefix)+len(t.suffix) {
		return nil, false
	}
	ids := cluster.OwnerSetIDs(name[len(t.prefix) : len(name)-len(t.suffix)])
	if len(ids) == 0 || len(ids) > max(s.cfg.Replicas, 1) {
		return nil, false
	}
	for i, id := range ids {
		if slices.Contains(ids[:i], id) {
			return nil, false
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []netip.Addr
	known := false
	for _, id := range ids {
		sc := s.senders[id]
		known = known || sc != nil
		if sc == nil || !sc.up {
			continue
		}
		if u, err := url.Parse(sc.m.URL); err == nil {
			if a, err := netip.ParseAddr(u.Hostname()); err == nil {
				out = append(out, a)
			}
		}
	}
	return out, known
}
