package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/router/routesfile"
)

func main() {
	path := flag.String("store", "", "bbolt file")
	routes := flag.String("routes", "", "routes.yaml to publish")
	flag.Parse()
	if err := seed(*path, *routes); err != nil {
		log.Fatal(err)
	}
}

func seed(path, routes string) error {
	content, err := os.ReadFile(routes)
	if err != nil {
		return err
	}
	bolt, err := boltstore.Open(path, boltstore.Options{})
	if err != nil {
		return err
	}
	defer bolt.Close()
	s := configsvc.Validating(bolt, configsvc.EachFile(routesfile.Validate))
	ctx := context.Background()
	ref := configsvc.Service(configsvc.SystemService)
	if err := s.Create(ctx, ref); err != nil && !errors.Is(err, configsvc.ErrConflict) {
		return err
	}
	head, err := s.Head(ctx, ref)
	if err != nil {
		return err
	}
	_, err = s.Publish(ctx, ref, configsvc.Changeset{
		Base: head.Revision, Author: "bench", Message: "benchmark routes",
		Changes: []configsvc.Change{{File: configsvc.RoutesFile, Content: content}},
	})
	if err != nil {
		return fmt.Errorf("publish %s: %w", routes, err)
	}
	return nil
}
