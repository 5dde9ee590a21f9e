//! falcosecurity/driverkit's config files, read and written, so a team with a grid of driverkit
//! configs (or a script running `driverkit docker -c kernel.yaml`) switches by changing one
//! word and keeps its files.
//!
//! Pure: bytes in, a [`Config`] out (with the keys probeforge does not know, for a warning);
//! a [`Config`] out as YAML bytes, the same bytes every time; the public grid's path rule
//! (`<driver-version>/<arch>/<target>_<kernel-release>_<kernel-version>.yaml`). It never
//! fetches, never decides whether a URL is trusted (see `command::driverkit`).

use std::path::{Path, PathBuf};

use crate::kernel::Arch;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not a driverkit config: {0}")]
    Yaml(#[from] serde_norway::Error),
    #[error("driverkit config: `{key}` {what}")]
    Key { key: &'static str, what: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where driverkit writes what it built (`output.probe`, `output.module`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Output {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<String>,
}

/// One driverkit config: one kernel, one driver version, the drivers its outputs name.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Config {
    #[serde(default)]
    pub kernelversion: String,
    #[serde(default)]
    pub kernelrelease: String,
    #[serde(default)]
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driverversion: Option<String>,
    #[serde(default)]
    pub output: Output,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kernelurls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernelconfigdata: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moduledrivername: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moduledevicename: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builderimage: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub builderrepo: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gccversion: Option<String>,
}

/// Top-level keys driverkit knows and probeforge reads (or says what it does instead of).
const KNOWN: &[&str] = &[
    "kernelversion",
    "kernelrelease",
    "target",
    "architecture",
    "driverversion",
    "output",
    "kernelurls",
    "kernelconfigdata",
    "moduledrivername",
    "moduledevicename",
    "builderimage",
    "builderrepo",
    "gccversion",
];

/// driverkit's own switches with no meaning here (logging, a dry run, its container runtime):
/// accepted without a warning.
const DRIVERKIT_ONLY: &[&str] = &["loglevel", "dryrun", "timeout", "proxy", "registry"];

/// A config as read: the config, and the keys probeforge does not know (for one warning).
#[derive(Debug)]
pub struct Parsed {
    pub config: Config,
    pub unknown: Vec<String>,
}

/// Parses a driverkit config. Numbers are read as text (`kernelversion: 1`); a single URL
/// string is read as a list of one (as driverkit's flag does); unknown keys are named.
pub fn parse(bytes: &[u8]) -> Result<Parsed> {
    let mut v: serde_norway::Value = serde_norway::from_slice(bytes)?;
    let map = v.as_mapping_mut().ok_or(Error::Key {
        key: "(top level)",
        what: "is not a mapping".into(),
    })?;
    let mut unknown = Vec::new();
    let mut drop = Vec::new();
    for (k, val) in map.iter_mut() {
        let name = match k.as_str() {
            Some(s) => s.to_owned(),
            None => format!("{k:?}"),
        };
        if DRIVERKIT_ONLY.contains(&name.as_str()) {
            drop.push(k.clone());
        } else if !KNOWN.contains(&name.as_str()) {
            unknown.push(name);
            drop.push(k.clone());
        } else if name == "output" {
            if let Some(o) = val.as_mapping_mut() {
                let extra: Vec<_> = o
                    .keys()
                    .filter(|k| !matches!(k.as_str(), Some("probe" | "module")))
                    .cloned()
                    .collect();
                for k in extra {
                    unknown.push(format!("output.{}", k.as_str().unwrap_or("?")));
                    o.remove(&k);
                }
            }
        } else if matches!(name.as_str(), "kernelurls" | "builderrepo") {
            if let serde_norway::Value::String(s) = val {
                // driverkit's flag takes comma-separated lists.
                *val = serde_norway::Value::Sequence(
                    s.split(',')
                        .map(|u| serde_norway::Value::String(u.trim().to_owned()))
                        .collect(),
                );
            }
        } else if let serde_norway::Value::Number(n) = val {
            *val = serde_norway::Value::String(n.to_string());
        }
    }
    for k in drop {
        map.remove(&k);
    }
    unknown.sort();
    let config: Config = serde_norway::from_value(v)?;
    for (key, value) in [
        ("kernelrelease", &config.kernelrelease),
        ("target", &config.target),
    ] {
        if value.trim().is_empty() {
            return Err(Error::Key {
                key,
                what: "is missing".into(),
            });
        }
    }
    Ok(Parsed { config, unknown })
}

/// The config as YAML: fields in one order, lists in the given order, so the same config is
/// the same bytes.
pub fn to_yaml(c: &Config) -> Vec<u8> {
    serde_norway::to_string(c)
        .expect("a config serializes")
        .into_bytes()
}

