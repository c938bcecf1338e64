//! The names of the files the version set knows about.

/// The file that names the live manifest (`MANIFEST-NNNNNN` and a newline).
pub const CURRENT_FILE: &str = "CURRENT";

/// The temporary file `CURRENT` is written as before it is renamed into
/// place.
pub const CURRENT_TEMP_FILE: &str = "CURRENT.dbtmp";

const MANIFEST_PREFIX: &str = "MANIFEST-";
const TABLE_SUFFIX: &str = ".sst";

/// File name of manifest `number`: `MANIFEST-` and at least six digits
/// (`MANIFEST-000005`).
pub fn manifest_file_name(number: u64) -> String {
    format!("{MANIFEST_PREFIX}{number:06}")
}

/// The number in a manifest file name, if `name` is one.
pub fn parse_manifest_file_name(name: &str) -> Option<u64> {
    parse_digits(name.strip_prefix(MANIFEST_PREFIX)?)
}

/// File name of table `number`: at least six digits, then `.sst`
/// (`000007.sst`).
pub fn table_file_name(number: u64) -> String {
    format!("{number:06}{TABLE_SUFFIX}")
}

/// The number in a table file name, if `name` is one.
pub fn parse_table_file_name(name: &str) -> Option<u64> {
    parse_digits(name.strip_suffix(TABLE_SUFFIX)?)
}

fn parse_digits(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_names_round_trip() {
        assert_eq!(manifest_file_name(5), "MANIFEST-000005");
        assert_eq!(manifest_file_name(1_234_567), "MANIFEST-1234567");
        assert_eq!(parse_manifest_file_name("MANIFEST-000005"), Some(5));
        assert_eq!(
            parse_manifest_file_name("MANIFEST-1234567"),
            Some(1_234_567)
        );
        for bad in [
            "MANIFEST-",
            "MANIFEST-12a",
            "MANIFEST-+5",
            "manifest-000005",
            "MANIFEST-000005.tmp",
            "MANIFEST-99999999999999999999999",
            "CURRENT",
        ] {
            assert_eq!(parse_manifest_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn table_names_round_trip() {
        assert_eq!(table_file_name(7), "000007.sst");
        assert_eq!(parse_table_file_name("000007.sst"), Some(7));
        assert_eq!(parse_table_file_name("12345678.sst"), Some(12_345_678));
        for bad in [".sst", "x7.sst", "000007.wal", "000007.sst.tmp", "-1.sst"] {
            assert_eq!(parse_table_file_name(bad), None, "{bad}");
        }
    }
}
