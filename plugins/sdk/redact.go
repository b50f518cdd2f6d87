package sdk

import (
	"sort"
	"strings"
)

// minRedactLen is the shortest non-secret setting value that a Redactor
// replaces. Shorter values ("1", "us") occur in ordinary text too often to
// replace without garbling it, and they are not secrets. Secret values are
// replaced at any length.
const minRedactLen = 4

// NewRedactor returns a replacer that swaps every setting value found in a
// message for a marker naming the setting, such as <value of token>, so a
// message can say which setting was at fault without repeating it. secret
// reports whether a setting is secret; unknown settings should count as
// secret.
//
// Setting names are left as they are, even where a value occurs inside
// one (a key named "plugintest" inside the setting name
// "plugintest_unknown"), unless the value is a secret. Longer strings are
// matched first, so a value that contains another is not half-replaced.
func NewRedactor(settings map[string]string, secret func(name string) bool) *strings.Replacer {
	repl := make(map[string]string)
	for name := range settings {
		repl[name] = name
	}
	for name, value := range settings {
		if value == "" || (!secret(name) && len(value) < minRedactLen) {
			continue
		}
		if _, isName := repl[value]; isName && !secret(name) {
			continue
		}
		repl[value] = "<value of " + name + ">"
	}
	olds := make([]string, 0, len(repl))
	for old := range repl {
		olds = append(olds, old)
	}
	sort.Slice(olds, func(i, j int) bool {
		if len(olds[i]) != len(olds[j]) {
			return len(olds[i]) > len(olds[j])
		}
		return olds[i] < olds[j]
	})
	args := make([]string, 0, 2*len(olds))
	for _, old := range olds {
		args = append(args, old, repl[old])
	}
	return strings.NewReplacer(args...)
}
