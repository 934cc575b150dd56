//go:build race

package exactlyoncev5_test

const raceEnabled = true
