//! Falco driver sources: finding the legacy probe in what the user gave, laying it out the way
//! the driver's CMake install does, writing `driver_config.h`, and applying `driver-patches/`.
//!
//! Accepted: a falcosecurity/libs tree or tarball (`libs-<ref>/driver/...`, Debian's
//! `.orig.tar.gz`), and an already-configured dkms tree or package (`usr/src/scap-<v>/` with
//! `bpf/` beside `driver_config.h`). The source given is never modified: work happens on a copy.

use std::fs;
use std::path::{Path, PathBuf};

use crate::base::{digest_input, escape_segment};
use crate::extract::{self, Selection};
use crate::patch;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{0}`: no Falco driver found (looked for driver/bpf/probe.c, or bpf/probe.c beside driver_config.h)")]
    NotFound(PathBuf),
    #[error("`{path}`: this driver has no legacy eBPF probe (driver/bpf): it was removed upstream in 10.0.0+driver; the legacy probe exists in drivers up to 9.1.0+driver (and older commit-hash versions)")]
    NoLegacyProbe { path: PathBuf },
    #[error("`{path}`: {what}")]
    Bad { path: PathBuf, what: String },
    #[error("the driver version of `{0}` cannot be told from the sources: pass --driver-version")]
    NeedVersion(PathBuf),
    #[error("`{path}` is {what} (API {}, schema {}), which several driver releases share ({}): pass --driver-version", show(*.api), show(*.schema), .candidates.join(", "))]
    Ambiguous {
        path: PathBuf,
        what: String,
        api: SemVer,
        schema: SemVer,
        candidates: Vec<String>,
    },
    #[error("`{}` has API {} and schema {}, but driver {} has API {} and schema {}: it is not that driver (pass its own --driver-version)", .0.path.display(), show(.0.api), show(.0.schema), .0.version, show(.0.want_api), show(.0.want_schema))]
    WrongVersion(Box<VersionMismatch>),
    #[error("cannot unpack driver source")]
    Unpack(#[from] extract::Error),
    #[error("i/o on `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("patch `{name}` does not apply")]
    Patch {
        name: String,
        #[source]
        source: patch::Error,
    },
}

type Result<T, E = Error> = std::result::Result<T, E>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// (major, minor, patch) as in `API_VERSION` files.
pub type SemVer = (u64, u64, u64);

/// A source whose API and schema versions are not those of the driver release it was named as
/// (boxed in [`Error::WrongVersion`]: errors stay small on the happy path).
#[derive(Debug)]
pub struct VersionMismatch {
    pub path: PathBuf,
    pub version: String,
    pub api: SemVer,
    pub schema: SemVer,
    pub want_api: SemVer,
    pub want_schema: SemVer,
}

fn show(v: SemVer) -> String {
    format!("{}.{}.{}", v.0, v.1, v.2)
}

fn parse_semver(s: &str) -> Option<SemVer> {
    let mut it = s.trim().split('.').map(|p| p.trim().parse::<u64>().ok());
    Some((it.next()??, it.next()??, it.next()??))
}

/// How the source was laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// falcosecurity/libs: `driver/bpf`, `driver/*.h`, `driver_config.h.in`.
    Libs,
    /// An installed dkms tree: `<dir>/bpf` and `<dir>/driver_config.h`.
    Dkms,
}

/// A driver source found in a directory, not yet prepared for building.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DriverSource {
    pub layout: Layout,
    /// `driver/` (libs) or the dkms tree.
    pub dir: PathBuf,
    /// The driver version the source says it is, if it says: a dkms tree's `DRIVER_VERSION`,
    /// where that is a libs version (Debian's 0.23.2) mapped by API and schema version to the
    /// driver release Falco's loaders know it as (9.1.0+driver).
    pub recorded_version: Option<String>,
    /// What the source calls itself before any mapping: dkms `DRIVER_VERSION`, or the top
    /// folder of a libs archive (`libs-7.0.0+driver`, `libs-0.20.0`, `libs-<commit>`).
    pub named_version: Option<String>,
    /// The version a known copy of this source has (by its digest, `catalog/drivers.json`).
    pub known_version: Option<String>,
    /// The sha256 of the source as given (archive or package), when it was hashed.
    pub sha256: Option<String>,
    pub api_version: SemVer,
    pub schema_version: SemVer,
}

