//! Reading a database directory and checking it against its manifest,
//! changing nothing: the first half of an open.
//!
//! A database is refused (`Corruption`, naming the file) when the manifest
//! and the directory disagree in a way no crash can produce:
//!
//! - `CURRENT` is missing but tables, WAL records or a manifest holding
//!   data exist (an interrupted creation leaves only empty manifests and
//!   segments);
//! - a table the manifest names is missing or has another size;
//! - a table the manifest does not name is numbered at or past the
//!   manifest's file counter (every table's number is reserved by a synced
//!   edit before the file is created, so edits were lost);
//! - a tracked WAL segment is missing, shorter than its header (which was
//!   synced when it was created), or shorter than its sealed length;
//! - an untracked WAL segment holds records (each segment is recorded
//!   before its first record is written, so edits were lost).
//!
//! What a crash can leave is *explained* and may be deleted once every
//! check passed: tables numbered below the counter that no version names
//! (outputs of an interrupted flush or compaction, inputs whose deletion
//! was cut short), segments below the log number, empty untracked
//! segments, old manifests. Files of a manifest written by format 1, which
//! recorded neither WAL segments nor reservations, are checked as well as
//! that format allows; what cannot be explained is left in place and
//! reported.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use kevo_core::Fs;
use kevo_manifest::{
    CURRENT_FILE, CURRENT_TEMP_FILE, RecoveredManifest, VersionSet, manifest_file_name,
    parse_manifest_file_name, parse_table_file_name, table_file_name,
};
use kevo_wal::{
    RecoveryMode, RecoveryPlan, Replay, SEGMENT_HEADER_BYTES, parse_segment_file_name,
    segment_file_name,
};

use crate::error::{Error, Result};
use crate::files::OPTIONS_FILE_PREFIX;

/// The files of a database directory, by kind.
#[derive(Debug, Default)]
pub(crate) struct Inventory {
    pub(crate) has_current: bool,
    pub(crate) current_temp: bool,
    pub(crate) manifests: BTreeSet<u64>,
    pub(crate) tables: BTreeSet<u64>,
    pub(crate) segments: BTreeSet<u64>,
    pub(crate) options_files: BTreeSet<u64>,
}

impl Inventory {
    /// Lists `dir` (which may not exist: then it is empty).
    pub(crate) fn of(fs: &dyn Fs, dir: &Path) -> Result<Inventory> {
        let names = match fs.list_dir(dir) {
            Ok(names) => names,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io(format!("listing {}", dir.display()), e)),
        };
        let mut inventory = Inventory::default();
        for name in names {
            if name == CURRENT_FILE {
                inventory.has_current = true;
            } else if name == CURRENT_TEMP_FILE {
                inventory.current_temp = true;
            } else if let Some(n) = parse_manifest_file_name(&name) {
                inventory.manifests.insert(n);
            } else if let Some(n) = parse_table_file_name(&name) {
                inventory.tables.insert(n);
            } else if let Some(n) = parse_segment_file_name(&name) {
                inventory.segments.insert(n);
            } else if let Some(n) = parse_options_file_name(&name) {
                inventory.options_files.insert(n);
            }
            // LOCK, WAL.LOCK, `NNNNNN.wal.free` (the WAL deletes those),
            // `lost/` and files that are not kevo's are left alone.
        }
        Ok(inventory)
    }

    /// The largest file number in use by a table, manifest or OPTIONS file.
    pub(crate) fn max_file_number(&self) -> u64 {
        [&self.tables, &self.manifests, &self.options_files]
            .iter()
            .filter_map(|set| set.iter().next_back().copied())
            .max()
            .unwrap_or(0)
    }
}

