package testkit

import "go.uber.org/goleak"

// LeakOptions are the goleak options every package's TestMain passes to
// goleak.VerifyTestMain: the goroutines that outlive a test by design and
// are not leaks. Today that is fasthttp's process-wide Date header updater,
// which the first fasthttp server starts once and never stops (the proxy's
// fast engine, also inside an admin server that embeds the proxy).
func LeakOptions() []goleak.Option {
	return []goleak.Option{goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1")}
}
