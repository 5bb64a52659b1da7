// Package suggest finds the valid name a user most likely meant, for
// "did you mean" hints in config and app errors.
package suggest

import "strings"

// Nearest returns the candidate closest to name by edit distance, ignoring
// case and treating '-' and '_' alike, or "" when none is close enough to be
// a plausible misspelling.
func Nearest(name string, candidates []string) string {
	norm := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "-", "_") }
	n := norm(name)
	best, bestDist := "", -1
	for _, c := range candidates {
		d := editDistance(n, norm(c))
		if len(n) >= 3 && (strings.HasPrefix(norm(c), n) || strings.HasPrefix(n, norm(c))) {
			d = min(d, 2) // "work" → "workers", "threads2" → "threads"
		}
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	if bestDist < 0 || bestDist > max(2, len(n)/3) {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
