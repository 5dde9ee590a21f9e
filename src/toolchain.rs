//! Finding clang and llc, reading their versions, and refusing a mismatched pair.
//!
//! The bytes of a probe depend on the exact LLVM build, so the toolchain is part of every
//! build's provenance. This module only finds and asks; it never compiles.

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no clang found: install clang and llc (e.g. `apt-get install clang llvm`), or pass --clang/--llc or set CLANG/LLC")]
    NoClang,
    #[error("no llc found beside `{0}`: install llvm, or pass --llc or set LLC")]
    NoLlc(PathBuf),
    #[error("cannot run `{path}`")]
    Run {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read a version from `{path} --version`: {output}")]
    Version { path: PathBuf, output: String },
    #[error("clang `{clang}` is LLVM {clang_major} but llc `{llc}` is LLVM {llc_major}: use a matching pair")]
    Mismatch {
        clang: PathBuf,
        llc: PathBuf,
        clang_major: u32,
        llc_major: u32,
    },
    #[error("toolchain pinned to LLVM {want} but `{path}` is {found}")]
    NotPinned {
        path: PathBuf,
        want: String,
        found: String,
    },
}

/// A clang/llc pair, as found and asked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Toolchain {
    pub clang: PathBuf,
    pub llc: PathBuf,
    /// First line of `clang --version`.
    pub clang_version: String,
    /// The `LLVM version` line of `llc --version`.
    pub llc_version: String,
    /// e.g. "14.0.6".
    pub version: String,
    pub major: u32,
    /// `clang -print-file-name=include`: clang's own headers (`stdarg.h`), used with
    /// `-nostdinc` so no host header leaks in.
    pub resource_include: PathBuf,
}

fn which(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn output(path: &Path, args: &[&str]) -> Result<String, Error> {
    let out = Command::new(path)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .map_err(|source| Error::Run {
            path: path.to_owned(),
            source,
        })?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// "Debian clang version 14.0.6" / "  LLVM version 14.0.6" -> "14.0.6".
fn version_in(text: &str, marker: &str) -> Option<String> {
    let line = text.lines().find(|l| l.contains(marker))?;
    let rest = &line[line.find(marker)? + marker.len()..];
    let v: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    (!v.is_empty()).then_some(v)
}

fn major(v: &str) -> u32 {
    v.split('.').next().and_then(|m| m.parse().ok()).unwrap_or(0)
}

impl Toolchain {
    /// Finds clang and llc: explicit paths, then `CLANG`/`LLC`, then `clang`/`llc` on PATH,
    /// then versioned names (`clang-19` ... `clang-11`) with the llc of the same version.
    pub fn find(clang: Option<&Path>, llc: Option<&Path>) -> Result<Toolchain, Error> {
        let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let clang_given = clang.map(Path::to_owned).or_else(|| env("CLANG"));
        let llc_given = llc.map(Path::to_owned).or_else(|| env("LLC"));
        let (clang, suffix) = match clang_given {
            Some(c) => (
                which(&c.to_string_lossy()).ok_or(Error::NoClang)?,
                String::new(),
            ),
            None => {
                let mut found = which("clang").map(|p| (p, String::new()));
                if found.is_none() {
                    found = (11..=22).rev().find_map(|v| {
                        which(&format!("clang-{v}")).map(|p| (p, format!("-{v}")))
                    });
                }
                found.ok_or(Error::NoClang)?
            }
        };
        let clang_out = output(&clang, &["--version"])?;
        let version = version_in(&clang_out, "clang version").ok_or_else(|| Error::Version {
            path: clang.clone(),
            output: clang_out.lines().next().unwrap_or("").to_owned(),
        })?;
        let llc = match llc_given {
            Some(l) => which(&l.to_string_lossy()).ok_or_else(|| Error::NoLlc(clang.clone()))?,
            None => {
                // Prefer llc beside clang's real binary (LLVM's own bin dir), then PATH.
                let real = std::fs::canonicalize(&clang).ok();
                real.and_then(|r| {
                    let p = r.parent()?.join("llc");
                    p.is_file().then_some(p)
                })
                .or_else(|| which(&format!("llc-{}", major(&version))))
                .or_else(|| which(&format!("llc{suffix}")))
                .or_else(|| which("llc"))
                .ok_or_else(|| Error::NoLlc(clang.clone()))?
            }
        };
        let llc_out = output(&llc, &["--version"])?;
        let llc_v = version_in(&llc_out, "LLVM version").ok_or_else(|| Error::Version {
            path: llc.clone(),
            output: llc_out.lines().next().unwrap_or("").to_owned(),
        })?;
        if major(&llc_v) != major(&version) {
            return Err(Error::Mismatch {
                clang,
                llc,
                clang_major: major(&version),
                llc_major: major(&llc_v),
            });
        }
        let resource_include =
            PathBuf::from(output(&clang, &["-print-file-name=include"])?.trim().to_owned());
        Ok(Toolchain {
            clang_version: clang_out.lines().next().unwrap_or("").trim().to_owned(),
            llc_version: llc_out
                .lines()
                .find(|l| l.contains("LLVM version"))
                .unwrap_or("")
                .trim()
                .to_owned(),
            major: major(&version),
            version,
            clang,
            llc,
            resource_include,
        })
    }

    /// Refuses anything but exactly `want` (e.g. "14.0.6", or a major "14").
    pub fn require(&self, want: &str) -> Result<(), Error> {
        let ok = if want.contains('.') {
            self.version == want
        } else {
            self.major.to_string() == want
        };
        if ok {
            Ok(())
        } else {
            Err(Error::NotPinned {
                path: self.clang.clone(),
                want: want.to_owned(),
                found: self.version.clone(),
            })
        }
    }

    /// A short identity for caches and provenance.
    pub fn identity(&self) -> String {
        format!("{} / {}", self.clang_version, self.llc_version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn versions_are_read() {
        assert_eq!(
            version_in("Debian clang version 14.0.6\nTarget: x", "clang version").unwrap(),
            "14.0.6"
        );
        assert_eq!(
            version_in("LLVM (http://llvm.org/):\n  LLVM version 14.0.6\n", "LLVM version")
                .unwrap(),
            "14.0.6"
        );
    }
}
