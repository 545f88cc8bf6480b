package httpapi

import (
	"os"
	"sync"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/boltstore/bolttest"
)

// TestNewLeavesGinDebugMode: New, called from several goroutines at once
// (the race detector watches gin's mode), leaves gin's debug mode, which
// prints routes to stdout, unless GIN_MODE chose a mode. No TestMain of
// this package sets gin's mode.
func TestNewLeavesGinDebugMode(t *testing.T) {
	store := bolttest.MustOpen(t, boltstore.Options{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			srv, err := New(Config{Store: store})
			if err != nil {
				t.Error(err)
				return
			}
			_ = srv.Close()
		}()
	}
	wg.Wait()
	want := os.Getenv(gin.EnvGinMode)
	if want == "" {
		want = gin.ReleaseMode
	}
	if got := gin.Mode(); got != want {
		t.Fatalf("gin mode after New = %q, want %q", got, want)
	}
}