fn find_dirs(root: &Path, depth: usize, out: &mut Vec<(Layout, PathBuf)>) {
    if root.join("bpf/probe.c").is_file() {
        if root.join("driver_config.h.in").is_file() {
            out.push((Layout::Libs, root.to_owned()));
        } else if root.join("driver_config.h").is_file() {
            out.push((Layout::Dkms, root.to_owned()));
        }
    } else if root.join("driver_config.h.in").is_file() && root.join("modern_bpf").is_dir() {
        // A libs driver dir without bpf/: 10.0.0+driver and later.
        out.push((Layout::Libs, root.to_owned()));
    }
    if depth == 0 {
        return;
    }
    let Ok(rd) = fs::read_dir(root) else { return };
    let mut dirs: Vec<PathBuf> = rd
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    for d in dirs {
        find_dirs(&d, depth - 1, out);
    }
}

impl DriverSource {
    /// Finds the driver in an (unpacked) directory.
    pub fn find(root: &Path) -> Result<DriverSource> {
        let mut found = Vec::new();
        find_dirs(root, 4, &mut found);
        let (layout, dir) = match found.as_slice() {
            [] => return Err(Error::NotFound(root.to_owned())),
            [one] => one.clone(),
            many => {
                return Err(Error::Bad {
                    path: root.to_owned(),
                    what: format!(
                        "ambiguous: {} driver trees found ({})",
                        many.len(),
                        many.iter()
                            .map(|(_, p)| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })
            }
        };
        if !dir.join("bpf/probe.c").is_file() {
            return Err(Error::NoLegacyProbe { path: dir });
        }
        match layout {
            Layout::Libs => {
                let rd = |f: &str| -> Result<SemVer> {
                    let p = dir.join(f);
                    let t = fs::read_to_string(&p).map_err(io(&p))?;
                    parse_semver(&t).ok_or_else(|| Error::Bad {
                        path: p.clone(),
                        what: format!("not a MAJOR.MINOR.PATCH version: `{}`", t.trim()),
                    })
                };
                let named_version = dir
                    .parent()
                    .and_then(|p| p.file_name())
                    .and_then(|n| version_in_folder(&n.to_string_lossy()));
                Ok(DriverSource {
                    layout,
                    api_version: rd("API_VERSION")?,
                    schema_version: rd("SCHEMA_VERSION")?,
                    recorded_version: None,
                    named_version,
                    known_version: None,
                    sha256: None,
                    dir,
                })
            }
            Layout::Dkms => {
                let p = dir.join("driver_config.h");
                let t = fs::read_to_string(&p).map_err(io(&p))?;
                let num = |name: &str| -> Result<u64> {
                    t.lines()
                        .find_map(|l| {
                            let mut w = l.split_whitespace();
                            (w.next() == Some("#define") && w.next() == Some(name))
                                .then(|| w.next()?.parse().ok())
                                .flatten()
                        })
                        .ok_or_else(|| Error::Bad {
                            path: p.clone(),
                            what: format!("no numeric #define {name}"),
                        })
                };
                let ver = |kind: &str| -> Result<SemVer> {
                    Ok((
                        num(&format!("PPM_{kind}_CURRENT_VERSION_MAJOR"))?,
                        num(&format!("PPM_{kind}_CURRENT_VERSION_MINOR"))?,
                        num(&format!("PPM_{kind}_CURRENT_VERSION_PATCH"))?,
                    ))
                };
                let (api_version, schema_version) = (ver("API")?, ver("SCHEMA")?);
                let named_version = crate::kernel::define_string(&t, "DRIVER_VERSION");
                let recorded_version = match &named_version {
                    Some(v) => Some(
                        release_of(&p, v, api_version, schema_version)?
                            .unwrap_or_else(|| v.clone()),
                    ),
                    None => None,
                };
                Ok(DriverSource {
                    layout,
                    api_version,
                    schema_version,
                    recorded_version,
                    named_version,
                    known_version: None,
                    sha256: None,
                    dir,
                })
            }
        }
    }
}

/// The version a libs archive's top folder names: `libs-7.0.0+driver` (and GitHub's
/// `libs-7.0.0-driver` spelling) -> `7.0.0+driver`, `libs-0.20.0` -> `0.20.0` (a libs release),
/// `libs-<40 hex>` -> the commit, which is how drivers before 2.0.0+driver were versioned.
pub fn version_in_folder(name: &str) -> Option<String> {
    let v = name.strip_prefix("libs-")?;
    let core = v
        .strip_suffix("+driver")
        .or_else(|| v.strip_suffix("-driver"));
    let numeric = |c: &str| {
        let parts: Vec<&str> = c.split('.').collect();
        parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    };
    match core {
        Some(c) if numeric(c.split("-rc").next().unwrap_or(c)) => Some(format!("{c}+driver")),
        Some(_) => None,
        None if numeric(v) => Some(v.to_owned()),
        None if v.len() == 40 && v.bytes().all(|b| b.is_ascii_hexdigit()) => Some(v.to_owned()),
        None => None,
    }
}

/// A libs release version (`0.23.2`, `0.1.1dev+git...`): not a driver version.
fn is_libs_version(v: &str) -> bool {
    !v.ends_with("+driver") && v.starts_with("0.")
}

/// The driver release a libs version (dkms `DRIVER_VERSION`, archive folder) is, told by its
/// API and schema versions, which libs and driver releases share. `None` when no driver release
/// has them (a libs release between drivers, the 2022 scap driver); an error when several do.
fn release_of(path: &Path, v: &str, api: SemVer, schema: SemVer) -> Result<Option<String>> {
    if !is_libs_version(v) {
        return Ok(None);
    }
    let cat = SourceCatalog::embedded();
    let candidates: Vec<String> = cat
        .known
        .iter()
        .filter(|k| k.version.ends_with("+driver"))
        .filter(|k| parse_semver(&k.api) == Some(api) && parse_semver(&k.schema) == Some(schema))
        .map(|k| k.version.clone())
        .collect();
    match candidates.len() {
        0 => Ok(None),
        1 => Ok(candidates.into_iter().next()),
        _ => Err(Error::Ambiguous {
            path: path.to_owned(),
            what: format!("libs {v}"),
            api,
            schema,
            candidates,
        }),
    }
}

impl DriverSource {
    /// The driver version to build as: `given`, else a known copy's (by digest), else the
    /// archive folder's or the dkms tree's, a libs version mapped to its driver release. A
    /// version the catalog knows must have this source's API and schema versions.
    pub fn version(&self, given: Option<&str>) -> Result<String> {
        let v = if let Some(v) = given.or(self.known_version.as_deref()) {
            v.to_owned()
        } else if let Some(v) = &self.recorded_version {
            v.clone()
        } else if let Some(n) = &self.named_version {
            release_of(&self.dir, n, self.api_version, self.schema_version)?
                .unwrap_or_else(|| n.clone())
        } else {
            return Err(Error::NeedVersion(self.dir.clone()));
        };
        let cat = SourceCatalog::embedded();
        if let Some(k) = cat.known.iter().find(|k| k.version == v) {
            let (want_api, want_schema) = (parse_semver(&k.api), parse_semver(&k.schema));
            if want_api.is_some_and(|a| a != self.api_version)
                || want_schema.is_some_and(|s| s != self.schema_version)
            {
                return Err(Error::WrongVersion(Box::new(VersionMismatch {
                    path: self.dir.clone(),
                    version: v,
                    api: self.api_version,
                    schema: self.schema_version,
                    want_api: want_api.unwrap_or_default(),
                    want_schema: want_schema.unwrap_or_default(),
                })));
            }
        }
        Ok(v)
    }

    /// Records the version of a known copy of this source, found by the input's digest.
    pub fn identify(&mut self, sha256: &str) {
        self.known_version = SourceCatalog::embedded().version_of_digest(sha256);
        self.sha256 = Some(sha256.to_owned());
    }
}

/// A driver copied into a build directory, configured and patched, ready to compile.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PreparedDriver {
    pub layout: Layout,
    pub version: String,
    pub api_version: SemVer,
    pub schema_version: SemVer,
    /// The tree root of the copy (what `-ffile-prefix-map` maps to a fixed name).
    pub tree: PathBuf,
    /// Where `probe.c` is.
    pub bpf_dir: PathBuf,
    /// The fixed name the tree appears under in debug info: `/usr/src/<name>-<version>`,
    /// where Falco's driver loader would build it.
    pub mapped_tree: String,
    /// Configure modules (`bpf/configure/<MOD>/test.c`), sorted.
    pub configure_modules: Vec<String>,
    /// Names of patches applied.
    pub patches: Vec<String>,
    pub driver_name: String,
}

/// Where the sources of driver versions can be downloaded (`catalog/drivers.json`).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct SourceCatalog {
    /// Base of GitHub's archive URLs for falcosecurity/libs (tags and commits).
    pub github_archive: String,
    pub default_version: String,
    pub known: Vec<KnownVersion>,
}

