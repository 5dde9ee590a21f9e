//! Distro repositories: which kernels a target offers, and the exact packages (URL, size,
//! sha256) of each kernel's headers, read from the repository's own metadata over HTTP.
//!
//! The catalog of targets and mirrors is data (`catalog/targets.json`, embedded; a user's file
//! replaces it). Mirrors resolve as: `--mirror NAME=URL` / `PROBEFORGE_MIRROR_<NAME>` first,
//! then the host's APT sources (for Debian and Ubuntu), then the catalog's default.
//!
//! Each kind of repository is listed by its own module (`apt_list`, `yum_list`, `cos_list`,
//! `archlinux`, `bottlerocket`, `kernel_org`), over the pure parsers of its format (`apt`,
//! `yum`, `cos`, `pacman`, `tuf`); [`Lister::list`] only dispatches by the target's kind.

pub mod apt;
mod apt_list;
mod archlinux;
mod bottlerocket;
pub mod cos;
mod cos_list;
pub mod crawler;
pub mod kernel_org;
pub mod pacman;
pub mod sources;
pub mod tuf;
pub mod yum;
mod yum_list;

pub use archlinux::PacmanIndex;

use std::collections::BTreeMap;

use crate::http::{self, Client};
use crate::kernel::Arch;

/// Why repository metadata (bytes handed to a parser) does not read as what it should be.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("{0}")]
    Xml(#[from] quick_xml::Error),
    #[error("{0}")]
    XmlText(#[from] quick_xml::encoding::EncodingError),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{0}")]
    Read(#[from] std::io::Error),
    #[error("cannot decompress: {0}")]
    Decompress(Box<crate::extract::Error>),
    /// Well-formed, but not what this format holds (which part is missing, or is wrong).
    #[error("{0}")]
    Shape(&'static str),
    /// One entry of a list that cannot be used, named.
    #[error("{0}")]
    Entry(String),
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown target `{0}` (see `probeforge list-kernels --targets-only`)")]
    UnknownTarget(String),
    #[error("catalog: {0}")]
    Catalog(String),
    #[error("no mirror named `{0}` in the catalog")]
    NoMirror(String),
    #[error("{what}")]
    Fetch {
        what: String,
        #[source]
        source: http::Error,
    },
    #[error("`{url}` does not match the digest its Release lists ({expected}); the mirror may be mid-sync")]
    IndexDigest { url: String, expected: String },
    #[error("`{url}`: {what}")]
    Index { url: String, what: String },
    #[error("package `{package}` (`{url}`) does not match the sha256 `{index}` lists ({expected}); refused")]
    PackageDigest {
        package: String,
        url: String,
        index: String,
        expected: String,
    },
    /// TUF metadata (Bottlerocket) that does not verify from the trusted root.
    #[error("`{repo}`: TUF metadata that does not verify from the trusted root (pass --keyring ROOT.json with the repository's root, or --allow-unsigned to use it anyway)")]
    Tuf {
        repo: String,
        #[source]
        source: tuf::Error,
    },
    /// Metadata that is not signed by a trusted key (see [`crate::trust`]).
    #[error(
        "{0} (pass --keyring FILE with the repository's key, or --allow-unsigned to use it anyway)"
    )]
    Trust(#[source] crate::trust::Error),
    #[error("target `{target}`: {what}")]
    Keys { target: String, what: String },
    #[error("cannot write `{}` into the cache", path.display())]
    Cache {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A distribution that signs its packages but not its repositories' metadata (Photon OS):
    /// there is nothing probeforge can check the listing against.
    #[error("target `{target}`: `{repo}` has no signed metadata (the distribution signs its packages only, which probeforge does not check); pass --allow-unsigned to use it unverified")]
    MetadataUnsigned { target: String, repo: String },
    #[error("kernel `{release}`: its kbuild package `{package}` is version {kernel_version}, but the {host} one is {host_version}")]
    KbuildVersion {
        release: String,
        package: String,
        kernel_version: String,
        host: Arch,
        host_version: String,
    },
    #[error("target `{target}`: no kernel `{release}` for {arch} (closest: {closest}; newest: {newest})")]
    NoSuchKernel {
        target: String,
        release: String,
        arch: Arch,
        newest: String,
        closest: String,
    },
    /// The index lists the package, the mirror does not serve its file: a real kernel that
    /// cannot be had from here, not a failed build.
    #[error("kernel `{release}` is unavailable from this mirror: `{package}` is listed by the repository's index but `{url}` answers HTTP {status}")]
    Unavailable {
        release: String,
        package: String,
        url: String,
        status: u16,
    },
    #[error("target `{target}`: none of its {count} {arch} kernels can be downloaded from this mirror (newest: {newest})")]
    NoneAvailable {
        target: String,
        arch: Arch,
        count: usize,
        newest: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The server answered 404 for a metadata file: it does not exist there.
    fn is_not_found(&self) -> bool {
        matches!(
            self,
            Error::Fetch {
                source: http::Error::Status { status: 404, .. },
                ..
            }
        )
    }
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct SuiteRef {
    pub suite: String,
    /// Overrides the target's mirror (Debian's security archive).
    pub mirror: Option<String>,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct Target {
    pub name: String,
    pub kind: String,
    /// Falco's target id; Ubuntu's gets `-<flavour>` appended.
    pub target_id: String,
    pub mirror: String,
    /// Mirror for aarch64 where it differs (Ubuntu's ports archive).
    pub mirror_aarch64: Option<String>,
    #[serde(default)]
    pub suites: Vec<SuiteRef>,
    #[serde(default)]
    pub components: Vec<String>,
    /// YUM: repository paths below the mirror (`{arch}` is replaced); a path ending in
    /// `mirror.list` is resolved through that list (Amazon Linux).
    #[serde(default)]
    pub repos: Vec<String>,
    pub arches: Vec<String>,
    /// The keys that sign this target's metadata: names of keyrings shipped in
    /// `catalog/keys/`, or paths of keyring files (`--keyring` replaces them).
    #[serde(default)]
    pub keys: Vec<String>,
    /// Use metadata that is unsigned or not signed by these keys (`--allow-unsigned`);
    /// what is listed from it is marked `unsigned_metadata`.
    #[serde(default)]
    pub allow_unsigned: bool,
    /// YUM: which packages make one kernel's headers and what `uname -r` they give (see
    /// [`yum::HeaderRule`]); RHEL's `kernel-devel` when absent.
    #[serde(default)]
    pub headers: Option<yum::HeaderRule>,
    /// YUM: `false` where the distribution signs its packages but not its repository metadata
    /// (Photon OS): there is no `repomd.xml.asc` to check, and its listing is unsigned.
    #[serde(default = "signed_by_default")]
    pub signed_metadata: bool,
    /// The APT target whose indexes hold this target's kernels' compilers, where not its own:
    /// a pre-release pocket (`ubuntu-noble-proposed`) carries kernels, not compilers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compilers_from: Option<String>,
    /// The one release this target is (os-release's `VERSION_ID`: `12`, `24.04`); absent for
    /// a target spanning several (`debian`, `ubuntu`). A kernel's compiler is looked up in its
    /// own release's indexes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
}

fn signed_by_default() -> bool {
    true
}

impl Target {
    /// The one trust policy of both metadata formats: signed by a trusted key is `true`;
    /// anything else is refused, unless `allow_unsigned` says to go on (`false`, warned).
    fn accept(&self, checked: Result<(), crate::trust::Error>) -> Result<bool> {
        match checked {
            Ok(()) => Ok(true),
            Err(e) if self.allow_unsigned => {
                tracing::warn!("{e}; used anyway (--allow-unsigned)");
                Ok(false)
            }
            Err(e) => Err(Error::Trust(e)),
        }
    }

    /// The keyring of this target's metadata signers.
    pub fn keyring(&self) -> Result<crate::trust::Keyring> {
        let mut ring = crate::trust::Keyring::default();
        for k in &self.keys {
            let one = if std::path::Path::new(k).is_file() {
                let bytes = std::fs::read(k).map_err(|e| Error::Keys {
                    target: self.name.clone(),
                    what: format!("cannot read keyring `{k}`: {e}"),
                })?;
                crate::trust::Keyring::parse(&bytes, k)
            } else {
                crate::trust::Keyring::embedded(k)
            };
            ring.extend(one.map_err(|e| Error::Keys {
                target: self.name.clone(),
                what: e.to_string(),
            })?);
        }
        Ok(ring)
    }
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct Catalog {
    pub mirrors: BTreeMap<String, String>,
    pub targets: Vec<Target>,
}

const EMBEDDED_CATALOG: &str = include_str!("../../catalog/targets.json");

impl Catalog {
    pub fn embedded() -> Catalog {
        Catalog::parse(EMBEDDED_CATALOG).expect("embedded catalog is valid")
    }
    pub fn parse(text: &str) -> Result<Catalog> {
        serde_json::from_str(text).map_err(|e| Error::Catalog(e.to_string()))
    }
    pub fn target(&self, name: &str) -> Result<&Target> {
        self.targets
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| Error::UnknownTarget(name.to_owned()))
    }
}

/// Mirror resolution: explicit overrides, then APT sources, then the catalog.
#[derive(Debug, Clone, Default)]
pub struct Mirrors {
    pub overrides: BTreeMap<String, String>,
    pub from_apt: BTreeMap<String, String>,
}

impl Mirrors {
    /// Overrides from `PROBEFORGE_MIRROR_<NAME>` and the given `NAME=URL` pairs (which win),
    /// and the host's APT sources.
    pub fn from_env_and_host(flags: &[(String, String)]) -> Mirrors {
        let mut overrides = BTreeMap::new();
        for (k, v) in std::env::vars() {
            if let Some(name) = k.strip_prefix("PROBEFORGE_MIRROR_") {
                overrides.insert(name.to_ascii_lowercase().replace('_', "-"), v);
            }
        }
        for (k, v) in flags {
            overrides.insert(k.clone(), v.clone());
        }
        Mirrors {
            overrides,
            from_apt: sources::host_mirrors(),
        }
    }

    pub fn resolve(&self, catalog: &Catalog, name: &str) -> Result<String> {
        self.overrides
            .get(name)
            .or_else(|| self.from_apt.get(name))
            .or_else(|| catalog.mirrors.get(name))
            .map(|u| u.trim_end_matches('/').to_owned())
            .ok_or_else(|| Error::NoMirror(name.to_owned()))
    }
}

/// One package of a kernel's header set.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PackageRef {
    pub name: String,
    pub version: String,
    pub url: String,
    pub size: u64,
    pub sha256: String,
}

impl PackageRef {
    /// The digest the listing gives, when it gives one (kernel-crawler lists carry none): a
    /// fetched file was checked against it, so it need not be hashed again.
    pub fn known_sha256(&self) -> Option<String> {
        (self.sha256.len() == 64 && self.sha256.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| self.sha256.to_ascii_lowercase())
    }
}

/// A kernel a target offers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KernelRecord {
    pub target: String,
    pub target_id: String,
    pub release: String,
    /// The number after `#` in `uname -v`.
    pub kernel_version: String,
    pub arch: Arch,
    /// The suite/repository it came from.
    pub origin: String,
    pub packages: Vec<PackageRef>,
    /// Listed from metadata that was not signed by a trusted key (`--allow-unsigned`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unsigned_metadata: bool,
}

impl KernelRecord {
    /// The flavour its release names after the version and build number: Ubuntu's `aws`,
    /// `azure-fde`, `generic`; Debian's `amd64`, `cloud-amd64`, `rt-arm64`. `None` for a
    /// release that names none (RPM's `5.14.0-427.el9.x86_64`, vanilla's `6.6.60`).
    pub fn flavour(&self) -> Option<&str> {
        static FLAVOUR: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
            regex::Regex::new(
                r"^\d+\.\d+(?:\.\d+)?(?:-\d+|-0\.deb\d+\.\d+|\+deb\d+|\+bpo)-([a-z][a-z0-9-]*)$",
            )
            .expect("valid")
        });
        FLAVOUR
            .captures(&self.release)
            .and_then(|c| c.get(1))
            .map(|m| m.as_str())
    }

    /// Whether its flavour is one of `flavours` or a variant of one (`azure` keeps
    /// `azure-fde`, `cloud` keeps `cloud-amd64`); every kernel when `flavours` is empty.
    pub fn has_flavour(&self, flavours: &[String]) -> bool {
        flavours.is_empty()
            || self.flavour().is_some_and(|f| {
                flavours
                    .iter()
                    .any(|w| f == w || f.starts_with(&format!("{w}-")))
            })
    }

    /// The kernel release in Falco's file name for this kernel
    /// ([`crate::loader::file_release`]): on Debian its header package's version and flavour
    /// (the version `uname -v` states), elsewhere `uname -r`.
    pub fn file_release(&self) -> String {
        let headers = format!("linux-headers-{}", self.release);
        let version = self.packages.iter().find(|p| p.name == headers);
        match version {
            // Falco names a Flatcar kernel by the Flatcar release (its config's version).
            None if self.target_id == "flatcar" && !self.config_version().is_empty() => {
                self.config_version().to_owned()
            }
            Some(p) if self.target_id == "debian" => {
                crate::loader::debian_file_release(&self.release, &p.version)
                    .unwrap_or_else(|| self.release.clone())
            }
            _ => self.release.clone(),
        }
    }
}

/// Lists kernels of catalog targets.
#[derive(Clone, Copy)]
pub struct Lister<'a> {
    pub client: &'a Client,
    pub catalog: &'a Catalog,
    pub mirrors: &'a Mirrors,
}

impl Lister<'_> {
    fn fetch_meta(&self, url: &str) -> Result<Vec<u8>> {
        self.client
            .fetch_metadata(url)
            .map(|(b, _)| b)
            .map_err(|source| Error::Fetch {
                what: format!("cannot fetch `{}`", http::redact(url)),
                source,
            })
    }

    /// Every kernel of a target for the given arches, sorted by (arch, release).
    pub fn list(&self, target_name: &str, arches: &[Arch]) -> Result<Vec<KernelRecord>> {
        let t = self.catalog.target(target_name)?;
        match t.kind.as_str() {
            "apt" => self.list_apt(t, arches),
            "yum" => self.list_yum(t, arches),
            "cos" => self.list_cos(t, arches),
            "pacman" => self.list_pacman(t, arches),
            "bottlerocket" => self.list_bottlerocket(t, arches),
            "kernel-org" => self.list_kernel_org(t, arches),
            "flatcar" => self.list_flatcar(t, arches),
            other => Err(Error::Catalog(format!(
                "target `{}` has kind `{other}`, which this build cannot list",
                t.name
            ))),
        }
    }

    /// One kernel by release, or the newest (`latest`: see [`newest_first`]).
    pub fn find(&self, target: &str, arch: Arch, release: &str) -> Result<KernelRecord> {
        let all = self.list(target, &[arch])?;
        pick(target, arch, release, all)?
            .into_iter()
            .next()
            .ok_or_else(|| unreachable_empty(target, arch))
    }

    /// One kernel by release, or the newest one this mirror really serves (`latest`), with
    /// its packages downloaded and verified (only what a probe build reads when `for_build`).
    /// A newer kernel whose files the mirror does not serve is passed over for `latest` and
    /// named in [`Fetched::unavailable`]; a named kernel that is unavailable is an error.
    pub fn fetch_kernel(
        &self,
        target: &str,
        arch: Arch,
        release: &str,
        for_build: bool,
    ) -> Result<Fetched> {
        let all = self.list(target, &[arch])?;
        let count = all.len();
        let candidates = pick(target, arch, release, all)?;
        let newest = candidates
            .first()
            .map(|k| k.release.clone())
            .unwrap_or_default();
        let mut unavailable = Vec::new();
        for k in candidates {
            let k = match (for_build, Arch::host()) {
                (true, _) => Self::for_build(&k),
                // kbuild's own programs run here: the host's build of them.
                (false, Some(host)) => self.with_host_kbuild(&k, host)?,
                (false, None) => k,
            };
            match self.fetch(&k) {
                Ok(files) => {
                    return Ok(Fetched {
                        kernel: k,
                        files,
                        unavailable,
                    })
                }
                Err(e @ Error::Unavailable { .. }) if release == "latest" => unavailable.push(e),
                Err(e) => return Err(e),
            }
        }
        Err(Error::NoneAvailable {
            target: target.to_owned(),
            arch,
            count,
            newest,
        })
    }

    /// A kernel's set for a module built on a `host` of another architecture: its kbuild
    /// package (`linux-kbuild-*`: programs kbuild runs on the build machine) for the host's
    /// architecture, of the same name and version, from the same target; the headers stay the
    /// kernel's. The set itself when the kernel is the host's architecture.
    pub fn with_host_kbuild(&self, k: &KernelRecord, host: Arch) -> Result<KernelRecord> {
        if k.arch == host {
            return Ok(k.clone());
        }
        let mut packages = Vec::with_capacity(k.packages.len());
        for p in &k.packages {
            if !p.name.starts_with("linux-kbuild-") {
                packages.push(p.clone());
                continue;
            }
            let h = self.find_package(&k.target, host, &p.name)?;
            if h.version != p.version {
                return Err(Error::KbuildVersion {
                    release: k.release.clone(),
                    package: p.name.clone(),
                    kernel_version: p.version.clone(),
                    host,
                    host_version: h.version,
                });
            }
            packages.push(h);
        }
        Ok(KernelRecord {
            packages,
            ..k.clone()
        })
    }

    /// The part of a kernel's set a probe build reads: everything but kbuild's own tools
    /// (`linux-kbuild-*`: host binaries only kbuild runs).
    pub fn for_build(k: &KernelRecord) -> KernelRecord {
        KernelRecord {
            packages: k
                .packages
                .iter()
                .filter(|p| !p.name.starts_with("linux-kbuild-"))
                .cloned()
                .collect(),
            ..k.clone()
        }
    }

    /// Downloads and verifies a kernel's packages; returns their cached paths in set order.
    /// A kernel built from source whose list gave no tarball URL gets it from kernel.org's
    /// signed sums first (see [`kernel_org`]); a `.config` carried inline is stored by digest.
    pub fn fetch(&self, k: &KernelRecord) -> Result<Vec<std::path::PathBuf>> {
        let k = &self.with_kernel_source(k)?;
        k.packages
            .iter()
            .map(|p| {
                if let Some(bytes) = kernel_org::data_url_bytes(&p.url) {
                    return self.store_inline(k, p, &bytes);
                }
                // From a kernel-crawler list, digests are unknown: fetched as they come.
                let r = if p.sha256.is_empty() {
                    self.client.fetch_unverified(&p.url).map(|(path, _)| path)
                } else {
                    let size = Some(p.size).filter(|&s| s > 0);
                    self.client
                        .fetch_verified(&p.url, &p.sha256, size)
                        .map(|(path, _)| path)
                };
                r.map_err(|source| match source {
                    http::Error::Status { url, status } if status == 404 || status == 410 => {
                        Error::Unavailable {
                            release: k.release.clone(),
                            package: p.name.clone(),
                            url: http::redact(&url),
                            status,
                        }
                    }
                    source => Error::Fetch {
                        what: format!("kernel `{}`: package `{}`", k.release, p.name),
                        source,
                    },
                })
            })
            .collect()
    }

    /// A package carried inline (a `data:` URL): checked against its digest when the list
    /// gives one, stored in the cache by digest like a download.
    fn store_inline(
        &self,
        k: &KernelRecord,
        p: &PackageRef,
        bytes: &[u8],
    ) -> Result<std::path::PathBuf> {
        use sha2::Digest;
        let digest = hex::encode(sha2::Sha256::digest(bytes));
        if let Some(want) = p.known_sha256().filter(|w| *w != digest) {
            return Err(Error::PackageDigest {
                package: format!("{} of kernel `{}`", p.name, k.release),
                url: "(inline data)".into(),
                index: "the list".into(),
                expected: want,
            });
        }
        let path = self.client.cache().blob(&digest);
        if !path.is_file() {
            crate::base::write_atomic(&path, bytes).map_err(|source| Error::Cache {
                path: path.clone(),
                source,
            })?;
        }
        Ok(path)
    }
}

