package scheduler

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/sluice-media/sluice/internal/membership"
)

// PlayerURL returns a Config.ClientURL from a template of the base URL
// players use for a sender, where "{host}" stands for the host name (no
// port) of the sender's member URL: "https://{host}:8443" when every
// sender also serves HTTPS on port 8443 (--tls-listen) and the players
// must use it, while schedulers and origins keep the member URLs.
func PlayerURL(tpl string) (func(membership.Member) string, error) {
	if err := CheckPlayerURL(tpl); err != nil {
		return nil, err
	}
	tpl = strings.TrimSuffix(tpl, "/")
	return func(m membership.Member) string {
		u, err := url.Parse(m.URL)
		if err != nil || u.Hostname() == "" {
			return m.URL
		}
		h := u.Hostname()
		if strings.Contains(h, ":") {
			h = "[" + h + "]"
		}
		return strings.ReplaceAll(tpl, "{host}", h)
	}, nil
}

// CheckPlayerURL reports whether tpl is a usable PlayerURL template.
func CheckPlayerURL(tpl string) error {
	u, err := url.Parse(strings.ReplaceAll(tpl, "{host}", "sender.invalid"))
	if err != nil || !strings.Contains(tpl, "{host}") || (u.Scheme != "http" && u.Scheme != "https") ||
		u.Hostname() != "sender.invalid" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("sender player URL %q: want a base URL whose host is {host}, such as https://{host}:8443", tpl)
	}
	return nil
}