#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct KnownVersion {
    pub version: String,
    /// `driver/API_VERSION` and `driver/SCHEMA_VERSION` of the release.
    pub api: String,
    pub schema: String,
    /// Falco releases that pin this driver (their `cmake/modules/driver.cmake`).
    #[serde(default)]
    pub falco: Vec<String>,
    /// libs releases with the same API and schema versions.
    #[serde(default)]
    pub libs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Where else the source can be downloaded, checked by digest.
    #[serde(default)]
    pub sources: Vec<KnownSource>,
    /// Digests of known copies of the source (e.g. GitHub archives), to tell the version of a
    /// file by its bytes.
    #[serde(default)]
    pub digests: Vec<KnownDigest>,
    /// Measured outcomes: arch -> Debian kernel line -> `builds`, `patched: ...`, `cannot: ...`
    /// (see [`crate::releases`]).
    #[serde(default, skip_serializing)]
    pub kernels: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct KnownDigest {
    pub sha256: String,
    pub what: String,
}

#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct KnownSource {
    /// A catalog mirror name, with `path` below it; or a full `url`.
    pub mirror: Option<String>,
    pub path: Option<String>,
    pub url: Option<String>,
    pub sha256: String,
}

const EMBEDDED_SOURCES: &str = include_str!("../catalog/drivers.json");