/// A kernel and its downloaded packages, with the newer kernels passed over because this
/// mirror does not serve their files.
#[derive(Debug)]
pub struct Fetched {
    pub kernel: KernelRecord,
    pub files: Vec<std::path::PathBuf>,
    pub unavailable: Vec<Error>,
}

/// The one definition of "newer": the higher package version (dpkg's order; a kernel-crawler
/// entry without one compares by release), and among flavours of one version the plainest
/// (shorter release: `-amd64` before `-cloud-amd64` and `-rt-amd64`). Ubuntu numbers each
/// flavour's builds on its own (`7.0.0-1027` nvidia, `7.0.0-44` generic): its kernels compare
/// by upstream version first, then `generic` before the other flavours.
pub fn newer(a: &KernelRecord, b: &KernelRecord) -> std::cmp::Ordering {
    fn version(k: &KernelRecord) -> &str {
        k.packages
            .first()
            .map(|p| p.version.as_str())
            .filter(|v| !v.is_empty())
            .unwrap_or(&k.release)
    }
    let ubuntu = |k: &KernelRecord| k.target_id.starts_with("ubuntu-");
    let upstream = |k: &KernelRecord| version(k).split('-').next().unwrap_or("").to_owned();
    let first = match ubuntu(a) && ubuntu(b) {
        true => apt::compare_versions(&upstream(a), &upstream(b)).then_with(|| {
            (a.target_id == "ubuntu-generic").cmp(&(b.target_id == "ubuntu-generic"))
        }),
        false => std::cmp::Ordering::Equal,
    };
    first
        .then_with(|| apt::compare_versions(version(a), version(b)))
        .then_with(|| b.release.len().cmp(&a.release.len()))
        .then_with(|| b.release.cmp(&a.release))
}

