package pluginhost

import (
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// scrubLogger is the logger go-plugin and the plugin's stdout and stderr
// write through: every message and argument reaches the broker's log with
// the values its replacer knows swapped for markers, so a plugin that
// logs one of its secret settings does not put it in the broker's log.
// The replacer is swapped once Describe has said which settings are
// secret; until then every setting value counts as secret.
//
// Only the calls go-plugin makes are scrubbed: the log methods, With and
// the named sub-loggers. StandardLogger and StandardWriter pass through
// unscrubbed and must not be handed to plugin output.
type scrubLogger struct {
	hclog.Logger
	scrub *atomic.Pointer[strings.Replacer]
}

var _ hclog.Logger = scrubLogger{}

func newScrubLogger(log hclog.Logger, r *strings.Replacer) scrubLogger {
	l := scrubLogger{Logger: log, scrub: new(atomic.Pointer[strings.Replacer])}
	l.scrub.Store(r)
	return l
}

// setScrub replaces the replacer of l and of every logger made from it.
func (l scrubLogger) setScrub(r *strings.Replacer) { l.scrub.Store(r) }

func (l scrubLogger) Log(level hclog.Level, msg string, args ...any) {
	l.Logger.Log(level, l.clean(msg), l.cleanArgs(args)...)
}

func (l scrubLogger) Trace(msg string, args ...any) {
	l.Logger.Trace(l.clean(msg), l.cleanArgs(args)...)
}

func (l scrubLogger) Debug(msg string, args ...any) {
	l.Logger.Debug(l.clean(msg), l.cleanArgs(args)...)
}

func (l scrubLogger) Info(msg string, args ...any) {
	l.Logger.Info(l.clean(msg), l.cleanArgs(args)...)
}

func (l scrubLogger) Warn(msg string, args ...any) {
	l.Logger.Warn(l.clean(msg), l.cleanArgs(args)...)
}

func (l scrubLogger) Error(msg string, args ...any) {
	l.Logger.Error(l.clean(msg), l.cleanArgs(args)...)
}

func (l scrubLogger) With(args ...any) hclog.Logger {
	return scrubLogger{Logger: l.Logger.With(l.cleanArgs(args)...), scrub: l.scrub}
}

func (l scrubLogger) Named(name string) hclog.Logger {
	return scrubLogger{Logger: l.Logger.Named(name), scrub: l.scrub}
}

func (l scrubLogger) ResetNamed(name string) hclog.Logger {
	return scrubLogger{Logger: l.Logger.ResetNamed(name), scrub: l.scrub}
}

func (l scrubLogger) clean(s string) string { return l.scrub.Load().Replace(s) }

// cleanArgs scrubs keys and values. A value that is not a string is
// replaced by its scrubbed text only when its text holds a value to
// scrub, so numbers, times and durations keep their type otherwise.
func (l scrubLogger) cleanArgs(args []any) []any {
	r := l.scrub.Load()
	out := make([]any, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case string:
			out[i] = r.Replace(v)
		default:
			s := fmt.Sprint(v)
			if c := r.Replace(s); c != s {
				out[i] = c
			} else {
				out[i] = a
			}
		}
	}
	return out
}
