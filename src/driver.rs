//! Falco driver sources: finding the legacy probe in what the user gave, laying it out the way
//! the driver's CMake install does, writing `driver_config.h`, and applying `driver-patches/`.
//!
//! Accepted: a falcosecurity/libs tree or tarball (`libs-<ref>/driver/...`, Debian's
//! `.orig.tar.gz`), and an already-configured dkms tree or package (`usr/src/scap-<v>/` with
//! `bpf/` beside `driver_config.h`). The source given is never modified: work happens on a copy.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

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
    /// Version recorded in the source itself (dkms `driver_config.h`), if any.
    pub recorded_version: Option<String>,
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
                Ok(DriverSource {
                    layout,
                    api_version: rd("API_VERSION")?,
                    schema_version: rd("SCHEMA_VERSION")?,
                    recorded_version: None,
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
                Ok(DriverSource {
                    layout,
                    api_version: ver("API")?,
                    schema_version: ver("SCHEMA")?,
                    recorded_version: crate::kernel::define_string(&t, "DRIVER_VERSION"),
                    dir,
                })
            }
        }
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
        let mut f = fs::File::open(p)?;
        std::io::copy(&mut f, &mut h)?;
    }
    Ok(hex::encode(h.finalize()))
}

/// Where the sources of driver versions can be downloaded (`catalog/drivers.json`).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct SourceCatalog {
    /// Base of GitHub's archive URLs for falcosecurity/libs (tags and commits).
    pub github_archive: String,
    pub default_version: String,
    pub known: Vec<KnownVersion>,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct KnownVersion {
    pub version: String,
    pub sources: Vec<KnownSource>,
}

#[derive(Debug, Clone, serde::Deserialize)]
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
        serde_json::from_str(EMBEDDED_SOURCES).expect("embedded driver catalog is valid")
    }
}

/// `+` and other reserved characters escaped as in a URL path segment.
pub fn escape_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Downloads the source of a driver version: GitHub's archive first (base configurable), then
/// the known other locations of the same source, checked against their known digests.
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
    // A known digest pins the GitHub download too only where it is the same file; GitHub's
    // archives are not byte-stable, so they are taken as they come and their digest recorded.
    match client.fetch_unverified(&gh) {
        Ok((p, _)) => return Ok(p),
        Err(e) => tried.push(format!("{gh}: {e}")),
    }
    for s in known.map(|k| k.sources.as_slice()).unwrap_or_default() {
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
            Ok((p, _)) => return Ok(p),
            Err(e) => tried.push(format!("{}: {e}", crate::http::redact(&url))),
        }
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
    DriverSource::find(&root)
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
        let version = match (version, &self.recorded_version) {
            (Some(v), _) => v.to_owned(),
            (None, Some(v)) => v.clone(),
            (None, None) => return Err(Error::NeedVersion(self.dir.clone())),
        };
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
        Ok(PreparedDriver {
            layout: self.layout,
            mapped_tree: format!("/usr/src/{name}-{version}"),
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
    fn config_template_is_filled() {
        let t = "#define PPM_API_CURRENT_VERSION_MAJOR ${PPM_API_CURRENT_VERSION_MAJOR}\n#define DRIVER_VERSION \"${DRIVER_VERSION}\"\n#define DRIVER_COMMIT \"${GIT_COMMIT}\"\n";
        let out = driver_config(t, "8.0.0+driver", (8, 0, 3), (3, 5, 0));
        assert_eq!(out, "#define PPM_API_CURRENT_VERSION_MAJOR 8\n#define DRIVER_VERSION \"8.0.0+driver\"\n#define DRIVER_COMMIT \"8.0.0+driver\"\n");
        assert_eq!(encode_semver((8, 0, 3)), (8 << 44) | 3);
    }
}
