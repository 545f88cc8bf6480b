package fasthttpengine_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/configsvc/testkit"
)

func TestMain(m *testing.M) {
	// fasthttp keeps one goroutine per process refreshing its Date header.
	goleak.VerifyTestMain(m, testkit.LeakOptions()...)
}
