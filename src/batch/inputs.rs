//! Input discovery: the files a batch job reads.
//!
//! `--input` takes files and directories. A directory stands for every
//! `.parquet`, `.ndjson` and `.jsonl` file under it (recursively, in sorted
//! order; none is an empty data set; symbolic links to directories inside
//! it are not followed, so link cycles cannot trap the walk). A named file
//! is read by its extension (any case), Parquet when it is neither
//! `.ndjson` nor `.jsonl`. A missing path is a data error naming it.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// How a file is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// Apache Parquet.
    Parquet,
    /// One JSON object per line.
    Ndjson,
}

/// One file to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    /// Where it is.
    pub path: PathBuf,
    /// How to read it.
    pub format: InputFormat,
}

/// The format of a file by its extension, ignoring case (as `generate`).
fn format_of(path: &Path) -> Option<InputFormat> {
    let extension = path.extension()?.to_str()?.to_ascii_lowercase();
    match extension.as_str() {
        "parquet" => Some(InputFormat::Parquet),
        "ndjson" | "jsonl" => Some(InputFormat::Ndjson),
        _ => None,
    }
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
            files.push(InputFile {
                path: input.clone(),
                format: format_of(input).unwrap_or(InputFormat::Parquet),
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
}
