//! Decoding an arbitrary backup metadata file (`meta/<id>`, format 1).
//!
//! The input is handed to `kevo_engine::BackupInfo::decode`. For any input:
//!
//! - nothing panics (overflow checks are on in `cargo fuzz` builds);
//! - an error is `Error::Corruption` naming the file;
//! - when it decodes, encoding the result gives back exactly the input (the
//!   format has one spelling per backup), and every stored path stays inside
//!   `tables/` or the backup's own `private/<id>/`, every restored name is a
//!   plain file name.
#![no_main]

use std::path::Path;

use kevo_engine::{BackupInfo, Error};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("meta/1");
    match BackupInfo::decode(data, path) {
        Ok(info) => {
            assert_eq!(info.encode(), data, "not the one spelling of {info:?}");
            for file in &info.files {
                assert!(!file.name.contains('/') && !file.name.contains(".."));
                assert!(!file.stored.contains(".."));
                assert!(
                    file.stored.starts_with("tables/")
                        || file.stored.starts_with(&format!("private/{}/", info.id))
                );
            }
        }
        Err(Error::Corruption { file, .. }) => assert_eq!(file, path),
        Err(other) => panic!("not corruption: {other}"),
    }
});
