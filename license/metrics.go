package license

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the Prometheus series of one Server, in a registry of its
// own (so that several servers, as in tests, do not collide):
//
//	sealmesh_license_requests_total{route,code}     requests by route and outcome ("ok" or an error code)
//	sealmesh_license_request_duration_seconds{route} latency histogram
//	sealmesh_license_active_sessions                 sessions not yet expired
//	sealmesh_license_issued_total{kind}              licenses ("license", "renew", "clearkey") and tickets ("ticket")
//	sealmesh_license_tracker_peers                   peers in the tracker
//
// plus the Go runtime and process collectors.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	licenses *prometheus.CounterVec
}

func newMetrics(active func() float64) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sealmesh_license_requests_total",
			Help: "Requests by route and outcome code (ok or the error code).",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sealmesh_license_request_duration_seconds",
			Help:    "Request latency by route.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		licenses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sealmesh_license_issued_total",
			Help: "Licenses, renewals, Clear Key responses and tickets issued.",
		}, []string{"kind"}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.licenses,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sealmesh_license_active_sessions",
			Help: "Sessions (native and Clear Key) that have not expired.",
		}, active),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
