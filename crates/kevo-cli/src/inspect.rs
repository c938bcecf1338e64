//! Whole-database commands: stats, lsm, check, repair and compact.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kevo_core::{Fs, KeyspaceId, OsFs};
use kevo_engine::{Db, Stats, TableFile};
use kevo_manifest::{CURRENT_FILE, TableMeta, VersionEdit, table_file_name};
use kevo_sstable::{ReadOptions, Table};
use kevo_wal::{RecoveryMode, RecoveryPlan, Replay};
use serde_json::{Map, Value, json};

use crate::data::{close, open_read, open_write};
use crate::files::read_manifest;
use crate::lsm_html;
use crate::out::{Failure, Out, Outcome, Table as TextTable, bytes, progress, usage};
use crate::text;

/// `kevo stats`.
pub(crate) fn stats(out: &mut Out, dir: &Path) -> Outcome {
    let db = open_read(dir)?;
    let stats = db.stats();
    if out.json {
        out.json_value(&stats_json(&stats))?;
    } else {
        out.line(&stats)?;
    }
    close(db)
}

/// `stats` as a JSON object.
pub(crate) fn stats_json(s: &Stats) -> Value {
    let levels: Vec<Value> = s
        .levels
        .iter()
        .enumerate()
        .map(|(level, l)| {
            json!({
                "level": level,
                "tables": l.tables,
                "bytes": l.bytes,
                "entries": l.entries,
                "target_bytes": l.target_bytes,
                "score": l.score,
                "compactions": l.compaction.compactions,
                "compaction_bytes_read": l.compaction.bytes_read,
                "compaction_bytes_written": l.compaction.bytes_written,
            })
        })
        .collect();
    json!({
        "levels": levels,
        "memtable_bytes": s.memtable_bytes,
        "immutable_memtables": s.immutable_memtables,
        "immutable_memtable_bytes": s.immutable_memtable_bytes,
        "last_seqno": s.last_seqno,
        "writes": s.writes,
        "write_groups": s.write_groups,
        "entries_written": s.entries_written,
        "user_bytes_written": s.user_bytes_written,
        "wal_bytes_written": s.wal_bytes_written,
        "wal_syncs": s.wal_syncs,
        "wal_tail_bytes_dropped": s.wal_tail_bytes_dropped,
        "flushes": s.flushes,
        "flush_bytes_written": s.flush_bytes_written,
        "compactions": s.compactions,
        "compaction_bytes_read": s.compaction_bytes_read,
        "compaction_bytes_written": s.compaction_bytes_written,
        "compaction_errors": s.compaction_errors,
        "pending_compaction_bytes": s.pending_compaction_bytes,
        "compaction_style": s.compaction_style,
        "stall_micros": s.stall_time.as_micros() as u64,
        "block_cache_hits": s.block_cache_hits,
        "block_cache_misses": s.block_cache_misses,
        "block_cache_bytes": s.block_cache_bytes,
        "open_tables": s.open_tables,
        "snapshots": s.snapshots,
        "manifest_edits": s.manifest_edits,
        "table_bytes": s.table_bytes(),
        "table_count": s.table_count(),
        "write_amplification": s.write_amplification(),
        "read_only_cause": s.read_only_cause,
        "unexplained_files": s.unexplained_files,
    })
}

