package config

import "github.com/agext/levenshtein"

// maxSuggestDistance is the largest edit distance at which a name counts as
// a typo of a known one: two edits cover a transposition ("key_nmae") or a
// dropped and a doubled letter, while three start matching unrelated short
// names.
const maxSuggestDistance = 2

// suggest returns the candidate closest to given, or "" when none is within
// maxSuggestDistance. Ties go to the earlier candidate.
func suggest(given string, candidates []string) string {
	best, bestDist := "", maxSuggestDistance+1
	for _, c := range candidates {
		if d := levenshtein.Distance(given, c, nil); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}
