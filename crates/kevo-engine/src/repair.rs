//! [`repair`]: rebuild a database whose metadata is damaged, keeping every
//! entry the surviving files hold (RocksDB's `RepairDB`, done carefully).
//!
//! 1. Take `LOCK`. Read every manifest that still reads, only for its log
//!    number: WAL segments below it are obsolete (their writes are in
//!    tables), and replaying them could bring back keys that were deleted
//!    since.
//! 2. Tables: one that opens and verifies is kept as it is; one that opens
//!    but fails verification has its readable data blocks copied into a
//!    new table; one that does not open is unreadable.
//! 3. WAL segments from the log number on: every readable record is
//!    replayed (`RecoveryMode::SkipCorrupted`, each segment alone, so a
//!    missing or damaged one does not stop the others) into one new table.
//!    A segment whose writes all have sequence numbers at or below the
//!    newest in the tables is obsolete as well.
//! 4. The tables all go to L0, which is correct only if any two whose key
//!    ranges meet have disjoint sequence-number ranges (reads and
//!    compactions take L0 tables newest first). Tables that break this
//!    (a level's table next to a deeper level's, a compaction's output next
//!    to its inputs) are merged into new tables, which also drops the
//!    duplicates.
//! 5. Every file the new state does not use (unreadable or damaged tables,
//!    merged tables, replayed and obsolete segments, old manifests, the old
//!    `CURRENT`) is moved to `lost/`, never deleted; then a new manifest
//!    naming the kept and written tables is started and `CURRENT` switched
//!    to it.
//!
//! New tables are written and synced before anything is moved; the moves
//! are done before `CURRENT` names the new manifest. A crash at any point
//! loses nothing: every entry is in a file in the directory or in `lost/`
//! with a copy in the directory. Open may refuse what such a crash leaves
//! (no `CURRENT`, or new tables the old manifest never named); a second
//! repair completes the first.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use kevo_compaction::{CompactionReason, CompactionTask, LevelInputs, RunContext, run_compaction};
use kevo_core::{Fs, OsFs, SeqNo};
use kevo_manifest::{
    CURRENT_FILE, CURRENT_TEMP_FILE, ManifestOptions, RecoveredManifest, TableMeta, VersionEdit,
    VersionSet, manifest_file_name, table_file_name,
};
use kevo_memtable::MemTable;
use kevo_sstable::{ReadOptions, Table, TableWriter};
use kevo_wal::{RecoveryMode, RecoveryPlan, Replay, segment_file_name};

use crate::error::{Error, Result, from_wal};
use crate::options::Options;
use crate::recover::Inventory;

/// Where [`repair`] moves the files it does not use (inside the database
/// directory).
pub const LOST_DIR: &str = "lost";

/// What [`repair`] kept, wrote, moved and could not read.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RepairReport {
    /// Tables kept as they were (every block verified).
    pub tables_kept: Vec<u64>,
    /// Tables written: the WAL's readable records, the readable blocks of
    /// damaged tables, merges.
    pub tables_written: Vec<u64>,
    /// Tables in the repaired database (kept and written, merged ones
    /// excluded).
    pub tables: usize,
    /// Entries in those tables (every version counted).
    pub entries: u64,
    /// WAL segments whose records were replayed.
    pub wal_segments_replayed: Vec<u64>,
    /// Batches replayed from them.
    pub wal_batches: u64,
    /// Entries replayed from them.
    pub wal_entries: u64,
    /// What could not be read: skipped, and reported here.
    pub unreadable: Vec<Unreadable>,
    /// Files moved to `lost/`.
    pub moved: Vec<MovedFile>,
    /// The new manifest (`MANIFEST-NNNNNN`).
    pub manifest_number: u64,
    /// The largest sequence number in the repaired database.
    pub last_seqno: SeqNo,
}

/// Bytes [`repair`] could not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// The file.
    pub file: PathBuf,
    /// Where the damage starts.
    pub offset: u64,
    /// How many bytes were skipped (0 when the whole file was).
    pub bytes: u64,
    /// What was wrong.
    pub reason: String,
}

/// A file [`repair`] moved out of the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedFile {
    /// Where it was.
    pub from: PathBuf,
    /// Where it is now (under `lost/`).
    pub to: PathBuf,
    /// Why it is not used.
    pub reason: String,
}