/// `kevo lsm`: the live tables, level by level.
pub(crate) fn lsm(out: &mut Out, dir: &Path, html: Option<&Path>) -> Outcome {
    let db = open_read(dir)?;
    let stats = db.stats();
    let mut files = db.table_files();
    files.sort_by(|a, b| (a.level, &a.smallest_key).cmp(&(b.level, &b.smallest_key)));
    if out.json {
        let levels: Vec<Value> = stats
            .levels
            .iter()
            .enumerate()
            .map(|(level, l)| {
                let tables: Vec<Value> = files
                    .iter()
                    .filter(|f| f.level == level)
                    .map(table_json)
                    .collect();
                json!({
                    "level": level,
                    "tables": tables,
                    "bytes": l.bytes,
                    "target_bytes": l.target_bytes,
                    "score": l.score,
                })
            })
            .collect();
        out.json_value(&json!({ "levels": levels, "memtable_bytes": stats.memtable_bytes }))?;
    } else {
        let mut summary = TextTable::new(&["level", "tables", "size", "target", "score"]);
        for (level, l) in stats.levels.iter().enumerate() {
            summary.row(vec![
                format!("L{level}"),
                l.tables.to_string(),
                bytes(l.bytes),
                if l.target_bytes > 0 {
                    bytes(l.target_bytes)
                } else {
                    "-".into()
                },
                format!("{:.2}", l.score),
            ]);
        }
        out.table(&summary)?;
        if !files.is_empty() {
            out.line("")?;
            let mut rows = TextTable::new(&[
                "level",
                "table",
                "size",
                "entries",
                "tombstones",
                "seqnos",
                "smallest",
                "largest",
            ]);
            for f in &files {
                rows.row(vec![
                    format!("L{}", f.level),
                    table_file_name(f.number),
                    bytes(f.file_size),
                    f.entries.to_string(),
                    f.tombstones.to_string(),
                    format!("{}..{}", f.smallest_seqno, f.largest_seqno),
                    shorten(&text::escape(&f.smallest_key)),
                    shorten(&text::escape(&f.largest_key)),
                ]);
            }
            out.table(&rows)?;
        }
    }
    if let Some(html_path) = html {
        let history = history(dir)?;
        let page = lsm_html::render(&dir.display().to_string(), &files, &stats, &history);
        std::fs::write(html_path, page)
            .map_err(|e| usage!("cannot write {}: {e}", html_path.display()))?;
        eprintln!("wrote {}", html_path.display());
    }
    out.flush()?;
    close(db)
}

fn table_json(f: &TableFile) -> Value {
    let mut object = Map::new();
    object.insert("number".into(), json!(f.number));
    object.insert("file".into(), json!(table_file_name(f.number)));
    object.insert("file_size".into(), json!(f.file_size));
    object.insert("entries".into(), json!(f.entries));
    object.insert("tombstones".into(), json!(f.tombstones));
    object.insert("smallest_seqno".into(), json!(f.smallest_seqno));
    object.insert("largest_seqno".into(), json!(f.largest_seqno));
    text::to_json(&mut object, "smallest_key", &f.smallest_key);
    text::to_json(&mut object, "largest_key", &f.largest_key);
    Value::Object(object)
}

/// `text` cut to 32 characters for a table column.
fn shorten(text: &str) -> String {
    if text.chars().count() <= 32 {
        text.to_string()
    } else {
        let head: String = text.chars().take(31).collect();
        format!("{head}…")
    }
}

/// The live manifest of `dir`, from `CURRENT`.
fn current_manifest(dir: &Path) -> Result<PathBuf, Failure> {
    let current = std::fs::read_to_string(dir.join(CURRENT_FILE)).map_err(|e| {
        usage!(
            "{}: not a kevo database (cannot read CURRENT: {e})",
            dir.display()
        )
    })?;
    let name = current.trim_end_matches('\n');
    if name.is_empty() || name.contains('/') || name.contains('\n') {
        return Err(Failure::Damage(format!(
            "{}: CURRENT does not name a manifest: {current:?}",
            dir.display()
        )));
    }
    Ok(dir.join(name))
}

/// The live tables (level -> number -> meta) and WAL segments as the edits
/// so far leave them.
#[derive(Debug, Default, Clone)]
pub(crate) struct Replayed {
    /// Tables per level (of every keyspace: table numbers are shared).
    pub(crate) levels: BTreeMap<usize, BTreeMap<u64, TableMeta>>,
    /// The keyspace of each table.
    pub(crate) keyspace_of: BTreeMap<u64, KeyspaceId>,
    /// WAL segments at or above the log number, with their sealed length.
    pub(crate) wals: BTreeMap<u64, Option<u64>>,
    /// The log number.
    pub(crate) log_number: u64,
    /// The last seqno recorded.
    pub(crate) last_seqno: u64,
}

