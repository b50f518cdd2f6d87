// Package promtext reads counters out of a Prometheus text exposition, as
// served at brokerd's /metrics.
package promtext

import (
	"errors"
	"fmt"
	"io"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// ErrNoMetric means the exposition has no family of the given name.
var ErrNoMetric = errors.New("metric not exposed")

// Sum adds up every series of the counter or gauge family name whose
// labels include all of match (nil matches every series). It returns
// ErrNoMetric when the family is absent, so a renamed metric cannot pass
// for a count of zero, and an error for histograms and summaries, which
// have no single value.
func Sum(r io.Reader, name string, match map[string]string) (float64, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return 0, fmt.Errorf("parse metrics: %w", err)
	}
	fam, ok := families[name]
	if !ok {
		return 0, fmt.Errorf("sum %s: %w", name, ErrNoMetric)
	}
	var total float64
	for _, m := range fam.GetMetric() {
		var v float64
		switch {
		case m.GetCounter() != nil:
			v = m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			v = m.GetGauge().GetValue()
		default:
			return 0, fmt.Errorf("sum %s: not a counter or gauge", name)
		}
		if matches(m.GetLabel(), match) {
			total += v
		}
	}
	return total, nil
}

type labelPair interface {
	GetName() string
	GetValue() string
}

func matches[L labelPair](labels []L, match map[string]string) bool {
	found := 0
	for _, l := range labels {
		if want, ok := match[l.GetName()]; ok {
			if l.GetValue() != want {
				return false
			}
			found++
		}
	}
	return found == len(match)
}
