//! `kevo shell`: an interactive shell over one open database, with line
//! editing and history on a terminal, or a script read from stdin.
//!
//! Reads go through the open transaction if there is one, else the held
//! snapshot if there is one, else the database; writes go into the open
//! transaction if there is one, else straight to the database.

use std::io::{BufRead, IsTerminal};
use std::ops::Bound;
use std::path::Path;

use bytes::Bytes;
use kevo_engine::{Db, Snapshot, Transaction};
use serde_json::{Value, json};

use crate::data::{KeyRange, close, entry_json, open_read, open_write};
use crate::inspect::stats_json;
use crate::out::{Failure, Out, Outcome, usage};
use crate::text;

const HELP: &str = "\
commands (keys and values: text, \"quoted\\n\", or 0xHEX):
  get KEY                       the value of KEY
  put KEY VALUE                 set KEY (in the transaction, if one is open)
  delete KEY                    delete KEY (likewise)
  delete-range [START] [END]    delete every key from START (inclusive) to END
                                (exclusive) with one range tombstone (likewise)
  delete-prefix P               delete every key starting with P (likewise)
  scan [START] [END] [--limit N] [--reverse] [--keys-only]
                                entries from START (inclusive) to END (exclusive)
  prefix P [--limit N] [--reverse] [--keys-only]
                                entries whose key starts with P
  count [START] [END]           how many entries
  begin | commit | rollback     a transaction: reads see its writes
  snapshot | release            read as of now until released
  stats                         the database's counters
  flush                         write the memtable to a table
  compact [START] [END]         compact a key range (all by default)
  help                          this text
  exit | quit                   close the database and leave";

/// The shell's state: the database and what reads go through.
struct Session<'a> {
    db: Db,
    txn: Option<Transaction>,
    snapshot: Option<Snapshot>,
    out: &'a mut Out,
}

/// `kevo shell`.
pub(crate) fn run(out: &mut Out, dir: &Path, create: bool, read_only: bool) -> Outcome {
    let db = if read_only {
        open_read(dir)?
    } else {
        open_write(dir, create)?
    };
    let mut session = Session {
        db,
        txn: None,
        snapshot: None,
        out,
    };
    let interactive = std::io::stdin().is_terminal();
    // Each failed command is reported as it happens; a script's exit code
    // says whether any failed (damage first).
    let (mut failed, mut damaged) = (0u64, false);
    let mut note = |failure: Failure, line: Option<u64>| {
        match line {
            Some(n) => eprintln!("error (line {n}): {failure}"),
            None => eprintln!("error: {failure}"),
        }
        failed += 1;
        damaged |= matches!(failure, Failure::Damage(_));
    };
    if interactive {
        let mut editor = rustyline::DefaultEditor::new()
            .map_err(|e| usage!("cannot start the line editor: {e}"))?;
        let history = std::env::var_os("HOME").map(|h| Path::new(&h).join(".kevo_history"));
        if let Some(h) = &history {
            let _ = editor.load_history(h);
        }
        eprintln!("kevo shell on {}; `help` for commands", dir.display());
        loop {
            let prompt = match (&session.txn, &session.snapshot) {
                (Some(_), _) => "kevo(txn)> ",
                (None, Some(_)) => "kevo(snapshot)> ",
                _ => "kevo> ",
            };
            let line = match editor.readline(prompt) {
                Ok(line) => line,
                Err(rustyline::error::ReadlineError::Interrupted) => continue,
                Err(_) => break,
            };
            let _ = editor.add_history_entry(line.as_str());
            match session.execute(&line) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => note(e, None),
            }
            session.out.flush()?;
        }
        if let Some(h) = &history {
            let _ = editor.save_history(h);
        }
    } else {
        let stdin = std::io::stdin();
        for (n, line) in stdin.lock().lines().enumerate() {
            let line = line.map_err(|e| usage!("reading stdin: {e}"))?;
            match session.execute(&line) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => note(e, Some(n as u64 + 1)),
            }
        }
    }
    session.out.flush()?;
    let Session {
        db, txn, snapshot, ..
    } = session;
    if txn.is_some() {
        eprintln!("note: the open transaction was rolled back");
    }
    drop((txn, snapshot));
    close(db)?;
    if interactive || failed == 0 {
        Ok(())
    } else {
        let message = format!("{failed} commands of the script failed");
        Err(if damaged {
            Failure::Damage(message)
        } else {
            Failure::Usage(message)
        })
    }
}

