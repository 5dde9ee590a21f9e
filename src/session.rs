//! Resolve once: every default and choice a command needs, settled before any work starts, from
//! plain option structs (no command-line types), so a CI wrapper or a Bazel rule calls the same
//! code the CLI does.
//!
//! A [`Session`] is what every command that reaches a repository shares: one HTTP client and
//! cache, the catalog of targets (with the keyrings and trust policy applied), the mirrors.
//! [`Session::kernel`] is the one place that turns "this target, this release or `latest`, or
//! this kernel-crawler file" into header packages; [`Session::driver`] the one place that turns
//! "this source, or this version, or nothing" into a driver source. This module decides; it
//! never prints (what the caller may want to say comes back in the result).

use std::path::{Path, PathBuf};

use crate::driver::SourceCatalog;
use crate::http::{self, Client};
use crate::kernel::Arch;
use crate::repo::{self, Catalog, KernelRecord, Lister, Mirrors};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user named something that is not there or not usable: exit code 2 in the CLI.
    #[error("{0}")]
    Usage(String),
    #[error("cannot read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Repo(#[from] repo::Error),
    #[error(transparent)]
    Driver(#[from] crate::driver::Error),
    #[error(transparent)]
    Name(#[from] crate::names::Error),
}

impl Error {
    /// Whether the fault is in what the user asked for (usage or environment: exit 2).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Error::Usage(_)
                | Error::Name(_)
                | Error::Repo(repo::Error::NoSuchKernel { .. } | repo::Error::Keys { .. })
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How to reach repositories: what `--cache-dir`, `--offline`, `--mirror`, `--catalog`,
/// `--keyring` and `--allow-unsigned` say.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The download cache; `None`: [`http::default_cache_dir`].
    pub cache_dir: Option<PathBuf>,
    pub offline: bool,
    /// `NAME=URL` pairs that win over the environment, the host's APT sources and the catalog.
    pub mirrors: Vec<(String, String)>,
    /// A catalog file replacing the embedded one.
    pub catalog: Option<PathBuf>,
    /// Keyrings replacing each target's shipped keys.
    pub keyrings: Vec<PathBuf>,
    pub allow_unsigned: bool,
    /// A kernel module only with the exact compiler build the kernel names: never the
    /// nearest build of its major version (`--exact-compiler`).
    pub exact_compiler: bool,
    /// Only kernels of these flavours (and their variants) are listed (`--flavour`).
    pub flavours: Vec<String>,
}

/// What commands that reach repositories share.
pub struct Session {
    pub client: Client,
    pub catalog: Catalog,
    pub mirrors: Mirrors,
    pub exact_compiler: bool,
    pub flavours: Vec<String>,
}

/// Which kernel to build for: from a target's listing, or a kernel-crawler file.
#[derive(Debug, Clone)]
pub struct KernelSpec {
    /// A catalog target (`debian-bookworm`, `debian`, ...).
    pub target: Option<String>,
    /// A kernel-crawler JSON list, instead of listing.
    pub from: Option<PathBuf>,
    /// A kernel release, or `latest`.
    pub kernel: String,
    /// `None`: x86_64.
    pub arch: Option<Arch>,
    /// Keep kbuild's own package (`linux-kbuild-*`): a kernel module is built by kbuild; a
    /// probe never reads it.
    pub with_kbuild: bool,
}

/// A kernel settled: its header packages on disk and what it says of itself.
#[derive(Debug)]
pub struct Kernel {
    pub record: KernelRecord,
    pub headers: Vec<PathBuf>,
    /// Newer kernels `latest` passed over because the mirror does not serve them.
    pub passed_over: Vec<repo::Error>,
    /// The name asked for, when it was not the kernel's `uname -r` (Falco's file release, a
    /// header package), and which of its names it was.
    pub named_as: Option<(String, crate::names::Form)>,
}

impl Kernel {
    /// The digests of `headers` the signed listing gave (checked when fetched), in order.
    pub fn header_digests(&self) -> Vec<Option<String>> {
        self.record
            .packages
            .iter()
            .map(|p| p.known_sha256())
            .collect()
    }
}

impl Session {
    pub fn open(o: &Options) -> Result<Session> {
        let mut cfg =
            http::Config::new(o.cache_dir.clone().unwrap_or_else(http::default_cache_dir));
        cfg.offline = o.offline;
        let mut catalog = match &o.catalog {
            Some(p) => Catalog::parse(&read(p)?)
                .map_err(|e| Error::Usage(format!("catalog `{}`: {e}", p.display())))?,
            None => Catalog::embedded(),
        };
        need_files("keyring", &o.keyrings)?;
        for t in &mut catalog.targets {
            if !o.keyrings.is_empty() {
                t.keys = o.keyrings.iter().map(|k| k.display().to_string()).collect();
            }
            t.allow_unsigned |= o.allow_unsigned;
        }
        Ok(Session {
            client: Client::new(cfg),
            catalog,
            mirrors: Mirrors::from_env_and_host(&o.mirrors),
            exact_compiler: o.exact_compiler,
            flavours: o.flavours.clone(),
        })
    }

    /// Where kernel modules' compilers come from: pinned, the host's, or the kernel's own
    /// distribution's indexes (each resolved once for the life of the value).
    pub fn compilers(&self) -> crate::kmod::resolve::IndexCompilers<'_> {
        crate::kmod::resolve::IndexCompilers::new(self.lister(), self.exact_compiler)
    }

    pub fn lister(&self) -> Lister<'_> {
        Lister {
            client: &self.client,
            catalog: &self.catalog,
            mirrors: &self.mirrors,
        }
    }

    /// The kernel a build means: the named release or the newest (`latest`, in the one order
    /// of [`repo::newer`]) of a target or a kernel-crawler list, its packages fetched and
    /// checked against the signed listing.
    pub fn kernel(&self, spec: &KernelSpec) -> Result<Kernel> {
        let arch = spec.arch.unwrap_or(Arch::X86_64);
        if let Some(f) = &spec.from {
            let all = repo::crawler::read(&read(f)?, arch)
                .map_err(|e| Error::Usage(format!("`{}`: {e}", f.display())))?;
            let mut named_as = None;
            let k = if spec.kernel == "latest" {
                repo::newest_first(all).into_iter().next()
            } else {
                let release = match crate::names::resolve(&all, &spec.kernel)? {
                    Some((r, f)) if f != crate::names::Form::Release => {
                        named_as = Some((spec.kernel.clone(), f));
                        r
                    }
                    _ => spec.kernel.clone(),
                };
                all.into_iter().find(|k| k.release == release)
            };
            let k = k.ok_or_else(|| {
                Error::Usage(format!(
                    "`{}` lists no kernel `{}`",
                    f.display(),
                    spec.kernel
                ))
            })?;
            let record = match spec.with_kbuild {
                true => k,
                false => Lister::for_build(&k),
            };
            let headers = self.lister().fetch(&record)?;
            return Ok(Kernel {
                record,
                headers,
                passed_over: Vec::new(),
                named_as,
            });
        }
        let Some(t) = &spec.target else {
            return Err(Error::Usage(
                "a kernel needs --target or --from (or its header packages as files)".into(),
            ));
        };
        let fetch = |release: &str| {
            self.lister()
                .fetch_kernel(t, arch, release, !spec.with_kbuild)
        };
        let mut named_as = None;
        let got = match fetch(&spec.kernel) {
            // Not a `uname -r`: any other of a kernel's names (Falco's file release, its header
            // package) the listing knows; else the error names the closest releases.
            Err(e @ repo::Error::NoSuchKernel { .. }) => {
                match crate::names::resolve(&self.lister().list(t, &[arch])?, &spec.kernel)? {
                    Some((release, form)) => {
                        named_as = Some((spec.kernel.clone(), form));
                        fetch(&release)?
                    }
                    None => return Err(e.into()),
                }
            }
            got => got?,
        };
        Ok(Kernel {
            record: got.kernel,
            headers: got.files,
            passed_over: got.unavailable,
            named_as,
        })
    }

    /// The driver source of a version from the embedded source catalog (its known copies by
    /// digest first; downloaded once, cached).
    pub fn driver_source(&self, version: &str, archive: Option<&str>) -> Result<PathBuf> {
        Ok(crate::driver::fetch_source(
            &self.client,
            &SourceCatalog::embedded(),
            &self.mirrors,
            &self.catalog,
            version,
            archive,
        )?)
    }

    /// The driver a build means: the given source (its version from `version` or from
    /// itself), else the source of `version`, else of the newest driver with a legacy probe.
    pub fn driver(
        &self,
        source: Option<&Path>,
        version: Option<&str>,
        archive: Option<&str>,
    ) -> Result<(PathBuf, Option<String>)> {
        if let Some(p) = source {
            return Ok((p.to_owned(), version.map(str::to_owned)));
        }
        let v = version
            .map(str::to_owned)
            .unwrap_or_else(default_driver_version);
        let p = self.driver_source(&v, archive)?;
        Ok((p, Some(v)))
    }
}

