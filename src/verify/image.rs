//! Finding the kernel to boot in a distribution's packages, for every layout they have used:
//! Debian's `boot/vmlinuz-R` (`linux-image-R[-unsigned]`); Debian 7.x's
//! `usr/lib/modules/R/vmlinuz` (`linux-binary-R`, behind a 2 kB `linux-image-R` meta-package)
//! and `usr/lib/modules/R/vmlinuz.unsigned` (`linux-binary-unsigned-R`); the RPM
//! distributions' `lib/modules/R/vmlinuz` (`kernel-core`) or `boot/vmlinuz-R` (`kernel`).
//!
//! Packages are only read here, in memory: no entry is ever written to disk, so no archive
//! path needs vetting. A meta-package is followed through the catalog's APT targets only by
//! [`follow`]; everything else is pure over the package's bytes.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::kernel::Arch;
use crate::repo;

use super::{io, Error};

/// The largest kernel image read (Debian's arm64 images are ~38 MB uncompressed).
const MAX_IMAGE: u64 = 512 << 20;

/// What a kernel package holds.
#[derive(Debug)]
pub enum Contents {
    /// The kernel image itself.
    Image(Vec<u8>),
    /// No kernel: a meta-package that names the package holding it.
    Meta(Meta),
}

/// A meta-package without a kernel, and the dependency that leads to one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub path: PathBuf,
    pub package: String,
    pub arch: Option<String>,
    /// The package holding the kernel, with the exact version the meta-package pins (`=`).
    pub kernel: Option<(String, Option<String>)>,
    /// A Debian package (followed through APT targets); an RPM's is named only.
    pub apt: bool,
}

/// Whether an archive path (root-relative, `./` stripped) is a kernel image: `boot/vmlinuz-*`
/// (Debian up to 6.x, RPM `kernel` packages) or `[usr/]lib/modules/<release>/vmlinuz[.unsigned]`
/// (Debian 7.x `linux-binary[-unsigned]-*`, RPM `kernel-core`).
pub fn is_kernel_path(path: &str) -> bool {
    let path = path.trim_start_matches("./").trim_start_matches('/');
    if let Some(name) = path.strip_prefix("boot/vmlinuz-") {
        return !name.is_empty() && !name.contains('/');
    }
    let rest = path.strip_prefix("usr/").unwrap_or(path);
    match rest
        .strip_prefix("lib/modules/")
        .and_then(|r| r.split_once('/'))
    {
        // Debian 7.x `linux-binary-unsigned-R` names it `vmlinuz.unsigned`.
        Some((release, "vmlinuz" | "vmlinuz.unsigned")) => !release.is_empty(),
        _ => false,
    }
}

/// The package of a Debian meta-package's `Depends` that holds its kernel: a `linux-binary-*`
/// (7.x: `linux-image-R` -> `linux-binary-R`), else a `linux-image-*` (the unversioned
/// `linux-image-amd64` -> `linux-image-R-amd64`). Every alternative is considered; the pinned
/// version is kept only for `=`.
pub fn kernel_dependency(depends: &str, own_name: &str) -> Option<(String, Option<String>)> {
    let mut found: Vec<(u8, String, Option<String>)> = Vec::new();
    for alt in depends.split([',', '|']) {
        let alt = alt.trim();
        let (name, rest) = alt.split_once(' ').unwrap_or((alt, ""));
        let name = name.split(':').next().unwrap_or(name);
        let rank = if name.starts_with("linux-binary-") {
            0
        } else if name.starts_with("linux-image-") && name != own_name && !name.ends_with("-dbg") {
            1
        } else {
            continue;
        };
        let pinned = rest
            .trim()
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .and_then(|r| r.trim().strip_prefix('='))
            .map(|v| v.trim().to_owned());
        found.push((rank, name.to_owned(), pinned));
    }
    found.sort_by_key(|f| f.0);
    found.into_iter().next().map(|(_, n, v)| (n, v))
}

