//go:build !race

package matcher

const raceEnabledMatcher = false
