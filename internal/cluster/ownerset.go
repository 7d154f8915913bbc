package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// labelSafe reports whether a sender ID can stand in an owner-set label as
// it is: a DNS label of lower-case letters, digits and single hyphens.
func labelSafe(id string) bool {
	if id == "" || len(id) > 63 || id[0] == '-' || id[len(id)-1] == '-' || strings.Contains(id, "--") {
		return false
	}
	for _, c := range []byte(id) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// OwnerSetLabel is the host label of an owner set in the order a client
// should try its members: their IDs joined by "--" when every ID is a
// lower-case DNS label without "--" and the result fits a label (63
// bytes), so that a DNS server can synthesise the answer from the name
// alone; else "h" and 20 hex digits of a SHA-256 of the IDs (resolvable
// through a scheduler's listing only; internal/scheduler.OwnerSetHosts).
func OwnerSetLabel(ids []string) string {
	safe := true
	for _, id := range ids {
		safe = safe && labelSafe(id)
	}
	if l := strings.Join(ids, "--"); safe && len(l) <= 63 {
		return l
	}
	h := sha256.Sum256([]byte(strings.Join(ids, "\n")))
	return "h" + hex.EncodeToString(h[:10])
}

// OwnerSetIDs returns the sender IDs of a readable owner-set label (one or
// more label-safe IDs joined by "--"), in order; nil for a hashed or
// invalid label.
func OwnerSetIDs(label string) []string {
	ids := strings.Split(label, "--")
	for _, id := range ids {
		if !labelSafe(id) {
			return nil
		}
	}
	return ids
}

// OwnerSetMembers returns the sender IDs an owner-set host name (a
// host, with or without a port, whose first label is an OwnerSetLabel of
// two or more IDs) names, in order; nil for any other host, and for
// hashed labels.
func OwnerSetMembers(host string) []string {
	label, _, _ := strings.Cut(host, ".")
	label, _, _ = strings.Cut(label, ":")
	if !strings.Contains(label, "--") {
		return nil
	}
	return OwnerSetIDs(label)
}