/// Splits a shell line into words: whitespace separates them except inside
/// quotes; quotes are kept for [`text::parse`].
pub(crate) fn words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut in_word = false;
    for c in line.chars() {
        if let Some(q) = quote {
            current.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        if c.is_whitespace() {
            if in_word {
                words.push(std::mem::take(&mut current));
                in_word = false;
            }
            continue;
        }
        if c == '#' && !in_word {
            break;
        }
        in_word = true;
        if c == '"' || c == '\'' {
            quote = Some(c);
        }
        current.push(c);
    }
    if quote.is_some() {
        return Err(format!("the quote in `{line}` is not closed"));
    }
    if in_word {
        words.push(current);
    }
    Ok(words)
}

/// What scan-like commands were asked.
#[derive(Default)]
struct ScanArgs {
    bounds: Vec<Vec<u8>>,
    limit: Option<u64>,
    reverse: bool,
    keys_only: bool,
}

impl ScanArgs {
    /// The range its START (inclusive) and END (exclusive) words name.
    fn range(&self) -> KeyRange {
        let start = self.bounds.first().cloned();
        let end = self.bounds.get(1).cloned();
        (
            start.map_or(Bound::Unbounded, Bound::Included),
            end.map_or(Bound::Unbounded, Bound::Excluded),
        )
    }
}

fn scan_args(args: &[String], max_bounds: usize) -> Result<ScanArgs, Failure> {
    let mut parsed = ScanArgs::default();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--limit" => {
                let n = args
                    .get(i + 1)
                    .ok_or_else(|| usage!("--limit needs a number"))?;
                parsed.limit = Some(n.parse().map_err(|_| usage!("--limit {n}: not a number"))?);
                i += 1;
            }
            "--reverse" => parsed.reverse = true,
            "--keys-only" => parsed.keys_only = true,
            word => {
                if parsed.bounds.len() == max_bounds {
                    return Err(usage!("unexpected `{word}`"));
                }
                parsed
                    .bounds
                    .push(text::parse(word).map_err(Failure::Usage)?);
            }
        }
        i += 1;
    }
    Ok(parsed)
}

fn one(args: &[String], what: &str) -> Result<Vec<u8>, Failure> {
    match args {
        [word] => text::parse(word).map_err(Failure::Usage),
        _ => Err(usage!("expected {what}")),
    }
}

