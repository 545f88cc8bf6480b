package storetest

import (
	"context"
	"errors"
	"fmt"

	"github.com/sluicehq/sluice/configsvc"
)

// Split returns a store that writes through w and reads through r, two
// stores on the same data (two admin servers on one ZooKeeper ensemble):
// Create, Delete, Publish, CreateGray, UpdateGray, EndGray, Link, Unlink,
// Register, RemoveInstance, BumpGeneration and the record writes (Put,
// Create, Delete, Append) go to w; List, Head, File, Snapshot, Revisions,
// Revision, Gray, Grays, Watch, Users, Instances, WatchInstances,
// Generation and the record reads (Get, List, Scan) to r. Run the suite on
// it to check that every answer
// holds across servers, not only within one. Close closes both.
func Split(w, r configsvc.Store) configsvc.Store { return split{w: w, r: r} }

type split struct{ w, r configsvc.Store }

var _ configsvc.Store = split{}

func (s split) Create(ctx context.Context, ref configsvc.Ref) error { return s.w.Create(ctx, ref) }
func (s split) Delete(ctx context.Context, ref configsvc.Ref) error { return s.w.Delete(ctx, ref) }
func (s split) List(ctx context.Context, kind configsvc.Kind) ([]string, error) {
	return s.r.List(ctx, kind)
}
func (s split) Head(ctx context.Context, ref configsvc.Ref) (configsvc.Head, error) {
	return s.r.Head(ctx, ref)
}
func (s split) Publish(ctx context.Context, ref configsvc.Ref, cs configsvc.Changeset) (configsvc.Revision, error) {
	return s.w.Publish(ctx, ref, cs)
}
func (s split) File(ctx context.Context, ref configsvc.Ref, name string, rev int64) ([]byte, configsvc.FileMeta, error) {
	return s.r.File(ctx, ref, name, rev)
}
func (s split) Snapshot(ctx context.Context, ref configsvc.Ref, rev int64) (configsvc.Snapshot, error) {
	return s.r.Snapshot(ctx, ref, rev)
}
func (s split) Revisions(ctx context.Context, ref configsvc.Ref, before int64, limit int) ([]configsvc.Revision, error) {
	return s.r.Revisions(ctx, ref, before, limit)
}
func (s split) Revision(ctx context.Context, ref configsvc.Ref, n int64) (configsvc.Revision, error) {
	return s.r.Revision(ctx, ref, n)
}
func (s split) Watch(ctx context.Context, ref configsvc.Ref, from int64, opts ...configsvc.WatchOption) <-chan configsvc.Event {
	return s.r.Watch(ctx, ref, from, opts...)
}
func (s split) CreateGray(ctx context.Context, ref configsvc.Ref, g configsvc.Gray) (configsvc.Gray, error) {
	return s.w.CreateGray(ctx, ref, g)
}
func (s split) UpdateGray(ctx context.Context, ref configsvc.Ref, id string, version int64, fn func(*configsvc.Gray) error) (configsvc.Gray, error) {
	return s.w.UpdateGray(ctx, ref, id, version, fn)
}
func (s split) EndGray(ctx context.Context, ref configsvc.Ref, id string, version int64, end configsvc.GrayEnd) (configsvc.Gray, *configsvc.Revision, error) {
	return s.w.EndGray(ctx, ref, id, version, end)
}
func (s split) Gray(ctx context.Context, ref configsvc.Ref, id string) (configsvc.Gray, error) {
	return s.r.Gray(ctx, ref, id)
}
func (s split) Grays(ctx context.Context, ref configsvc.Ref) ([]configsvc.Gray, error) {
	return s.r.Grays(ctx, ref)
}
func (s split) Link(ctx context.Context, svc, group string) error { return s.w.Link(ctx, svc, group) }
func (s split) Unlink(ctx context.Context, svc, group string) error {
	return s.w.Unlink(ctx, svc, group)
}
func (s split) Users(ctx context.Context, group string) ([]string, error) {
	return s.r.Users(ctx, group)
}
func (s split) Register(ctx context.Context, inst configsvc.Instance) (configsvc.Lease, error) {
	return s.w.Register(ctx, inst)
}
func (s split) RemoveInstance(ctx context.Context, svc, id string) error {
	return s.w.RemoveInstance(ctx, svc, id)
}
func (s split) Instances(ctx context.Context, svc string) ([]configsvc.Instance, error) {
	return s.r.Instances(ctx, svc)
}
func (s split) WatchInstances(ctx context.Context, svc string) <-chan configsvc.InstancesEvent {
	return s.r.WatchInstances(ctx, svc)
}
func (s split) Records() configsvc.RecordStore {
	return splitRecords{w: s.w.Records(), r: s.r.Records()}
}
func (s split) Generation(ctx context.Context) (configsvc.StoreGeneration, error) {
	return s.r.Generation(ctx)
}
func (s split) BumpGeneration(ctx context.Context, reason string) (configsvc.StoreGeneration, error) {
	return s.w.BumpGeneration(ctx, reason)
}
func (s split) Ping(ctx context.Context) error {
	return errors.Join(s.w.Ping(ctx), s.r.Ping(ctx))
}
func (s split) Close() error { return errors.Join(s.w.Close(), s.r.Close()) }

