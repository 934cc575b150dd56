package sqlplace

import "testing"

func TestRebind(t *testing.T) {
	const q = "UPDATE t SET a = ? WHERE b = ?"
	for _, tc := range []struct{ dialect, want string }{
		{"mysql", q},
		{"", q},
		{"postgres", "UPDATE t SET a = $1 WHERE b = $2"},
		{"sqlserver", "UPDATE t SET a = @p1 WHERE b = @p2"},
	} {
		if got := Rebind(tc.dialect, q); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.dialect, got, tc.want)
		}
	}
	if got := Rebind("postgres", "SELECT 1"); got != "SELECT 1" {
		t.Errorf("no placeholders: got %q", got)
	}
}