/// The driver version built when none is named: the newest release with a legacy eBPF probe.
pub fn default_driver_version() -> String {
    SourceCatalog::embedded().default_version
}

/// Input files named by the user must exist: a missing one is a usage error naming it.
pub fn need_files<'a>(what: &str, paths: impl IntoIterator<Item = &'a PathBuf>) -> Result<()> {
    for p in paths {
        if std::fs::symlink_metadata(p).is_err() {
            return Err(Error::Usage(format!(
                "{what} `{}` does not exist",
                p.display()
            )));
        }
    }
    Ok(())
}

fn read(p: &Path) -> Result<String> {
    std::fs::read_to_string(p).map_err(|source| Error::Read {
        path: p.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_inputs_and_bad_catalogs_are_usage_errors_naming_them() {
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("nope.gpg");
        let e = need_files("keyring", [&missing]).unwrap_err();
        assert!(e.is_usage() && e.to_string().contains("keyring `"), "{e}");
        let bad = d.path().join("catalog.json");
        std::fs::write(&bad, "{not json").unwrap();
        let o = Options {
            cache_dir: Some(d.path().join("cache")),
            catalog: Some(bad),
            ..Options::default()
        };
        let e = Session::open(&o).err().unwrap();
        assert!(
            e.is_usage() && e.to_string().starts_with("catalog `"),
            "{e}"
        );
        let o = Options {
            cache_dir: Some(d.path().join("cache")),
            keyrings: vec![missing],
            ..Options::default()
        };
        assert!(Session::open(&o).err().unwrap().is_usage());
    }

    #[test]
    fn keyrings_replace_every_targets_keys_and_allow_unsigned_reaches_each() {
        let d = tempfile::tempdir().unwrap();
        let k = d.path().join("k.gpg");
        std::fs::write(&k, b"").unwrap();
        let o = Options {
            cache_dir: Some(d.path().join("cache")),
            keyrings: vec![k.clone()],
            allow_unsigned: true,
            ..Options::default()
        };
        let s = Session::open(&o).unwrap();
        assert!(!s.catalog.targets.is_empty());
        for t in &s.catalog.targets {
            assert_eq!(t.keys, vec![k.display().to_string()], "{}", t.name);
            assert!(t.allow_unsigned, "{}", t.name);
        }
    }

    #[test]
    fn a_kernel_needs_a_target_or_a_list() {
        let d = tempfile::tempdir().unwrap();
        let s = Session::open(&Options {
            cache_dir: Some(d.path().join("cache")),
            offline: true,
            ..Options::default()
        })
        .unwrap();
        let spec = KernelSpec {
            target: None,
            from: None,
            kernel: "latest".into(),
            arch: None,
            with_kbuild: false,
        };
        assert!(s.kernel(&spec).unwrap_err().is_usage());
        let list = d.path().join("list.json");
        std::fs::write(&list, "[]").unwrap();
        let spec = KernelSpec {
            from: Some(list),
            ..spec
        };
        let e = s.kernel(&spec).unwrap_err();
        assert!(e.to_string().contains("lists no kernel `latest`"), "{e}");
    }
}
