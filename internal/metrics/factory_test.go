package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestFactoryRegistersWhatItMakes(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := NewFactory(reg)
	f.CounterVec("t_requests_total", "Requests by kind.", "kind").WithLabelValues("a").Add(2)
	f.Gauge("t_open", "Open things.").Set(3)
	f.GaugeFunc("t_func", "A value read at scrape time.", func() float64 { return 7 })
	f.HistogramVec("t_seconds", "Durations.", []float64{1, 2}, "op").WithLabelValues("x").Observe(1.5)
	if err := f.Err(); err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.Counter != nil:
				got[mf.GetName()] = m.Counter.GetValue()
			case m.Gauge != nil:
				got[mf.GetName()] = m.Gauge.GetValue()
			case m.Histogram != nil:
				got[mf.GetName()] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	want := map[string]float64{"t_requests_total": 2, "t_open": 3, "t_func": 7, "t_seconds": 1}
	if len(got) != len(want) {
		t.Errorf("gathered %v, want %v", got, want)
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %v, want %v", name, got[name], v)
		}
	}
}

func TestFactoryKeepsTheFirstRegistrationError(t *testing.T) {
	f := NewFactory(prometheus.NewRegistry())
	f.Counter("t_twice_total", "First.")
	f.Counter("t_twice_total", "Second.")
	f.Counter("t_other_total", "Not registered after an error.")
	if err := f.Err(); err == nil || !strings.Contains(err.Error(), "register metric") {
		t.Fatalf("Err() = %v, want the duplicate registration", err)
	}
}

func TestFactoryWithoutRegistry(t *testing.T) {
	for name, reg := range map[string]prometheus.Registerer{"nil": nil, "nil registry": (*prometheus.Registry)(nil)} {
		f := NewFactory(reg)
		f.Counter("t_total", "Made, not registered.").Inc()
		if err := f.Err(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