impl Config {
    /// The architecture: `architecture` (driverkit's `amd64`/`arm64`, or a kernel's name),
    /// else the release's suffix, else x86_64 (driverkit's default).
    pub fn arch(&self) -> Result<Arch> {
        match &self.architecture {
            Some(a) => match Arch::parse(a) {
                Some(arch @ (Arch::X86_64 | Arch::Aarch64)) => Ok(arch),
                _ => Err(Error::Key {
                    key: "architecture",
                    what: format!("`{a}` is neither amd64 nor arm64"),
                }),
            },
            None => {
                Ok(crate::repo::crawler::arch_of_release(&self.kernelrelease)
                    .unwrap_or(Arch::X86_64))
            }
        }
    }

    /// `kernelversion`, driverkit's default `1` when absent.
    pub fn kernel_version(&self) -> &str {
        match self.kernelversion.trim() {
            "" => "1",
            v => v,
        }
    }

    /// The decoded `kernelconfigdata` (a base64 `.config`).
    pub fn kernel_config(&self) -> Result<Option<Vec<u8>>> {
        use base64::Engine;
        let Some(d) = &self.kernelconfigdata else {
            return Ok(None);
        };
        let clean: String = d.chars().filter(|c| !c.is_whitespace()).collect();
        base64::engine::general_purpose::STANDARD
            .decode(clean)
            .map(Some)
            .map_err(|e| Error::Key {
                key: "kernelconfigdata",
                what: format!("is not base64: {e}"),
            })
    }

    /// The module's name (`moduledrivername`, else `moduledevicename`): probeforge names the
    /// module and its devices alike.
    pub fn module_name(&self) -> Option<&str> {
        self.moduledrivername
            .as_deref()
            .or(self.moduledevicename.as_deref())
    }
}

/// driverkit's part of a `build` request: a config file and driverkit's flags (which win over
/// its keys, as in driverkit).
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `-c FILE.yaml`.
    pub config: Option<PathBuf>,
    /// `--kernelurls`.
    pub kernelurls: Vec<String>,
    /// `--output-probe`, `--output-module`: written exactly there.
    pub output_probe: Option<PathBuf>,
    pub output_module: Option<PathBuf>,
    /// Refuse a URL no signed metadata gives a digest for.
    pub require_verified: bool,
    /// Set for the build a config runs: the header URLs fetched unverified (recorded in the
    /// provenance statement).
    pub unauthenticated: Vec<String>,
}

impl Request {
    /// Whether the build is driverkit-shaped: a config, or its URLs given as flags.
    pub fn is_config(&self) -> bool {
        self.config.is_some() || !self.kernelurls.is_empty()
    }
}

/// A package a config pins that the signed listing no longer names (the mirror dropped that
/// version), replaced by the listing's package of the same name (its series: `linux-kbuild-6.1`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Replacement {
    /// The config file (empty for driverkit's flags).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub config: String,
    pub package: String,
    pub pinned_version: String,
    pub pinned_url: String,
    pub version: String,
    pub url: String,
}