impl Session<'_> {
    /// Runs one line; `Ok(false)` to leave.
    fn execute(&mut self, line: &str) -> Result<bool, Failure> {
        let words = words(line).map_err(Failure::Usage)?;
        let Some((command, args)) = words.split_first() else {
            return Ok(true);
        };
        match command.as_str() {
            "exit" | "quit" => return Ok(false),
            "help" => self.out.line(HELP)?,
            "get" => self.get(&one(args, "get KEY")?)?,
            "put" => match args {
                [key, value] => {
                    let key = text::parse(key).map_err(Failure::Usage)?;
                    let value = text::parse(value).map_err(Failure::Usage)?;
                    match &mut self.txn {
                        Some(txn) => txn.put(key, value)?,
                        None => self.db.put(key, value)?,
                    }
                    self.ok()?;
                }
                _ => return Err(usage!("expected put KEY VALUE")),
            },
            "delete" => {
                let key = one(args, "delete KEY")?;
                match &mut self.txn {
                    Some(txn) => txn.delete(key)?,
                    None => self.db.delete(key)?,
                }
                self.ok()?;
            }
            "delete-range" => {
                let a = scan_args(args, 2)?;
                let range = a.range();
                match &mut self.txn {
                    Some(txn) => txn.delete_range(range)?,
                    None => self.db.delete_range(range)?,
                }
                self.ok()?;
            }
            "delete-prefix" => {
                let prefix = one(args, "delete-prefix P")?;
                match &mut self.txn {
                    Some(txn) => txn.delete_prefix(prefix)?,
                    None => self.db.delete_prefix(prefix)?,
                }
                self.ok()?;
            }
            "scan" => {
                let a = scan_args(args, 2)?;
                let (start, end) = a.range();
                self.scan((start, end), &a)?;
            }
            "prefix" => {
                let a = scan_args(args, 1)?;
                let prefix = a
                    .bounds
                    .first()
                    .ok_or_else(|| usage!("expected prefix P"))?;
                let start = Bound::Included(prefix.clone());
                let end = crate::data::prefix_end(prefix).map_or(Bound::Unbounded, Bound::Excluded);
                self.scan((start, end), &a)?;
            }
            "count" => {
                let a = scan_args(args, 2)?;
                let (start, end) = a.range();
                let mut n = 0u64;
                self.visit((start, end), false, |_, _| {
                    n += 1;
                    Ok(true)
                })?;
                if self.out.json {
                    self.out.json_line(&json!({ "count": n }))?;
                } else {
                    self.out.line(n)?;
                }
            }
            "begin" => {
                if self.txn.is_some() {
                    return Err(usage!(
                        "a transaction is already open (commit or rollback first)"
                    ));
                }
                self.txn = Some(self.db.begin());
                self.ok()?;
            }
            "commit" => {
                let txn = self
                    .txn
                    .take()
                    .ok_or_else(|| usage!("no transaction is open"))?;
                txn.commit()?;
                self.ok()?;
            }
            "rollback" => {
                let txn = self
                    .txn
                    .take()
                    .ok_or_else(|| usage!("no transaction is open"))?;
                txn.rollback();
                self.ok()?;
            }
            "snapshot" => {
                let snapshot = self.db.snapshot();
                let seqno = snapshot.seqno();
                self.snapshot = Some(snapshot);
                if self.out.json {
                    self.out.json_line(&json!({ "snapshot": seqno }))?;
                } else {
                    self.out.line(format!("snapshot at seqno {seqno}"))?;
                }
            }
            "release" => {
                self.snapshot
                    .take()
                    .ok_or_else(|| usage!("no snapshot is held"))?;
                self.ok()?;
            }
            "stats" => {
                let stats = self.db.stats();
                if self.out.json {
                    self.out.json_line(&stats_json(&stats))?;
                } else {
                    self.out.line(&stats)?;
                }
            }
            "flush" => {
                self.db.flush()?;
                self.ok()?;
            }
            "compact" => {
                let a = scan_args(args, 2)?;
                let (start, end) = a.range();
                self.db.compact_range::<Vec<u8>, _>((start, end))?;
                self.ok()?;
            }
            other => return Err(usage!("unknown command `{other}` (try `help`)")),
        }
        Ok(true)
    }

    fn ok(&mut self) -> Outcome {
        if self.out.json {
            self.out.json_line(&json!({ "ok": true }))
        } else {
            self.out.line("ok")
        }
    }

    fn get(&mut self, key: &[u8]) -> Outcome {
        let value = match (&mut self.txn, &self.snapshot) {
            (Some(txn), _) => txn.get(key)?,
            (None, Some(snapshot)) => snapshot.get(key)?,
            (None, None) => self.db.get(key)?,
        };
        if self.out.json {
            let mut object = serde_json::Map::new();
            text::to_json(&mut object, "key", key);
            match &value {
                Some(v) => text::to_json(&mut object, "value", v),
                None => {
                    object.insert("value".into(), Value::Null);
                }
            }
            self.out.json_line(&Value::Object(object))
        } else {
            match value {
                Some(v) => self.out.line(text::escape(&v)),
                None => self.out.line("(not found)"),
            }
        }
    }

    fn scan(&mut self, range: KeyRange, a: &ScanArgs) -> Outcome {
        let limit = a.limit.unwrap_or(u64::MAX);
        let mut lines = Vec::new();
        let mut n = 0u64;
        self.visit(range, a.reverse, |key, value| {
            if n >= limit {
                return Ok(false);
            }
            n += 1;
            lines.push((key, value));
            Ok(true)
        })?;
        for (key, value) in lines {
            if self.out.json {
                let value = (!a.keys_only).then_some(&value[..]);
                self.out.json_line(&entry_json(&key, value))?;
            } else if a.keys_only {
                self.out.line(text::escape(&key))?;
            } else {
                self.out
                    .line(format!("{} = {}", text::escape(&key), text::escape(&value)))?;
            }
        }
        if !self.out.json {
            self.out.line(format!("({n} entries)"))?;
        }
        Ok(())
    }

    /// Visits the entries of `range` through the current view until `f`
    /// returns `false`.
    fn visit(
        &mut self,
        range: KeyRange,
        reverse: bool,
        mut f: impl FnMut(Bytes, Bytes) -> Result<bool, Failure>,
    ) -> Outcome {
        let empty = matches!(&range, (Bound::Included(s), Bound::Excluded(e)) if s >= e);
        if empty {
            return Ok(());
        }
        let iter: Box<dyn DoubleEndedIterator<Item = kevo_engine::Result<(Bytes, Bytes)>>> =
            match (&mut self.txn, &self.snapshot) {
                (Some(txn), _) => Box::new(txn.range(range)),
                (None, Some(snapshot)) => Box::new(snapshot.range(range)),
                (None, None) => Box::new(self.db.range(range)),
            };
        let iter: Box<dyn Iterator<Item = _>> = if reverse { Box::new(iter.rev()) } else { iter };
        for item in iter {
            let (key, value) = item?;
            if !f(key, value)? {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_keep_quoted_spaces_and_drop_comments() {
        assert_eq!(
            words(r#"put "a b" 'c \' d' 0xff # note"#).unwrap(),
            vec!["put", "\"a b\"", "'c \\' d'", "0xff"]
        );
        assert_eq!(words("   ").unwrap(), Vec::<String>::new());
        assert!(words("get \"open").is_err());
    }
}