/// Kernels sorted newest first (see [`newer`]): `latest` is the first.
pub fn newest_first(mut all: Vec<KernelRecord>) -> Vec<KernelRecord> {
    all.sort_by(|a, b| newer(b, a));
    all
}

/// The candidates for `release` among a target's kernels: every kernel newest first for
/// `latest`, else the one with that release; none is an error naming the closest releases.
pub fn pick(
    target: &str,
    arch: Arch,
    release: &str,
    all: Vec<KernelRecord>,
) -> Result<Vec<KernelRecord>> {
    let all = newest_first(all);
    let newest = all
        .first()
        .map_or_else(|| "none".into(), |k| k.release.clone());
    let found: Vec<KernelRecord> = if release == "latest" {
        all.clone()
    } else {
        all.iter()
            .filter(|k| k.release == release)
            .cloned()
            .collect()
    };
    if found.is_empty() {
        let releases: Vec<&str> = all.iter().map(|k| k.release.as_str()).collect();
        let closest = closest(release, &releases, 3);
        return Err(Error::NoSuchKernel {
            target: target.to_owned(),
            release: release.to_owned(),
            arch,
            newest,
            closest: if closest.is_empty() {
                "none".into()
            } else {
                closest.join(", ")
            },
        });
    }
    Ok(found)
}