/// Rebuilds the database in `path` (on the operating system's file system)
/// from its tables and WAL segments, keeping every entry they still hold:
/// for a database [`Db::open`](crate::Db::open) refuses with
/// [`Error::Corruption`] (a lost `CURRENT`, a cut manifest, a damaged WAL
/// segment or table). It must not be open; open it afterwards as usual.
///
/// - Tables that verify are kept as they are; a damaged table's readable
///   data blocks are copied into a new one; a table that does not open is
///   set aside.
/// - Every readable record of the WAL segments from the newest log number
///   a manifest still records is replayed (each segment alone, skipping
///   damage) into a new table.
/// - Every table goes to L0; tables whose sequence numbers overlap are
///   merged first, so that reads stay correct.
/// - Every file not used — unreadable and damaged tables, merged tables,
///   replayed and obsolete segments, old manifests, the old `CURRENT` — is
///   moved to `lost/` ([`LOST_DIR`]), never deleted and never over another
///   file there. Then a new manifest is started and `CURRENT` switched to it.
///
/// ```
/// # fn main() -> kevo_engine::Result<()> {
/// # let dir = tempfile::tempdir().expect("temp dir");
/// # let db = kevo_engine::Db::open(dir.path())?;
/// # db.put("k", "v")?;
/// # db.close()?;
/// # std::fs::remove_file(dir.path().join("CURRENT")).expect("rm");
/// let path = dir.path();
/// assert!(kevo_engine::Db::open(path).unwrap_err().is_corruption()); // CURRENT lost
/// let report = kevo_engine::repair(path, &kevo_engine::Options::default())?;
/// println!("{} tables, {} moved to lost/", report.tables, report.moved.len());
/// let db = kevo_engine::Db::open(path)?;
/// assert_eq!(db.get("k")?.as_deref(), Some(&b"v"[..]));
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// [`Error::InvalidArgument`] for bad options or a missing directory;
/// [`Error::Busy`] if the database is open; [`Error::Io`].
pub fn repair(path: impl AsRef<Path>, options: &Options) -> Result<RepairReport> {
    repair_with_fs(Arc::new(OsFs::new()), path, options)
}

/// [`repair`] on the file system `fs`.
///
/// # Errors
/// As [`repair`].
pub fn repair_with_fs(
    fs: Arc<dyn Fs>,
    path: impl AsRef<Path>,
    options: &Options,
) -> Result<RepairReport> {
    options.validate()?;
    let dir = path.as_ref();
    let _span = tracing::info_span!("kevo.repair", dir = %dir.display()).entered();
    let exists = fs
        .exists(dir)
        .map_err(|e| Error::io(format!("looking for {}", dir.display()), e))?;
    if !exists {
        return Err(Error::InvalidArgument(format!(
            "no database directory {}",
            dir.display()
        )));
    }
    let _lock = crate::open::lock_dir(fs.as_ref(), dir)?;
    let inventory = Inventory::of(fs.as_ref(), dir)?;
    refuse_keyspaces(&fs, dir, &inventory)?;
    let mut repair = Repair {
        fs: fs.clone(),
        dir: dir.to_path_buf(),
        options: options.clone(),
        next_number: AtomicU64::new(inventory.max_file_number() + 1),
        tables: Vec::new(),
        written: BTreeSet::new(),
        to_move: Vec::new(),
        report: RepairReport::default(),
    };
    let log_number = repair.readable_log_number(&inventory);
    repair.tables(&inventory)?;
    repair.wal(&inventory, log_number)?;
    repair.make_level0_consistent()?;
    repair.finish(&inventory, log_number)
}

