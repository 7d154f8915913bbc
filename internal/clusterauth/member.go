package clusterauth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// SignMember signs a membership record: a sender's ID, its base URL and
// the time it was made (unix seconds).
func (k Keys) SignMember(id, url string, t int64) string {
	return b64.EncodeToString(mac(k.member, "sluice-member-v1", id, url, strconv.FormatInt(t, 10)))
}

// VerifyMember checks a membership record's signature: ErrUnsigned when
// it has none, ErrBadSignature when it is not the cluster key's, ErrSkew
// when it was made more than DefaultWindow in the future.
func (k Keys) VerifyMember(id, url string, t int64, sig string, now time.Time) error {
	if !k.Valid() {
		return ErrNoKey
	}
	if sig == "" {
		return fmt.Errorf("%w: membership record of %q without a signature", ErrUnsigned, id)
	}
	got, err := b64.DecodeString(sig)
	if err != nil || !hmac.Equal(got, mac(k.member, "sluice-member-v1", id, url, strconv.FormatInt(t, 10))) {
		return fmt.Errorf("%w: membership record of %q (%s) is not signed with the cluster key", ErrBadSignature, id, url)
	}
	if time.Unix(t, 0).Sub(now) > DefaultWindow {
		return fmt.Errorf("%w: membership record of %q made in the future (%s)", ErrSkew, id, time.Unix(t, 0).UTC().Format(time.RFC3339))
	}
	return nil
}

// ProofPath is where a member answers challenges: GET
// <base>/internal/v1/proof?c=<challenge, 32 hex> -> ProofAnswer (JSON).
// It needs no authentication: the answer only shows that the member holds
// the cluster key, for its own URL.
const ProofPath = "/internal/v1/proof"

// ProofAnswer is a member's answer to a challenge.
type ProofAnswer struct {
	ID  string `json:"id"`
	URL string `json:"url"`
	// Proof is HMAC(proof key, challenge, host:port of URL), base64url.
	Proof string `json:"proof"`
}

// proofHost is the identity a proof binds: the member URL's host:port.
func proofHost(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("member URL %q: want http(s)://host:port", raw)
	}
	return NormalizeHost(u.Host, u.Scheme == "https"), nil
}

func (k Keys) proofMAC(challenge, host string) []byte {
	return mac(k.proof, "sluice-proof-v1", challenge, host)
}

// ProofHandler answers challenges for the member self returns (its ID and
// advertised base URL): the proof binds that URL's host:port, so a member
// cannot pass another's answer off as its own (a relayed challenge gives
// a proof for the relaying member's victim, not for the relay).
func (k Keys) ProofHandler(self func() (id, url string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := r.URL.Query().Get("c")
		if !hexNonce(c) {
			http.Error(w, "want ?c=<challenge: 32 lower-case hex digits>", http.StatusBadRequest)
			return
		}
		id, u := self()
		host, err := proofHost(u)
		if err != nil {
			http.Error(w, "this member does not know its URL yet", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(ProofAnswer{ID: id, URL: u, Proof: b64.EncodeToString(k.proofMAC(c, host))})
	}
}

// Prove challenges the member at base (its URL as the cluster names it)
// and checks that it answers with a proof of the cluster key for that
// URL's host:port. The challenge request is not signed and carries
// nothing but a random challenge: an impostor learns nothing from it.
func (k Keys) Prove(ctx context.Context, client *http.Client, base string) error {
	if !k.Valid() {
		return ErrNoKey
	}
	host, err := proofHost(base)
	if err != nil {
		return err
	}
	var cb [16]byte
	rand.Read(cb[:])
	c := hex.EncodeToString(cb[:])
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+ProofPath+"?c="+c, nil)
	if err != nil {
		return err
	}
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return fmt.Errorf("challenge %s: %w", base, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: challenge %s: status %d: %.100s", ErrBadSignature, base, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	var a ProofAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return fmt.Errorf("%w: challenge %s: answer is not JSON: %v", ErrBadSignature, base, err)
	}
	got, err := b64.DecodeString(a.Proof)
	if err != nil || !hmac.Equal(got, k.proofMAC(c, host)) {
		return fmt.Errorf("%w: %s did not prove the cluster key for %s (it says it is %q at %s)", ErrBadSignature, base, host, a.ID, a.URL)
	}
	return nil
}
