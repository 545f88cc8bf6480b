package loopengine_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/configsvc/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, testkit.LeakOptions()...)
}