impl Replayed {
    /// Applies one edit.
    pub(crate) fn apply(&mut self, edit: &VersionEdit) {
        for (level, number) in &edit.removed {
            if let Some(tables) = self.levels.get_mut(level) {
                tables.remove(number);
            }
        }
        for (level, meta) in &edit.added {
            self.levels
                .entry(*level)
                .or_default()
                .insert(meta.number, meta.clone());
            self.keyspace_of.insert(meta.number, edit.keyspace);
        }
        if edit.keyspace_dropped {
            let dropped: Vec<u64> = self
                .keyspace_of
                .iter()
                .filter(|(_, k)| **k == edit.keyspace)
                .map(|(n, _)| *n)
                .collect();
            for number in dropped {
                self.keyspace_of.remove(&number);
                for tables in self.levels.values_mut() {
                    tables.remove(&number);
                }
            }
        }
        if let Some(n) = edit.log_number {
            self.log_number = self.log_number.max(n);
        }
        if let Some(s) = edit.last_seqno {
            self.last_seqno = self.last_seqno.max(s);
        }
        for &s in &edit.wal_segments_added {
            self.wals.insert(s, None);
        }
        for &(s, len) in &edit.wal_segments_sealed {
            self.wals.insert(s, Some(len));
        }
        let log_number = self.log_number;
        self.wals.retain(|&s, _| s >= log_number);
    }
}

/// The tree after each edit of the live manifest that changed a table.
fn history(dir: &Path) -> Result<Vec<Replayed>, Failure> {
    let edits = read_manifest(&current_manifest(dir)?)?;
    let mut state = Replayed::default();
    let mut shapes = Vec::new();
    for (_, edit) in &edits {
        state.apply(edit);
        if !edit.added.is_empty() || !edit.removed.is_empty() {
            shapes.push(state.clone());
        }
    }
    Ok(shapes)
}

/// One problem `check` found.
struct Finding {
    file: String,
    offset: Option<u64>,
    problem: String,
}

