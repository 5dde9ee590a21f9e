//! SHA-256 of bytes, files, trees and streams. Digests are computed while the data streams
//! ([`HashingReader`]), so what is read once is never read again to be hashed.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// How many times this process hashed each file (every file hash goes through here): what
/// is known already is not hashed again, and a test can count it.
static FILES_HASHED: Mutex<BTreeMap<PathBuf, u32>> = Mutex::new(BTreeMap::new());

fn counted(path: &Path) {
    let mut m = FILES_HASHED.lock().unwrap_or_else(|e| e.into_inner());
    *m.entry(path.to_owned()).or_default() += 1;
}

/// Each file this process has hashed, and how many times.
pub fn files_hashed() -> BTreeMap<PathBuf, u32> {
    FILES_HASHED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

/// Lower-case hex SHA-256 of a file's contents, streamed.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    Ok(sha256_file_len(path)?.0)
}

/// Lower-case hex SHA-256 of a file's contents and its length, streamed in one pass.
pub fn sha256_file_len(path: &Path) -> io::Result<(String, u64)> {
    let mut r = HashingReader::new(fs::File::open(path)?);
    io::copy(&mut r, &mut io::sink())?;
    counted(path);
    Ok(r.finish())
}

/// Digest of a file or, for a directory, of its sorted (path, contents) pairs.
pub fn digest_input(p: &Path) -> std::io::Result<String> {
    let mut h = Sha256::new();
    if p.is_dir() {
        let mut files = Vec::new();
        fn walk(d: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
            for e in fs::read_dir(d)? {
                let e = e?;
                let t = e.file_type()?;
                if t.is_dir() {
                    walk(&e.path(), out)?;
                } else if t.is_file() {
                    out.push(e.path());
                }
            }
            Ok(())
        }
        walk(p, &mut files)?;
        files.sort();
        for f in files {
            h.update(f.strip_prefix(p).unwrap_or(&f).to_string_lossy().as_bytes());
            h.update([0]);
            h.update(fs::read(&f)?);
        }
    } else {
        return sha256_file(p);
    }
    Ok(hex::encode(h.finalize()))
}

/// A reader that hashes what passes through it: wrap a download or an archive stream, read it
/// to the end, and [`HashingReader::finish`] gives its digest and size without a second pass.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    len: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// The hex digest and the number of bytes read so far.
    pub fn finish(self) -> (String, u64) {
        (hex::encode(self.hasher.finalize()), self.len)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_file_and_bytes_agree() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("x");
        fs::write(&f, b"abc").unwrap();
        let want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256(b"abc"), want);
        assert_eq!(sha256_file(&f).unwrap(), want);
        assert_eq!(digest_input(&f).unwrap(), want);
        let mut r = HashingReader::new(&b"abc"[..]);
        io::copy(&mut r, &mut io::sink()).unwrap();
        assert_eq!(r.finish(), (want.to_owned(), 3));
        assert_eq!(
            files_hashed()[&f],
            2,
            "sha256_file and digest_input each hashed it"
        );
    }
}
