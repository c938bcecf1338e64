//! The version set of the kevo storage engine: which table files make up
//! the tree, level by level, and the counters that must survive a crash.
//!
//! The engine never changes its set of tables in place. A flush or a
//! compaction describes its result as a [`VersionEdit`] (tables added and
//! removed per level, the WAL segments no longer needed, the last sequence
//! number) and hands it to [`VersionSet::log_and_apply`], which appends it to
//! the *manifest* as one record, syncs, and only then installs the new
//! immutable [`Version`]. Readers pin an `Arc<Version>`; a table file may be
//! deleted once no live version refers to it
//! ([`VersionSet::take_obsolete_tables`]).
//!
//! **Keyspaces** (RocksDB's column families) are independent key spaces in
//! one database, each with its own levels, [`Version`] and log number,
//! sharing one WAL, one seqno sequence, the file counter and one manifest.
//! The default keyspace (`kevo_core::DEFAULT_KEYSPACE`, id 0) is in every
//! database and is all one written before keyspaces holds; it can never be
//! dropped. [`VersionSet::create_keyspace`] and
//! [`VersionSet::drop_keyspace`] write one synced edit each; ids are never
//! reused, and a dropped keyspace's tables become obsolete. An edit changes
//! the tables of one keyspace ([`VersionEdit::keyspace`]);
//! [`VersionSet::current`] is the default keyspace's version and
//! [`VersionSet::current_in`] any keyspace's.
//!
//! - [`VersionSet`]: opening (replay of the manifest `CURRENT` names, then a
//!   fresh manifest), edits, keyspaces, the file counter shared by tables,
//!   manifests and OPTIONS files, manifest rewrites, obsolete tables.
//! - [`Version`] and [`TableMeta`]: a snapshot of the tree and what it
//!   records of each table; lookups by key range and by key.
//! - [`VersionEdit`]: one change and its encoding.
//! - [`KeyspaceInfo`] and [`RecoveredKeyspace`]: what the set reports, and
//!   a manifest records, of a keyspace.
//!
//! The manifest is written with the WAL's record framing
//! ([`kevo_wal::log`]), with its own magic. The byte format and the
//! crash-safety argument are in `docs/format/manifest.md`. Errors are
//! [`kevo_core::Error`]: damage is `Corruption` naming the file and offset.
//!
//! ```
//! use std::path::Path;
//! use std::sync::Arc;
//! use kevo_core::{InternalKey, MemFs, ValueKind};
//! use kevo_manifest::{ManifestOptions, TableMeta, VersionEdit, VersionSet};
//!
//! # fn main() -> kevo_core::Result<()> {
//! let fs = Arc::new(MemFs::new());
//! let dir = Path::new("/db");
//! let (set, recovery) = VersionSet::open(fs.clone(), dir, ManifestOptions::default())?;
//! assert!(recovery.created);
//!
//! // A flush wrote table file `number` holding keys "a".."k".
//! let number = set.new_file_number();
//! let table = TableMeta {
//!     number,
//!     file_size: 4096,
//!     smallest: InternalKey::new(b"a", 9, ValueKind::Put),
//!     largest: InternalKey::new(b"k", 3, ValueKind::Delete),
//!     smallest_seqno: 3,
//!     largest_seqno: 9,
//!     entries: 7,
//!     tombstones: 1,
//!     range_tombstones: 0,
//! };
//! let edit = VersionEdit {
//!     added: vec![(0, table)],
//!     last_seqno: Some(9),
//!     ..VersionEdit::default()
//! };
//! let version = set.log_and_apply(edit)?; // durable on return
//! assert_eq!(version.level(0).len(), 1);
//! drop((set, version));
//!
//! let (set, _recovery) = VersionSet::open(fs, dir, ManifestOptions::default())?;
//! assert_eq!(set.current().level(0)[0].number, number);
//! assert_eq!(set.last_seqno(), 9);
//! assert!(set.new_file_number() > number);
//!
//! // A keyspace of its own: an empty version, its own log number; an edit
//! // naming it changes its tables only.
//! let index = set.create_keyspace("index", 1)?;
//! assert_eq!(set.current_in(index).map(|v| v.table_count()), Some(0));
//! assert_eq!(set.keyspace_log_number(index), Some(1));
//! set.drop_keyspace(index)?;
//! assert!(set.current_in(index).is_none());
//! # Ok(())
//! # }
//! ```

mod edit;
mod keyspaces;
mod meta;
mod names;
mod set;
mod version;
mod wals;

pub use edit::{EDIT_FORMAT_VERSION, EDIT_FORMAT_VERSION_MIN, VersionEdit};
pub use keyspaces::{KeyspaceInfo, RecoveredKeyspace};
pub use meta::{NUM_LEVELS, TableMeta};
pub use names::{
    CURRENT_FILE, CURRENT_TEMP_FILE, manifest_file_name, parse_manifest_file_name,
    parse_table_file_name, table_file_name,
};
pub use set::{
    EditRefused, FILE_NUMBERS_RESERVED_AHEAD, MANIFEST_MAGIC, ManifestOptions, ManifestRecovery,
    ManifestStats, RecoveredManifest, VersionSet,
};
pub use version::Version;
pub use wals::WalSegments;
