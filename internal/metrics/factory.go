package metrics

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Factory makes metrics and registers each one, as it is made, in one
// registry: a role declares a metric in one line (name, help, labels) and
// has no second list to keep in step with its declarations.
//
// A registration that fails (a name registered twice, a bad name) is kept:
// Err returns the first one, so a role's constructor reports it. With a nil
// registerer the metrics are made but not registered.
type Factory struct {
	reg prometheus.Registerer
	err error
}

// NewFactory returns a Factory that registers in reg (nil, or a nil
// *prometheus.Registry: nowhere).
func NewFactory(reg prometheus.Registerer) *Factory {
	if r, ok := reg.(*prometheus.Registry); ok && r == nil {
		reg = nil
	}
	return &Factory{reg: reg}
}

// Err is the first registration error, wrapped with the metric's name, or nil.
func (f *Factory) Err() error { return f.err }

// Register registers c (a collector made elsewhere) like the factory's own.
func (f *Factory) Register(c prometheus.Collector) {
	if f.reg == nil || f.err != nil {
		return
	}
	if err := f.reg.Register(c); err != nil {
		f.err = fmt.Errorf("register metric: %w", err)
	}
}

func add[C prometheus.Collector](f *Factory, c C) C {
	f.Register(c)
	return c
}

// Counter makes and registers a counter.
func (f *Factory) Counter(name, help string) prometheus.Counter {
	return add(f, prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help}))
}

// CounterVec makes and registers a counter with the given labels.
func (f *Factory) CounterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return add(f, prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels))
}

// CounterFunc makes and registers a counter whose value fn reads at scrape time.
func (f *Factory) CounterFunc(name, help string, fn func() float64) prometheus.CounterFunc {
	return add(f, prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, fn))
}

// Gauge makes and registers a gauge.
func (f *Factory) Gauge(name, help string) prometheus.Gauge {
	return add(f, prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help}))
}

// GaugeVec makes and registers a gauge with the given labels.
func (f *Factory) GaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	return add(f, prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels))
}

// GaugeFunc makes and registers a gauge whose value fn reads at scrape time.
func (f *Factory) GaugeFunc(name, help string, fn func() float64) prometheus.GaugeFunc {
	return add(f, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn))
}

// Histogram makes and registers a histogram with the given bucket bounds.
func (f *Factory) Histogram(name, help string, buckets []float64) prometheus.Histogram {
	return add(f, prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}))
}

// HistogramVec makes and registers a histogram with the given bucket bounds
// and labels.
func (f *Factory) HistogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	return add(f, prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels))
}
