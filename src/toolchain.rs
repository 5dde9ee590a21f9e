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

/// How to start a pinned toolchain's binaries: through its own dynamic loader with its own
/// libraries, never the host's.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Launcher {
    pub loader: PathBuf,
    pub library_path: String,
}

/// A clang/llc pair, as found and asked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Toolchain {
    /// Set for pinned toolchains: the unpacked root, and how to launch from it.
    pub root: Option<PathBuf>,
    pub launcher: Option<Launcher>,
    /// Arguments clang needs before any other (`-resource-dir` for a relocated clang).
    pub clang_prefix_args: Vec<String>,
    /// The manifest name, for pinned toolchains.
    pub pinned: Option<String>,
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
    v.split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

impl Toolchain {
    /// Finds clang and llc: explicit paths, then `CLANG`/`LLC`, then `clang`/`llc` on PATH,
    /// then versioned names (`clang-19` ... `clang-11`) with the llc of the same version.
    pub fn find(clang: Option<&Path>, llc: Option<&Path>) -> Result<Toolchain, Error> {
        let env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
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
                    found = (11..=22)
                        .rev()
                        .find_map(|v| which(&format!("clang-{v}")).map(|p| (p, format!("-{v}"))));
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
        let resource_include = PathBuf::from(
            output(&clang, &["-print-file-name=include"])?
                .trim()
                .to_owned(),
        );
        Ok(Toolchain {
            root: None,
            launcher: None,
            clang_prefix_args: Vec::new(),
            pinned: None,
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

    fn command_for(&self, prog: &Path) -> Command {
        match &self.launcher {
            Some(l) => {
                let mut c = Command::new(&l.loader);
                c.arg("--library-path").arg(&l.library_path).arg(prog);
                c
            }
            None => Command::new(prog),
        }
    }

    /// A command running clang (through the pinned loader when there is one), with the
    /// arguments every clang run needs first.
    pub fn clang_command(&self) -> Command {
        let mut c = self.command_for(&self.clang);
        c.args(&self.clang_prefix_args);
        c
    }

    pub fn llc_command(&self) -> Command {
        self.command_for(&self.llc)
    }

    /// A pinned toolchain from an unpacked root, checked to be what its manifest says.
    pub fn pinned(m: &Manifest, root: &Path) -> Result<Toolchain, Error> {
        let lp: Vec<String> = m
            .library_path
            .iter()
            .map(|p| root.join(p).display().to_string())
            .collect();
        let resource = root.join(&m.resource_dir);
        let mut tc = Toolchain {
            root: Some(root.to_owned()),
            launcher: Some(Launcher {
                loader: root.join(&m.loader),
                library_path: lp.join(":"),
            }),
            clang_prefix_args: vec!["-resource-dir".into(), resource.display().to_string()],
            pinned: Some(m.name.clone()),
            clang: root.join(&m.clang),
            llc: root.join(&m.llc),
            clang_version: String::new(),
            llc_version: String::new(),
            version: m.llvm_version.clone(),
            major: major(&m.llvm_version),
            resource_include: resource.join("include"),
        };
        let run = |c: &mut Command, path: &Path| -> Result<String, Error> {
            let out = c
                .arg("--version")
                .env_clear()
                .output()
                .map_err(|source| Error::Run {
                    path: path.to_owned(),
                    source,
                })?;
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        };
        let cv = run(&mut tc.clang_command(), &tc.clang)?;
        let lv = run(&mut tc.llc_command(), &tc.llc)?;
        let found = version_in(&cv, "clang version").unwrap_or_default();
        if found != m.llvm_version
            || version_in(&lv, "LLVM version").as_deref() != Some(&m.llvm_version)
        {
            return Err(Error::NotPinned {
                path: tc.clang.clone(),
                want: m.llvm_version.clone(),
                found: format!(
                    "clang `{}`, llc `{}`",
                    cv.lines().next().unwrap_or(""),
                    lv.lines()
                        .find(|l| l.contains("LLVM version"))
                        .unwrap_or("")
                        .trim()
                ),
            });
        }
        tc.clang_version = cv.lines().next().unwrap_or("").trim().to_owned();
        tc.llc_version = lv
            .lines()
            .find(|l| l.contains("LLVM version"))
            .unwrap_or("")
            .trim()
            .to_owned();
        Ok(tc)
    }
}

/// A pinned toolchain: the exact packages (by sha256) that make it, and where its pieces are.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct Manifest {
    pub name: String,
    pub llvm_version: String,
    pub host_arch: String,
    /// Catalog mirror the package files are below.
    pub mirror: String,
    pub note: String,
    pub clang: String,
    pub llc: String,
    pub resource_dir: String,
    pub loader: String,
    pub library_path: Vec<String>,
    pub packages: Vec<PinnedPackage>,
}

#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct PinnedPackage {
    pub name: String,
    pub version: String,
    pub filename: String,
    pub size: u64,
    pub sha256: String,
}

const EMBEDDED_MANIFESTS: &[&str] = &[include_str!("../toolchain/llvm-14-debian12.json")];

impl Manifest {
    pub fn embedded() -> Vec<Manifest> {
        EMBEDDED_MANIFESTS
            .iter()
            .map(|t| serde_json::from_str(t).expect("embedded toolchain manifest is valid"))
            .collect()
    }

