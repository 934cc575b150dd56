//go:build race

package exactlyonce

const raceEnabled = true
