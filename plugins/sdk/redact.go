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
// secret. Longer values are replaced first, so a value that contains
// another is not half-replaced.
func NewRedactor(settings map[string]string, secret func(name string) bool) *strings.Replacer {
	type pair struct{ value, name string }
	var pairs []pair
	for name, value := range settings {
		if value == "" || (!secret(name) && len(value) < minRedactLen) {
			continue
		}
		pairs = append(pairs, pair{value, name})
	}
	sort.Slice(pairs, func(i, j int) bool {
		if len(pairs[i].value) != len(pairs[j].value) {
			return len(pairs[i].value) > len(pairs[j].value)
		}
		return pairs[i].name < pairs[j].name
	})
	args := make([]string, 0, 2*len(pairs))
	for _, p := range pairs {
		args = append(args, p.value, "<value of "+p.name+">")
	}
	return strings.NewReplacer(args...)
}
