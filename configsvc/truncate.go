package configsvc

import "unicode/utf8"

// Truncate returns s when it is at most n bytes long; otherwise the longest
// prefix of s of at most n bytes that ends on a UTF-8 character boundary,
// followed by "…". Errors, logs, audit entries and instance statuses use it
// to bound what they repeat of their input.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	n = max(n, 0)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