impl SourceCatalog {
    pub fn embedded() -> SourceCatalog {
        static CAT: std::sync::OnceLock<SourceCatalog> = std::sync::OnceLock::new();
        CAT.get_or_init(|| {
            serde_json::from_str(EMBEDDED_SOURCES).expect("embedded driver catalog is valid")
        })
        .clone()
    }

    /// The driver version of a known copy of a source, by its sha256.
    pub fn version_of_digest(&self, sha256: &str) -> Option<String> {
        self.known
            .iter()
            .find(|k| {
                k.sources.iter().any(|s| s.sha256 == sha256)
                    || k.digests.iter().any(|d| d.sha256 == sha256)
            })
            .map(|k| k.version.clone())
    }
}

/// Downloads the source of a driver version: the known copies of it first, each checked
/// against its known digest (the Debian archive's before any other URL: pinned, and reachable
/// where GitHub is not), then GitHub's archive (base configurable), taken as it comes.
/// Returns the cached archive.
pub fn fetch_source(
    client: &crate::http::Client,
    catalog: &SourceCatalog,
    mirrors: &crate::repo::Mirrors,
    repo_catalog: &crate::repo::Catalog,
    version: &str,
    github_base: Option<&str>,
) -> Result<PathBuf> {
    let base = github_base
        .unwrap_or(&catalog.github_archive)
        .trim_end_matches('/');
    let is_hash = version.len() == 40 && version.chars().all(|c| c.is_ascii_hexdigit());
    let gh = if is_hash {
        format!("{base}/{version}.tar.gz")
    } else {
        format!("{base}/refs/tags/{}.tar.gz", escape_segment(version))
    };
    let known = catalog.known.iter().find(|k| k.version == version);
    let mut tried = Vec::new();
    let mut sources: Vec<_> = known
        .map(|k| k.sources.iter().collect())
        .unwrap_or_default();
    sources.sort_by_key(|s| s.url.is_some());
    for s in sources {
        let url = match (&s.url, &s.mirror, &s.path) {
            (Some(u), _, _) => u.clone(),
            (None, Some(m), Some(p)) => match mirrors.resolve(repo_catalog, m) {
                Ok(m) => format!("{m}/{p}"),
                Err(e) => {
                    tried.push(e.to_string());
                    continue;
                }
            },
            _ => continue,
        };
        match client.fetch_verified(&url, &s.sha256, None) {
            Ok((p, _)) => {
                // Say which copy this is: the user asked for a version, not for this file.
                let file = url.rsplit('/').next().unwrap_or(&url);
                if tried.is_empty() {
                    tracing::info!(
                        "driver {version}: the known copy `{file}` (sha256 {} checked)",
                        s.sha256
                    );
                } else {
                    tracing::warn!(
                        "driver {version}: the known copy `{file}` (sha256 {} checked), after: {}",
                        s.sha256,
                        tried.join("; ")
                    );
                }
                return Ok(p);
            }
            Err(e) => tried.push(format!("{}: {e}", crate::http::redact(&url))),
        }
    }
    // GitHub's archives are not byte-stable: taken as they come, their digest recorded.
    match client.fetch_unverified(&gh) {
        Ok((p, _)) => return Ok(p),
        Err(e) => tried.push(format!("{gh}: {e}")),
    }
    Err(Error::Bad {
        path: PathBuf::from(version),
        what: format!(
            "cannot download the driver source; tried:\n  {}",
            tried.join("\n  ")
        ),
    })
}

