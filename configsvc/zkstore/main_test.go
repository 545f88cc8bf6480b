package zkstore_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/configsvc/testkit"
)

// TestMain fails the package if any goroutine outlives the tests: every
// store is closed by its test's cleanup, and Close must leave nothing
// behind (the ZooKeeper client's own goroutines included).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, testkit.LeakOptions()...)
}
