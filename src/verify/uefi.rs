//! The boot a Secure Boot node does, under QEMU: Debian's OVMF (`ovmf`, the Secure Boot code
//! and the variable store with Microsoft's keys enrolled), Debian's Microsoft-signed shim
//! (`shim-signed`) and Debian-signed grub (`grub-efi-amd64-signed`) on an EFI system partition
//! with the kernel's signed image and the loader's initramfs; the user's certificate in shim's
//! `MokList`, as `mokutil --import` and MokManager enroll it. shim then hands the kernel
//! `MokListRT` and `MokListTrustedRT` itself (its MOK config table), so the kernel puts the
//! certificate in its `.machine` keyring as on a real node: nothing is pre-written that only
//! shim may create.
//!
//! The packages come from a Debian target of the catalog, digests checked against its signed
//! index, through the cache. The partition is made with `mkfs.vfat` and mtools (no root, no
//! loop device). Never a firmware file from the host: what boots is what the archive ships.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::efi;
use crate::kernel::Arch;
use crate::repo;

/// The firmware files, as Debian's packages ship them.
const OVMF_CODE: &str = "usr/share/OVMF/OVMF_CODE_4M.secboot.fd";
/// The variable store with Microsoft's KEK and db (the UEFI CA shim is signed by) and Secure
/// Boot on.
const OVMF_VARS: &str = "usr/share/OVMF/OVMF_VARS_4M.ms.fd";
const SHIM: &str = "usr/lib/shim/shimx64.efi.signed";
const GRUB: &str = "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{package}` is not in `{target}` (the firmware packages come from a Debian target: give --target)")]
    Lookup {
        package: String,
        target: String,
        #[source]
        source: Box<repo::Error>,
    },
    #[error("fetching `{package}` {version}")]
    Fetch {
        package: String,
        version: String,
        #[source]
        source: Box<crate::http::Error>,
    },
    #[error("`{package}` {version} has no `{file}`")]
    Missing {
        package: String,
        version: String,
        file: String,
    },
    #[error("cannot read `{}`", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the firmware's variable store (`{OVMF_VARS}` of `ovmf` {version})")]
    Store {
        version: String,
        #[source]
        source: efi::Error,
    },
    #[error("the MOK certificate")]
    Cert(#[source] Box<crate::kmod::sign::SignError>),
    #[error("Secure Boot boots x86_64 kernels here (OVMF for x86_64); this kernel is {0}")]
    Arch(Arch),
    #[error("the kernel image carries no Authenticode signature: shim and grub refuse it under Secure Boot; give the signed image (Debian's linux-image-R, not linux-image-R-unsigned)")]
    UnsignedKernel,
    #[error("cannot run `{0}` (install {1})")]
    NoTool(String, &'static str, #[source] std::io::Error),
    #[error("`{command}` failed ({status}): {stderr}")]
    Tool {
        command: String,
        status: String,
        stderr: String,
    },
}

/// One package the boot came from.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub sha256: String,
}

/// What a Secure Boot VM boots with: the firmware code, the private variable store (the
/// certificate enrolled), shim and grub.
#[derive(Debug, Clone)]
pub struct Firmware {
    pub code: Vec<u8>,
    pub vars: Vec<u8>,
    pub shim: Vec<u8>,
    pub grub: Vec<u8>,
    pub report: Report,
}

/// What `verify --json` says of the boot: where each piece came from and who was enrolled.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub target: String,
    pub packages: Vec<Package>,
    /// The enrolled certificate (`MokList`).
    pub mok: crate::kmod::sign::CertIdentity,
}

/// The files `wanted` of a `.deb`'s data member, by path without the leading `./`.
fn deb_files(path: &Path, wanted: &[&str]) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let mut ar = ar::Archive::new(std::io::BufReader::new(f));
    let mut out = Vec::new();
    while let Some(entry) = ar.next_entry() {
        let mut entry = entry.map_err(io)?;
        if !entry.header().identifier().starts_with(b"data.tar") {
            continue;
        }
        let name = path.display().to_string();
        let dec = crate::extract::decompress(&mut entry, &name).map_err(|e| {
            io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                e.to_string(),
            ))
        })?;
        let mut tar = tar::Archive::new(dec);
        for e in tar.entries().map_err(io)? {
            let mut e = e.map_err(io)?;
            let p = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let p = p.trim_start_matches("./").to_owned();
            if e.header().entry_type().is_file() && wanted.contains(&p.as_str()) {
                let mut v = Vec::new();
                // Firmware and loaders are a few MiB; bound what is read all the same.
                e.by_ref().take(64 << 20).read_to_end(&mut v).map_err(io)?;
                out.push((p, v));
            }
        }
    }
    Ok(out)
}