impl std::fmt::Display for Replacement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` {} ({}) is not in the signed listing any more: replaced by its {} ({})",
            self.package, self.pinned_version, self.pinned_url, self.version, self.url
        )
    }
}

/// A Debian package file's name and version (`linux-kbuild-6.1_6.1.94-1~bpo11+1_arm64.deb` ->
/// (`linux-kbuild-6.1`, `6.1.94-1~bpo11+1`)); the version's epoch colon may be URL-escaped.
pub fn deb_name_version(file: &str) -> Option<(&str, String)> {
    let stem = file.strip_suffix(".deb")?;
    let mut parts = stem.splitn(3, '_');
    let (name, version, _arch) = (parts.next()?, parts.next()?, parts.next()?);
    if name.is_empty() || version.is_empty() {
        return None;
    }
    Some((name, version.replace("%3a", ":").replace("%3A", ":")))
}

/// The driver version a config's place in a grid says: `<driver-version>/<arch>/<file>.yaml`,
/// where the folder is a driver version (`8.0.0+driver`, or a 40-hex commit of the older
/// drivers) and its child an architecture.
pub fn grid_version(config: &Path) -> Option<String> {
    let arch = config.parent()?;
    let version = arch.parent()?;
    Arch::parse(&arch.file_name()?.to_string_lossy())?;
    let v = version.file_name()?.to_string_lossy().into_owned();
    let hex = v.len() == 40 && v.chars().all(|c| c.is_ascii_hexdigit());
    (v.ends_with("+driver") || hex).then_some(v)
}

/// driverkit's name of an architecture (`architecture:` values).
pub fn arch_name(a: Arch) -> &'static str {
    a.debian()
}

/// The public grid's path of a config, relative to the grid's root:
/// `<driver-version>/<x86_64|aarch64>/<target>_<kernel-release>_<kernel-version>.yaml`.
pub fn grid_path(c: &Config, driver_version: &str, arch: Arch) -> PathBuf {
    Path::new(driver_version).join(arch.uname_m()).join(format!(
        "{}_{}_{}.yaml",
        c.target,
        c.kernelrelease,
        c.kernel_version()
    ))
}

/// The public grid's output paths for a config of the grid: Falco's file names, beside each
/// other under `output/<driver-version>/<arch>/`.
pub fn grid_output(c: &Config, driver_version: &str, arch: Arch, ext: &str) -> String {
    format!(
        "output/{driver_version}/{}/falco_{}_{}_{}.{ext}",
        arch.uname_m(),
        c.target,
        c.kernelrelease,
        c.kernel_version()
    )
}

/// Every config file of a grid tree (`DIR/<driver-version>/<arch>/*.yaml`), with the driver
/// version and arch its folders say, sorted.
pub fn walk(root: &Path) -> std::io::Result<Vec<(String, String, PathBuf)>> {
    let mut out = Vec::new();
    for v in std::fs::read_dir(root)? {
        let v = v?;
        if !v.file_type()?.is_dir() {
            continue;
        }
        for a in std::fs::read_dir(v.path())? {
            let a = a?;
            if !a.file_type()?.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(a.path())? {
                let f = f?.path();
                if f.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                    out.push((
                        v.file_name().to_string_lossy().into_owned(),
                        a.file_name().to_string_lossy().into_owned(),
                        f,
                    ));
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grid_config_reads_and_writes_back_the_same_bytes() {
        let text = "kernelversion: 1\nkernelrelease: 6.1.0-30-amd64\ntarget: debian\narchitecture: amd64\n\
                    driverversion: 8.0.0+driver\noutput:\n  probe: out/a.o\n  module: out/a.ko\n\
                    kernelurls:\n- http://m/pool/a.deb\n- http://m/pool/b.deb\nbuilderimage: x:latest\n\
                    colour: blue\n";
        let p = parse(text.as_bytes()).unwrap();
        assert_eq!(p.unknown, vec!["colour"]);
        let c = &p.config;
        assert_eq!(c.kernel_version(), "1");
        assert_eq!(c.arch().unwrap(), Arch::X86_64);
        assert_eq!(c.output.probe.as_deref(), Some("out/a.o"));
        assert_eq!(c.kernelurls.len(), 2);
        let again = parse(&to_yaml(c)).unwrap();
        assert_eq!(&again.config, c);
        assert!(again.unknown.is_empty());
        assert_eq!(to_yaml(&again.config), to_yaml(c));
        assert_eq!(
            grid_path(c, "8.0.0+driver", Arch::Aarch64),
            Path::new("8.0.0+driver/aarch64/debian_6.1.0-30-amd64_1.yaml")
        );
    }

    #[test]
    fn flag_style_lists_and_missing_keys() {
        let p = parse(b"kernelrelease: 6.1.0-30-arm64\ntarget: debian\nkernelurls: a,b\n").unwrap();
        assert_eq!(p.config.kernelurls, vec!["a", "b"]);
        assert_eq!(p.config.arch().unwrap(), Arch::Aarch64);
        assert_eq!(p.config.kernel_version(), "1");
        let e = parse(b"kernelrelease: 6.1.0-30-arm64\n").unwrap_err();
        assert!(e.to_string().contains("`target` is missing"), "{e}");
        let e = parse(b"kernelrelease: x\ntarget: debian\narchitecture: s390x\n")
            .unwrap()
            .config
            .arch()
            .unwrap_err();
        assert!(e.to_string().contains("`s390x`"), "{e}");
    }

    #[test]
    fn debian_file_names_and_grid_folders() {
        assert_eq!(
            deb_name_version("linux-kbuild-6.1_6.1.94-1~bpo11+1_arm64.deb"),
            Some(("linux-kbuild-6.1", "6.1.94-1~bpo11+1".to_owned()))
        );
        assert_eq!(deb_name_version("kernel-devel-6.1.rpm"), None);
        assert_eq!(deb_name_version("a_b.deb"), None);
        assert_eq!(
            grid_version(Path::new(
                "g/8.0.0+driver/aarch64/debian_6.1.176-1-arm64_1.yaml"
            ))
            .as_deref(),
            Some("8.0.0+driver")
        );
        assert_eq!(grid_version(Path::new("configs/k.yaml")), None);
        assert_eq!(grid_version(Path::new("8.0.0+driver/misc/k.yaml")), None);
    }
}