/// Unpacks a driver tarball or package (or uses a directory) and finds the driver in it.
/// `scratch` receives unpacked files.
pub fn open(input: &Path, scratch: &Path) -> Result<DriverSource> {
    if input.is_dir() {
        return DriverSource::find(input);
    }
    let root = scratch.join("driver-src");
    extract::unpack_all(
        &[input.to_owned()],
        &root,
        Selection::Driver,
        extract::Limits::default(),
    )?;
    let mut src = DriverSource::find(&root)?;
    src.identify(&digest_input(input).map_err(io(input))?);
    Ok(src)
}

fn copy_file(from: &Path, to: &Path) -> Result<()> {
    if let Some(p) = to.parent() {
        fs::create_dir_all(p).map_err(io(p))?;
    }
    fs::copy(from, to).map_err(io(from))?;
    // Copies of a read-only source (a sandbox's inputs) must be writable: patches edit them.
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(to, fs::Permissions::from_mode(0o644)).map_err(io(to))?;
    Ok(())
}

fn files_in(dir: &Path, ext: &[&str]) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(io(dir))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && (ext.is_empty()
                    || p.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| ext.contains(&e)))
        })
        .collect();
    v.sort();
    Ok(v)
}

/// `driver_config.h` from `driver_config.h.in`, as the driver's CMake `configure_file` writes
/// it (driverkit passes the driver version as the commit).
pub fn driver_config(template: &str, version: &str, api: SemVer, schema: SemVer) -> String {
    let vars = [
        ("PPM_API_CURRENT_VERSION_MAJOR", api.0.to_string()),
        ("PPM_API_CURRENT_VERSION_MINOR", api.1.to_string()),
        ("PPM_API_CURRENT_VERSION_PATCH", api.2.to_string()),
        ("PPM_SCHEMA_CURRENT_VERSION_MAJOR", schema.0.to_string()),
        ("PPM_SCHEMA_CURRENT_VERSION_MINOR", schema.1.to_string()),
        ("PPM_SCHEMA_CURRENT_VERSION_PATCH", schema.2.to_string()),
        ("DRIVER_VERSION", version.to_owned()),
        ("DRIVER_NAME", "falco".to_owned()),
        ("DRIVER_DEVICE_NAME", "falco".to_owned()),
        ("GIT_COMMIT", version.to_owned()),
        ("KBUILD_MODNAME", "falco".to_owned()),
    ];
    let mut out = template.to_owned();
    for (k, v) in vars {
        out = out.replace(&format!("${{{k}}}"), &v);
        out = out.replace(&format!("@{k}@"), &v);
    }
    out
}