/// Fetches one package of `target` (amd64) and reads `files` from it, in that order.
fn package_files(
    lister: &repo::Lister,
    target: &str,
    name: &str,
    files: &[&str],
) -> Result<(Package, Vec<Vec<u8>>), Error> {
    let p = lister
        .find_package(target, Arch::X86_64, name)
        .map_err(|source| Error::Lookup {
            package: name.to_owned(),
            target: target.to_owned(),
            source: Box::new(source),
        })?;
    let (path, _) = lister
        .client
        .fetch_verified(&p.url, &p.sha256, Some(p.size))
        .map_err(|source| Error::Fetch {
            package: p.name.clone(),
            version: p.version.clone(),
            source: Box::new(source),
        })?;
    let mut found = deb_files(&path, files)?;
    let mut out = Vec::new();
    for f in files {
        let i = found
            .iter()
            .position(|(p, _)| p == f)
            .ok_or_else(|| Error::Missing {
                package: p.name.clone(),
                version: p.version.clone(),
                file: (*f).to_owned(),
            })?;
        out.push(found.swap_remove(i).1);
    }
    Ok((
        Package {
            name: p.name,
            version: p.version,
            sha256: p.sha256,
        },
        out,
    ))
}

/// The variable store `vars` with `cert_der` enrolled in shim's `MokList` (non-volatile,
/// boot-service only: shim deletes a `MokList` a running OS could have written). No
/// `MokListTrusted`: shim reads its absence as "trust the MOK list" and creates
/// `MokListTrustedRT` for the kernel (`mokutil --untrust-mok` is what sets it).
pub fn enroll(vars: Vec<u8>, cert_der: &[u8]) -> Result<Vec<u8>, efi::Error> {
    let mut store = efi::VarStore::parse(vars)?;
    store.set(
        "MokList",
        efi::SHIM_LOCK,
        efi::NON_VOLATILE | efi::BOOTSERVICE_ACCESS,
        &efi::x509_signature_list(efi::SHIM_LOCK, cert_der),
    )?;
    Ok(store.into_bytes())
}

/// Fetches OVMF, shim and grub from `target`'s release suites and enrolls `cert` (PEM or
/// DER). Backports are left out, as a node's APT leaves them (pinned below the release): a
/// boot chain is shim and grub of one release, and bookworm's shim refuses the grub of
/// bookworm-backports ("Verification failed: (0x1A) Security Violation", seen).
pub fn prepare(lister: &repo::Lister, target: &str, cert: &[u8]) -> Result<Firmware, Error> {
    let cert = crate::kmod::sign::Cert::parse(cert).map_err(|e| Error::Cert(Box::new(e)))?;
    let mut catalog = lister.catalog.clone();
    for t in catalog.targets.iter_mut().filter(|t| t.name == target) {
        t.suites.retain(|s| !s.suite.ends_with("-backports"));
    }
    let lister = &repo::Lister {
        client: lister.client,
        catalog: &catalog,
        mirrors: lister.mirrors,
    };
    let (ovmf, mut fw) = package_files(lister, target, "ovmf", &[OVMF_CODE, OVMF_VARS])?;
    let (shim, mut s) = package_files(lister, target, "shim-signed", &[SHIM])?;
    let (grub, mut g) = package_files(lister, target, "grub-efi-amd64-signed", &[GRUB])?;
    let vars =
        enroll(fw.pop().expect("two files"), &cert.der()).map_err(|source| Error::Store {
            version: ovmf.version.clone(),
            source,
        })?;
    Ok(Firmware {
        code: fw.pop().expect("one file"),
        vars,
        shim: s.pop().expect("one file"),
        grub: g.pop().expect("one file"),
        report: Report {
            target: target.to_owned(),
            packages: vec![ovmf, shim, grub],
            mok: cert.identity.clone(),
        },
    })
}

