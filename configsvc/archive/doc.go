// Package archive moves a whole Sluice store through a portable, versioned,
// checksummed stream: Export writes one from any configsvc.Store, Import
// writes one into any store that is also a configsvc.Importer (both
// zkstore and boltstore are), so that a bbolt store becomes a ZooKeeper
// one and back (`sluice export`, `sluice import`, `sluice migrate`).
//
// # What an archive holds
//
// Every service and shared group with every revision its store retains:
// the oldest one with the full manifest and content of its files, each
// later one with its changes and their content, all with their number,
// author, time, message, rollback source and publish ids; the grays of
// each (active and ended, with content); the links between services and
// groups; every record collection (API tokens, which the store keeps
// hashed, sessions, debug pins, approval policies and changes, proxy
// state …) and every append-only log (the audit log) in order. File
// content travels as the bytes the store holds, never decoded or
// decrypted. Live instances are not exported: they register again.
//
// # Format, version 1
//
// An archive is UTF-8 text, one line per item, so that it streams and
// can be inspected with ordinary tools. The first line is the magic
// line:
//
//	sluice-archive 1
//
// Every other line is a record: 64 lowercase hex digits, one space, one
// JSON object, a newline. The hex digits are the chained checksum
// SHA-256(previous ‖ json), where previous is the 32-byte checksum of
// the record before (for the first record, the SHA-256 of the magic line
// with its newline) and json the object's bytes as written. A changed,
// missing, repeated or reordered record therefore fails the check at
// that line, before anything of it is written. Byte strings (content,
// record data) are base64 in JSON, as encoding/json writes []byte.
//
// The object's "type" field says what it is; records come in this order:
//
//	header   {"type":"header","format":1,"id":ID,"created":TIME,"generation":{…}}
//	ref      {"type":"ref","ref":"service/NAME","head":N}                 one per service, then group, sorted
//	base     {"type":"base","ref":R,"revision":{…},"files":[FileMeta…]}  the oldest retained revision, when N > 0
//	file     {"type":"file","ref":R,"name":F,"content":B64}              one per file of the base, in files order
//	revision {"type":"revision","ref":R,"revision":{… with content}}      each later revision, in order, up to N
//	gray     {"type":"gray","ref":R,"gray":{… with content}}              each gray of the ref
//	link     {"type":"link","service":S,"group":G}
//	record   {"type":"record","collection":C,"id":ID,"data":B64}
//	log      {"type":"log","collection":C,"count":K}                       then K entries
//	entry    {"type":"entry","collection":C,"seq":SEQ,"data":B64}         oldest first
//	end      {"type":"end","counts":{…}}                                   the last line
//
// Revision, FileMeta and Gray objects are the JSON forms of the
// configsvc types (a revision's generation is left out: the importing
// store has its own). A reader accepts format 1 only and refuses an
// unknown record type; fields it does not know are ignored, so a later
// minor addition stays readable. An archive without its end record is
// truncated and refused at its end.
//
// # Limits
//
// Reading is bounded whatever the archive says: a line is at most
// MaxLineBytes, a base's content at most MaxBaseBytes in total, and every
// decoded value is checked against the store's own limits
// (configsvc.MaxFileSize, MaxChangesetSize, MaxFilesPerService,
// MaxRecordSize, …) before it is kept; errors name the line, the field
// and the limit.
//
// # Import
//
// Import refuses a store that holds anything unless told how to merge
// (MergeKeep), and is resumable: it records its progress in the target
// (collection ImportsCollection, keyed by the archive's id), writes every
// revision and gray atomically, and skips what an earlier, interrupted
// run of the same archive already wrote, so running it again after a
// kill ends with the same store as an uninterrupted run: no duplicates,
// no half-written revision. When done it bumps the target's generation
// (configsvc.Store.BumpGeneration) so that servers, proxies and SDKs
// reload what it holds.
package archive
