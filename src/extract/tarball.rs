//! tar streams (plain or compressed, detected by magic): `.tar*`, `.tgz`, and the data member
//! of a `.deb`.

use std::io::Read;

use super::safe_path::Kind;
use super::{decompress, Result, Unpacker};

pub(super) fn unpack(r: impl Read + Send + 'static, u: &mut Unpacker) -> Result<()> {
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
        u.entry(&path, kind, mode, &mut e)?;
    }
    Ok(())
}
