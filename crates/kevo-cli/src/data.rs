//! The commands that read and write entries: get, put, delete, scan, load
//! and export.

use std::io::{BufRead, BufReader, Read};
use std::ops::Bound;
use std::path::Path;

use bytes::Bytes;
use kevo_engine::{Db, Options, WriteBatch};
use serde_json::{Map, Value};

use crate::cli::{LoadFormat, RangeArgs};
use crate::out::{Failure, Out, Outcome, progress, usage};
use crate::text;

/// Opens `dir` for reading only: shared with other readers, nothing on
/// disk changed.
pub(crate) fn open_read(dir: &Path) -> Result<Db, Failure> {
    Db::open_read_only(dir).map_err(|e| usage!("cannot open {}: {e}", dir.display()))
}

/// Opens `dir` for writing; creates it only with `create`.
pub(crate) fn open_write(dir: &Path, create: bool) -> Result<Db, Failure> {
    if !create && !dir.join("CURRENT").exists() {
        return Err(usage!(
            "cannot open {}: not a kevo database (no CURRENT file); pass --create to make one",
            dir.display()
        ));
    }
    Db::open_with(dir, Options::default().create_if_missing(create))
        .map_err(|e| usage!("cannot open {}: {e}", dir.display()))
}

/// Parses a key or value given on the command line.
pub(crate) fn arg(text: &str) -> Result<Vec<u8>, Failure> {
    text::parse(text).map_err(Failure::Usage)
}

/// Closes `db`, reporting a failure.
pub(crate) fn close(db: Db) -> Outcome {
    db.close().map_err(Failure::from)
}

/// `kevo get`.
pub(crate) fn get(out: &mut Out, dir: &Path, key: &str) -> Outcome {
    let key = arg(key)?;
    let db = open_read(dir)?;
    let value = db.get(&key)?;
    if out.json {
        let mut object = Map::new();
        text::to_json(&mut object, "key", &key);
        match &value {
            Some(value) => text::to_json(&mut object, "value", value),
            None => {
                object.insert("value".into(), Value::Null);
            }
        }
        out.json_line(&Value::Object(object))?;
    } else {
        match &value {
            Some(value) => out.line(text::escape(value))?,
            None => eprintln!("(not found)"),
        }
    }
    close(db)
}

/// `kevo put`.
pub(crate) fn put(dir: &Path, key: &str, value: &str, create: bool) -> Outcome {
    let (key, value) = (arg(key)?, arg(value)?);
    let db = open_write(dir, create)?;
    db.put(key, value)?;
    close(db)
}

/// `kevo delete`.
pub(crate) fn delete(dir: &Path, key: &str) -> Outcome {
    let key = arg(key)?;
    let db = open_write(dir, false)?;
    db.delete(key)?;
    close(db)
}

/// A range of keys: its lower and upper bound.
pub(crate) type KeyRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// The key bounds `range` names: `--start`/`--end` intersected with the
/// bounds of `--prefix`.
pub(crate) fn bounds(range: &RangeArgs) -> Result<KeyRange, Failure> {
    let mut start = match &range.start {
        Some(s) => Bound::Included(arg(s)?),
        None => Bound::Unbounded,
    };
    let mut end = match &range.end {
        Some(e) => Bound::Excluded(arg(e)?),
        None => Bound::Unbounded,
    };
    if let Some(prefix) = &range.prefix {
        let prefix = arg(prefix)?;
        let later_start = match &start {
            Bound::Included(s) => s < &prefix,
            _ => true,
        };
        if later_start {
            start = Bound::Included(prefix.clone());
        }
        if let Some(after) = prefix_end(&prefix) {
            let earlier_end = match &end {
                Bound::Excluded(e) => after < *e,
                _ => true,
            };
            if earlier_end {
                end = Bound::Excluded(after);
            }
        }
    }
    Ok((start, end))
}

