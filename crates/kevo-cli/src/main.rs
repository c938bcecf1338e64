//! `kevo`: the command-line tool for kevo databases and their files.
//!
//! An interactive shell (`kevo shell DIR`), one-shot reads and writes
//! (`get`, `put`, `delete`, `scan`, `load`, `export`), inspection of a
//! whole database (`stats`, `lsm`, `check`, `repair`, `compact`), copies
//! of it (`checkpoint`, `backup create|list|verify|restore|delete|purge`)
//! and single files without a database (`sst`, `wal`, `manifest`). Commands
//! that only read open the database read-only, so they change nothing on
//! disk and run beside other readers. `--json` makes every command that
//! prints data print JSON. Exit codes: 0 success, 1 damage found, 2 a
//! usage error or a database or file that cannot be opened.
//!
//! ```text
//! cargo install --path crates/kevo-cli
//! kevo put --create /tmp/db greeting hello
//! kevo get /tmp/db greeting
//! kevo check /tmp/db --json
//! ```

mod cli;
mod copies;
mod data;
mod files;
mod inspect;
mod lsm_html;
mod out;
mod shell;
mod text;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::out::{Out, Outcome};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // `--help` and `--version` print to stdout and succeed; a usage
            // error exits 2.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let mut out = Out::stdout(cli.json);
    let result = run(&mut out, cli.command).and_then(|()| out.flush());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let _ = out.flush();
            eprintln!("kevo: {failure}");
            failure.exit_code()
        }
    }
}

fn run(out: &mut Out, command: Command) -> Outcome {
    match command {
        Command::Shell {
            dir,
            create,
            read_only,
        } => shell::run(out, &dir, create, read_only),
        Command::Get { dir, key } => data::get(out, &dir, &key),
        Command::Put {
            dir,
            key,
            value,
            create,
        } => data::put(&dir, &key, &value, create),
        Command::Delete { dir, key } => data::delete(&dir, &key),
        Command::Scan { dir, range } => data::scan(out, &dir, &range),
        Command::Load {
            dir,
            file,
            format,
            create,
        } => data::load(out, &dir, &file, format, create),
        Command::Export { dir, output, range } => match output {
            Some(path) => {
                let file = std::fs::File::create(&path)
                    .map_err(|e| out::usage!("cannot create {}: {e}", path.display()))?;
                let mut to_file = Out::to(Box::new(std::io::BufWriter::new(file)), true);
                data::export(&mut to_file, &dir, &range)
            }
            None => data::export(out, &dir, &range),
        },
        Command::Stats { dir } => inspect::stats(out, &dir),
        Command::Lsm { dir, html } => inspect::lsm(out, &dir, html.as_deref()),
        Command::Check { dir } => inspect::check(out, &dir),
        Command::Repair { dir } => inspect::repair(out, &dir),
        Command::Compact { dir, start, end } => {
            inspect::compact(out, &dir, start.as_deref(), end.as_deref())
        }
        Command::Checkpoint { dir, target, flush } => copies::checkpoint(out, &dir, &target, flush),
        Command::Backup(command) => copies::backup(out, &command),
        Command::Sst(command) => files::sst(out, &command),
        Command::Wal(command) => files::wal(out, &command),
        Command::Manifest(command) => files::manifest(out, &command),
    }
}
