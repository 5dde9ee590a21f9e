//! `.deb`: an ar archive with `debian-binary`, `control.tar.*` and exactly one `data.tar.*`.

use std::io::Read;

use super::{decompress, tarball, Format, PackageInfo, Result, Unpacker};

/// Parses a deb822 `control` paragraph into the fields we use.
pub fn parse_control(text: &str, info: &mut PackageInfo) {
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = Some(v.trim().to_owned());
        match k {
            "Package" => info.name = v,
            "Version" => info.version = v,
            "Architecture" => info.arch = v,
            "Depends" => info.depends = v,
            _ => {}
        }
    }
}

/// Reads only the `control` paragraph of a deb.
pub fn peek_control(r: impl Read + Send) -> Option<PackageInfo> {
    let mut ar = ar::Archive::new(r);
    while let Some(entry) = ar.next_entry() {
        let mut entry = entry.ok()?;
        let name = String::from_utf8_lossy(entry.header().identifier()).into_owned();
        if name.starts_with("control.tar") {
            let mut tar = tar::Archive::new(decompress(&mut entry, "").ok()?);
            for e in tar.entries().ok()? {
                let mut e = e.ok()?;
                let p = e.path_bytes().into_owned();
                if p == b"./control" || p == b"control" {
                    let mut text = String::new();
                    e.by_ref().take(1 << 20).read_to_string(&mut text).ok()?;
                    let mut info = PackageInfo::default();
                    parse_control(&text, &mut info);
                    return Some(info);
                }
            }
            return None;
        }
    }
    None
}

pub(super) fn unpack(r: impl Read + Send + 'static, u: &mut Unpacker) -> Result<PackageInfo> {
    let mut ar = ar::Archive::new(r);
    let mut info = PackageInfo {
        format: Format::Deb,
        ..Default::default()
    };
    let mut data_members = 0;
    let mut first = true;
    while let Some(entry) = ar.next_entry() {
        let mut entry = entry.map_err(|e| u.err_read(e))?;
        let name = String::from_utf8_lossy(entry.header().identifier()).into_owned();
        if first && name != "debian-binary" {
            return Err(u.err_malformed(format!(
                "first ar member is `{name}`, not `debian-binary`: not a Debian package"
            )));
        }
        first = false;
        if name.starts_with("control.tar") {
            let pkg = u.package().to_owned();
            let mut tar = tar::Archive::new(decompress(&mut entry, &pkg)?);
            for e in tar.entries().map_err(|e| u.err_read(e))? {
                let mut e = e.map_err(|e| u.err_read(e))?;
                if e.path_bytes().as_ref() == b"./control" || e.path_bytes().as_ref() == b"control"
                {
                    let mut text = String::new();
                    e.by_ref()
                        .take(1 << 20)
                        .read_to_string(&mut text)
                        .map_err(|e| u.err_read(e))?;
                    parse_control(&text, &mut info);
                }
            }
        } else if name.starts_with("data.tar") {
            data_members += 1;
            if data_members > 1 {
                return Err(
                    u.err_malformed(format!("more than one data member (second: `{name}`)"))
                );
            }
            // The compressed member is read whole (it is bounded by the package's size) so
            // that its decoder can run on its own thread.
            let mut data = Vec::new();
            entry.read_to_end(&mut data).map_err(|e| u.err_read(e))?;
            tarball::unpack(std::io::Cursor::new(data), u)?;
        }
    }
    if first {
        return Err(u.err_malformed("empty ar archive"));
    }
    if data_members == 0 {
        return Err(u.err_malformed("no data.tar member"));
    }
    Ok(info)
}
