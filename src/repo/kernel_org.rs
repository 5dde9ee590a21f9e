//! Kernels whose headers are not packages: built from kernel.org's source with a `.config`.
//!
//! - `kernel-org` (target `vanilla`): kernel.org's layout, `<mirror>/v<major>.x/linux-<ver>.tar.xz`
//!   listed by the clear-signed `<mirror>/v<major>.x/sha256sums.asc` of each series the target
//!   names. Only the signed text is read; a tarball's digest comes from it. The `.config` is the
//!   user's (`--kernel-config`).
//! - `flatcar`: Flatcar's release server, `<mirror>/<arch>-usr/` (a directory index, the only
//!   listing it publishes) per channel; each release's `flatcar_production_image_kernel_config.txt`
//!   is its kernel's `.config`, and its header line the kernel version built with
//!   `EXTRAVERSION = -flatcar`. Those files are not signed: listed only with `--allow-unsigned`.
//!   Falco names a Flatcar kernel by the Flatcar release (falcoctl's rule).
//! - talos and minikube publish their configs in git only: their kernels come from
//!   kernel-crawler lists (`kernelconfigdata`) or driverkit configs, and are built the same way.
//!
//! A kernel built from source is a record of two packages: [`SOURCE`] (the tarball; its URL
//! found from the `vanilla` target's signed sums when a list gave none) and [`CONFIG`] (its
//! `.config`, inline as a `data:` URL, so lists carry it the way kernel-crawler does).

use std::collections::BTreeMap;

use base64::Engine;
use sha2::{Digest, Sha256};

use super::{http, Error, KernelRecord, Lister, PackageRef, Result, Target};
use crate::kernel::Arch;

/// The package name of a kernel's source tarball in a record.
pub const SOURCE: &str = "kernel-source";
/// The package name of a kernel's `.config` in a record; its version names the distro release
/// that ships it (Flatcar's `3975.2.2`, Talos' `v1.8.3`, minikube's `1.34.0`).
pub const CONFIG: &str = "kernel-config";

/// The record of a kernel built from its source, as kernel-crawler and driverkit name it
/// (`target`, `kernelrelease`, `kernelversion`) with its `.config`. Its `uname -r` is the
/// release given (talos `6.6.60-talos`, minikube `5.10.207`, vanilla), except on Flatcar, named
/// by its release: there the config's kernel version with `-flatcar` (how Flatcar builds it).
/// The config's version is the distro release (`kernelversion` without Falco's `1_`, or
/// Flatcar's release). Its metadata is unsigned: no distro signature covers such a list.
pub fn source_record(
    target: &str,
    kernelrelease: &str,
    kernelversion: &str,
    config: &[u8],
    default_arch: Arch,
) -> std::result::Result<KernelRecord, String> {
    let from_config = config_kernel_version(config);
    let plain = kernelrelease.split(['-', '+']).next().unwrap_or_default();
    let (release, kernel, distro_release) = match target {
        "flatcar" => {
            let v = from_config.ok_or_else(|| {
                format!("flatcar kernel `{kernelrelease}`: its config names no kernel version (`# Linux/<arch> <version> Kernel Configuration`)")
            })?;
            (format!("{v}-flatcar"), v, kernelrelease.to_owned())
        }
        _ => (
            kernelrelease.to_owned(),
            from_config.unwrap_or_else(|| plain.to_owned()),
            kernelversion
                .strip_prefix("1_")
                .unwrap_or(kernelversion)
                .to_owned(),
        ),
    };
    if series_of(&kernel).is_none() {
        return Err(format!(
            "{target} kernel `{kernelrelease}`: `{kernel}` is not a kernel.org version"
        ));
    }
    Ok(KernelRecord {
        unsigned_metadata: true,
        target: target.into(),
        target_id: target.into(),
        arch: config_arch(config).unwrap_or(default_arch),
        release,
        kernel_version: kernelversion.into(),
        origin: "kernel config".into(),
        packages: vec![
            PackageRef {
                name: SOURCE.into(),
                version: kernel,
                url: String::new(),
                size: 0,
                sha256: String::new(),
            },
            config_package(config, &distro_release),
        ],
    })
}

/// How many releases of each Flatcar channel are listed (each costs a config download).
const FLATCAR_RELEASES: usize = 4;

/// The `data:` URL of a config, as records carry it.
pub fn config_url(bytes: &[u8]) -> String {
    format!(
        "data:text/plain;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The bytes of a `data:...;base64,` URL.
pub fn data_url_bytes(url: &str) -> Option<Vec<u8>> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    if !meta.ends_with(";base64") {
        return None;
    }
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .ok()
}

/// A config as a record's package: its bytes inline, their digest, the release shipping it.
pub fn config_package(bytes: &[u8], version: &str) -> PackageRef {
    PackageRef {
        name: CONFIG.into(),
        version: version.into(),
        url: config_url(bytes),
        size: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(bytes)),
    }
}

