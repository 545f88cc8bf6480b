package access

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

// TestIdempotencyLifecycle: a claimed key is in progress for another
// request with it; past its claim time with no answer its outcome is
// unknown; an answer is replayed only to the credential that got it;
// after IdempotencyTTL the key is free again and Sweep removes it.
func TestIdempotencyLifecycle(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	recs := newMemRecords()
	d := NewIdempotency(recs, clock.Now)
	req := KeyedRequest{Credential: "slt_secret", Method: "POST", Path: "/v1/services/orders/revisions", Key: "k1", Parts: [][]byte{[]byte("body")}}

	claim, ans, err := d.Begin(ctx, req, time.Minute)
	if err != nil || claim == nil || ans != nil {
		t.Fatalf("first Begin = %v, %v, %v; want a claim", claim, ans, err)
	}
	if _, _, err := d.Begin(ctx, req, time.Minute); !errors.Is(err, ErrInProgress) {
		t.Fatalf("Begin while the first runs = %v; want ErrInProgress", err)
	}
	clock.Advance(2 * time.Minute)
	if _, _, err := d.Begin(ctx, req, time.Minute); !errors.Is(err, configsvc.ErrOutcomeUnknown) {
		t.Fatalf("Begin after the first gave up = %v; want ErrOutcomeUnknown", err)
	}
	if err := claim.Finish(ctx, Answer{Status: 201, Header: http.Header{"Etag": {`"7"`}}, Body: []byte(`{"revision":7}`)}); err != nil {
		t.Fatal(err)
	}
	_, ans, err = d.Begin(ctx, req, time.Minute)
	if err != nil || ans == nil || ans.Status != 201 || string(ans.Body) != `{"revision":7}` || ans.Header.Get("ETag") != `"7"` {
		t.Fatalf("Begin after the answer = %+v, %v; want it replayed", ans, err)
	}
	other := req
	other.Parts = [][]byte{[]byte("another body")}
	if _, _, err := d.Begin(ctx, other, time.Minute); !errors.Is(err, ErrKeyReused) || !errors.Is(err, configsvc.ErrInvalid) {
		t.Fatalf("Begin with another body = %v; want ErrKeyReused (invalid)", err)
	}
	stranger := req
	stranger.Credential = "slt_other"
	if c, ans, err := d.Begin(ctx, stranger, time.Minute); err != nil || c == nil || ans != nil {
		t.Fatalf("another credential's Begin = %v, %v, %v; want its own claim", c, ans, err)
	} else if err := c.Release(ctx); err != nil {
		t.Fatal(err)
	}

	clock.Advance(IdempotencyTTL)
	if n, err := d.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v; want the expired key removed", n, err)
	}
	if c, ans, err := d.Begin(ctx, req, time.Minute); err != nil || c == nil || ans != nil {
		t.Fatalf("Begin after expiry = %v, %v, %v; want a new claim", c, ans, err)
	}
}