/// Reads a kernel package, or a bare image (anything that is neither a `.deb` nor an `.rpm`
/// is taken as the image itself).
pub fn read_package(input: &Path) -> Result<Contents, Error> {
    let mut f = std::fs::File::open(input).map_err(io(input))?;
    let mut magic = [0u8; 8];
    let n = read_full(&mut f, &mut magic).map_err(io(input))?;
    let f = std::fs::File::open(input).map_err(io(input))?;
    let r = std::io::BufReader::with_capacity(256 * 1024, f);
    if &magic[..n] == b"!<arch>\n" {
        read_deb(input, r)
    } else if magic[..n].starts_with(&[0xed, 0xab, 0xee, 0xdb]) {
        read_rpm(input, r)
    } else {
        std::fs::read(input).map(Contents::Image).map_err(io(input))
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn bad(input: &Path, what: impl std::fmt::Display) -> Error {
    Error::Io {
        path: input.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string()),
    }
}

fn read_image(input: &Path, mut e: impl Read, size: u64) -> Result<Vec<u8>, Error> {
    if size > MAX_IMAGE {
        return Err(bad(
            input,
            format!("kernel image of {size} bytes (more than {MAX_IMAGE})"),
        ));
    }
    let mut v = Vec::with_capacity(size as usize);
    e.read_to_end(&mut v).map_err(io(input))?;
    Ok(v)
}

/// A `.deb`: the kernel from `data.tar.*`, else the control's way to it. The data member
/// follows the control member in every `.deb`, so one pass reads both.
fn read_deb(input: &Path, r: impl Read + Send) -> Result<Contents, Error> {
    let mut ar = ar::Archive::new(r);
    let mut info = crate::extract::PackageInfo::default();
    while let Some(entry) = ar.next_entry() {
        let mut entry = entry.map_err(io(input))?;
        let id = entry.header().identifier().to_vec();
        let name = input.display().to_string();
        if id.starts_with(b"control.tar") {
            let dec = crate::extract::decompress(&mut entry, &name).map_err(|e| bad(input, e))?;
            let mut tar = tar::Archive::new(dec);
            for e in tar.entries().map_err(io(input))? {
                let mut e = e.map_err(io(input))?;
                let p = e.path_bytes().into_owned();
                if p == b"./control" || p == b"control" {
                    let mut text = String::new();
                    e.by_ref()
                        .take(1 << 20)
                        .read_to_string(&mut text)
                        .map_err(io(input))?;
                    crate::extract::deb::parse_control(&text, &mut info);
                }
            }
        } else if id.starts_with(b"data.tar") {
            let dec = crate::extract::decompress(&mut entry, &name).map_err(|e| bad(input, e))?;
            let mut tar = tar::Archive::new(dec);
            for e in tar.entries().map_err(io(input))? {
                let e = e.map_err(io(input))?;
                let p = String::from_utf8_lossy(&e.path_bytes()).into_owned();
                if is_kernel_path(&p) && e.header().entry_type().is_file() {
                    let size = e.header().size().map_err(io(input))?;
                    return read_image(input, e, size).map(Contents::Image);
                }
            }
        }
    }
    meta_or_none(input, info)
}

fn meta_or_none(input: &Path, info: crate::extract::PackageInfo) -> Result<Contents, Error> {
    let package = info.name.clone().unwrap_or_default();
    let kernel = info
        .depends
        .as_deref()
        .and_then(|d| kernel_dependency(d, &package));
    if package.is_empty() || kernel.is_none() {
        return Err(Error::NoVmlinuz(input.to_owned()));
    }
    Ok(Contents::Meta(Meta {
        path: input.to_owned(),
        package,
        arch: info.arch,
        kernel,
        apt: true,
    }))
}

/// An `.rpm`: lead, signature header, main header, then a compressed newc cpio payload.
fn read_rpm(input: &Path, mut r: impl Read + Send) -> Result<Contents, Error> {
    use crate::extract::rpm::Header;
    const TAG_NAME: u32 = 1000;
    const TAG_REQUIRENAME: u32 = 1049;
    let mut lead = [0u8; 96];
    r.read_exact(&mut lead).map_err(io(input))?;
    Header::read(&mut r, true).map_err(|e| bad(input, format!("signature header: {e}")))?;
    let h = Header::read(&mut r, false).map_err(|e| bad(input, format!("header: {e}")))?;
    let name = input.display().to_string();
    let mut cpio = crate::extract::decompress(r, &name).map_err(|e| bad(input, e))?;
    let mut hdr = [0u8; 110];
    let mut offset = 0u64;
    loop {
        if read_full(&mut cpio, &mut hdr).map_err(io(input))? < hdr.len() {
            break;
        }
        offset += 110;
        if &hdr[..6] != b"070701" && &hdr[..6] != b"070702" {
            return Err(bad(
                input,
                format!("bad cpio magic at payload offset {}", offset - 110),
            ));
        }
        let field = |i: usize| {
            std::str::from_utf8(&hdr[6 + i * 8..14 + i * 8])
                .ok()
                .and_then(|s| u64::from_str_radix(s, 16).ok())
                .ok_or_else(|| bad(input, "bad cpio header field"))
        };
        let (mode, size, namesize) = (field(1)?, field(6)?, field(11)?);
        if namesize == 0 || namesize > 4096 {
            return Err(bad(
                input,
                format!("cpio name size {namesize} out of range"),
            ));
        }
        let pad = |n: u64| (4 - n % 4) % 4;
        let mut entry = vec![0u8; (namesize + pad(110 + namesize)) as usize];
        cpio.read_exact(&mut entry).map_err(io(input))?;
        offset += entry.len() as u64;
        let entry = String::from_utf8_lossy(&entry[..namesize as usize - 1]).into_owned();
        if entry == "TRAILER!!!" {
            break;
        }
        if mode & 0o170000 == 0o100000 && size > 0 && is_kernel_path(&entry) {
            return read_image(input, cpio.take(size), size).map(Contents::Image);
        }
        let skip = size + pad(size);
        std::io::copy(&mut (&mut cpio).take(skip), &mut std::io::sink()).map_err(io(input))?;
        offset += skip;
    }
    // RHEL 8+ and Fedora: `kernel` holds nothing and requires `kernel-core`.
    let package = h.string(TAG_NAME).unwrap_or_default();
    let core = h
        .strings(TAG_REQUIRENAME)
        .into_iter()
        .find(|n| n == "kernel-core" || n.starts_with("kernel-core-uname-r"));
    match core {
        Some(core) if !package.is_empty() => Ok(Contents::Meta(Meta {
            path: input.to_owned(),
            package,
            arch: None,
            kernel: Some((core, None)),
            apt: false,
        })),
        _ => Err(Error::NoVmlinuz(input.to_owned())),
    }
}

/// The kernel a meta-package leads to, and the package that held it.
#[derive(Debug)]
pub struct Followed {
    pub image: Vec<u8>,
    /// The downloaded (cached) package holding the kernel.
    pub package: PathBuf,
    /// Each package name on the way, the meta-package first.
    pub chain: Vec<String>,
}

/// Follows a meta-package to its kernel: the dependency is looked up in the catalog's APT
/// targets (those of the meta-package's arch; Debian's before Ubuntu's unless the version says
/// Ubuntu), fetched through the cache (so `--offline` is honoured), and read; a dependency that
/// is itself a meta-package is followed in turn (at most three steps).
pub fn follow(lister: &repo::Lister, meta: &Meta) -> Result<Followed, Error> {
    let mut chain = vec![meta.package.clone()];
    let mut current = meta.clone();
    for _ in 0..3 {
        let (dep, version) = match (&current.kernel, current.apt) {
            (Some(k), true) => k.clone(),
            _ => return Err(Error::from_meta(&current)),
        };
        let arch = current.arch.as_deref().and_then(Arch::parse);
        let found =
            find(lister, &dep, version.as_deref(), arch).map_err(|(searched, source)| {
                Error::MetaNotFound {
                    path: meta.path.clone(),
                    package: current.package.clone(),
                    dependency: match &version {
                        Some(v) => format!("{dep} (= {v})"),
                        None => dep.clone(),
                    },
                    searched,
                    source,
                }
            })?;
        chain.push(dep.clone());
        match read_package(&found)? {
            Contents::Image(image) => {
                return Ok(Followed {
                    image,
                    package: found,
                    chain,
                })
            }
            Contents::Meta(m) => current = m,
        }
    }
    Err(Error::NoVmlinuz(current.path))
}

/// One package by name (and pinned version) from the catalog's APT targets, downloaded.
fn find(
    lister: &repo::Lister,
    name: &str,
    version: Option<&str>,
    arch: Option<Arch>,
) -> Result<PathBuf, (String, Option<Box<repo::Error>>)> {
    let ubuntu = version.is_some_and(|v| v.contains("ubuntu"));
    let mut targets: Vec<&repo::Target> = lister
        .catalog
        .targets
        .iter()
        .filter(|t| t.kind == "apt")
        .collect();
    targets.sort_by_key(|t| (t.target_id == "ubuntu") != ubuntu);
    let arches: Vec<Arch> = match arch {
        Some(a) => vec![a],
        None => Arch::host().into_iter().collect(),
    };
    let mut searched = Vec::new();
    let mut last = None;
    for t in targets {
        for &a in &arches {
            if !t.arches.iter().any(|x| Arch::parse(x) == Some(a)) {
                continue;
            }
            searched.push(format!("{} {}", t.name, a.uname_m()));
            match lister.find_package(&t.name, a, name) {
                Ok(p) if version.is_none_or(|v| v == p.version) => {
                    return lister
                        .client
                        .fetch_verified(&p.url, &p.sha256, Some(p.size))
                        .map(|(path, _)| path)
                        .map_err(|source| {
                            (
                                searched.join(", "),
                                Some(Box::new(repo::Error::Fetch {
                                    what: format!("cannot fetch `{}`", p.name),
                                    source,
                                })),
                            )
                        });
                }
                Ok(_) => {}
                Err(e @ repo::Error::NoSuchKernel { .. }) => {
                    if last.is_none() {
                        last = Some(e)
                    }
                }
                Err(e) => last = Some(e),
            }
        }
    }
    // A missing package is the message itself; anything else (offline, a mirror fault) is
    // the cause.
    let last = last.filter(|e| !matches!(e, repo::Error::NoSuchKernel { .. }));
    Err((searched.join(", "), last.map(Box::new)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layout_of_the_kernel_is_found() {
        for p in [
            "./boot/vmlinuz-6.1.0-50-amd64",
            "boot/vmlinuz-5.14.0-427.el9.x86_64",
            "./usr/lib/modules/7.3.4+deb13-amd64/vmlinuz",
            "./usr/lib/modules/7.3.4+deb13-amd64/vmlinuz.unsigned",
            "./lib/modules/5.14.0-427.el9.x86_64/vmlinuz",
            "/lib/modules/6.11.4-301.fc41.x86_64/vmlinuz",
        ] {
            assert!(is_kernel_path(p), "{p}");
        }
        for p in [
            "./boot/config-6.1.0-50-amd64",
            "./boot/System.map-6.1.0-50-amd64",
            "./boot/vmlinuz-",
            "./usr/lib/modules/7.3.4+deb13-amd64/kernel/fs/ext4/ext4.ko.xz",
            "./usr/lib/modules/7.3.4+deb13-amd64/vmlinuz.hmac",
            "./usr/lib/modules//vmlinuz",
            "./usr/share/doc/vmlinuz",
        ] {
            assert!(!is_kernel_path(p), "{p}");
        }
    }

    #[test]
    fn debian_7x_meta_package_leads_to_its_linux_binary() {
        // linux-image-7.3.4+deb13-amd64's control, as Debian ships it.
        let deps = "dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, \
                    linux-base-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1), \
                    linux-binary-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1), \
                    linux-modules-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1)";
        assert_eq!(
            kernel_dependency(deps, "linux-image-7.3.4+deb13-amd64"),
            Some((
                "linux-binary-7.3.4+deb13-amd64".into(),
                Some("7.3.4-1~bpo13+1".into())
            ))
        );
        // The unversioned meta-package names the versioned image, with no pin.
        assert_eq!(
            kernel_dependency(
                "linux-image-6.1.0-50-amd64 (>= 6.1.176-1)",
                "linux-image-amd64"
            ),
            Some(("linux-image-6.1.0-50-amd64".into(), None))
        );
        // Headers and base packages lead nowhere.
        assert_eq!(
            kernel_dependency(
                "linux-headers-6.1.0-50-common (= 6.1.176-1), linux-kbuild-6.1 (>= 6.1.176-1)",
                "linux-headers-6.1.0-50-amd64"
            ),
            None
        );
    }
}