/// The smallest key greater than every key starting with `prefix`; `None`
/// if there is none (the prefix is all `0xff`).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Visits the entries `range` names, in its order, at most `--limit`.
pub(crate) fn for_each(
    db: &Db,
    range: &RangeArgs,
    mut f: impl FnMut(Bytes, Bytes) -> Outcome,
) -> Outcome {
    let (start, end) = bounds(range)?;
    let empty = matches!((&start, &end), (Bound::Included(s), Bound::Excluded(e)) if s >= e);
    if empty {
        return Ok(());
    }
    let iter = db.range((start, end));
    let limit = range.limit.unwrap_or(u64::MAX);
    let mut seen = 0;
    let mut visit = |item: kevo_engine::Result<(Bytes, Bytes)>| -> Result<bool, Failure> {
        if seen >= limit {
            return Ok(false);
        }
        let (key, value) = item?;
        seen += 1;
        f(key, value)?;
        Ok(true)
    };
    if range.reverse {
        for item in iter.rev() {
            if !visit(item)? {
                break;
            }
        }
    } else {
        for item in iter {
            if !visit(item)? {
                break;
            }
        }
    }
    Ok(())
}

/// One entry as a JSON object (`keys_only`: the key alone).
pub(crate) fn entry_json(key: &[u8], value: Option<&[u8]>) -> Value {
    let mut object = Map::new();
    text::to_json(&mut object, "key", key);
    if let Some(value) = value {
        text::to_json(&mut object, "value", value);
    }
    Value::Object(object)
}

/// `kevo scan`: one entry per line (`key = value`, or JSON lines).
pub(crate) fn scan(out: &mut Out, dir: &Path, range: &RangeArgs) -> Outcome {
    let db = open_read(dir)?;
    for_each(&db, range, |key, value| {
        if out.json {
            let value = (!range.keys_only).then_some(&value[..]);
            out.json_line(&entry_json(&key, value))
        } else if range.keys_only {
            out.line(text::escape(&key))
        } else {
            out.line(format!("{} = {}", text::escape(&key), text::escape(&value)))
        }
    })?;
    out.flush()?;
    close(db)
}

/// `kevo export`: JSON lines of every entry in `range`.
pub(crate) fn export(out: &mut Out, dir: &Path, range: &RangeArgs) -> Outcome {
    let db = open_read(dir)?;
    let total = db.stats().levels.iter().map(|l| l.entries).sum::<u64>();
    let bar = progress(total, "export");
    let mut exported = 0u64;
    for_each(&db, range, |key, value| {
        exported += 1;
        bar.inc(1);
        let value = (!range.keys_only).then_some(&value[..]);
        out.json_line(&entry_json(&key, value))
    })?;
    bar.finish_and_clear();
    out.flush()?;
    eprintln!("exported {exported} entries");
    close(db)
}

/// Entries per write batch while loading.
const LOAD_BATCH_ENTRIES: usize = 1000;

/// `kevo load`: JSON lines or tab-separated pairs, in batches.
pub(crate) fn load(
    out: &mut Out,
    dir: &Path,
    file: &Path,
    format: Option<LoadFormat>,
    create: bool,
) -> Outcome {
    let format = format.unwrap_or_else(|| match file.extension().and_then(|e| e.to_str()) {
        Some("tsv" | "txt") => LoadFormat::Tsv,
        _ => LoadFormat::Jsonl,
    });
    let (reader, len): (Box<dyn Read>, u64) = if file == Path::new("-") {
        (Box::new(std::io::stdin().lock()), 0)
    } else {
        let opened =
            std::fs::File::open(file).map_err(|e| usage!("cannot read {}: {e}", file.display()))?;
        let len = opened.metadata().map(|m| m.len()).unwrap_or(0);
        (Box::new(opened), len)
    };
    // Parse the first line before touching the database, so that a wrong
    // file creates nothing.
    let mut lines = BufReader::new(reader);
    let mut first = String::new();
    lines
        .read_line(&mut first)
        .map_err(|e| usage!("reading {}: {e}", file.display()))?;
    let mut pending = Vec::new();
    if !first.trim().is_empty() {
        pending.push(parse_line(&first, format).map_err(|e| usage!("{}:1: {e}", file.display()))?);
    }
    let db = open_write(dir, create)?;
    let bar = progress(len, "load");
    bar.inc(first.len() as u64);
    let mut batch = WriteBatch::new();
    let mut loaded = 0u64;
    for (key, value) in pending {
        batch.put(key, value);
    }
    let mut line_no = 1u64;
    let mut line = String::new();
    loop {
        line.clear();
        let n = lines
            .read_line(&mut line)
            .map_err(|e| usage!("reading {}: {e}", file.display()))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        bar.inc(n as u64);
        if line.trim().is_empty() {
            continue;
        }
        let (key, value) = parse_line(&line, format).map_err(|e| {
            usage!(
                "{}:{line_no}: {e} ({loaded} entries before this line were loaded)",
                file.display()
            )
        })?;
        batch.put(key, value);
        if batch.len() >= LOAD_BATCH_ENTRIES {
            let n = batch.len() as u64;
            db.write(std::mem::take(&mut batch))
                .map_err(|e| partial(e, loaded, file, line_no))?;
            loaded += n;
        }
    }
    let n = batch.len() as u64;
    db.write(batch)
        .map_err(|e| partial(e, loaded, file, line_no))?;
    loaded += n;
    bar.finish_and_clear();
    if out.json {
        out.json_line(&serde_json::json!({ "loaded": loaded }))?;
    } else {
        out.line(format!("loaded {loaded} entries"))?;
    }
    close(db)
}

