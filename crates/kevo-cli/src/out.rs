//! What commands return and print: the failure type with its exit code,
//! aligned tables for people, JSON for programs, and progress bars that
//! show only on a terminal.

use std::fmt;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

/// Why a command failed, and so its exit code.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Damage found (exit 1): a check or verify failed, or a read met
    /// corruption.
    Damage(String),
    /// A usage error, or a database or file that cannot be opened or
    /// used (exit 2).
    Usage(String),
}

impl Failure {
    /// The process exit code for this failure.
    pub(crate) fn exit_code(&self) -> ExitCode {
        match self {
            Failure::Damage(_) => ExitCode::from(1),
            Failure::Usage(_) => ExitCode::from(2),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Damage(message) | Failure::Usage(message) => f.write_str(message),
        }
    }
}

impl From<kevo_engine::Error> for Failure {
    fn from(e: kevo_engine::Error) -> Self {
        if e.is_corruption() {
            Failure::Damage(e.to_string())
        } else {
            Failure::Usage(e.to_string())
        }
    }
}

impl From<kevo_core::Error> for Failure {
    fn from(e: kevo_core::Error) -> Self {
        match e {
            kevo_core::Error::Corruption { .. } => Failure::Damage(e.to_string()),
            other => Failure::Usage(other.to_string()),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Usage(e.to_string())
    }
}

/// A command's result.
pub(crate) type Outcome = Result<(), Failure>;

/// `Failure::Usage` with a formatted message.
macro_rules! usage {
    ($($arg:tt)*) => { $crate::out::Failure::Usage(format!($($arg)*)) };
}
pub(crate) use usage;

/// Where commands print: stdout (buffered), and whether it is JSON.
pub(crate) struct Out {
    /// `--json` was given.
    pub(crate) json: bool,
    sink: Box<dyn Write>,
}

impl Out {
    /// Printing to stdout.
    pub(crate) fn stdout(json: bool) -> Self {
        Out {
            json,
            sink: Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
        }
    }

    /// Printing to `sink` (a file, or a buffer in tests).
    pub(crate) fn to(sink: Box<dyn Write>, json: bool) -> Self {
        Out { json, sink }
    }

    /// Prints `line` and a newline.
    pub(crate) fn line(&mut self, line: impl fmt::Display) -> Outcome {
        writeln!(self.sink, "{line}").map_err(closed_pipe)
    }

    /// Prints `value` as one line of JSON.
    pub(crate) fn json_line(&mut self, value: &Value) -> Outcome {
        self.line(value)
    }

    /// Prints `value` as indented JSON.
    pub(crate) fn json_value(&mut self, value: &Value) -> Outcome {
        let text = serde_json::to_string_pretty(value).map_err(|e| usage!("{e}"))?;
        self.line(text)
    }

    /// Prints `table` with its columns aligned.
    pub(crate) fn table(&mut self, table: &Table) -> Outcome {
        for line in table.render() {
            self.line(line)?;
        }
        Ok(())
    }

    /// Flushes what is buffered.
    pub(crate) fn flush(&mut self) -> Outcome {
        self.sink.flush().map_err(closed_pipe)
    }
}

/// A write to stdout failed: most often its reader went away (`| head`).
fn closed_pipe(e: std::io::Error) -> Failure {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        // Nothing more can be shown; not an error of the database.
        std::process::exit(0);
    }
    Failure::Usage(format!("writing the output: {e}"))
}

/// Rows of cells printed with aligned columns; numbers right-aligned.
#[derive(Debug, Default)]
pub(crate) struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names.
    pub(crate) fn new(header: &[&str]) -> Self {
        Table {
            header: header.iter().map(|h| (*h).to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The lines of the table.
    pub(crate) fn render(&self) -> Vec<String> {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let numeric: Vec<bool> = (0..columns)
            .map(|i| {
                !self.rows.is_empty()
                    && self
                        .rows
                        .iter()
                        .all(|r| r.get(i).is_none_or(|c| looks_numeric(c)))
            })
            .collect();
        let line = |cells: &[String]| {
            let mut out = String::new();
            for (i, width) in widths.iter().enumerate() {
                let cell = cells.get(i).map_or("", String::as_str);
                let pad = width - cell.chars().count().min(*width);
                if i > 0 {
                    out.push_str("  ");
                }
                if numeric[i] {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(cell);
                } else {
                    out.push_str(cell);
                    if i + 1 < columns {
                        out.push_str(&" ".repeat(pad));
                    }
                }
            }
            out.trim_end().to_string()
        };
        let mut lines = vec![line(&self.header)];
        lines.extend(self.rows.iter().map(|r| line(r)));
        lines
    }
}

fn looks_numeric(cell: &str) -> bool {
    !cell.is_empty()
        && cell
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '%' | ',' | 'x'))
        && cell
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit() || c == '-')
}

/// A progress bar of `len` steps on stderr, or a hidden one when stderr is
/// not a terminal (so that scripts and pipes see clean output).
pub(crate) fn progress(len: u64, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

/// A byte count for people: `1.5 MiB`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_text_left_and_numbers_right() {
        let mut table = Table::new(&["name", "size"]);
        table.row(vec!["a".into(), "5".into()]);
        table.row(vec!["longer".into(), "1234".into()]);
        assert_eq!(
            table.render(),
            vec!["name    size", "a          5", "longer  1234"]
        );
    }

    #[test]
    fn byte_counts_read_naturally() {
        assert_eq!(bytes(12), "12 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
    }
}
