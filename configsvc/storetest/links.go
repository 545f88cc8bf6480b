package storetest

import (
	"slices"
	"testing"

	"github.com/sluicehq/sluice/configsvc"
)

func (s *suite) testLinks(t *testing.T) {
	setup := func(t *testing.T) (configsvc.Store, *linkCheck) {
		t.Helper()
		st, ctx := s.open(t)
		for _, n := range []string{"orders", "payments", "billing"} {
			mustCreate(ctx, t, st, configsvc.Service(n))
		}
		for _, n := range []string{"redis-common", "kafka"} {
			mustCreate(ctx, t, st, configsvc.Group(n))
		}
		return st, &linkCheck{t: t, st: st, s: s}
	}

	t.Run("BothDirections", func(t *testing.T) {
		st, c := setup(t)
		ctx := s.ctx(t)
		for _, l := range [][2]string{{"orders", "redis-common"}, {"payments", "redis-common"}, {"orders", "kafka"}, {"orders", "kafka"}} {
			if err := st.Link(ctx, l[0], l[1]); err != nil {
				t.Fatalf("Link(%s, %s): %v", l[0], l[1], err)
			}
		}
		c.links("orders", "kafka", "redis-common")
		c.links("payments", "redis-common")
		c.links("billing")
		c.users("redis-common", "orders", "payments")
		c.users("kafka", "orders")

		if err := st.Unlink(ctx, "orders", "redis-common"); err != nil {
			t.Fatalf("Unlink: %v", err)
		}
		c.links("orders", "kafka")
		c.users("redis-common", "payments")
		wantErr(t, "second Unlink", st.Unlink(ctx, "orders", "redis-common"), configsvc.ErrNotFound)
		wantErr(t, "Unlink never linked", st.Unlink(ctx, "billing", "kafka"), configsvc.ErrNotFound)
	})

	t.Run("Missing", func(t *testing.T) {
		st, _ := setup(t)
		ctx := s.ctx(t)
		wantErr(t, "Link to a missing group", st.Link(ctx, "orders", "nope"), configsvc.ErrNotFound)
		wantErr(t, "Link from a missing service", st.Link(ctx, "nope", "kafka"), configsvc.ErrNotFound)
		wantErr(t, "Unlink missing service", st.Unlink(ctx, "nope", "kafka"), configsvc.ErrNotFound)
	})

	t.Run("DeleteLinkedGroup", func(t *testing.T) {
		st, c := setup(t)
		ctx := s.ctx(t)
		if err := st.Link(ctx, "orders", "kafka"); err != nil {
			t.Fatal(err)
		}
		wantErr(t, "Delete of a linked group", st.Delete(ctx, configsvc.Group("kafka")), configsvc.ErrConflict)
		c.users("kafka", "orders")
		if err := st.Unlink(ctx, "orders", "kafka"); err != nil {
			t.Fatal(err)
		}
		if err := st.Delete(ctx, configsvc.Group("kafka")); err != nil {
			t.Fatalf("Delete of an unlinked group: %v", err)
		}
	})

	t.Run("DeleteServiceDropsItsLinks", func(t *testing.T) {
		st, c := setup(t)
		ctx := s.ctx(t)
		for _, svc := range []string{"orders", "payments"} {
			if err := st.Link(ctx, svc, "kafka"); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.Delete(ctx, configsvc.Service("orders")); err != nil {
			t.Fatalf("Delete(service/orders): %v", err)
		}
		c.users("kafka", "payments")
		mustCreate(ctx, t, st, configsvc.Service("orders"))
		c.links("orders")
	})
}

type linkCheck struct {
	t  *testing.T
	st configsvc.Store
	s  *suite
}

// links checks both Head(svc).Links.
func (c *linkCheck) links(svc string, want ...string) {
	c.t.Helper()
	h, err := c.st.Head(c.s.ctx(c.t), configsvc.Service(svc))
	if err != nil {
		c.t.Fatalf("Head(%s): %v", svc, err)
	}
	if len(h.Links) != len(want) || (len(want) > 0 && !slices.Equal(h.Links, want)) {
		c.t.Fatalf("Head(%s).Links = %v, want %v", svc, h.Links, want)
	}
}

// users checks Users(group).
func (c *linkCheck) users(group string, want ...string) {
	c.t.Helper()
	got, err := c.st.Users(c.s.ctx(c.t), group)
	if err != nil {
		c.t.Fatalf("Users(%s): %v", group, err)
	}
	if len(got) != len(want) || (len(want) > 0 && !slices.Equal(got, want)) {
		c.t.Fatalf("Users(%s) = %v, want %v", group, got, want)
	}
}