/// `kevo check`: every table block by block, the manifest against the
/// directory, the WAL replayed without applying it.
pub(crate) fn check(out: &mut Out, dir: &Path) -> Outcome {
    if !dir.join(CURRENT_FILE).exists() {
        return Err(usage!(
            "{}: not a kevo database (no CURRENT file)",
            dir.display()
        ));
    }
    // A shared lock: a writer may not change the files under the check.
    let fs = OsFs::new();
    // (A directory without `LOCK` was never opened by a writer that is
    // still running; it is checked without one.)
    let _lock = match fs.lock_shared(&dir.join(kevo_engine::LOCK_FILE)) {
        Ok(lock) => Some(lock),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(usage!(
                "{}: cannot check a database open for writing ({e})",
                dir.display()
            ));
        }
    };
    let mut findings = Vec::new();
    let manifest = current_manifest(dir)?;
    let manifest_name = file_name(&manifest);
    let mut state = Replayed::default();
    match read_manifest(&manifest) {
        Ok(edits) => {
            for (_, edit) in &edits {
                state.apply(edit);
            }
        }
        Err(e) => findings.push(Finding {
            file: manifest_name.clone(),
            offset: None,
            problem: e.to_string(),
        }),
    }
    // Tables: each live one present, of its recorded size, and intact.
    let live: Vec<(usize, TableMeta)> = state
        .levels
        .iter()
        .flat_map(|(level, tables)| tables.values().map(|t| (*level, t.clone())))
        .collect();
    let bar = progress(live.len() as u64, "check");
    let (mut tables_ok, mut entries) = (0u64, 0u64);
    for (level, meta) in &live {
        bar.inc(1);
        let name = table_file_name(meta.number);
        let path = dir.join(&name);
        let finding = |offset, problem: String| Finding {
            file: name.clone(),
            offset,
            problem,
        };
        match std::fs::metadata(&path) {
            Err(_) => {
                findings.push(finding(
                    None,
                    format!("missing: the manifest lists it at L{level}"),
                ));
                continue;
            }
            Ok(m) if m.len() != meta.file_size => {
                findings.push(finding(
                    Some(m.len().min(meta.file_size)),
                    format!(
                        "{} bytes, but the manifest recorded {}",
                        m.len(),
                        meta.file_size
                    ),
                ));
                continue;
            }
            Ok(_) => {}
        }
        match Table::open(&fs, &path, ReadOptions::default()).and_then(|t| t.verify()) {
            Ok(report) => {
                tables_ok += 1;
                entries += report.entries;
            }
            Err(e) => {
                let offset = match &e {
                    kevo_core::Error::Corruption { offset, .. } => Some(*offset),
                    _ => None,
                };
                findings.push(finding(offset, e.to_string()));
            }
        }
    }
    bar.finish_and_clear();
    // The WAL: the live segments, read as recovery would (sealed ones up
    // to their synced length), damage listed rather than stopping.
    let mut segments = Vec::new();
    let mut sealed = BTreeMap::new();
    for (&segment, &len) in &state.wals {
        let name = format!("{segment:06}.wal");
        if !dir.join(&name).exists() {
            findings.push(Finding {
                file: name,
                offset: None,
                problem: "missing: the manifest lists it as a live WAL segment".into(),
            });
            continue;
        }
        segments.push(segment);
        if let Some(len) = len {
            sealed.insert(segment, len);
        }
    }
    let mut wal_batches = 0u64;
    if !segments.is_empty() {
        let plan = RecoveryPlan {
            segments,
            sealed,
            headers_durable: true,
            seals_tracked: true,
        };
        let shared: Arc<dyn Fs> = Arc::new(OsFs::new());
        let mut replay = Replay::with_plan(shared, dir, RecoveryMode::SkipCorrupted, plan);
        for item in replay.by_ref() {
            match item {
                Ok(_) => wal_batches += 1,
                Err(e) => {
                    findings.push(Finding {
                        file: "WAL".into(),
                        offset: None,
                        problem: e.to_string(),
                    });
                    break;
                }
            }
        }
        for s in &replay.report().skipped {
            let name = format!("{:06}.wal", s.segment);
            let len = std::fs::metadata(dir.join(&name))
                .map(|m| m.len())
                .unwrap_or(0);
            // An unsealed segment with no sealed one after it (the live
            // one, or one whose seal was still to come) may end in what a
            // crash leaves: seals are recorded in order.
            let torn_tail = state.wals.get(&s.segment) == Some(&None)
                && !state
                    .wals
                    .range(s.segment + 1..)
                    .any(|(_, sealed)| sealed.is_some())
                && s.offset + s.len >= len;
            if !torn_tail {
                findings.push(Finding {
                    file: name,
                    offset: Some(s.offset),
                    problem: format!("{} bytes unreadable: {}", s.len, s.reason),
                });
            }
        }
    }
    // Files the manifest does not explain are not damage; say so.
    let mut unexplained = Vec::new();
    if let Ok(listing) = std::fs::read_dir(dir) {
        for entry in listing.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(number) = kevo_manifest::parse_table_file_name(&name)
                && !live.iter().any(|(_, t)| t.number == number)
            {
                unexplained.push(name);
            }
        }
    }
    unexplained.sort();

    if out.json {
        let damage: Vec<Value> = findings
            .iter()
            .map(|f| json!({"file": f.file, "offset": f.offset, "problem": f.problem}))
            .collect();
        out.json_value(&json!({
            "ok": findings.is_empty(),
            "manifest": manifest_name,
            "tables": live.len(),
            "tables_ok": tables_ok,
            "entries": entries,
            "wal_segments": state.wals.len(),
            "wal_batches": wal_batches,
            "damage": damage,
            "unexplained_files": unexplained,
        }))?;
    } else {
        out.line(format!(
            "{}: {} tables ({tables_ok} intact, {entries} entries), {} WAL segments ({wal_batches} batches), manifest {manifest_name}",
            dir.display(),
            live.len(),
            state.wals.len(),
        ))?;
        for name in &unexplained {
            out.line(format!(
                "note: {name} is not named by the manifest (left alone)"
            ))?;
        }
        if findings.is_empty() {
            out.line("ok: no damage found")?;
        } else {
            let mut rows = TextTable::new(&["file", "offset", "problem"]);
            for f in &findings {
                rows.row(vec![
                    f.file.clone(),
                    f.offset.map_or("-".into(), |o| o.to_string()),
                    f.problem.clone(),
                ]);
            }
            out.table(&rows)?;
        }
    }
    out.flush()?;
    if findings.is_empty() {
        Ok(())
    } else {
        Err(Failure::Damage(format!(
            "{} problems found in {}",
            findings.len(),
            dir.display()
        )))
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// `kevo repair`.
pub(crate) fn repair(out: &mut Out, dir: &Path) -> Outcome {
    if !dir.is_dir() {
        return Err(usage!("{}: no such directory", dir.display()));
    }
    // Repair rebuilds a database from what is left of one; a directory
    // holding none of kevo's files is not one, and gets none.
    let holds_kevo_files = std::fs::read_dir(dir)
        .map_err(|e| usage!("cannot list {}: {e}", dir.display()))?
        .flatten()
        .any(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            name == CURRENT_FILE
                || name.starts_with("MANIFEST-")
                || name.ends_with(".sst")
                || name.ends_with(".wal")
        });
    if !holds_kevo_files {
        return Err(usage!(
            "{}: not a kevo database (no CURRENT, manifest, table or WAL file); nothing to repair",
            dir.display()
        ));
    }
    let report = kevo_engine::repair(dir, &kevo_engine::Options::default())?;
    if out.json {
        let unreadable: Vec<Value> = report
            .unreadable
            .iter()
            .map(|u| {
                json!({
                    "file": u.file.display().to_string(),
                    "offset": u.offset,
                    "bytes": u.bytes,
                    "reason": u.reason,
                })
            })
            .collect();
        let moved: Vec<Value> = report
            .moved
            .iter()
            .map(|m| {
                json!({
                    "from": m.from.display().to_string(),
                    "to": m.to.display().to_string(),
                    "reason": m.reason,
                })
            })
            .collect();
        out.json_value(&json!({
            "tables_kept": report.tables_kept,
            "tables_written": report.tables_written,
            "tables": report.tables,
            "entries": report.entries,
            "wal_segments_replayed": report.wal_segments_replayed,
            "wal_batches": report.wal_batches,
            "wal_entries": report.wal_entries,
            "unreadable": unreadable,
            "moved": moved,
            "manifest_number": report.manifest_number,
            "last_seqno": report.last_seqno,
        }))?;
    } else {
        out.line(format!(
            "repaired {}: manifest MANIFEST-{:06}, {} tables ({} kept, {} written from the WAL), {} entries, last seqno {}",
            dir.display(),
            report.manifest_number,
            report.tables,
            report.tables_kept.len(),
            report.tables_written.len(),
            report.entries,
            report.last_seqno
        ))?;
        out.line(format!(
            "WAL: {} segments replayed, {} batches, {} entries",
            report.wal_segments_replayed.len(),
            report.wal_batches,
            report.wal_entries
        ))?;
        for u in &report.unreadable {
            out.line(format!(
                "unreadable: {} at offset {} ({} bytes): {}",
                u.file.display(),
                u.offset,
                u.bytes,
                u.reason
            ))?;
        }
        for m in &report.moved {
            out.line(format!(
                "moved: {} -> {} ({})",
                m.from.display(),
                m.to.display(),
                m.reason
            ))?;
        }
    }
    out.flush()
}

/// `kevo compact`.
pub(crate) fn compact(
    out: &mut Out,
    dir: &Path,
    start: Option<&str>,
    end: Option<&str>,
) -> Outcome {
    let db: Db = open_write(dir, false)?;
    let before = db.stats();
    let start = start.map(crate::data::arg).transpose()?;
    let end = end.map(crate::data::arg).transpose()?;
    let bar = progress(0, "compact");
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    use std::ops::Bound;
    let lower = start.map_or(Bound::Unbounded, Bound::Included);
    let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
    db.compact_range::<Vec<u8>, _>((lower, upper))?;
    bar.finish_and_clear();
    let after = db.stats();
    if out.json {
        out.json_line(&json!({
            "tables_before": before.table_count(),
            "tables_after": after.table_count(),
            "bytes_before": before.table_bytes(),
            "bytes_after": after.table_bytes(),
        }))?;
    } else {
        out.line(format!(
            "compacted: {} tables ({}) -> {} tables ({})",
            before.table_count(),
            bytes(before.table_bytes()),
            after.table_count(),
            bytes(after.table_bytes())
        ))?;
    }
    close(db)
}