pub(crate) fn parse_options_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(OPTIONS_FILE_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The manifest of the database in `dir`, `None` for a directory that
/// holds no database (nothing, or only what an interrupted creation
/// leaves: manifests without data and no `CURRENT`).
///
/// # Errors
/// [`Error::Corruption`] naming `CURRENT` when it is missing but the
/// directory holds data; whatever reading the manifest reports.
pub(crate) fn read_manifest(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    inventory: &Inventory,
) -> Result<Option<RecoveredManifest>> {
    if inventory.has_current {
        return Ok(VersionSet::recover(fs.as_ref(), dir)?);
    }
    refuse_missing_current(fs, dir, inventory)?;
    Ok(None)
}

/// `Err` if `dir` holds data although it has no `CURRENT`: a table, a WAL
/// segment holding a record, or a manifest holding data. (What a creation
/// cut short leaves — manifests without data, WAL segments without a
/// record, from this version or an older one — holds nothing to lose.)
pub(crate) fn refuse_missing_current(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    inventory: &Inventory,
) -> Result<()> {
    if inventory.has_current {
        return Ok(());
    }
    let missing = |what: String| Error::Corruption {
        file: dir.join(CURRENT_FILE),
        offset: 0,
        reason: format!(
            "CURRENT is missing but the directory holds {what}: this is a database whose \
             CURRENT was lost, not a new one; run kevo_engine::repair to rebuild it"
        ),
    };
    if let Some(n) = inventory.tables.iter().next() {
        return Err(missing(format!("tables ({})", table_file_name(*n))));
    }
    for &n in &inventory.segments {
        if holds_records(fs, dir, n)? {
            return Err(missing(format!("WAL records ({})", segment_file_name(n))));
        }
    }
    for &n in &inventory.manifests {
        let path = dir.join(manifest_file_name(n));
        // An unreadable manifest with no table and no WAL beside it was
        // cut short while the database was being created.
        if let Ok(state) = VersionSet::read_manifest_file(fs.as_ref(), &path)
            && (state.version.table_count() > 0
                || state.last_seqno > 0
                || !state.keyspaces.is_empty())
        {
            return Err(missing(format!(
                "a manifest with data ({})",
                manifest_file_name(n)
            )));
        }
    }
    Ok(())
}

/// What the checks found: how to replay the WAL, and what may be deleted
/// (only once everything else succeeded) or must be reported.
#[derive(Debug, Default)]
pub(crate) struct Checked {
    /// The segments to replay and the sealed ones' lengths.
    pub(crate) plan: RecoveryPlan,
    /// Tables no version names, numbered below the manifest's counter.
    pub(crate) obsolete_tables: Vec<u64>,
    /// Segments below the log number, and untracked segments holding no
    /// record.
    pub(crate) obsolete_segments: Vec<u64>,
    /// Tables no version names that the manifest cannot explain: left in
    /// place, reported, recorded as such in the new manifest.
    pub(crate) unexplained: Vec<u64>,
    /// Tables no version of a format 1 manifest names, numbered past its
    /// counter: explained only if the WAL replay holds every write they do
    /// ([`explain_legacy_tables`]).
    pub(crate) legacy_candidates: Vec<u64>,
}

/// Checks the directory against the manifest (see the module docs).
///
/// # Errors
/// [`Error::Corruption`] naming the first file that disagrees;
/// [`Error::Io`].
pub(crate) fn check(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    inventory: &Inventory,
    manifest: &RecoveredManifest,
    mode: RecoveryMode,
) -> Result<Checked> {
    let mut checked = Checked::default();
    check_tables(fs.as_ref(), dir, inventory, manifest, &mut checked)?;
    if manifest.tracks_wal_segments {
        check_tracked_segments(fs, dir, inventory, manifest, mode, &mut checked)?;
    } else {
        for &n in &inventory.segments {
            if n < manifest.log_number {
                checked.obsolete_segments.push(n);
            } else {
                checked.plan.segments.push(n);
            }
        }
    }
    Ok(checked)
}

fn check_tables(
    fs: &dyn Fs,
    dir: &Path,
    inventory: &Inventory,
    manifest: &RecoveredManifest,
    checked: &mut Checked,
) -> Result<()> {
    // Every keyspace's tables: numbers are shared by all of them.
    let named: BTreeMap<u64, u64> = std::iter::once(&manifest.version)
        .chain(manifest.keyspaces.values().map(|k| &k.version))
        .flat_map(|version| version.tables())
        .map(|(_, t)| (t.number, t.file_size))
        .collect();
    for (&number, &size) in &named {
        let path = dir.join(table_file_name(number));
        let damaged = |reason: String| Error::Corruption {
            file: path.clone(),
            offset: 0,
            reason,
        };
        match fs.file_len(&path) {
            Ok(len) if len == size => {}
            Ok(len) => {
                return Err(damaged(format!(
                    "the table is {len} bytes but the manifest recorded {size}"
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(damaged(
                    "the manifest names this table but the file is missing".to_string(),
                ));
            }
            Err(e) => return Err(Error::io(format!("looking at {}", path.display()), e)),
        }
    }
    let manifest_path = dir.join(manifest_file_name(manifest.manifest_number));
    for &number in inventory.tables.iter().filter(|n| !named.contains_key(n)) {
        if manifest.unexplained_tables.contains(&number) {
            checked.unexplained.push(number);
        } else if number < manifest.next_file_number {
            checked.obsolete_tables.push(number);
        } else if manifest.tracks_wal_segments {
            return Err(Error::Corruption {
                file: manifest_path,
                offset: 0,
                reason: format!(
                    "{} exists but the manifest does not name it, and its number is past the \
                     manifest's file counter {}: edits were lost (the manifest was cut short \
                     or replaced); run kevo_engine::repair",
                    table_file_name(number),
                    manifest.next_file_number
                ),
            });
        } else {
            // A format 1 manifest did not reserve numbers: this may be the
            // output of an interrupted flush, or a table a lost edit named.
            checked.legacy_candidates.push(number);
        }
    }
    Ok(())
}

/// Sorts the candidates of a format 1 manifest ([`Checked::legacy_candidates`])
/// into obsolete and unexplained: a table is obsolete (the output of a flush
/// whose edit never made it) if every sequence number in it lies in one
/// stretch of writes the WAL replay holds (`covered`, ascending and
/// disjoint): its every write is then in the WAL, which open keeps. Any
/// other table, or one that does not open, is unexplained.
pub(crate) fn explain_legacy_tables(
    fs: &dyn Fs,
    dir: &Path,
    checked: &mut Checked,
    covered: &[(kevo_core::SeqNo, kevo_core::SeqNo)],
) {
    for number in std::mem::take(&mut checked.legacy_candidates) {
        let path = dir.join(table_file_name(number));
        let seqnos = kevo_sstable::Table::open(fs, &path, kevo_sstable::ReadOptions::default())
            .map(|t| (t.properties().smallest_seqno, t.properties().largest_seqno));
        let in_wal = seqnos.is_ok_and(|(low, high)| {
            covered
                .iter()
                .any(|&(first, last)| first <= low && high <= last)
        });
        if in_wal {
            checked.obsolete_tables.push(number);
        } else {
            checked.unexplained.push(number);
        }
    }
}

fn check_tracked_segments(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    inventory: &Inventory,
    manifest: &RecoveredManifest,
    mode: RecoveryMode,
    checked: &mut Checked,
) -> Result<()> {
    let lenient = mode == RecoveryMode::SkipCorrupted;
    // Each segment was recorded only after its header was synced, and
    // sealed before any record of a later one was synced.
    checked.plan.headers_durable = true;
    checked.plan.seals_tracked = true;
    for (number, sealed) in manifest.wal_segments.iter() {
        let path = dir.join(segment_file_name(number));
        let damaged = |offset: u64, reason: String| Error::Corruption {
            file: path.clone(),
            offset,
            reason,
        };
        let len = match fs.file_len(&path) {
            Ok(len) => len,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if lenient {
                    tracing::warn!(segment = %path.display(), "a tracked WAL segment is missing; skipped");
                    continue;
                }
                return Err(damaged(
                    0,
                    "the manifest tracks this WAL segment but the file is missing".to_string(),
                ));
            }
            Err(e) => return Err(Error::io(format!("looking at {}", path.display()), e)),
        };
        if !lenient && len < SEGMENT_HEADER_BYTES as u64 {
            return Err(damaged(
                len,
                format!(
                    "the segment is {len} bytes, shorter than its header, which was synced \
                     when it was created: it was emptied or cut"
                ),
            ));
        }
        if let Some(sealed) = sealed {
            if !lenient && len < sealed {
                return Err(damaged(
                    len,
                    format!(
                        "the segment is {len} bytes, shorter than the {sealed} bytes it was sealed at"
                    ),
                ));
            }
            checked.plan.sealed.insert(number, sealed);
        }
        checked.plan.segments.push(number);
    }
    for &number in &inventory.segments {
        if number < manifest.log_number {
            checked.obsolete_segments.push(number);
        } else if manifest.wal_segments.get(number).is_none() {
            if holds_records(fs, dir, number)? {
                if lenient {
                    tracing::warn!(
                        segment = number,
                        "an untracked WAL segment holds records; replayed"
                    );
                    checked.plan.segments.push(number);
                    continue;
                }
                return Err(Error::Corruption {
                    file: dir.join(segment_file_name(number)),
                    offset: 0,
                    reason: format!(
                        "this WAL segment holds records but {} never recorded it: edits were \
                         lost (the manifest was cut short or replaced); run kevo_engine::repair",
                        manifest_file_name(manifest.manifest_number)
                    ),
                });
            }
            // Created by a rotation whose record never reached the
            // manifest: it holds nothing.
            checked.obsolete_segments.push(number);
        }
    }
    checked.plan.segments.sort_unstable();
    Ok(())
}

/// Whether segment `number` holds any intact record.
fn holds_records(fs: &Arc<dyn Fs>, dir: &Path, number: u64) -> Result<bool> {
    let plan = RecoveryPlan {
        segments: vec![number],
        ..RecoveryPlan::default()
    };
    let mut replay = Replay::with_plan(fs.clone(), dir, RecoveryMode::SkipCorrupted, plan);
    match replay.next() {
        Some(Ok(_)) => Ok(true),
        Some(Err(e)) => Err(crate::error::from_wal(dir, e)),
        None => Ok(false),
    }
}
