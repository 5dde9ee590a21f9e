//! The download cache's layout: the one place that names its folders. Every stage that keeps
//! something across runs asks [`Cache`] where, so the layout can be read (and cleaned) here:
//!
//! | folder | what | keyed by |
//! |---|---|---|
//! | `sha256/<2>/<digest>` | downloaded files (packages, sources, images) | their sha256 |
//! | `by-url/<key>` | the digest a URL's file turned out to have (no published digest) | the URL |
//! | `meta/<key>` + `.validators` | repository metadata, its ETag and body digest | the URL |
//! | `parsed/<name>` | parsed indexes (memos), each with its own digest | index digest |
//! | `probes/<key>.o` | compiled probes | everything the compiler sees |
//! | `toolchains/<name>-<digest>` | unpacked pinned toolchains | the manifest's digest |
//! | `kernel-trees/<key>` | kernel trees prepared from source and `.config` | source, config, release, arch, host compiler |

use std::path::{Path, PathBuf};

/// A cache directory.
#[derive(Debug, Clone, Copy)]
pub struct Cache<'a>(pub &'a Path);

impl Cache<'_> {
    /// `$PROBEFORGE_CACHE`, else `$XDG_CACHE_HOME/probeforge`, else `~/.cache/probeforge`.
    pub fn default_dir() -> PathBuf {
        let env = |k| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        env("PROBEFORGE_CACHE")
            .or_else(|| env("XDG_CACHE_HOME").map(|p| p.join("probeforge")))
            .or_else(|| env("HOME").map(|p| p.join(".cache/probeforge")))
            .unwrap_or_else(|| std::env::temp_dir().join("probeforge-cache"))
    }

    /// Where downloads are staged before they are named by their digest.
    pub fn blobs(&self) -> PathBuf {
        self.0.join("sha256")
    }

    /// The file of a digest (which may not be there).
    pub fn blob(&self, sha256: &str) -> PathBuf {
        self.blobs()
            .join(&sha256[..2.min(sha256.len())])
            .join(sha256)
    }

    /// The record of which digest a URL's file had.
    pub fn by_url(&self, key: &str) -> PathBuf {
        self.0.join("by-url").join(key)
    }

    /// Cached repository metadata.
    pub fn meta(&self) -> PathBuf {
        self.0.join("meta")
    }

    /// A parsed index (memo).
    pub fn parsed(&self, name: &str) -> PathBuf {
        self.0.join("parsed").join(name)
    }

    /// A compiled probe, by its cache key.
    pub fn probe(&self, key: &str) -> PathBuf {
        self.0.join("probes").join(format!("{key}.o"))
    }

    /// A built kernel module, by its cache key.
    pub fn module(&self, key: &str) -> PathBuf {
        self.0.join("modules").join(format!("{key}.ko"))
    }

    /// What a cached module was built with (`{"toolchain": ...}`).
    pub fn module_meta(&self, key: &str) -> PathBuf {
        self.0.join("modules").join(format!("{key}.json"))
    }

    /// Unpacked toolchains.
    /// Kernel trees prepared from their source and `.config` (`crate::vanilla`), by key.
    pub fn kernel_trees(&self) -> PathBuf {
        self.0.join("kernel-trees")
    }

    pub fn toolchains(&self) -> PathBuf {
        self.0.join("toolchains")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_folder_is_under_the_root_and_blobs_fan_out_by_two_hex_digits() {
        let c = Cache(Path::new("/c"));
        assert_eq!(c.blob("abcdef"), Path::new("/c/sha256/ab/abcdef"));
        assert_eq!(c.probe("k"), Path::new("/c/probes/k.o"));
        for p in [c.by_url("u"), c.meta(), c.parsed("p"), c.toolchains()] {
            assert!(
                p.starts_with("/c") && p != Path::new("/c"),
                "{}",
                p.display()
            );
        }
    }
}
