//go:build race

package matcher

const raceEnabledMatcher = true