    pub fn named(name: &str) -> Option<Manifest> {
        Self::embedded().into_iter().find(|m| m.name == name)
    }

    /// The pinned toolchain that runs on this machine's architecture, if one is shipped.
    pub fn for_host() -> Option<Manifest> {
        let host = crate::kernel::Arch::host()?;
        Self::embedded()
            .into_iter()
            .find(|m| crate::kernel::Arch::parse(&m.host_arch) == Some(host))
    }

    /// A digest of the manifest: the unpacked root's identity in the cache.
    pub fn digest(&self) -> String {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for p in &self.packages {
            h.update(p.sha256.as_bytes());
        }
        hex::encode(h.finalize())[..16].to_owned()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("toolchain `{name}`: package `{package}`")]
    Download {
        name: String,
        package: String,
        #[source]
        source: crate::http::Error,
    },
    #[error("toolchain `{name}`: cannot unpack")]
    Unpack {
        name: String,
        #[source]
        source: crate::extract::Error,
    },
    #[error("toolchain `{name}`: `{path}`")]
    Io {
        name: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where a manifest's toolchain is unpacked in the cache.
pub fn root_in_cache(m: &Manifest, cache_dir: &Path) -> PathBuf {
    crate::base::Cache(cache_dir)
        .toolchains()
        .join(format!("{}-{}", m.name, m.digest()))
}

/// Downloads (through the package cache, verified) and unpacks a pinned toolchain without
/// root; a no-op when it is already there. The root appears whole or not at all.
pub fn fetch(
    m: &Manifest,
    client: &crate::http::Client,
    mirror: &str,
) -> Result<PathBuf, FetchError> {
    let root = root_in_cache(m, &client.config().cache_dir);
    if root.join(".complete").is_file() {
        return Ok(root);
    }
    let mut files = Vec::new();
    for p in &m.packages {
        let url = format!("{}/{}", mirror.trim_end_matches('/'), p.filename);
        let (f, _) = client
            .fetch_verified(&url, &p.sha256, Some(p.size))
            .map_err(|source| FetchError::Download {
                name: m.name.clone(),
                package: p.name.clone(),
                source,
            })?;
        files.push(f);
    }
    install(m, &files, &client.config().cache_dir)
}

/// Unpacks a pinned toolchain's package files, one per manifest package in its order and
/// already checked against its digests, into its place in the cache (see [`root_in_cache`]);
/// a no-op when it is already there. The root appears whole or not at all.
pub fn install(m: &Manifest, files: &[PathBuf], cache_dir: &Path) -> Result<PathBuf, FetchError> {
    let root = root_in_cache(m, cache_dir);
    if root.join(".complete").is_file() {
        return Ok(root);
    }
    crate::extract::unpack_into_place(files, &root, &m.digest()).map_err(|e| match e {
        crate::extract::PlaceError::Io { path, source } => FetchError::Io {
            name: m.name.clone(),
            path,
            source,
        },
        crate::extract::PlaceError::Unpack(source) => FetchError::Unpack {
            name: m.name.clone(),
            source,
        },
    })?;
    Ok(root)
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
            version_in(
                "LLVM (http://llvm.org/):\n  LLVM version 14.0.6\n",
                "LLVM version"
            )
            .unwrap(),
            "14.0.6"
        );
    }
}
