//! Reading an arbitrary kevo-raft snapshot archive (`KEVOSNAP`, version 1).
//!
//! The input is handed to `kevo_raft::archive::read` with a sink that
//! collects the files in memory, and to `read_meta`. For any input:
//!
//! - nothing panics, and nothing is allocated at a size read from the input
//!   beyond the format's bounds (metadata 1 MiB, names 255 bytes; file data
//!   is streamed in 64 KiB pieces);
//! - an error is `Error::Corruption` naming the stream (an in-memory reader
//!   cannot fail, and the sink never does);
//! - when it reads, every file name is plain (no `/`, no `..`) and unique,
//!   and `read_meta` gives the same metadata.
#![no_main]

use std::io;

use kevo_raft::Error;
use kevo_raft::archive::{self, Sink};
use libfuzzer_sys::fuzz_target;

#[derive(Default)]
struct Collect {
    files: Vec<(String, usize)>,
}

impl Sink for Collect {
    fn create(&mut self, name: &str) -> io::Result<()> {
        self.files.push((name.to_string(), 0));
        Ok(())
    }
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if let Some(last) = self.files.last_mut() {
            last.1 += data.len();
        }
        Ok(())
    }
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let mut sink = Collect::default();
    match archive::read(&mut &data[..], "fuzz.snap", &mut sink) {
        Ok(meta) => {
            let mut names: Vec<&str> = sink.files.iter().map(|(n, _)| n.as_str()).collect();
            assert!(names.iter().all(|n| archive::is_plain_name(n)));
            names.sort();
            names.dedup();
            assert_eq!(names.len(), sink.files.len(), "a name read twice");
            let head = archive::read_meta(&mut &data[..], "fuzz.snap").expect("the header read once");
            assert_eq!(head, meta);
        }
        Err(Error::Corruption { file, .. }) => assert_eq!(file, "fuzz.snap"),
        Err(other) => panic!("not a corruption error: {other}"),
    }
});