/// A release version as kernel.org numbers them: `6.6`, `6.6.60` (no `-rc`, no suffix).
fn plain_version(v: &str) -> bool {
    v.split('.').count() >= 2 && v.split('.').all(|n| n.parse::<u32>().is_ok())
}

/// The kernel version a `.config`'s header names (`# Linux/x86 6.6.60 Kernel Configuration`).
pub fn config_kernel_version(config: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(&config[..config.len().min(4096)]);
    text.lines().find_map(|l| {
        let rest = l.strip_prefix("# Linux/")?;
        let mut words = rest.split_whitespace();
        let _arch = words.next()?;
        let v = words.next()?;
        (plain_version(v) && words.next() == Some("Kernel")).then(|| v.to_owned())
    })
}

/// The architecture a `.config` is for (`# Linux/x86 ...` or `# Linux/arm64 ...`; an x86
/// config also says `CONFIG_64BIT=y`).
pub fn config_arch(config: &[u8]) -> Option<Arch> {
    let text = String::from_utf8_lossy(&config[..config.len().min(4096)]);
    let arch = text.lines().find_map(|l| l.strip_prefix("# Linux/"))?;
    match arch.split_whitespace().next()? {
        "x86" | "x86_64" => Some(Arch::X86_64),
        "arm64" => Some(Arch::Aarch64),
        _ => None,
    }
}

/// `CONFIG_LOCALVERSION` of a `.config` (`""` when unset).
pub fn config_localversion(config: &[u8]) -> String {
    String::from_utf8_lossy(config)
        .lines()
        .find_map(|l| l.strip_prefix("CONFIG_LOCALVERSION="))
        .map(|v| v.trim().trim_matches('"').to_owned())
        .unwrap_or_default()
}

/// The kernel.org series folder of a version (`6.6.60` -> `v6.x`).
fn series_of(version: &str) -> Option<String> {
    let major: u32 = version.split('.').next()?.parse().ok()?;
    Some(format!("v{major}.x"))
}

/// The tarball versions a `sha256sums` text lists: `linux-<ver>.tar.xz` only (no patches, no
/// release candidates), with their digests.
fn tarballs(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for l in text.lines() {
        let mut w = l.split_whitespace();
        let (Some(sum), Some(file)) = (w.next(), w.next()) else {
            continue;
        };
        let Some(v) = file
            .strip_prefix("linux-")
            .and_then(|f| f.strip_suffix(".tar.xz"))
        else {
            continue;
        };
        if plain_version(v) && sum.len() == 64 && sum.bytes().all(|b| b.is_ascii_hexdigit()) {
            out.insert(v.to_owned(), sum.to_ascii_lowercase());
        }
    }
    out
}

fn version_key(v: &str) -> Vec<u64> {
    v.split(['.', '-'])
        .map(|n| n.parse().unwrap_or(0))
        .collect()
}

