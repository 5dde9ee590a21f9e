//! tar streams (plain or compressed, detected by magic): `.tar*`, `.tgz`, the data member
//! of a `.deb`, and Arch's `.pkg.tar.zst`, whose top-level `.PKGINFO`, `.MTREE`, `.BUILDINFO`,
//! `.INSTALL` and `.CHANGELOG` are the package's metadata, read or skipped, never written.

use std::io::Read;

use super::safe_path::{self, Kind};
use super::{decompress, PackageInfo, Result, Unpacker};

/// pacman's metadata members (makepkg writes them at the root of the package).
const PACMAN_META: [&str; 5] = [".PKGINFO", ".MTREE", ".BUILDINFO", ".INSTALL", ".CHANGELOG"];

/// `.PKGINFO` (`key = value` lines): name, `pkgver` (with pkgrel), arch, depends.
pub fn parse_pkginfo(text: &str) -> PackageInfo {
    let mut info = PackageInfo {
        format: super::Format::Tar,
        ..Default::default()
    };
    let mut depends = Vec::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(" = ") else {
            continue;
        };
        let v = v.trim().to_owned();
        match k.trim() {
            "pkgname" => info.name = Some(v),
            "pkgver" => info.version = Some(v),
            "arch" => info.arch = Some(v),
            "depend" => depends.push(v),
            _ => {}
        }
    }
    if !depends.is_empty() {
        info.depends = Some(depends.join(", "));
    }
    info
}

pub(super) fn unpack(r: impl Read + Send + 'static, u: &mut Unpacker) -> Result<PackageInfo> {
    let mut info = PackageInfo {
        format: super::Format::Tar,
        ..Default::default()
    };
    let pkg = u.package().to_owned();
    let mut tar = tar::Archive::new(super::ReadAhead::new(decompress(r, &pkg)?));
    let entries = tar.entries().map_err(|e| u.err_read(e))?;
    for e in entries {
        let mut e = e.map_err(|e| u.err_read(e))?;
        let h = e.header();
        let mode = h.mode().map_err(|e| u.err_read(e))?;
        let kind = match h.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File,
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => Kind::Symlink(
                e.link_name_bytes()
                    .map(|l| l.into_owned())
                    .ok_or_else(|| u.err_malformed("symlink without a target"))?,
            ),
            tar::EntryType::Link => Kind::Hardlink(
                e.link_name_bytes()
                    .map(|l| l.into_owned())
                    .ok_or_else(|| u.err_malformed("hard link without a target"))?,
            ),
            tar::EntryType::Char => Kind::CharDevice,
            tar::EntryType::Block => Kind::BlockDevice,
            tar::EntryType::Fifo => Kind::Fifo,
            // pax headers that the tar crate hands out as entries (git archives start with a
            // global one carrying the commit): metadata, nothing to write.
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => continue,
            // GNU/PAX metadata entries are consumed by the tar crate itself.
            _ => Kind::Other,
        };
        let path = e.path_bytes().into_owned();
        let meta = matches!(&kind, Kind::File)
            && safe_path::normalize(&path)
                .ok()
                .flatten()
                .and_then(|p| p.to_str().map(|s| PACMAN_META.contains(&s)))
                .unwrap_or(false);
        if meta {
            if path.ends_with(b".PKGINFO") {
                let mut text = String::new();
                e.by_ref()
                    .take(1 << 20)
                    .read_to_string(&mut text)
                    .map_err(|e| u.err_read(e))?;
                info = parse_pkginfo(&text);
            }
            // The rest of the member is read past by the tar reader.
            continue;
        }
        u.entry(&path, kind, mode, &mut e)?;
    }
    Ok(info)
}
