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
	if _, err := routesfile.Parse(content); err != nil {
		return fmt.Errorf("%s: %w", routes, err)
	}
	s, err := boltstore.Open(path, boltstore.Options{})
	if err != nil {
		return err
	}
	defer s.Close()
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
	return err
}
