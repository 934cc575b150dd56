package sqlplace

import (
	"fmt"
	"strings"
)

// Rebind returns q with its ? placeholders numbered for the dialect named
// dialect, as mqdatasource.Dialect.Name reports it: $1, $2 ... for
// "postgres", @p1, @p2 ... for "sqlserver". For any other name ("mysql")
// q is returned as it is. Every ? counts: q must have none inside string
// literals, quoted identifiers or comments.
func Rebind(dialect, q string) string {
	prefix := map[string]string{"postgres": "$", "sqlserver": "@p"}[dialect]
	if prefix == "" {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "%s%d", prefix, n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