fn unreachable_empty(target: &str, arch: Arch) -> Error {
    Error::NoSuchKernel {
        target: target.to_owned(),
        release: "latest".into(),
        arch,
        newest: "none".into(),
        closest: "none".into(),
    }
}

/// The `n` names closest to `wanted` (longest common prefix, then edit distance, then name):
/// what a user probably meant by a release or a filter that matched nothing.
pub fn closest<'a>(wanted: &str, names: &[&'a str], n: usize) -> Vec<&'a str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
                prev = cur;
            }
        }
        row[b.len()]
    }
    let prefix = |m: &str| {
        wanted
            .chars()
            .zip(m.chars())
            .take_while(|(a, b)| a == b)
            .count()
    };
    let mut v: Vec<(std::cmp::Reverse<usize>, usize, &str)> = names
        .iter()
        .map(|m| (std::cmp::Reverse(prefix(m)), distance(wanted, m), *m))
        .collect();
    v.sort();
    v.dedup_by(|a, b| a.2 == b.2);
    v.into_iter().take(n).map(|(_, _, m)| m).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(release: &str, version: &str) -> KernelRecord {
        KernelRecord {
            unsigned_metadata: false,
            target: "t".into(),
            target_id: "debian".into(),
            release: release.into(),
            kernel_version: "1".into(),
            arch: Arch::X86_64,
            origin: "s".into(),
            packages: vec![PackageRef {
                name: format!("linux-headers-{release}"),
                version: version.into(),
                url: String::new(),
                size: 0,
                sha256: String::new(),
            }],
        }
    }

    /// The catalog's rules, applied to package names and versions as each distribution
    /// publishes them, give the `uname -r` of its kernels.
    #[test]
    fn catalog_header_rules_give_each_distros_uname_r() {
        let c = Catalog::embedded();
        let rpm = |name: &str, arch: &str, v: &str, r: &str| yum::Rpm {
            name: name.into(),
            arch: arch.into(),
            version: v.into(),
            release: r.into(),
            ..yum::Rpm::default()
        };
        let cases = [
            (
                "opensuse-leap-15.6",
                rpm(
                    "kernel-default-devel",
                    "x86_64",
                    "5.14.21",
                    "150500.55.39.1",
                ),
                "5.14.21-150500.55.39-default",
            ),
            (
                "opensuse-tumbleweed",
                rpm("kernel-default-devel", "x86_64", "6.8.1", "1.1"),
                "6.8.1-1-default",
            ),
            (
                "sles-15-sp6",
                rpm("kernel-default-devel", "aarch64", "6.4.0", "150600.23.25.1"),
                "6.4.0-150600.23.25-default",
            ),
            (
                "photon-3.0",
                rpm("linux-devel", "x86_64", "4.19.283", "3.ph3"),
                "4.19.283-3.ph3",
            ),
            (
                "photon-5.0",
                rpm("linux-rt-devel", "x86_64", "6.1.83", "4.ph5"),
                "6.1.83-4.ph5-rt",
            ),
            (
                "alinux-3",
                rpm("kernel-devel", "x86_64", "5.10.84", "10.4.al8"),
                "5.10.84-10.4.al8.x86_64",
            ),
            (
                "amazonlinux",
                rpm("kernel-devel", "x86_64", "4.14.26", "46.32.amzn1"),
                "4.14.26-46.32.amzn1.x86_64",
            ),
            (
                "amazonlinux2022",
                rpm("kernel-devel", "aarch64", "5.15.25", "14.106.amzn2022"),
                "5.15.25-14.106.amzn2022.aarch64",
            ),
        ];
        for (target, p, want) in cases {
            let t = c.target(target).unwrap();
            let rule = t.headers.clone().unwrap_or_default();
            assert_eq!(rule.kernel_release(&p).as_deref(), Some(want), "{target}");
        }
        let photon = c.target("photon-4.0").unwrap();
        assert!(!photon.signed_metadata && photon.keys.is_empty());
        let esx = rpm("linux-esx-devel", "x86_64", "4.19.283", "3.ph3");
        assert_eq!(photon.headers.clone().unwrap().kernel_release(&esx), None);
        // A TUF target's key is its trusted root (checked in `tuf`), every other one a keyring.
        for t in c.targets.iter().filter(|t| t.kind != "bottlerocket") {
            for k in &t.keys {
                crate::trust::Keyring::embedded(k).unwrap_or_else(|e| panic!("{}: {e}", t.name));
            }
        }
    }

    #[test]
    fn latest_is_the_highest_version_then_the_plainest_flavour() {
        let all = vec![
            k("5.10.0-46-amd64", "5.10.244-1"),
            k("6.1.0-0.deb11.52-cloud-amd64", "6.1.180-1~deb11u1"),
            k("6.1.0-0.deb11.52-amd64", "6.1.180-1~deb11u1"),
            k("6.1.0-0.deb11.9-amd64", "6.1.27-1~deb11u1"),
        ];
        let order: Vec<String> = newest_first(all.clone())
            .into_iter()
            .map(|k| k.release)
            .collect();
        assert_eq!(
            order,
            [
                "6.1.0-0.deb11.52-amd64",
                "6.1.0-0.deb11.52-cloud-amd64",
                "6.1.0-0.deb11.9-amd64",
                "5.10.0-46-amd64"
            ]
        );
        match pick("debian-bullseye", Arch::X86_64, "6.1-amd64", all) {
            Err(Error::NoSuchKernel { closest, .. }) => {
                assert!(closest.starts_with("6.1.0-0.deb11.9-amd64"), "{closest}")
            }
            other => panic!("{other:?}"),
        }
    }

    /// Ubuntu numbers each flavour's builds on its own: `latest` is the newest upstream
    /// version, and of it the generic kernel, not the flavour with the highest build number.
    #[test]
    fn ubuntus_latest_is_the_newest_upstream_then_generic() {
        let u = |release: &str, version: &str, id: &str| KernelRecord {
            target_id: id.into(),
            ..k(release, version)
        };
        let all = vec![
            u(
                "7.0.0-1027-nvidia",
                "7.0.0-1027.27~24.04.1",
                "ubuntu-nvidia",
            ),
            u("7.0.0-44-generic", "7.0.0-44.44~24.04.1", "ubuntu-generic"),
            u("6.8.0-1050-aws", "6.8.0-1050.53", "ubuntu-aws"),
            u("7.0.0-43-generic", "7.0.0-43.43~24.04.1", "ubuntu-generic"),
        ];
        let order: Vec<String> = newest_first(all).into_iter().map(|k| k.release).collect();
        assert_eq!(
            order,
            [
                "7.0.0-44-generic",
                "7.0.0-43-generic",
                "7.0.0-1027-nvidia",
                "6.8.0-1050-aws"
            ]
        );
    }

    #[test]
    fn flavours_as_releases_name_them() {
        for (release, flavour) in [
            ("6.8.0-1040-aws", Some("aws")),
            ("7.0.0-1023-azure-fde", Some("azure-fde")),
            ("6.8.0-1020-nvidia-lowlatency", Some("nvidia-lowlatency")),
            ("6.1.0-50-cloud-amd64", Some("cloud-amd64")),
            ("6.12.117+deb12-rt-amd64", Some("rt-amd64")),
            ("6.1.0-0.deb11.52-amd64", Some("amd64")),
            ("5.14.0-427.el9.x86_64", None),
            ("6.6.60", None),
        ] {
            assert_eq!(k(release, "1").flavour(), flavour, "{release}");
        }
        let f = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(k("7.0.0-1023-azure-fde", "1").has_flavour(&f(&["aws", "azure"])));
        assert!(!k("7.0.0-44-generic", "1").has_flavour(&f(&["aws", "azure"])));
        assert!(!k("6.8.0-1040-awsx", "1").has_flavour(&f(&["aws"])));
        assert!(k("6.1.0-50-cloud-amd64", "1").has_flavour(&f(&["cloud"])));
        assert!(!k("6.1.0-50-amd64", "1").has_flavour(&f(&["cloud"])));
        assert!(k("5.14.0-427.el9.x86_64", "1").has_flavour(&[]));
    }
}