/// Refuses, before anything is changed, a database that holds keyspaces
/// other than the default one: its tables do not record their keyspace,
/// so a rebuilt manifest could only put all of them in one.
///
/// # Errors
/// [`Error::InvalidArgument`] naming what shows a keyspace (a manifest
/// that records one, or a WAL entry of one).
fn refuse_keyspaces(fs: &Arc<dyn Fs>, dir: &Path, inventory: &Inventory) -> Result<()> {
    let refuse = |what: String| {
        Err(Error::InvalidArgument(format!(
            "{what} holds keyspaces besides the default one: repair cannot tell which \
             keyspace a table belongs to and refuses to merge them (nothing was changed)"
        )))
    };
    for &n in &inventory.manifests {
        let name = kevo_manifest::manifest_file_name(n);
        if let Ok(state) = VersionSet::read_manifest_file(fs.as_ref(), &dir.join(&name))
            && (!state.keyspaces.is_empty() || state.next_keyspace_id > 1)
        {
            return refuse(name);
        }
    }
    for &segment in &inventory.segments {
        let plan = RecoveryPlan {
            segments: vec![segment],
            ..RecoveryPlan::default()
        };
        let replay = Replay::with_plan(fs.clone(), dir, RecoveryMode::SkipCorrupted, plan);
        for batch in replay.flatten() {
            if batch
                .batch
                .iter()
                .any(|e| e.keyspace != kevo_core::DEFAULT_KEYSPACE)
            {
                return refuse(segment_file_name(segment));
            }
        }
    }
    Ok(())
}

/// One repair in progress.
struct Repair {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    options: Options,
    /// The next file number for a new table.
    next_number: AtomicU64,
    /// The tables the repaired database will hold.
    tables: Vec<TableMeta>,
    /// Numbers of the tables this repair wrote.
    written: BTreeSet<u64>,
    /// Files to move to `lost/`, and why.
    to_move: Vec<(String, String)>,
    report: RepairReport,
}

impl Repair {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The largest sequence number in the tables kept so far.
    fn newest_seqno(&self) -> SeqNo {
        self.tables
            .iter()
            .map(|t| t.largest_seqno)
            .max()
            .unwrap_or(0)
    }

    fn new_number(&self) -> u64 {
        self.next_number.fetch_add(1, Ordering::Relaxed)
    }

    fn unreadable(&mut self, file: &str, offset: u64, bytes: u64, reason: impl Into<String>) {
        let reason = reason.into();
        tracing::warn!(file, offset, bytes, %reason, "unreadable");
        self.report.unreadable.push(Unreadable {
            file: self.path(file),
            offset,
            bytes,
            reason,
        });
    }

    /// The largest log number any readable manifest records (0 if none
    /// reads): segments below it are obsolete.
    fn readable_log_number(&self, inventory: &Inventory) -> u64 {
        let mut log_number = 0;
        if let Ok(Some(state)) = VersionSet::recover(self.fs.as_ref(), &self.dir) {
            log_number = state.log_number;
        }
        for &n in &inventory.manifests {
            let path = self.path(&manifest_file_name(n));
            if let Ok(state) = VersionSet::read_manifest_file(self.fs.as_ref(), &path) {
                log_number = log_number.max(state.log_number);
            }
        }
        log_number
    }

