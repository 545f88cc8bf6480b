package boltstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/boltstore/bolttest"
)

// TestCampaignLeadsAtOnce: the process holding the file is the leader of
// every election, until it resigns or closes the store.
func TestCampaignLeadsAtOnce(t *testing.T) {
	st := bolttest.MustOpen(t, boltstore.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rctx, resign := context.WithCancel(ctx)
	lost, err := st.Campaign(rctx, "rollouts")
	if err != nil {
		t.Fatal(err)
	}
	other, err := st.Campaign(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
		t.Fatal("leadership ended at once")
	default:
	}
	resign()
	waitClosed(t, lost, "the lost channel after resigning")
	if _, err := st.Campaign(ctx, "a/b"); !errors.Is(err, configsvc.ErrInvalid) {
		t.Fatalf("a bad election name: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, other, "the lost channel after Close")
	if _, err := st.Campaign(ctx, "rollouts"); !errors.Is(err, configsvc.ErrClosed) {
		t.Fatalf("campaign on a closed store: %v", err)
	}
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: not closed", what)
	}
}
