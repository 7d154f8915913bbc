package config

import (
	"fmt"
	"net/url"
	"strings"
)

// Cluster names the senders of a distributed sending cluster (docs/architecture.md,
// docs/cluster.md). An origin with a cluster forwards every fragment it
// stores to the fragment's R owners among the senders, and each track's
// header to every sender.
type Cluster struct {
	// Senders is a static sender set: base URLs, or "id=URL" (the ID is
	// the URL's host:port otherwise).
	Senders []string `yaml:"senders,omitempty"`
	// Etcd lists etcd endpoints; when set, the senders are those
	// registered under EtcdPrefix (Senders is then ignored).
	Etcd       []string `yaml:"etcd,omitempty"`
	EtcdPrefix string   `yaml:"etcd_prefix,omitempty"`
	// EtcdTLS secures the connection to etcd (https:// endpoints).
	EtcdTLS EtcdTLS `yaml:"etcd_tls,omitempty"`
	// EtcdUser and the password in EtcdPasswordFile (or
	// $SLUICE_ETCD_PASSWORD) authenticate to an etcd with authentication
	// enabled. The password is never a flag or a YAML value.
	EtcdUser         string `yaml:"etcd_user,omitempty"`
	EtcdPasswordFile string `yaml:"etcd_password_file,omitempty"`
	// Replicas is R, how many senders hold each block (2 when 0).
	Replicas int `yaml:"replicas,omitempty"`
	// Secret authenticates internal requests to the senders and signs
	// session tokens ($SLUICE_CLUSTER_SECRET when empty; one of them is
	// required).
	Secret string `yaml:"secret,omitempty"`
}

// EtcdTLS names the PEM files of a TLS connection to etcd.
type EtcdTLS struct {
	CA   string `yaml:"ca,omitempty"`   // CA of etcd's server certificate (system roots when empty)
	Cert string `yaml:"cert,omitempty"` // client certificate (etcd --client-cert-auth)
	Key  string `yaml:"key,omitempty"`  // its key
}

// DefaultEtcdPrefix is the etcd key prefix of the sender set
// (membership.DefaultPrefix).
const DefaultEtcdPrefix = "/sluice/senders/"

// Enabled reports whether a sender set is named.
func (c Cluster) Enabled() bool { return len(c.Senders) > 0 || len(c.Etcd) > 0 }

// Validate checks a cluster configuration that is enabled.
func (c Cluster) Validate() error {
	if !c.Enabled() {
		return nil
	}
	if c.Replicas < 0 || c.Replicas > 16 {
		return fmt.Errorf("cluster replicas %d out of range 1..16", c.Replicas)
	}
	for _, s := range append(append([]string(nil), c.Senders...), c.Etcd...) {
		_, raw, named := strings.Cut(s, "=")
		if !named {
			raw = s
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("cluster: %q is not an http(s)://host:port URL", s)
		}
	}
	return nil
}
