//! Input discovery: the files a batch job reads.
//!
//! `--input` takes files and directories. A file is read by its name's
//! ending, in any case: `.parquet` or `.parq` is Parquet; `.ndjson` or
//! `.jsonl` is NDJSON, and `.ndjson.gz` or `.jsonl.gz` is NDJSON compressed
//! with gzip. A named file with any other name (`.csv`, `.json`, no
//! extension) is a data error listing these, rather than a guess. A
//! directory stands for every such file under it (recursively, in sorted
//! order; none is an empty data set), skipping entries whose name starts
//! with `.` or `_` as Spark, Hive and Arrow datasets do (`_SUCCESS`,
//! `_temporary/`, `._x.parquet` sidecars, `.hidden/`) and files of other
//! types; symbolic links to directories inside it are not followed, so
//! link cycles cannot trap the walk. A path named explicitly is read even
//! if its name starts with `.` or `_`. A missing path is a data error
//! naming it.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// How a file is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// Apache Parquet.
    Parquet,
    /// One JSON object per line.
    Ndjson,
    /// NDJSON compressed with gzip (`.ndjson.gz`, `.jsonl.gz`).
    NdjsonGzip,
}

/// The file types a named input may have, for error messages.
pub(crate) const SUPPORTED_TYPES: &str =
    ".parquet, .parq (Parquet), .ndjson, .jsonl (NDJSON), .ndjson.gz, .jsonl.gz (gzipped NDJSON)";

/// One file to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    /// Where it is.
    pub path: PathBuf,
    /// How to read it.
    pub format: InputFormat,
}

/// The format of a file by its name's ending, ignoring case (as
/// `generate`); `None` for any other file.
pub(crate) fn format_of(path: &Path) -> Option<InputFormat> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    let (stem, gzip) = match name.strip_suffix(".gz") {
        Some(stem) => (stem, true),
        None => (name.as_str(), false),
    };
    let extension = Path::new(stem).extension()?.to_str()?;
    match (extension, gzip) {
        ("parquet" | "parq", false) => Some(InputFormat::Parquet),
        ("ndjson" | "jsonl", false) => Some(InputFormat::Ndjson),
        ("ndjson" | "jsonl", true) => Some(InputFormat::NdjsonGzip),
        _ => None,
    }
}

/// Whether a directory walk skips the entry `name`: hidden files and the
/// `_`-prefixed bookkeeping of Spark, Hive and Arrow datasets.
fn is_hidden(name: &std::ffi::OsStr) -> bool {
    let bytes = name.as_encoded_bytes();
    bytes.first().is_some_and(|b| *b == b'.' || *b == b'_')
}

/// Expands `inputs` into the files to read.
pub fn discover_inputs(inputs: &[PathBuf]) -> Result<Vec<InputFile>> {
    let mut files = Vec::new();
    for input in inputs {
        let meta = std::fs::metadata(input)
            .map_err(|e| Error::data_from(input.display().to_string(), e))?;
        if meta.is_dir() {
            walk(input, &mut files)?;
        } else {
            let format = format_of(input).ok_or_else(|| {
                Error::data(
                    input.display().to_string(),
                    format!("unsupported file type; expected {SUPPORTED_TYPES}"),
                )
            })?;
            files.push(InputFile {
                path: input.clone(),
                format,
            });
        }
    }
    Ok(files)
}

fn walk(dir: &Path, files: &mut Vec<InputFile>) -> Result<()> {
    let context = |e: std::io::Error| Error::data_from(dir.display().to_string(), e);
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(context)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .map_err(context)?;
    entries.sort();
    for path in entries {
        if path.file_name().is_some_and(is_hidden) {
            continue;
        }
        // Symbolic links to directories are not followed: they can form
        // cycles. Links to files are read like files.
        let link = std::fs::symlink_metadata(&path).map_err(context)?;
        if link.is_dir() {
            walk(&path, files)?;
        } else if path.is_file() {
            if let Some(format) = format_of(&path) {
                files.push(InputFile { path, format });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_expand_to_known_extensions() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        for name in ["a.parquet", "b.ndjson", "notes.txt"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        std::fs::write(sub.join("c.jsonl"), b"").unwrap();
        std::fs::write(sub.join("D.NDJSON"), b"").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(dir.path(), sub.join("loop")).unwrap();
        let files = discover_inputs(&[dir.path().to_path_buf()]).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.path.file_name().unwrap().to_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["a.parquet", "b.ndjson", "D.NDJSON", "c.jsonl"]);
        assert_eq!(files[1].format, InputFormat::Ndjson);
        let empty = tempfile::tempdir().unwrap();
        assert!(discover_inputs(&[empty.path().to_path_buf()])
            .unwrap()
            .is_empty());
        let err = discover_inputs(&[dir.path().join("missing")]).unwrap_err();
        assert!(err.to_string().contains("missing"));
    }

    #[test]
    fn formats_by_name() {
        let cases = [
            ("a.parquet", Some(InputFormat::Parquet)),
            ("A.PARQ", Some(InputFormat::Parquet)),
            ("part-0.snappy.parquet", Some(InputFormat::Parquet)),
            ("b.ndjson", Some(InputFormat::Ndjson)),
            ("b.JSONL", Some(InputFormat::Ndjson)),
            ("c.ndjson.gz", Some(InputFormat::NdjsonGzip)),
            ("c.jsonl.GZ", Some(InputFormat::NdjsonGzip)),
            ("d.parquet.gz", None),
            ("e.gz", None),
            ("f.csv", None),
            ("g.json", None),
            ("parquet", None),
            (".parquet", None),
        ];
        for (name, format) in cases {
            assert_eq!(format_of(Path::new(name)), format, "{name}");
        }
    }

    /// Directory walks skip `.` and `_` entries (Spark's `_SUCCESS` and
    /// `_temporary/`, macOS `._` sidecars, hidden directories); a path
    /// named explicitly is read whatever its name; a named file of another
    /// type is an error listing the supported ones.
    #[test]
    fn walks_skip_hidden_entries_named_paths_do_not() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["_temporary", ".hidden", "kept"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
            std::fs::write(dir.path().join(sub).join("x.parquet"), b"").unwrap();
        }
        for name in [
            "_SUCCESS",
            "._a.parquet",
            ".b.ndjson",
            "_c.parquet",
            "a.parquet",
            "e.csv",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let files = discover_inputs(&[dir.path().to_path_buf()]).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.path.strip_prefix(dir.path()).unwrap().to_path_buf())
            .collect();
        assert_eq!(
            names,
            [
                PathBuf::from("a.parquet"),
                Path::new("kept").join("x.parquet")
            ]
        );
        let named = [
            dir.path().join("._a.parquet"),
            dir.path().join("_temporary"),
        ];
        let files = discover_inputs(&named).unwrap();
        assert_eq!(files.len(), 2);
        for name in ["e.csv", "_SUCCESS"] {
            let err = discover_inputs(&[dir.path().join(name)]).unwrap_err();
            let message = err.to_string();
            assert!(message.contains(name), "{message}");
            assert!(
                message.contains("unsupported file type; expected .parquet"),
                "{message}"
            );
        }
    }
}