/// Whether a PE image (an x86 `vmlinuz`, an EFI application) carries an Authenticode
/// signature: a non-empty certificate table (data directory 4).
pub fn pe_signed(image: &[u8]) -> bool {
    let rd = |o: usize, n: usize| image.get(o..o + n);
    let Some(pe) = rd(0x3c, 4).map(|b| u32::from_le_bytes(b.try_into().unwrap()) as usize) else {
        return false;
    };
    if rd(pe, 4) != Some(b"PE\0\0") {
        return false;
    }
    let opt = pe + 24;
    // PE32+ (0x20b): data directories at 112; PE32 (0x10b): at 96.
    let dirs = match rd(opt, 2) {
        Some([0x0b, 0x02]) => opt + 112,
        Some([0x0b, 0x01]) => opt + 96,
        _ => return false,
    };
    rd(dirs + 4 * 8 + 4, 4).is_some_and(|b| u32::from_le_bytes(b.try_into().unwrap()) != 0)
}

/// grub reads its words as a shell does: each word of the kernel command line single-quoted.
fn grub_quote(cmdline: &str) -> String {
    cmdline
        .split_whitespace()
        .map(|w| format!("'{}'", w.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A program Debian installs in `/usr/sbin`, which a user's `PATH` may not hold: found there
/// when `PATH` has none.
fn sbin(program: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()));
    ["/usr/sbin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(program))
        .find(|p| !on_path && p.is_file())
        .unwrap_or_else(|| PathBuf::from(program))
}

fn run(cmd: &mut Command, package: &'static str) -> Result<(), Error> {
    let shown = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = cmd
        .output()
        .map_err(|e| Error::NoTool(cmd.get_program().to_string_lossy().into(), package, e))?;
    if !out.status.success() {
        return Err(Error::Tool {
            command: shown,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

/// The EFI system partition (a FAT image, no partition table: OVMF boots it as removable
/// media) in `dir`: shim as the default loader `EFI/BOOT/BOOTX64.EFI`, grub beside it (where
/// shim looks), grub's configuration where Debian's signed grub looks for it, the kernel and
/// the initramfs. Returns its path.
pub fn esp(
    dir: &Path,
    fw: &Firmware,
    vmlinuz: &[u8],
    initrd: &[u8],
    cmdline: &str,
) -> Result<PathBuf, Error> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    let cfg = format!(
        "set timeout=0\nlinux /vmlinuz {}\ninitrd /initrd\nboot\n",
        grub_quote(cmdline)
    );
    let files: [(&str, &[u8]); 6] = [
        ("EFI/BOOT/BOOTX64.EFI", &fw.shim),
        ("EFI/BOOT/grubx64.efi", &fw.grub),
        ("EFI/BOOT/grub.cfg", cfg.as_bytes()),
        ("EFI/debian/grub.cfg", cfg.as_bytes()),
        ("vmlinuz", vmlinuz),
        ("initrd", initrd),
    ];
    let img = dir.join("esp.img");
    let stage = dir.join("esp");
    let bytes: usize = files.iter().map(|(_, b)| b.len()).sum();
    // FAT overhead and cluster slack: an eighth more and 8 MiB.
    let kib = (bytes + bytes / 8) / 1024 + 8192;
    run(
        Command::new(sbin("mkfs.vfat"))
            .args(["-C", "-n", "PROBEFORGE"])
            .arg(&img)
            .arg(kib.to_string()),
        "dosfstools",
    )?;
    let mut mcopy = Command::new("mcopy");
    mcopy
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-i")
        .arg(&img)
        .arg("-s");
    for top in ["EFI", "vmlinuz", "initrd"] {
        mcopy.arg(stage.join(top));
    }
    for (name, data) in files {
        let p = stage.join(name);
        std::fs::create_dir_all(p.parent().expect("in the stage")).map_err(io(&p))?;
        std::fs::write(&p, data).map_err(io(&p))?;
    }
    run(mcopy.arg("::"), "mtools")?;
    std::fs::remove_dir_all(&stage).map_err(io(&stage))?;
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grub_gets_each_word_quoted() {
        assert_eq!(
            grub_quote("console=ttyS0  a='b c'$x"),
            r"'console=ttyS0' 'a='\''b' 'c'\''$x'"
        );
    }

    #[test]
    fn a_pe_without_a_certificate_table_is_unsigned() {
        let mut pe = vec![0u8; 512];
        pe[0x3c] = 0x80;
        pe[0x80..0x84].copy_from_slice(b"PE\0\0");
        pe[0x80 + 24..0x80 + 26].copy_from_slice(&[0x0b, 0x02]);
        assert!(!pe_signed(&pe));
        let size = 0x80 + 24 + 112 + 32 + 4;
        pe[size..size + 4].copy_from_slice(&0x100u32.to_le_bytes());
        assert!(pe_signed(&pe));
        assert!(!pe_signed(b"MZ"));
    }
}
