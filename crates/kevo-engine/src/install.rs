//! Applying a version edit: the one place that logs it to the manifest,
//! installs the new version in the read state, retires the files it made
//! obsolete, and removes the new tables of an edit that was refused.
//!
//! Flushes and compactions both end here:
//! - the manifest takes the edit: the version is installed (for a flush,
//!   with its memtable dropped from the read set), then WAL segments below
//!   the edit's log number and tables no live version names are deleted;
//! - the manifest refuses it as stale (a racing change; nothing written):
//!   the edit's new tables are removed, nothing else changes;
//! - the manifest write fails: the database turns read-only. The new
//!   tables stay (the edit may have reached the disk; if it did not, the
//!   next open deletes them as orphans).

use std::sync::Arc;

use kevo_manifest::{EditRefused, VersionEdit, VersionSet, table_file_name};

use crate::engine::Engine;
use crate::error::Error;
use crate::keyspace::KeyspaceCore;

/// What an edit does to a keyspace's read set once it is logged.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// Immutable memtable `memtable` of `keyspace` is in the edit's table;
    /// WAL segments below `log_number` (the edit's global log number) are
    /// no longer needed.
    Flush {
        keyspace: Arc<KeyspaceCore>,
        memtable: u64,
        log_number: u64,
    },
    /// Tables of `keyspace` were replaced.
    Compaction { keyspace: Arc<KeyspaceCore> },
}

/// What became of an edit.
#[derive(Debug)]
pub(crate) enum Applied {
    /// Logged and installed.
    Installed,
    /// Stale: nothing written, the new tables removed.
    Refused(EditRefused),
}

/// Logs `edit` (whose new tables are `new_tables`), installs it as
/// `change` says, and retires the files it made obsolete (see the module
/// documentation).
///
/// # Errors
/// The manifest write failed: the database is now read-only; the cause.
/// (Opened read-only, there is no manifest to write: that cause.)
pub(crate) fn apply_edit(
    engine: &Engine,
    edit: VersionEdit,
    new_tables: &[u64],
    change: Change,
) -> Result<Applied, Arc<Error>> {
    let versions = engine.versions()?;
    match versions.try_log_and_apply(edit) {
        Err(e) => Err(engine.fail(e.into())),
        Ok(Err(refused)) => {
            remove_tables(engine, new_tables);
            Ok(Applied::Refused(refused))
        }
        Ok(Ok(_)) => {
            // The version set's current version, not the one returned (a
            // concurrent edit may have installed a newer one in between),
            // taken under the read state's mutex: a slower install never
            // puts an older version back over a newer one.
            let log_number = match change {
                Change::Flush {
                    keyspace,
                    memtable,
                    log_number,
                } => {
                    keyspace
                        .read
                        .flushed(memtable, || engine.current_version(&keyspace));
                    Some(log_number)
                }
                Change::Compaction { keyspace } => {
                    keyspace.read.install(|| engine.current_version(&keyspace));
                    None
                }
            };
            engine.jobs.notify();
            retire_files(engine, versions, log_number);
            Ok(Applied::Installed)
        }
    }
}

/// Retires WAL segments below `log_number` (if given) and deletes the
/// tables no live version refers to. Failures here lose nothing (the files
/// are orphans, deleted at the next open), so they are logged, not fatal.
fn retire_files(engine: &Engine, versions: &VersionSet, log_number: Option<u64>) {
    if let Some(log_number) = log_number {
        for keyspace in engine.keyspaces.all() {
            keyspace.read.raise_first_log(log_number);
        }
        engine.wal_starts.forget_before(log_number);
        // A checkpoint being made may still copy them: then they go when
        // it is done.
        if engine.wal_hold.may_retire(log_number)
            && let Ok(Err(e)) = engine.with_wal(|wal| wal.remove_segments_before(log_number))
        {
            tracing::warn!(error = %e, "retiring WAL segments failed");
        }
    }
    retire_tables(engine, versions);
}

/// Deletes the tables no live version refers to any more (evicting their
/// readers). A failure leaves an orphan, deleted at the next open.
pub(crate) fn retire_tables(engine: &Engine, versions: &VersionSet) {
    for number in versions.take_obsolete_tables() {
        engine.tables.evict(number);
        let path = engine.dir.join(table_file_name(number));
        if let Err(e) = engine.fs.remove_file(&path) {
            tracing::warn!(error = %e, path = %path.display(), "deleting an obsolete table failed");
        }
    }
}

/// Removes tables that no version names (outputs of a refused or abandoned
/// edit). A failure leaves an orphan, deleted at the next open.
pub(crate) fn remove_tables(engine: &Engine, numbers: &[u64]) {
    for &number in numbers {
        let path = engine.dir.join(table_file_name(number));
        if let Err(e) = engine.fs.remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(error = %e, path = %path.display(), "removing a table no version took");
        }
    }
}
