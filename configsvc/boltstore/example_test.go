package boltstore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/boltstore"
)

// Open a store, create a service, publish two revisions and read the first
// one back.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "sluice-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	s, err := boltstore.Open(filepath.Join(dir, "sluice.db"), boltstore.Options{})
	if err != nil {
		panic(err)
	}
	defer s.Close()

	ctx := context.Background()
	orders := configsvc.Service("orders")
	if err := s.Create(ctx, orders); err != nil {
		panic(err)
	}
	for base, port := range []string{"5432", "6432"} {
		_, err := s.Publish(ctx, orders, configsvc.Changeset{
			Base: int64(base), Author: "alice", Message: "db port " + port,
			Changes: []configsvc.Change{{File: "db.yaml", Content: []byte("port: " + port + "\n")}},
		})
		if err != nil {
			panic(err)
		}
	}
	old, _, err := s.File(ctx, orders, "db.yaml", 1)
	if err != nil {
		panic(err)
	}
	head, err := s.Head(ctx, orders)
	if err != nil {
		panic(err)
	}
	fmt.Printf("head revision %d; revision 1 had %s", head.Revision, old)

	_, err = s.Publish(ctx, orders, configsvc.Changeset{Base: 1, Changes: []configsvc.Change{{File: "db.yaml", Content: []byte("port: 1\n")}}})
	fmt.Println(err)
	// Output:
	// head revision 2; revision 1 had port: 5432
	// boltstore: publish service/orders: head is at revision 2, not 1: conflict
}
