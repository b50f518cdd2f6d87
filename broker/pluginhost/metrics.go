package pluginhost

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names. Every series carries block and plugin labels.
//
//	kmsbroker_plugin_calls_total{operation,result}  calls by outcome
//	kmsbroker_plugin_call_duration_seconds{operation}  call latency
//	kmsbroker_plugin_restarts_total  processes replaced after a loss
//	kmsbroker_plugin_state{state}  1 for the current state, 0 for others
//
// result is one of ok, unavailable, decrypt_failed, error.
const (
	metricCalls    = "kmsbroker_plugin_calls_total"
	metricDuration = "kmsbroker_plugin_call_duration_seconds"
	metricRestarts = "kmsbroker_plugin_restarts_total"
	metricState    = "kmsbroker_plugin_state"
)

// allStates lists every state, so the state gauge has a zero series for
// each one a block is not in.
var allStates = []string{StateStarting, StateReady, StateDegraded, StateRestarting, StateFailed, StateStopped}

// collectors are shared by every Plugin that registers with the same
// Registerer.
type collectors struct {
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	restarts *prometheus.CounterVec
	state    *prometheus.GaugeVec
}

// metrics records one block's series. A nil *metrics records nothing, and
// neither does a paused one: a block's series belong to the one Plugin
// that serves it, while a reload's candidate starts beside it.
type metrics struct {
	c           collectors
	block, kind string
	paused      atomic.Bool
}

func newMetrics(reg prometheus.Registerer, block, kind string) *metrics {
	if reg == nil {
		return nil
	}
	c := collectors{
		calls: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricCalls,
			Help: "Calls to KMS plugins by block, operation and result.",
		}, []string{"block", "plugin", "operation", "result"})),
		duration: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: metricDuration,
			Help: "Latency of calls to KMS plugins, including waiting for a restart.",
			// From a local AEAD call (well under a millisecond) to the
			// default call timeout of five seconds.
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"block", "plugin", "operation"})),
		restarts: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricRestarts,
			Help: "KMS plugin processes restarted after being lost.",
		}, []string{"block", "plugin"})),
		state: register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: metricState,
			Help: "KMS plugin state: 1 for the block's current state, 0 otherwise.",
		}, []string{"block", "plugin", "state"})),
	}
	m := &metrics{c: c, block: block, kind: kind}
	m.c.restarts.WithLabelValues(block, kind)
	return m
}

// register registers c, or returns the collector already registered
// under the same description.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		// A different collector under our names is a programming error
		// in the caller; record into an unregistered one rather than fail.
	}
	return c
}

func (m *metrics) observe(op string, err error, d time.Duration) {
	if m == nil || m.paused.Load() {
		return
	}
	m.c.calls.WithLabelValues(m.block, m.kind, op, result(err)).Inc()
	m.c.duration.WithLabelValues(m.block, m.kind, op).Observe(d.Seconds())
}

func (m *metrics) restarted() {
	if m == nil || m.paused.Load() {
		return
	}
	m.c.restarts.WithLabelValues(m.block, m.kind).Inc()
}

func (m *metrics) setState(state string) {
	if m == nil || m.paused.Load() {
		return
	}
	m.publish(state)
}

// publish writes the state gauge.
func (m *metrics) publish(state string) {
	for _, s := range allStates {
		v := 0.0
		if s == state {
			v = 1
		}
		m.c.state.WithLabelValues(m.block, m.kind, s).Set(v)
	}
}

func result(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrUnavailable):
		return "unavailable"
	case errors.Is(err, ErrDecrypt):
		return "decrypt_failed"
	default:
		return "error"
	}
}
