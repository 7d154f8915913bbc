package clusterauth

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics count what the cluster's authentication refused, on any role.
type Metrics struct {
	// Requests: internal requests refused, by reason
	// (sluice_cluster_auth_refusals_total).
	Requests *prometheus.CounterVec
	// Members: membership records ignored and members that failed their
	// challenge, by reason (sluice_cluster_member_rejections_total).
	Members *prometheus.CounterVec
}

// NewMetrics registers the metrics with reg (nil: not registered); a
// process whose roles share a registry gets the ones already registered.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_cluster_auth_refusals_total",
			Help: "Internal requests refused: unsigned, bad_signature, skew, replay, wrong_target, body_digest, malformed, nonce_cache_full."}, []string{"reason"}),
		Members: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_cluster_member_rejections_total",
			Help: "Cluster members ignored: membership records unsigned, bad_signature, skew or malformed; proof_failed for a member that did not prove the cluster key."}, []string{"reason"}),
	}
	if reg != nil {
		m.Requests = register(reg, m.Requests)
		m.Members = register(reg, m.Members)
	}
	return m
}

func register(reg prometheus.Registerer, c *prometheus.CounterVec) *prometheus.CounterVec {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if old, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return old
			}
		}
	}
	return c
}

// RequestRefused counts a refused request (Verifier.Refused).
func (m *Metrics) RequestRefused(reason string) { m.Requests.WithLabelValues(reason).Inc() }

// MemberRejected counts an ignored member (membership's Rejected).
func (m *Metrics) MemberRejected(reason string) { m.Members.WithLabelValues(reason).Inc() }
