//! What a command tells the person watching it, typed: which phase a kernel is in, a note
//! worth reading, a warning. The library calls a [`Reporter`]; the binary renders it (progress
//! bars on a terminal, plain lines in a log, nothing under `--json`). Every method has a no-op
//! default, so a library user implements only what it shows.

use std::fmt;

/// The stages a kernel goes through, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Header packages, driver sources, kernel images, toolchains: fetched and checked.
    Download,
    /// Packages unpacked into a private root, the driver staged.
    Unpack,
    /// clang and llc (or kbuild) at work.
    Compile,
    /// The object checked against its kernel.
    Validate,
    /// The kernel booted under QEMU with the driver.
    Boot,
    /// Written into the repository.
    Publish,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Download => "download",
            Phase::Unpack => "unpack",
            Phase::Compile => "compile",
            Phase::Validate => "validate",
            Phase::Boot => "boot",
            Phase::Publish => "publish",
        })
    }
}

/// Progress of a command; every method has a no-op default.
pub trait Reporter: Sync {
    /// A batch knows its size: `to_build` kernels to do, `skipped` already done.
    fn planned(&self, _to_build: usize, _skipped: usize) {}
    /// `subject` (a kernel release, a toolchain, an image) enters `phase`.
    fn phase(&self, _subject: &str, _phase: Phase) {}
    /// `subject`'s phase is over (a spinner may stop).
    fn done(&self, _subject: &str) {}
    /// Something a person wants to know: which kernel `latest` is, where an input came from.
    fn note(&self, _text: &str) {}
    /// Something that went wrong without stopping the command.
    fn warn(&self, _text: &str) {}
}

/// Reports nothing.
pub struct Silent;
impl Reporter for Silent {}

/// `1 kernel`, `2 kernels`, `0 kernels`: a count with its noun, as people write it.
pub fn count(n: usize, one: &str) -> String {
    match n {
        1 => format!("1 {one}"),
        _ => format!("{n} {one}s"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_is_singular_every_other_count_plural() {
        assert_eq!(super::count(1, "kernel"), "1 kernel");
        assert_eq!(super::count(0, "kernel"), "0 kernels");
        assert_eq!(super::count(2, "problem"), "2 problems");
    }
}
