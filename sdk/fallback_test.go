package sdk_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/sdk"
)

// TestRestartAfterBadPublishUsesCachedValue restarts a service after a bad
// publish: its binding starts from the last good value kept in the cache
// and reports the rejection, instead of starting empty.
func TestRestartAfterBadPublishUsesCachedValue(t *testing.T) {
	e := mustBolt(t)
	svc := configsvc.Service("orders")
	mustCreate(t, e.pub, svc)
	mustPublish(t, e.pub, svc, map[string]string{"db.yaml": "host: a\nport: 5432\n"})
	cacheDir := t.TempDir()

	cfg := e.config(t, "orders", "orders-1")
	cfg.CacheDir = cacheDir
	first := mustOpen(t, cfg)
	if got := sdk.Bind[DBConfig](first, "db.yaml").Load(); got.Port != 5432 {
		t.Fatalf("first run: %+v", got)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	bad := mustPublish(t, e.pub, svc, map[string]string{"db.yaml": "host: a\nport: 0\n"})
	second := mustOpen(t, cfg)
	db := sdk.Bind[DBConfig](second, "db.yaml")
	if got := db.Load(); got != (DBConfig{"a", 5432}) {
		t.Fatalf("after restart Load() = %+v, want the cached good value", got)
	}
	if err := db.Err(); err == nil || !strings.Contains(err.Error(), "outside 1-65535") {
		t.Fatalf("Err() = %v, want the validation failure", err)
	}
	if got, _ := second.File("db.yaml"); string(got) != "host: a\nport: 5432\n" {
		t.Fatalf("File(db.yaml) = %q, want the cached good content", got)
	}
	testkit.EventuallyTrue(t, 5*time.Second, "instance shows the rejection", func() bool {
		in, ok := instance(e.pub, "orders", "orders-1")
		return ok && in.Status == configsvc.StatusRejected && in.Rejected == bad
	})
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
	// A second restart still finds the good content in the cache.
	third := mustOpen(t, cfg)
	if got := sdk.Bind[DBConfig](third, "db.yaml").Load(); got != (DBConfig{"a", 5432}) {
		t.Fatalf("second restart: Load() = %+v, want the cached good value", got)
	}
	// Fixing the file applies normally.
	mustPublish(t, e.pub, svc, map[string]string{"db.yaml": "host: b\nport: 1\n"})
	db3 := sdk.Bind[DBConfig](third, "db.yaml")
	testkit.EventuallyTrue(t, 5*time.Second, "fixed value", func() bool { return db3.Load() == DBConfig{"b", 1} && db3.Err() == nil })
}

// TestBindMissingFile binds a file that does not exist yet: the zero value
// and ErrNotFound until it is published.
func TestBindMissingFile(t *testing.T) {
	e := mustBolt(t)
	svc := configsvc.Service("orders")
	mustCreate(t, e.pub, svc)
	mustPublish(t, e.pub, svc, map[string]string{"other.txt": "x"})
	c := mustOpen(t, e.config(t, "orders", ""))
	db := sdk.Bind[DBConfig](c, "db.yaml")
	if got := db.Load(); got != (DBConfig{}) {
		t.Fatalf("Load() = %+v, want the zero value", got)
	}
	if err := db.Err(); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("Err() = %v, want not found", err)
	}
	mustPublish(t, e.pub, svc, map[string]string{"db.yaml": "host: h\nport: 1\n"})
	testkit.EventuallyTrue(t, 5*time.Second, "value once published", func() bool { return db.Load() == DBConfig{"h", 1} })
	if err := db.Err(); err != nil {
		t.Fatalf("Err() = %v after publish", err)
	}
}