/// A write of `load` failed after `loaded` entries (in batches of
/// [`LOAD_BATCH_ENTRIES`]; the failed batch wrote nothing).
fn partial(e: kevo_engine::Error, loaded: u64, file: &Path, line: u64) -> Failure {
    let message = format!(
        "{}: the batch ending at line {line} failed: {e} ({loaded} entries before it were loaded)",
        file.display()
    );
    if e.is_corruption() {
        Failure::Damage(message)
    } else {
        Failure::Usage(message)
    }
}

/// One line of a `load` file as a key and a value.
fn parse_line(line: &str, format: LoadFormat) -> Result<(Vec<u8>, Vec<u8>), String> {
    let line = line.trim_end_matches(['\n', '\r']);
    match format {
        LoadFormat::Tsv => {
            let (key, value) = line.split_once('\t').ok_or("expected KEY<TAB>VALUE")?;
            Ok((text::parse(key)?, text::parse(value)?))
        }
        LoadFormat::Jsonl => {
            let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
            let Value::Object(object) = value else {
                return Err("expected a JSON object".to_string());
            };
            let key = text::from_json(&object, "key")?.ok_or("no `key` or `key_hex`")?;
            let value = text::from_json(&object, "value")?.ok_or("no `value` or `value_hex`")?;
            Ok((key, value))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_bounds_meet_start_and_end() {
        let range = RangeArgs {
            prefix: Some("ab".into()),
            ..RangeArgs::default()
        };
        assert_eq!(
            bounds(&range).unwrap(),
            (
                Bound::Included(b"ab".to_vec()),
                Bound::Excluded(b"ac".to_vec())
            )
        );
        let range = RangeArgs {
            prefix: Some("ab".into()),
            start: Some("abc".into()),
            end: Some("az".into()),
            ..RangeArgs::default()
        };
        assert_eq!(
            bounds(&range).unwrap(),
            (
                Bound::Included(b"abc".to_vec()),
                Bound::Excluded(b"ac".to_vec())
            )
        );
        assert_eq!(prefix_end(&[0x61, 0xff]), Some(vec![0x62]));
        assert_eq!(prefix_end(&[0xff]), None);
    }

    #[test]
    fn load_lines_parse_or_say_why() {
        assert_eq!(
            parse_line("a\t0x00\n", LoadFormat::Tsv).unwrap(),
            (b"a".to_vec(), vec![0])
        );
        assert_eq!(
            parse_line(r#"{"key":"k","value_hex":"ff"}"#, LoadFormat::Jsonl).unwrap(),
            (b"k".to_vec(), vec![0xff])
        );
        assert!(parse_line("no tab", LoadFormat::Tsv).is_err());
        assert!(parse_line("[1]", LoadFormat::Jsonl).is_err());
        assert!(parse_line(r#"{"key":"k"}"#, LoadFormat::Jsonl).is_err());
    }
}
