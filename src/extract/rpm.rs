//! `.rpm`: lead, signature header, main header, then a compressed cpio (newc) payload.
//!
//! The cpio stream is read here, entry by entry, in linear time (the `rpm` crate's file
//! iteration is quadratic in the file count).

use std::collections::BTreeMap;
use std::io::{self, Read};

use super::safe_path::Kind;
use super::{decompress, Format, PackageInfo, Result, Unpacker};

const LEAD_LEN: usize = 96;
const HEADER_MAGIC: [u8; 3] = [0x8e, 0xad, 0xe8];
/// Largest header we accept (index + store), far above any real kernel-devel.
const MAX_HEADER: u64 = 256 << 20;

const TAG_NAME: u32 = 1000;
const TAG_VERSION: u32 = 1001;
const TAG_RELEASE: u32 = 1002;
const TAG_ARCH: u32 = 1022;
const TAG_PAYLOADFORMAT: u32 = 1124;
const TAG_BASENAMES: u32 = 1117;

/// A parsed RPM header: tag -> (type, count, data slice).
pub struct Header {
    entries: BTreeMap<u32, (u32, u32, Vec<u8>)>,
}

impl Header {
    /// Reads one header structure; `pad` aligns the end to 8 bytes (signature header).
    pub fn read(r: &mut impl Read, pad: bool) -> io::Result<Header> {
        let mut intro = [0u8; 16];
        r.read_exact(&mut intro)?;
        if intro[..3] != HEADER_MAGIC {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bad header magic",
            ));
        }
        let nindex = u32::from_be_bytes(intro[8..12].try_into().unwrap()) as u64;
        let hsize = u32::from_be_bytes(intro[12..16].try_into().unwrap()) as u64;
        if nindex * 16 + hsize > MAX_HEADER {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "header larger than 256 MiB",
            ));
        }
        let mut index = vec![0u8; (nindex * 16) as usize];
        r.read_exact(&mut index)?;
        let mut store = vec![0u8; hsize as usize];
        r.read_exact(&mut store)?;
        if pad {
            let rem = (16 + nindex * 16 + hsize) % 8;
            if rem != 0 {
                io::copy(&mut r.take(8 - rem), &mut io::sink())?;
            }
        }
        let mut entries = BTreeMap::new();
        for e in index.chunks_exact(16) {
            let word = |i: usize| u32::from_be_bytes(e[i..i + 4].try_into().unwrap());
            let (tag, ty, off, count) = (word(0), word(4), word(8) as usize, word(12));
            if off > store.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("tag {tag} points outside the header store"),
                ));
            }
            entries.insert(tag, (ty, count, store[off..].to_vec()));
        }
        Ok(Header { entries })
    }

    /// A STRING/I18NSTRING tag's first value.
    pub fn string(&self, tag: u32) -> Option<String> {
        let (_, _, data) = self.entries.get(&tag)?;
        let end = data.iter().position(|&b| b == 0)?;
        Some(String::from_utf8_lossy(&data[..end]).into_owned())
    }

    /// A STRING_ARRAY tag's values.
    pub fn strings(&self, tag: u32) -> Vec<String> {
        let Some((_, count, data)) = self.entries.get(&tag) else {
            return Vec::new();
        };
        data.split(|&b| b == 0)
            .take(*count as usize)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    }
}

/// Reads only the lead and headers of an RPM.
pub fn peek_header(mut r: impl Read) -> Option<PackageInfo> {
    let mut lead = [0u8; LEAD_LEN];
    r.read_exact(&mut lead).ok()?;
    Header::read(&mut r, true).ok()?;
    let h = Header::read(&mut r, false).ok()?;
    Some(info(&h))
}

fn info(h: &Header) -> PackageInfo {
    PackageInfo {
        format: Format::Rpm,
        name: h.string(TAG_NAME),
        version: h.string(TAG_VERSION),
        release: h.string(TAG_RELEASE),
        arch: h.string(TAG_ARCH),
        depends: None,
        files: Some(h.strings(TAG_BASENAMES).len()),
    }
}

pub(super) fn unpack(mut r: impl Read + Send + 'static, u: &mut Unpacker) -> Result<PackageInfo> {
    let mut lead = [0u8; LEAD_LEN];
    r.read_exact(&mut lead).map_err(|e| u.err_read(e))?;
    if lead[..4] != [0xed, 0xab, 0xee, 0xdb] {
        return Err(u.err_malformed("not an RPM (bad lead magic)"));
    }
    Header::read(&mut r, true).map_err(|e| u.err_malformed(format!("signature header: {e}")))?;
    let h = Header::read(&mut r, false).map_err(|e| u.err_malformed(format!("header: {e}")))?;
    if let Some(f) = h.string(TAG_PAYLOADFORMAT) {
        if f != "cpio" {
            return Err(u.err_malformed(format!("payload format `{f}` is not cpio")));
        }
    }
    let info = info(&h);
    let pkg = u.package().to_owned();
    cpio(super::ReadAhead::new(decompress(r, &pkg)?), u)?;
    Ok(info)
}