impl Lister<'_> {
    /// The tarballs of one kernel.org series (`v6.x`) with their digests, from its clear-signed
    /// `sha256sums.asc`; the bool says whether a trusted key signed it.
    fn series_sums(&self, t: &Target, series: &str) -> Result<(BTreeMap<String, String>, bool)> {
        let base = self.mirrors.resolve(self.catalog, &t.mirror)?;
        let url = format!("{base}/{series}/sha256sums.asc");
        let bytes = self.fetch_meta(&url)?;
        let repo = http::redact(&format!("{base}/{series}"));
        let keyring = t.keyring()?;
        let checked = crate::trust::verify_cleartext(&bytes, &keyring, &repo, "sha256sums.asc");
        let (text, checked) = match checked {
            Ok(signed) => (signed, Ok(())),
            Err(e) => (String::from_utf8_lossy(&bytes).into_owned(), Err(e)),
        };
        let signed = t.accept(checked)?;
        Ok((tarballs(&text), signed))
    }

    /// The `vanilla` target of the catalog (kind `kernel-org`): where kernel sources come from.
    fn kernel_org_target(&self) -> Result<&Target> {
        self.catalog
            .targets
            .iter()
            .find(|t| t.kind == "kernel-org")
            .ok_or_else(|| {
                Error::Catalog("no target of kind `kernel-org` for kernel sources".into())
            })
    }

    /// The source tarball of a kernel version, from kernel.org's signed sums; the bool says
    /// whether those were signed by a trusted key.
    pub fn kernel_source(&self, version: &str) -> Result<(PackageRef, bool)> {
        let t = self.kernel_org_target()?;
        let series = series_of(version)
            .ok_or_else(|| Error::Catalog(format!("`{version}` is not a kernel version")))?;
        let (sums, signed) = self.series_sums(t, &series)?;
        let base = self.mirrors.resolve(self.catalog, &t.mirror)?;
        let sha256 = sums.get(version).ok_or_else(|| Error::Index {
            url: http::redact(&format!("{base}/{series}/sha256sums.asc")),
            what: format!("lists no `linux-{version}.tar.xz`"),
        })?;
        Ok((
            PackageRef {
                name: SOURCE.into(),
                version: version.into(),
                url: format!("{base}/{series}/linux-{version}.tar.xz"),
                size: 0,
                sha256: sha256.clone(),
            },
            signed,
        ))
    }

    /// A record whose source tarball has no URL yet (from a kernel-crawler list) gets it.
    pub fn with_kernel_source(&self, k: &KernelRecord) -> Result<KernelRecord> {
        let mut k = k.clone();
        let Some(i) = k
            .packages
            .iter()
            .position(|p| p.name == SOURCE && p.url.is_empty())
        else {
            return Ok(k);
        };
        let (p, signed) = self.kernel_source(&k.packages[i].version)?;
        k.packages[i] = p;
        k.unsigned_metadata |= !signed;
        Ok(k)
    }

    /// Every kernel.org release of the target's series (`repos`: `["5", "6"]`), for each arch:
    /// the source only; the `.config` is the user's.
    pub(super) fn list_kernel_org(&self, t: &Target, arches: &[Arch]) -> Result<Vec<KernelRecord>> {
        let base = self.mirrors.resolve(self.catalog, &t.mirror)?;
        let mut out = Vec::new();
        for major in &t.repos {
            let series = format!("v{major}.x");
            let (sums, signed) = match self.series_sums(t, &series) {
                Ok(s) => s,
                // A mirror carrying some series only (a local one): the others passed over.
                Err(e) if e.is_not_found() => {
                    tracing::warn!("{e}: series {series} passed over");
                    continue;
                }
                Err(e) => return Err(e),
            };
            for &arch in arches {
                if !t.arches.iter().any(|a| Arch::parse(a) == Some(arch)) {
                    continue;
                }
                for (v, sha256) in &sums {
                    out.push(KernelRecord {
                        target: t.name.clone(),
                        target_id: t.target_id.clone(),
                        release: v.clone(),
                        kernel_version: "1".into(),
                        arch,
                        origin: series.clone(),
                        packages: vec![PackageRef {
                            name: SOURCE.into(),
                            version: v.clone(),
                            url: format!("{base}/{series}/linux-{v}.tar.xz"),
                            size: 0,
                            sha256: sha256.clone(),
                        }],
                        unsigned_metadata: !signed,
                    });
                }
            }
        }
        out.sort_by(|a, b| {
            (a.arch, version_key(&a.release)).cmp(&(b.arch, version_key(&b.release)))
        });
        Ok(out)
    }

    /// The newest releases of each Flatcar channel (`repos`), built from kernel.org's source
    /// with the release's own config.
    pub(super) fn list_flatcar(&self, t: &Target, arches: &[Arch]) -> Result<Vec<KernelRecord>> {
        let template = self.mirrors.resolve(self.catalog, &t.mirror)?;
        let mut out = Vec::new();
        for &arch in arches {
            if !t.arches.iter().any(|a| Arch::parse(a) == Some(arch)) {
                continue;
            }
            let folder = match arch {
                Arch::X86_64 => "amd64-usr",
                Arch::Aarch64 => "arm64-usr",
                // Flatcar is built for these two only.
                _ => continue,
            };
            for channel in &t.repos {
                let base = format!("{}/{folder}", template.replace("{channel}", channel));
                if !t.signed_metadata && !t.allow_unsigned {
                    return Err(Error::MetadataUnsigned {
                        target: t.name.clone(),
                        repo: http::redact(&base),
                    });
                }
                let index = match self.fetch_meta(&format!("{base}/")) {
                    Ok(i) => i,
                    // A mirror carrying some channels only (a local one): the others passed over.
                    Err(e) if e.is_not_found() => {
                        tracing::warn!("{e}: channel {channel} passed over");
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let mut releases = index_releases(&String::from_utf8_lossy(&index));
                releases.sort_by_key(|v| std::cmp::Reverse(version_key(v)));
                releases.truncate(FLATCAR_RELEASES);
                for r in releases {
                    let url = format!("{base}/{r}/flatcar_production_image_kernel_config.txt");
                    let config = match self.fetch_meta(&url) {
                        Ok(c) => c,
                        // A release folder without a config (a build in progress): passed over.
                        Err(e) if e.is_not_found() => {
                            tracing::warn!("{e}: Flatcar {r} passed over");
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    let kver = config_kernel_version(&config).ok_or_else(|| Error::Index {
                        url: http::redact(&url),
                        what: "no `# Linux/<arch> <version> Kernel Configuration` line".into(),
                    })?;
                    out.push(KernelRecord {
                        target: t.name.clone(),
                        target_id: t.target_id.clone(),
                        release: format!("{kver}-flatcar"),
                        kernel_version: "1".into(),
                        arch,
                        origin: channel.clone(),
                        packages: vec![
                            PackageRef {
                                name: SOURCE.into(),
                                version: kver,
                                url: String::new(),
                                size: 0,
                                sha256: String::new(),
                            },
                            config_package(&config, &r),
                        ],
                        unsigned_metadata: true,
                    });
                }
            }
        }
        // One record per (arch, Flatcar release): a release in two channels is one kernel.
        out.sort_by(|a, b| {
            (a.arch, version_key(a.config_version()), &a.origin).cmp(&(
                b.arch,
                version_key(b.config_version()),
                &b.origin,
            ))
        });
        out.dedup_by(|a, b| a.arch == b.arch && a.config_version() == b.config_version());
        Ok(out)
    }
}

/// The release folders a directory index links to (`./3975.2.2/` or `3975.2.2/`): numbered
/// releases only, not `current` or other names.
fn index_releases(html: &str) -> Vec<String> {
    let mut out: Vec<String> = html
        .split("href=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(|h| h.trim_start_matches("./").trim_end_matches('/'))
        .filter(|h| {
            h.split('.').count() >= 3
                && h.split('.')
                    .all(|n| !n.is_empty() && n.parse::<u64>().is_ok())
        })
        .map(str::to_owned)
        .collect();
    out.sort();
    out.dedup();
    out
}

impl KernelRecord {
    /// The version of this kernel's `.config` package (the distro release shipping it), or
    /// `""`.
    pub fn config_version(&self) -> &str {
        self.packages
            .iter()
            .find(|p| p.name == CONFIG)
            .map(|p| p.version.as_str())
            .unwrap_or("")
    }

    /// Built from its source (a [`SOURCE`] package) rather than from header packages.
    pub fn from_source(&self) -> bool {
        self.packages.iter().any(|p| p.name == SOURCE)
    }

    /// The fetched files (in package order, as [`Lister::fetch`] returns them) of this
    /// kernel's source tarball and `.config`, where it has them.
    pub fn source_files(
        &self,
        files: &[std::path::PathBuf],
    ) -> (Option<std::path::PathBuf>, Option<std::path::PathBuf>) {
        let file = |name: &str| {
            self.packages
                .iter()
                .position(|p| p.name == name)
                .and_then(|i| files.get(i).cloned())
        };
        (file(SOURCE), file(CONFIG))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_list_plain_tarballs_only() {
        let text = "\
0b0b4b0e4c1a6bb1e7b6c4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3  linux-6.6.60.tar.xz
1b0b4b0e4c1a6bb1e7b6c4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3  linux-6.6.60.tar.gz
2b0b4b0e4c1a6bb1e7b6c4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3  patch-6.6.60.xz
3b0b4b0e4c1a6bb1e7b6c4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3  linux-6.7.tar.xz
4b0b4b0e4c1a6bb1e7b6c4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3  linux-6.8-rc1.tar.xz
";
        let t = tarballs(text);
        assert_eq!(t.keys().collect::<Vec<_>>(), ["6.6.60", "6.7"]);
        assert!(t["6.7"].starts_with("3b0b"));
    }

    #[test]
    fn configs_name_their_kernel() {
        let c = b"#\n# Automatically generated file; DO NOT EDIT.\n# Linux/x86 6.6.60 Kernel Configuration\n#\nCONFIG_LOCALVERSION=\"-talos\"\n";
        assert_eq!(config_kernel_version(c).as_deref(), Some("6.6.60"));
        assert_eq!(config_localversion(c), "-talos");
        assert_eq!(
            config_kernel_version(b"# Linux/arm64 6.1.0-rc3 Kernel Configuration"),
            None
        );
        let p = config_package(c, "3975.2.2");
        assert_eq!(data_url_bytes(&p.url).as_deref(), Some(&c[..]));
        assert_eq!(p.sha256, hex::encode(Sha256::digest(c)));
        assert_eq!(series_of("6.6.60").as_deref(), Some("v6.x"));
    }

    #[test]
    fn index_links_name_releases() {
        let html = r#"<a href="../">../</a><a href="./3975.2.2/">3975.2.2/</a>
<a href="./current/">current/</a><a href="4081.1.0/">4081.1.0/</a><a href="./3975.2.2/">x</a>"#;
        assert_eq!(index_releases(html), ["3975.2.2", "4081.1.0"]);
    }
}