type splitRecords struct{ w, r configsvc.RecordStore }

func (s splitRecords) Put(ctx context.Context, collection, id string, data []byte) error {
	return s.w.Put(ctx, collection, id, data)
}
func (s splitRecords) Create(ctx context.Context, collection, id string, data []byte) error {
	return s.w.Create(ctx, collection, id, data)
}
func (s splitRecords) Get(ctx context.Context, collection, id string) ([]byte, error) {
	return s.r.Get(ctx, collection, id)
}
func (s splitRecords) Delete(ctx context.Context, collection, id string) error {
	return s.w.Delete(ctx, collection, id)
}
func (s splitRecords) List(ctx context.Context, collection string) ([]configsvc.Record, error) {
	return s.r.List(ctx, collection)
}
func (s splitRecords) Append(ctx context.Context, collection string, data []byte, keep int) (int64, error) {
	return s.w.Append(ctx, collection, data, keep)
}
func (s splitRecords) Scan(ctx context.Context, collection string, before int64, limit int) ([]configsvc.Record, error) {
	return s.r.Scan(ctx, collection, before, limit)
}

// The Importer methods write through w and list collections through r;
// each fails with ErrInvalid when that store is not a configsvc.Importer.
var _ configsvc.Importer = split{}

func asImporter(st configsvc.Store) (configsvc.Importer, error) {
	imp, ok := st.(configsvc.Importer)
	if !ok {
		return nil, fmt.Errorf("storetest: %T is not a configsvc.Importer: %w", st, configsvc.ErrInvalid)
	}
	return imp, nil
}

func (s split) ImportBase(ctx context.Context, ref configsvc.Ref, rev configsvc.Revision, files map[string]configsvc.FileMeta, content map[string][]byte) error {
	imp, err := asImporter(s.w)
	if err != nil {
		return err
	}
	return imp.ImportBase(ctx, ref, rev, files, content)
}
func (s split) ImportRevision(ctx context.Context, ref configsvc.Ref, rev configsvc.Revision) error {
	imp, err := asImporter(s.w)
	if err != nil {
		return err
	}
	return imp.ImportRevision(ctx, ref, rev)
}
func (s split) ImportGray(ctx context.Context, ref configsvc.Ref, g configsvc.Gray) error {
	imp, err := asImporter(s.w)
	if err != nil {
		return err
	}
	return imp.ImportGray(ctx, ref, g)
}
func (s split) Collections(ctx context.Context) (records, logs []string, err error) {
	imp, err := asImporter(s.r)
	if err != nil {
		return nil, nil, err
	}
	return imp.Collections(ctx)
}