impl DriverSource {
    /// Copies the driver into `work` laid out as installed (libs: bpf sources, configure
    /// modules and every `driver/*.h` in one directory, plus `driver_config.h`), then applies
    /// the patches that match `kernel`.
    pub fn prepare(
        &self,
        work: &Path,
        version: Option<&str>,
        kernel: (u32, u32, u32),
        patches: &patch::Catalog,
    ) -> Result<PreparedDriver> {
        let version = self.version(version)?;
        let (tree, bpf_dir, name) = match self.layout {
            Layout::Libs => {
                let tree = work.join("falco");
                let bpf = tree.join("bpf");
                fs::create_dir_all(&bpf).map_err(io(&bpf))?;
                for f in files_in(&self.dir.join("bpf"), &[])? {
                    copy_file(&f, &bpf.join(f.file_name().unwrap()))?;
                }
                // Where the driver's own install puts `driver/*.h` and `driver_config.h`: up to
                // 7.0.0+driver the dkms tree's top (probe.c includes `../driver_config.h`),
                // later beside probe.c. probe.c says which.
                let headers = match headers_at(&self.dir.join("bpf/probe.c"))? {
                    HeadersAt::Parent => tree.clone(),
                    HeadersAt::Bpf => bpf.clone(),
                };
                for f in files_in(&self.dir, &["h"])? {
                    copy_file(&f, &headers.join(f.file_name().unwrap()))?;
                }
                let cfg_dir = self.dir.join("bpf/configure");
                if cfg_dir.is_dir() {
                    for m in fs::read_dir(&cfg_dir).map_err(io(&cfg_dir))?.flatten() {
                        let test = m.path().join("test.c");
                        if test.is_file() {
                            copy_file(
                                &test,
                                &bpf.join("configure").join(m.file_name()).join("test.c"),
                            )?;
                        }
                    }
                }
                let tpl_path = self.dir.join("driver_config.h.in");
                let tpl = fs::read_to_string(&tpl_path).map_err(io(&tpl_path))?;
                let cfg = driver_config(&tpl, &version, self.api_version, self.schema_version);
                fs::write(headers.join("driver_config.h"), cfg).map_err(io(&headers))?;
                (tree, bpf, "falco".to_owned())
            }
            Layout::Dkms => {
                let tree = work.join("scap");
                copy_tree(&self.dir, &tree)?;
                let bpf = tree.join("bpf");
                let t = fs::read_to_string(tree.join("driver_config.h")).unwrap_or_default();
                let name = crate::kernel::define_string(&t, "DRIVER_NAME")
                    .unwrap_or_else(|| "scap".to_owned());
                // Built as another version than it was configured with (Debian's 0.23.2 as
                // 9.1.0+driver): the probe carries the version it is published under, as the
                // driver's own configure step would have written it.
                if self.named_version.as_deref() != Some(version.as_str()) {
                    for cfg in [tree.join("driver_config.h"), bpf.join("driver_config.h")] {
                        if let Ok(text) = fs::read_to_string(&cfg) {
                            fs::write(&cfg, set_define_string(&text, "DRIVER_VERSION", &version))
                                .map_err(io(&cfg))?;
                        }
                    }
                }
                (tree, bpf, name)
            }
        };
        let mut configure_modules: Vec<String> = match fs::read_dir(bpf_dir.join("configure")) {
            Ok(rd) => rd
                .flatten()
                .filter(|e| e.path().join("test.c").is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        };
        configure_modules.sort();
        let mut applied = Vec::new();
        for p in patches.matching(&version, kernel) {
            patch::apply_to_tree(&p.diff, &tree).map_err(|source| Error::Patch {
                name: p.name.clone(),
                source,
            })?;
            applied.push(p.name.clone());
        }
        // Where the driver's install would put it: a dkms tree keeps its own directory name.
        let mapped_tree = match (self.layout, self.dir.file_name()) {
            (Layout::Dkms, Some(d)) => format!("/usr/src/{}", d.to_string_lossy()),
            _ => format!("/usr/src/{name}-{version}"),
        };
        Ok(PreparedDriver {
            layout: self.layout,
            mapped_tree,
            version,
            api_version: self.api_version,
            schema_version: self.schema_version,
            tree,
            bpf_dir,
            configure_modules,
            patches: applied,
            driver_name: name,
        })
    }
}

/// `#define NAME "value"` lines of a configured header with a new value.
fn set_define_string(text: &str, name: &str, value: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for l in text.split_inclusive('\n') {
        let mut w = l.split_whitespace();
        if w.next() == Some("#define") && w.next() == Some(name) {
            out.push_str(&format!("#define {name} \"{value}\"\n"));
        } else {
            out.push_str(l);
        }
    }
    out
}

/// Where a libs driver's probe expects the shared driver headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeadersAt {
    /// `#include "../driver_config.h"`: the dkms install's top directory (up to 7.0.0+driver).
    Parent,
    /// `#include "driver_config.h"`: beside probe.c (7.1.0+driver and later).
    Bpf,
}

