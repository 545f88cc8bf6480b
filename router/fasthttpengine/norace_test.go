//go:build !race

package fasthttpengine_test

const raceEnabled = false
