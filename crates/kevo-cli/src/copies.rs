//! Copies of a database: `kevo checkpoint` and `kevo backup …`.

use std::path::Path;

use kevo_engine::{Backup, BackupId, BackupInfo, CheckpointOptions};
use serde_json::json;

use crate::cli::BackupCommand;
use crate::data::{close, open_write};
use crate::out::{Out, Outcome, bytes, usage};

/// `kevo checkpoint DIR TARGET`.
pub(crate) fn checkpoint(out: &mut Out, dir: &Path, target: &Path, flush: bool) -> Outcome {
    let db = open_write(dir, false)?;
    let options = CheckpointOptions { flush_first: flush };
    let info = db.checkpoint_with(target, &options)?;
    if out.json {
        out.json_line(&json!({
            "dir": info.dir.display().to_string(),
            "seqno": info.seqno,
            "tables": info.tables,
            "tables_linked": info.tables_linked,
            "table_bytes": info.table_bytes,
            "bytes_copied": info.bytes_copied,
            "wal_segments": info.wal_segments,
            "wal_bytes": info.wal_bytes,
            "seconds": info.duration.as_secs_f64(),
        }))?;
    } else {
        out.line(format!(
            "checkpoint {} at seqno {}: {} tables ({}, {} linked), {} WAL segment(s) ({}), \
             {} copied in {:.3} s",
            info.dir.display(),
            info.seqno,
            info.tables,
            bytes(info.table_bytes),
            info.tables_linked,
            info.wal_segments,
            bytes(info.wal_bytes),
            bytes(info.bytes_copied),
            info.duration.as_secs_f64()
        ))?;
    }
    close(db)
}

fn open_backup(dir: &Path) -> Result<Backup, crate::out::Failure> {
    Backup::open(dir).map_err(|e| usage!("cannot open backup directory {}: {e}", dir.display()))
}

/// One backup for people or programs.
fn show(out: &mut Out, b: &BackupInfo) -> Outcome {
    if out.json {
        out.json_line(&json!({
            "id": b.id.0,
            "seqno": b.seqno,
            "created_unix_ms": b.created_unix_ms,
            "files": b.files.len(),
            "bytes": b.bytes(),
            "bytes_copied": b.bytes_copied,
            "bytes_reused": b.bytes_reused,
        }))
    } else {
        out.line(format!(
            "backup {}: seqno {}, {} files ({}), copied {}, reused {}, made at {} ms",
            b.id,
            b.seqno,
            b.files.len(),
            bytes(b.bytes()),
            bytes(b.bytes_copied),
            bytes(b.bytes_reused),
            b.created_unix_ms
        ))
    }
}

/// `kevo backup …`.
pub(crate) fn backup(out: &mut Out, command: &BackupCommand) -> Outcome {
    match command {
        BackupCommand::Create { db, backups } => {
            let database = open_write(db, false)?;
            let store = open_backup(backups)?;
            let id = store.create(&database)?;
            close(database)?;
            show(out, &store.info(id)?)
        }
        BackupCommand::List { backups } => {
            let store = open_backup(backups)?;
            for b in store.list()? {
                show(out, &b)?;
            }
            Ok(())
        }
        BackupCommand::Verify { backups, id } => {
            let store = open_backup(backups)?;
            store.verify(BackupId(*id))?;
            if out.json {
                out.json_line(&json!({"id": id, "ok": true}))
            } else {
                out.line(format!("backup {id}: every file matches its checksum"))
            }
        }
        BackupCommand::Restore {
            backups,
            id,
            target,
        } => {
            let store = open_backup(backups)?;
            store.restore(BackupId(*id), target)?;
            if out.json {
                out.json_line(&json!({"id": id, "restored": target.display().to_string()}))
            } else {
                out.line(format!("backup {id} restored to {}", target.display()))
            }
        }
        BackupCommand::Delete { backups, id } => {
            let store = open_backup(backups)?;
            store.delete(BackupId(*id))?;
            if out.json {
                out.json_line(&json!({"deleted": [id]}))
            } else {
                out.line(format!("backup {id} deleted"))
            }
        }
        BackupCommand::Purge { backups, keep } => {
            let store = open_backup(backups)?;
            let gone: Vec<u64> = store.purge_old(*keep)?.into_iter().map(|id| id.0).collect();
            if out.json {
                out.json_line(&json!({"deleted": gone}))
            } else {
                out.line(format!(
                    "{} backup(s) deleted, {} kept",
                    gone.len(),
                    store.list()?.len()
                ))
            }
        }
    }
}