fn headers_at(probe_c: &Path) -> Result<HeadersAt> {
    let text = fs::read_to_string(probe_c).map_err(io(probe_c))?;
    let included = text.lines().find_map(|l| {
        let l = l.trim_start().strip_prefix('#')?.trim_start();
        let path = l.strip_prefix("include")?.trim().strip_prefix('"')?;
        let path = &path[..path.find('"')?];
        path.ends_with("driver_config.h").then(|| path.to_owned())
    });
    match included.as_deref() {
        Some("driver_config.h") => Ok(HeadersAt::Bpf),
        Some("../driver_config.h") => Ok(HeadersAt::Parent),
        Some(other) => Err(Error::Bad {
            path: probe_c.to_owned(),
            what: format!(
                "includes its configuration as `{other}`, a layout probeforge does not know"
            ),
        }),
        None => Err(Error::Bad {
            path: probe_c.to_owned(),
            what: "does not include driver_config.h".to_owned(),
        }),
    }
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).map_err(io(to))?;
    for e in fs::read_dir(from).map_err(io(from))?.flatten() {
        let t = e.file_type().map_err(io(&e.path()))?;
        let dest = to.join(e.file_name());
        if t.is_dir() {
            copy_tree(&e.path(), &dest)?;
        } else if t.is_file() {
            copy_file(&e.path(), &dest)?;
        }
    }
    Ok(())
}