fn hex_field(b: &[u8]) -> Option<u64> {
    u64::from_str_radix(std::str::from_utf8(b).ok()?, 16).ok()
}

/// Reads a newc/crc cpio stream up to `TRAILER!!!`.
pub(super) fn cpio(mut r: impl Read, u: &mut Unpacker) -> Result<()> {
    // Hard links in newc: every name of an inode is an entry, only the last carries the data.
    let mut pending: BTreeMap<(u64, u64, u64), Vec<Vec<u8>>> = BTreeMap::new();
    let mut hdr = [0u8; 110];
    let mut offset: u64 = 0;
    loop {
        r.read_exact(&mut hdr).map_err(|e| u.err_read(e))?;
        offset += 110;
        if &hdr[..6] != b"070701" && &hdr[..6] != b"070702" {
            return Err(
                u.err_malformed(format!("bad cpio magic at payload offset {}", offset - 110))
            );
        }
        let f = |i: usize| hex_field(&hdr[6 + i * 8..14 + i * 8]);
        let fields: Option<Vec<u64>> = (0..13).map(f).collect();
        let fields = fields.ok_or_else(|| u.err_malformed("bad cpio header field"))?;
        let (ino, mode, nlink, size, devmaj, devmin, namesize) = (
            fields[0], fields[1], fields[4], fields[6], fields[7], fields[8], fields[11],
        );
        if namesize == 0 || namesize > 4096 {
            return Err(u.err_malformed(format!("cpio name size {namesize} out of range")));
        }
        let mut name = vec![0u8; namesize as usize];
        r.read_exact(&mut name).map_err(|e| u.err_read(e))?;
        offset += namesize;
        skip_pad(&mut r, &mut offset, u)?;
        if name.last() == Some(&0) {
            name.pop();
        }
        if name == b"TRAILER!!!" {
            break;
        }
        let fmt = mode & 0o170000;
        let kind = match fmt {
            0o100000 => Kind::File,
            0o040000 => Kind::Dir,
            0o120000 => {
                if size > 4096 {
                    return Err(u.err_malformed("symlink target longer than 4096 bytes"));
                }
                let mut t = vec![0u8; size as usize];
                r.read_exact(&mut t).map_err(|e| u.err_read(e))?;
                Kind::Symlink(t)
            }
            0o020000 => Kind::CharDevice,
            0o060000 => Kind::BlockDevice,
            0o010000 => Kind::Fifo,
            0o140000 => Kind::Socket,
            _ => Kind::Other,
        };
        let data_len = if matches!(kind, Kind::Symlink(_)) {
            0
        } else {
            size
        };
        if kind == Kind::File && nlink > 1 {
            let key = (devmaj, devmin, ino);
            if size == 0 {
                pending.entry(key).or_default().push(name);
            } else {
                let mut data = (&mut r).take(size);
                u.entry(&name, Kind::File, (mode & 0o7777) as u32, &mut data)?;
                check_len(&data, u)?;
                for other in pending.remove(&key).unwrap_or_default() {
                    u.link_existing(&other, &name)?;
                }
            }
        } else {
            let mut data = (&mut r).take(data_len);
            u.entry(&name, kind, (mode & 0o7777) as u32, &mut data)?;
            check_len(&data, u)?;
        }
        offset += size;
        skip_pad(&mut r, &mut offset, u)?;
    }
    // Names of inodes whose data never came are empty files, as cpio makes them.
    for names in pending.into_values() {
        for n in names {
            u.entry(&n, Kind::File, 0o644, &mut io::empty())?;
        }
    }
    Ok(())
}

fn check_len<R>(data: &io::Take<R>, u: &Unpacker) -> Result<()> {
    if data.limit() != 0 {
        return Err(u.err_read(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "cpio entry data truncated",
        )));
    }
    Ok(())
}

fn skip_pad(r: &mut impl Read, offset: &mut u64, u: &Unpacker) -> Result<()> {
    let pad = (4 - (*offset % 4)) % 4;
    if pad > 0 {
        let mut b = [0u8; 4];
        r.read_exact(&mut b[..pad as usize])
            .map_err(|e| u.err_read(e))?;
        *offset += pad;
    }
    Ok(())
}
