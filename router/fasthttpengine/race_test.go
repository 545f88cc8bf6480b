//go:build race

package fasthttpengine_test

// raceEnabled: the race detector allocates (and sync.Pool drops items at
// random), so allocation counts mean nothing under -race.
const raceEnabled = true