/// `(major << 44) | (minor << 24) | patch`, as the probe's `api_version`/`schema_version`.
pub fn encode_semver(v: SemVer) -> u64 {
    (v.0 << 44) | (v.1 << 24) | v.2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_archive_folders() {
        assert_eq!(
            version_in_folder("libs-7.0.0+driver").as_deref(),
            Some("7.0.0+driver")
        );
        assert_eq!(
            version_in_folder("libs-7.0.0-driver").as_deref(),
            Some("7.0.0+driver")
        );
        assert_eq!(
            version_in_folder("libs-9.1.0-rc1-driver").as_deref(),
            Some("9.1.0-rc1+driver")
        );
        assert_eq!(version_in_folder("libs-0.20.0").as_deref(), Some("0.20.0"));
        let hash = "39ae7d40496793cf3d3e7890c9bbdc202263836b";
        assert_eq!(
            version_in_folder(&format!("libs-{hash}")).as_deref(),
            Some(hash)
        );
        for no in [
            "libs-master",
            "libs-x.y.z-driver",
            "falco-7.0.0+driver",
            "libs-",
            "libs-1.2",
        ] {
            assert_eq!(version_in_folder(no), None, "{no}");
        }
    }

    #[test]
    fn libs_versions_map_to_driver_releases_by_api_and_schema() {
        let p = Path::new("src");
        let r = |v, a, s| release_of(p, v, a, s);
        assert_eq!(
            r("0.23.2", (8, 0, 4), (4, 1, 0)).unwrap().as_deref(),
            Some("9.1.0+driver")
        );
        assert_eq!(
            r("0.20.0", (8, 0, 3), (3, 5, 0)).unwrap().as_deref(),
            Some("8.0.0+driver")
        );
        // A libs release no driver release matches, and the 2022 scap driver: kept as they are.
        assert_eq!(r("0.19.0", (8, 0, 3), (2, 23, 0)).unwrap(), None);
        assert_eq!(
            r("0.1.1dev+git20220316.e5c53d64", (1, 0, 0), (1, 0, 0)).unwrap(),
            None
        );
        // A driver version is never remapped.
        assert_eq!(r("8.0.0+driver", (8, 0, 4), (4, 1, 0)).unwrap(), None);
        // 6.0.0 and 6.0.1 share API and schema: say so rather than pick.
        let e = r("0.13.0", (5, 0, 0), (2, 10, 0)).unwrap_err().to_string();
        assert!(
            e.contains("6.0.1+driver, 6.0.0+driver") && e.contains("--driver-version"),
            "{e}"
        );
    }

    #[test]
    fn known_copies_are_told_by_digest() {
        let c = SourceCatalog::embedded();
        assert_eq!(
            c.version_of_digest("4ae6ddb42a1012bacd88c63abdaa7bd27ca0143c4721338a22c45597e63bc99d")
                .as_deref(),
            Some("8.0.0+driver")
        );
        assert_eq!(c.default_version, "9.1.0+driver");
        assert_eq!(c.version_of_digest("00"), None);
    }

    #[test]
    fn a_configured_version_is_replaced_in_place() {
        let t = "#define A 1\n#define DRIVER_VERSION \"0.23.2\"\n#define B \"x\"\n";
        assert_eq!(
            set_define_string(t, "DRIVER_VERSION", "9.1.0+driver"),
            "#define A 1\n#define DRIVER_VERSION \"9.1.0+driver\"\n#define B \"x\"\n"
        );
    }
    #[test]
    fn config_template_is_filled() {
        let t = "#define PPM_API_CURRENT_VERSION_MAJOR ${PPM_API_CURRENT_VERSION_MAJOR}\n#define DRIVER_VERSION \"${DRIVER_VERSION}\"\n#define DRIVER_COMMIT \"${GIT_COMMIT}\"\n";
        let out = driver_config(t, "8.0.0+driver", (8, 0, 3), (3, 5, 0));
        assert_eq!(out, "#define PPM_API_CURRENT_VERSION_MAJOR 8\n#define DRIVER_VERSION \"8.0.0+driver\"\n#define DRIVER_COMMIT \"8.0.0+driver\"\n");
        assert_eq!(encode_semver((8, 0, 3)), (8 << 44) | 3);
    }
}