    /// Step 2: keep, salvage or set aside every table.
    fn tables(&mut self, inventory: &Inventory) -> Result<()> {
        for &number in &inventory.tables {
            let name = table_file_name(number);
            let path = self.path(&name);
            let table = match Table::open(self.fs.as_ref(), &path, ReadOptions::default()) {
                Ok(table) => table,
                Err(kevo_core::Error::Corruption { offset, reason, .. }) => {
                    self.unreadable(
                        &name,
                        offset,
                        0,
                        format!("the table does not open: {reason}"),
                    );
                    self.to_move
                        .push((name, format!("unreadable table: {reason}")));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            match table.verify() {
                Ok(_) => {
                    let meta = table_meta(number, &table);
                    self.report.tables_kept.push(number);
                    self.tables.push(meta);
                }
                Err(kevo_core::Error::Corruption { offset, reason, .. }) => {
                    tracing::warn!(table = %name, offset, %reason, "salvaging a damaged table");
                    let salvaged = self.salvage(&name, &table)?;
                    let what = match salvaged {
                        Some(n) => format!(
                            "damaged ({reason} at offset {offset}); its readable blocks are in {}",
                            table_file_name(n)
                        ),
                        None => {
                            format!("damaged ({reason} at offset {offset}); no block was readable")
                        }
                    };
                    self.to_move.push((name, what));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Copies the readable blocks of a damaged table into a new one.
    fn salvage(&mut self, name: &str, table: &Table) -> Result<Option<u64>> {
        let number = self.new_number();
        let path = self.path(&table_file_name(number));
        let mut writer = TableWriter::create(
            self.fs.as_ref(),
            &path,
            crate::tables::table_options(&self.options),
        )?;
        let report = table.salvage(|key, value| writer.add(key, value))?;
        for skipped in &report.skipped {
            self.unreadable(name, skipped.offset, skipped.size, skipped.reason.clone());
        }
        // The range tombstones were read and checked when the table opened:
        // they go along, so that nothing they deleted comes back.
        for tombstone in table.range_tombstones().tombstones() {
            writer.add_range_tombstone(&tombstone)?;
        }
        if report.entries == 0 && table.range_tombstones().is_empty() {
            drop(writer);
            remove_quietly(self.fs.as_ref(), &path);
            return Ok(None);
        }
        let meta = writer.finish()?;
        self.sync_dir()?;
        self.adopt(kevo_compaction::table_meta(number, &meta));
        Ok(Some(number))
    }

    /// Records a table this repair wrote.
    fn adopt(&mut self, meta: TableMeta) {
        self.written.insert(meta.number);
        self.report.tables_written.push(meta.number);
        self.tables.push(meta);
    }

    /// Step 3: every readable WAL record from the log number on, into one
    /// table.
    fn wal(&mut self, inventory: &Inventory, log_number: u64) -> Result<()> {
        let newest_in_tables = self.newest_seqno();
        let mem = Arc::new(MemTable::new());
        for &segment in &inventory.segments {
            let name = segment_file_name(segment);
            if segment < log_number {
                self.to_move.push((
                    name,
                    format!("obsolete WAL segment (below the manifest's log number {log_number})"),
                ));
                continue;
            }
            let plan = RecoveryPlan {
                segments: vec![segment],
                ..RecoveryPlan::default()
            };
            let mut replay = Replay::with_plan(
                self.fs.clone(),
                &self.dir,
                RecoveryMode::SkipCorrupted,
                plan,
            );
            let mut batches = Vec::new();
            let mut failed = None;
            for item in replay.by_ref() {
                match item {
                    Ok(replayed) => batches.push(replayed.batch),
                    Err(kevo_wal::Error::Corruption { offset, reason, .. }) => {
                        failed = Some((offset, reason));
                    }
                    Err(e) => return Err(from_wal(&self.dir, e)),
                }
            }
            for skipped in &replay.report().skipped {
                self.unreadable(&name, skipped.offset, skipped.len, skipped.reason.clone());
            }
            if let Some((offset, reason)) = failed {
                self.unreadable(&name, offset, 0, reason.clone());
            }
            let newest = batches
                .iter()
                .filter(|b| !b.is_empty())
                .map(|b| b.last_seqno())
                .max();
            let why = match newest {
                None => "WAL segment without a readable record".to_string(),
                Some(newest) if newest <= newest_in_tables => format!(
                    "obsolete WAL segment (its writes, up to seqno {newest}, are all at or \
                     below the tables' newest, {newest_in_tables})"
                ),
                Some(_) => {
                    for batch in &batches {
                        let first = batch.seqno();
                        for (i, entry) in batch.iter().enumerate() {
                            let seqno = first + i as u64;
                            match entry.kind.value_kind() {
                                Some(kind) => mem.insert(entry.key, seqno, kind, entry.value),
                                None => mem.delete_range(entry.key, entry.value, seqno),
                            }
                            self.report.wal_entries += 1;
                        }
                    }
                    self.report.wal_batches += batches.len() as u64;
                    self.report.wal_segments_replayed.push(segment);
                    "replayed WAL segment (its records are in the repaired tables)".to_string()
                }
            };
            self.to_move.push((name, why));
        }
        let table = crate::flush::write_memtable(
            self.fs.as_ref(),
            &self.dir,
            crate::tables::table_options(&self.options),
            &mem,
            &|| Ok(self.new_number()),
            &[],
        )?;
        if let Some(meta) = table {
            self.adopt(meta);
        }
        Ok(())
    }

    /// Step 4: merges tables until any two whose key ranges meet have
    /// disjoint seqno ranges.
    fn make_level0_consistent(&mut self) -> Result<()> {
        for round in 0.. {
            let groups = conflicting_groups(&self.tables);
            if groups.is_empty() {
                return Ok(());
            }
            // Each round merges every conflicting group; outputs of one
            // group are key-disjoint. Should outputs conflict again, merge
            // everything at once: one sorted run cannot conflict.
            let groups = if round < 2 {
                groups
            } else {
                vec![(0..self.tables.len()).collect()]
            };
            let mut merged: BTreeSet<usize> = BTreeSet::new();
            let mut outputs = Vec::new();
            for group in groups {
                let inputs: Vec<TableMeta> =
                    group.iter().map(|&i| self.tables[i].clone()).collect();
                outputs.extend(self.merge(&inputs)?);
                merged.extend(group);
            }
            let mut kept = Vec::new();
            for (i, table) in std::mem::take(&mut self.tables).into_iter().enumerate() {
                if !merged.contains(&i) {
                    kept.push(table);
                } else if self.written.remove(&table.number) {
                    // An intermediate of this repair: its entries are in
                    // the merge's output.
                    self.report.tables_written.retain(|&n| n != table.number);
                    remove_quietly(self.fs.as_ref(), &self.path(&table_file_name(table.number)));
                } else {
                    self.report.tables_kept.retain(|&n| n != table.number);
                    self.to_move.push((
                        table_file_name(table.number),
                        "merged with tables whose sequence numbers overlap its own; its entries \
                         are in the merge's output"
                            .to_string(),
                    ));
                }
            }
            kept.extend(outputs);
            self.tables = kept;
        }
        Ok(())
    }

    /// Merges `inputs` into new tables (split at the target file size).
    fn merge(&mut self, inputs: &[TableMeta]) -> Result<Vec<TableMeta>> {
        let task = CompactionTask {
            inputs: vec![LevelInputs {
                level: 0,
                tables: inputs.iter().cloned().map(Arc::new).collect(),
            }],
            output_level: 0,
            trivial_move: false,
            reason: CompactionReason::Manual,
            score: 0.0,
            drop_tombstones: false,
            grandparents: Vec::new(),
            target_file_bytes: self.options.target_file_bytes,
        };
        let fs = self.fs.clone();
        let dir = self.dir.clone();
        let open = |meta: &TableMeta| {
            Table::open(
                fs.as_ref(),
                &dir.join(table_file_name(meta.number)),
                ReadOptions::default(),
            )
            .map(Arc::new)
        };
        let new_number = || Ok(self.new_number());
        let stop = AtomicBool::new(false);
        let ctx = RunContext {
            fs: self.fs.as_ref(),
            dir: &self.dir,
            open_table: &open,
            new_file_number: &new_number,
            table_options: crate::tables::table_options(&self.options),
            snapshots: &[],
            stop: &stop,
        };
        // Nothing sets `stop`: the run always completes.
        let output = run_compaction(&task, &ctx)?.ok_or_else(|| Error::Internal {
            reason: "a repair merge stopped with no one stopping it".to_string(),
        })?;
        tracing::info!(
            inputs = inputs.len(),
            outputs = output.outputs.len(),
            "merged tables whose sequence numbers overlap"
        );
        for table in &output.outputs {
            self.written.insert(table.number);
            self.report.tables_written.push(table.number);
        }
        Ok(output.outputs)
    }

    /// Step 5: move what is not used to `lost/`, then start the manifest.
    fn finish(mut self, inventory: &Inventory, log_number: u64) -> Result<RepairReport> {
        for &n in &inventory.manifests {
            self.to_move.push((
                manifest_file_name(n),
                "the manifest the repair replaced".to_string(),
            ));
        }
        if inventory.has_current {
            self.to_move.push((
                CURRENT_FILE.to_string(),
                "the CURRENT the repair replaced".to_string(),
            ));
        }
        if inventory.current_temp {
            self.to_move.push((
                CURRENT_TEMP_FILE.to_string(),
                "a CURRENT that was never switched to".to_string(),
            ));
        }
        self.sync_dir()?;
        let moves = std::mem::take(&mut self.to_move);
        let lost = self.dir.join(LOST_DIR);
        if !moves.is_empty() {
            self.fs
                .create_dir_all(&lost)
                .map_err(|e| Error::io(format!("creating {}", lost.display()), e))?;
        }
        for (name, reason) in moves {
            let from = self.path(&name);
            let to = unused_name(self.fs.as_ref(), &lost, &name)?;
            self.fs.rename(&from, &to).map_err(|e| {
                Error::io(format!("moving {} to {}", from.display(), to.display()), e)
            })?;
            tracing::warn!(file = %from.display(), to = %to.display(), %reason, "moved to lost/");
            self.report.moved.push(MovedFile { from, to, reason });
        }
        if !self.report.moved.is_empty() {
            for d in [&lost, &self.dir] {
                self.fs
                    .sync_dir(d)
                    .map_err(|e| Error::io(format!("syncing {}", d.display()), e))?;
            }
        }

        let mut state = RecoveredManifest {
            next_file_number: self.next_number.load(Ordering::Relaxed),
            tracks_wal_segments: true,
            ..RecoveredManifest::default()
        };
        let last_seqno = self.newest_seqno();
        let newest_segment = inventory.segments.iter().next_back().copied().unwrap_or(0);
        let edit = VersionEdit {
            added: self.tables.iter().map(|t| (0, t.clone())).collect(),
            last_seqno: Some(last_seqno),
            log_number: Some(log_number.max(newest_segment + 1)),
            ..VersionEdit::default()
        };
        state
            .apply_edit(&edit)
            .map_err(|reason| Error::Corruption {
                file: self.dir.clone(),
                offset: 0,
                reason: format!("the repaired tables do not make a version: {reason}"),
            })?;
        let set = VersionSet::create(
            self.fs.clone(),
            &self.dir,
            state,
            ManifestOptions {
                rewrite_bytes: self.options.manifest_rewrite_bytes,
                create_if_missing: true,
            },
        )?;
        let mut report = self.report;
        report.manifest_number = set.manifest_number();
        report.tables = self.tables.len();
        report.entries = self.tables.iter().map(|t| t.entries).sum();
        report.last_seqno = last_seqno;
        tracing::info!(
            tables = report.tables,
            entries = report.entries,
            moved = report.moved.len(),
            unreadable = report.unreadable.len(),
            manifest = report.manifest_number,
            "repaired"
        );
        Ok(report)
    }

    fn sync_dir(&self) -> Result<()> {
        self.fs
            .sync_dir(&self.dir)
            .map_err(|e| Error::io(format!("syncing {}", self.dir.display()), e))
    }
}

/// What the manifest records of a verified table.
fn table_meta(number: u64, table: &Table) -> TableMeta {
    let p = table.properties();
    TableMeta {
        number,
        file_size: table.file_size(),
        smallest: p.smallest_key.clone(),
        largest: p.largest_key.clone(),
        smallest_seqno: p.smallest_seqno,
        largest_seqno: p.largest_seqno,
        entries: p.entry_count,
        tombstones: p.tombstone_count,
        range_tombstones: p.range_tombstone_count,
    }
}

/// Groups (as indices into `tables`, two or more each) of tables linked by
/// pairs whose user-key ranges meet and whose seqno ranges intersect: L0
/// cannot hold them side by side.
fn conflicting_groups(tables: &[TableMeta]) -> Vec<Vec<usize>> {
    let n = tables.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut conflicted = vec![false; n];
    for i in 0..n {
        for j in i + 1..n {
            let (a, b) = (&tables[i], &tables[j]);
            let keys_meet = a.overlaps(Some(b.smallest_user_key()), Some(b.largest_user_key()));
            let seqnos_meet =
                a.smallest_seqno <= b.largest_seqno && b.smallest_seqno <= a.largest_seqno;
            if keys_meet && seqnos_meet {
                let (ri, rj) = (root(&mut parent, i), root(&mut parent, j));
                parent[ri] = rj;
                conflicted[i] = true;
                conflicted[j] = true;
            }
        }
    }
    let mut groups: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for i in (0..n).filter(|&i| conflicted[i]) {
        let r = root(&mut parent, i);
        groups.entry(r).or_default().push(i);
    }
    groups.into_values().collect()
}

/// `lost/NAME`, or `lost/NAME.1`, `.2`, … if taken by an earlier repair.
fn unused_name(fs: &dyn Fs, lost: &Path, name: &str) -> Result<PathBuf> {
    let taken = |p: &Path| {
        fs.exists(p)
            .map_err(|e| Error::io(format!("looking for {}", p.display()), e))
    };
    let mut candidate = lost.join(name);
    let mut n = 0;
    while taken(&candidate)? {
        n += 1;
        candidate = lost.join(format!("{name}.{n}"));
    }
    Ok(candidate)
}

fn remove_quietly(fs: &dyn Fs, path: &Path) {
    if let Err(e) = fs.remove_file(path) {
        tracing::warn!(file = %path.display(), error = %e, "removing a repair's intermediate table");
    }
}
