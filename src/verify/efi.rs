//! EDK2's non-volatile variable store, the `OVMF_VARS` file a UEFI guest boots with: read its
//! variables and add one, so that a VM's firmware presents a certificate in shim's `MokList`
//! as a node with an enrolled MOK does (`mokutil --import` then MokManager leave the same
//! variable). Pure over bytes: the caller reads the store and writes the private copy.
//!
//! The layout (EDK2 `MdeModulePkg/Include/Guid/VariableFormat.h`): a firmware volume header
//! (`_FVH`), then a variable store header whose GUID says the variables carry authenticated
//! headers (OVMF's Secure Boot builds), then variables back to back, each 4-byte aligned, up to
//! the first header without the `0x55AA` start id (the erased flash, `0xFF`). A variable is
//! never edited in place: a new value is a new variable, the old one marked deleted, as the
//! firmware itself does. This module never touches what follows the store (the fault-tolerant
//! write areas).

/// A UEFI GUID, in its in-memory (mixed-endian) byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// From the textual form's fields (`a-b-c-d`), as specifications write GUIDs.
    pub const fn new(a: u32, b: u16, c: u16, d: [u8; 8]) -> Guid {
        let a = a.to_le_bytes();
        let (b, c) = (b.to_le_bytes(), c.to_le_bytes());
        Guid([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5],
            d[6], d[7],
        ])
    }
}

impl std::fmt::Display for Guid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = &self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-",
            u32::from_le_bytes([g[0], g[1], g[2], g[3]]),
            u16::from_le_bytes([g[4], g[5]]),
            u16::from_le_bytes([g[6], g[7]]),
            g[8],
            g[9]
        )?;
        g[10..].iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// shim's vendor GUID: its variables (`MokList`, `MokListTrusted`, ...) and the owner of the
/// certificates it enrolls.
pub const SHIM_LOCK: Guid = Guid::new(
    0x605d_ab50,
    0xe046,
    0x4300,
    [0xab, 0xb6, 0x3d, 0xd8, 0x10, 0xdd, 0x8b, 0x23],
);
/// `EFI_CERT_X509_GUID`: a signature list of DER certificates.
pub const CERT_X509: Guid = Guid::new(
    0xa5c0_59a1,
    0x94e4,
    0x4aa7,
    [0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72],
);
/// `EFI_GLOBAL_VARIABLE`: `SecureBoot`, `PK`, `KEK`, ...
pub const GLOBAL_VARIABLE: Guid = Guid::new(
    0x8be4_df61,
    0x93ca,
    0x11d2,
    [0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c],
);
/// `gEfiSystemNvDataFvGuid`: the firmware volume holding the variable store.
const NV_DATA_FV: Guid = Guid::new(
    0xfff1_2b8d,
    0x7696,
    0x4c8b,
    [0xa9, 0x85, 0x27, 0x47, 0x07, 0x5b, 0x4f, 0x50],
);
/// `gEfiAuthenticatedVariableGuid`: variables with authenticated headers.
const AUTHENTICATED_STORE: Guid = Guid::new(
    0xaaf3_2c78,
    0x947b,
    0x439a,
    [0xa1, 0x80, 0x2e, 0x14, 0x4e, 0xc3, 0x77, 0x92],
);

pub const NON_VOLATILE: u32 = 0x1;
pub const BOOTSERVICE_ACCESS: u32 = 0x2;
pub const RUNTIME_ACCESS: u32 = 0x4;

const START_ID: u16 = 0x55aa;
/// `VAR_ADDED`: the state of a live variable.
const VAR_ADDED: u8 = 0x3f;
/// Clearing this bit marks a variable deleted (`VAR_DELETED` = 0xfd).
const VAR_DELETED_BIT: u8 = 0x02;
/// `VAR_IN_DELETED_TRANSITION`'s bit: cleared while a new copy is written; still live.
const IN_DELETED_TRANSITION_BIT: u8 = 0x01;
/// `AUTHENTICATED_VARIABLE_HEADER`: start id, state, reserved, attributes, monotonic count,
/// timestamp, public key index, name size, data size, vendor GUID.
const AUTH_HEADER: usize = 60;
/// `VARIABLE_STORE_HEADER`: GUID, size, format, state, reserved.
const STORE_HEADER: usize = 28;
/// `VARIABLE_STORE_FORMATTED` and `VARIABLE_STORE_HEALTHY`.
const STORE_FORMATTED: u8 = 0x5a;
const STORE_HEALTHY: u8 = 0xfe;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not a UEFI variable store: no firmware volume header (`_FVH` at offset 40)")]
    NoVolume,
    #[error(
        "the firmware volume is `{0}`, not the NV data volume (FFF12B8D-...) of a variable store"
    )]
    NotNvData(Guid),
    #[error("the variable store is `{0}`; only the authenticated format (AAF32C78-...) of OVMF's Secure Boot builds is written")]
    NotAuthenticated(Guid),
    #[error("the variable store is not formatted and healthy (format {format:#04x}, state {state:#04x})")]
    NotHealthy { format: u8, state: u8 },
    #[error("the variable store is truncated: {what} at offset {offset:#x} runs past {end:#x}")]
    Truncated {
        what: &'static str,
        offset: usize,
        end: usize,
    },
    #[error("variable `{name}` does not fit: {need} bytes needed, {free} free in the store")]
    Full {
        name: String,
        need: usize,
        free: usize,
    },
    #[error("a signature list is malformed at offset {0}")]
    BadSignatureList(usize),
}

/// One variable of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    pub name: String,
    pub guid: Guid,
    pub attributes: u32,
    pub data: Vec<u8>,
    /// Where its header starts in the file.
    pub offset: usize,
    /// Not deleted.
    pub live: bool,
}

/// A variable store file (`OVMF_VARS*.fd`), parsed; [`VarStore::set`] adds a variable and
/// [`VarStore::into_bytes`] gives the file back.
#[derive(Debug, Clone)]
pub struct VarStore {
    bytes: Vec<u8>,
    /// Where the first variable starts.
    first: usize,
    /// The end of the store (the header's size).
    end: usize,
    /// Where the erased space starts (the next variable goes there).
    free: usize,
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}
fn guid_at(b: &[u8], o: usize) -> Guid {
    Guid(b[o..o + 16].try_into().expect("16 bytes"))
}
fn align4(n: usize) -> usize {
    (n + 3) & !3
}

impl VarStore {
    /// Parses a store file: its firmware volume, its store header and every variable.
    pub fn parse(bytes: Vec<u8>) -> Result<VarStore, Error> {
        // EFI_FIRMWARE_VOLUME_HEADER: zero vector (16), FileSystemGuid, FvLength (u64),
        // Signature `_FVH`, Attributes (u32), HeaderLength (u16), ...
        if bytes.len() < 0x38 || &bytes[40..44] != b"_FVH" {
            return Err(Error::NoVolume);
        }
        let fs = guid_at(&bytes, 16);
        if fs != NV_DATA_FV {
            return Err(Error::NotNvData(fs));
        }
        let store = usize::from(u16_at(&bytes, 48));
        let truncated = |what, offset| Error::Truncated {
            what,
            offset,
            end: bytes.len(),
        };
        if store + STORE_HEADER > bytes.len() {
            return Err(truncated("the store header", store));
        }
        let kind = guid_at(&bytes, store);
        if kind != AUTHENTICATED_STORE {
            return Err(Error::NotAuthenticated(kind));
        }
        let (format, state) = (bytes[store + 20], bytes[store + 21]);
        if format != STORE_FORMATTED || state != STORE_HEALTHY {
            return Err(Error::NotHealthy { format, state });
        }
        let end = store + u32_at(&bytes, store + 16) as usize;
        if end > bytes.len() {
            return Err(truncated("the variable store", store));
        }
        let first = store + STORE_HEADER;
        let mut s = VarStore {
            bytes: Vec::new(),
            first,
            end,
            free: first,
        };
        let mut at = first;
        while at + AUTH_HEADER <= end && u16_at(&bytes, at) == START_ID {
            let (name, data) = (u32_at(&bytes, at + 36), u32_at(&bytes, at + 40));
            let next = at + AUTH_HEADER + name as usize + data as usize;
            if next > end {
                return Err(truncated("a variable", at));
            }
            at = align4(next);
        }
        s.free = at.min(end);
        s.bytes = bytes;
        Ok(s)
    }

    /// Every variable, deleted ones too, in store order.
    pub fn variables(&self) -> Vec<Variable> {
        let b = &self.bytes;
        let mut out = Vec::new();
        let mut at = self.first;
        while at < self.free {
            let state = b[at + 2];
            let (name_len, data_len) = (u32_at(b, at + 36) as usize, u32_at(b, at + 40) as usize);
            let name_at = at + AUTH_HEADER;
            let name: Vec<u16> = b[name_at..name_at + name_len]
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .take_while(|c| *c != 0)
                .collect();
            let data_at = name_at + name_len;
            out.push(Variable {
                name: String::from_utf16_lossy(&name),
                guid: guid_at(b, at + 44),
                attributes: u32_at(b, at + 4),
                data: b[data_at..data_at + data_len].to_vec(),
                offset: at,
                // VAR_ADDED, or VAR_ADDED while its replacement was being written.
                live: state | IN_DELETED_TRANSITION_BIT == VAR_ADDED,
            });
            at = align4(data_at + data_len);
        }
        out
    }

    /// The live variable `name` of `guid`.
    pub fn get(&self, name: &str, guid: Guid) -> Option<Variable> {
        self.variables()
            .into_iter()
            .find(|v| v.live && v.name == name && v.guid == guid)
    }

    /// Sets `name` of `guid`: a new variable in the erased space, any live one of that name
    /// marked deleted. Non-authenticated (no timestamp, no key): what a loader's
    /// `SetVariable` before `ExitBootServices` leaves for boot-service variables.
    pub fn set(
        &mut self,
        name: &str,
        guid: Guid,
        attributes: u32,
        data: &[u8],
    ) -> Result<(), Error> {
        let mut utf16: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
        utf16.extend([0, 0]);
        let mut v = Vec::with_capacity(AUTH_HEADER + utf16.len() + data.len());
        v.extend(START_ID.to_le_bytes());
        v.extend([VAR_ADDED, 0]);
        v.extend(attributes.to_le_bytes());
        // Monotonic count, timestamp (EFI_TIME, 16 bytes), public key index: unused.
        v.extend([0u8; 8 + 16 + 4]);
        v.extend((utf16.len() as u32).to_le_bytes());
        v.extend((data.len() as u32).to_le_bytes());
        v.extend(guid.0);
        v.extend(&utf16);
        v.extend(data);
        let need = align4(v.len());
        // Room for the new variable and for the erased header that ends the list.
        let free = self.end.saturating_sub(self.free);
        if need > free {
            return Err(Error::Full {
                name: name.to_owned(),
                need,
                free,
            });
        }
        for old in self.variables() {
            if old.live && old.name == name && old.guid == guid {
                self.bytes[old.offset + 2] &= !VAR_DELETED_BIT;
            }
        }
        v.resize(need, 0xff);
        self.bytes[self.free..self.free + need].copy_from_slice(&v);
        self.free += need;
        Ok(())
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// An `EFI_SIGNATURE_LIST` of one DER certificate owned by `owner`: what `MokList` holds per
/// enrolled key.
pub fn x509_signature_list(owner: Guid, der: &[u8]) -> Vec<u8> {
    let entry = 16 + der.len();
    let mut v = Vec::with_capacity(28 + entry);
    v.extend(CERT_X509.0);
    v.extend(((28 + entry) as u32).to_le_bytes());
    v.extend(0u32.to_le_bytes());
    v.extend((entry as u32).to_le_bytes());
    v.extend(owner.0);
    v.extend(der);
    v
}

/// The entries of a signature database (`db`, `MokList`): (list type, owner, data).
pub fn signature_lists(mut b: &[u8]) -> Result<Vec<(Guid, Guid, Vec<u8>)>, Error> {
    let mut out = Vec::new();
    let mut at = 0;
    while !b.is_empty() {
        if b.len() < 28 {
            return Err(Error::BadSignatureList(at));
        }
        let kind = guid_at(b, 0);
        let (list, header, size) = (
            u32_at(b, 16) as usize,
            u32_at(b, 20) as usize,
            u32_at(b, 24) as usize,
        );
        if list < 28 + header || list > b.len() || size < 16 || (list - 28 - header) % size != 0 {
            return Err(Error::BadSignatureList(at));
        }
        for e in b[28 + header..list].chunks_exact(size) {
            out.push((kind, guid_at(e, 0), e[16..].to_vec()));
        }
        b = &b[list..];
        at += list;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store as OVMF formats it: the volume header, the authenticated store header, one
    /// variable (`CustomMode`, deleted, as in Debian's `OVMF_VARS_4M.ms.fd`), erased space.
    fn store(size: usize) -> Vec<u8> {
        let mut b = vec![0u8; 0x48];
        b[16..32].copy_from_slice(&NV_DATA_FV.0);
        b[32..40].copy_from_slice(&((size + 0x48) as u64).to_le_bytes());
        b[40..44].copy_from_slice(b"_FVH");
        b[48..50].copy_from_slice(&0x48u16.to_le_bytes());
        b.extend(AUTHENTICATED_STORE.0);
        b.extend((size as u32).to_le_bytes());
        b.extend([STORE_FORMATTED, STORE_HEALTHY, 0, 0, 0, 0, 0, 0]);
        b.resize(0x48 + size, 0xff);
        let mut s = VarStore::parse(b).unwrap();
        s.set("CustomMode", GLOBAL_VARIABLE, 3, &[0]).unwrap();
        s.set("CustomMode", GLOBAL_VARIABLE, 3, &[1]).unwrap();
        s.into_bytes()
    }

    #[test]
    fn guids_print_as_specifications_write_them() {
        assert_eq!(
            SHIM_LOCK.to_string(),
            "605dab50-e046-4300-abb6-3dd810dd8b23"
        );
        assert_eq!(
            CERT_X509.to_string(),
            "a5c059a1-94e4-4aa7-87b5-ab155c2bf072"
        );
    }

    #[test]
    fn a_variable_set_reads_back_and_replaces_the_old_one() {
        let mut s = VarStore::parse(store(4096)).unwrap();
        assert_eq!(s.get("CustomMode", GLOBAL_VARIABLE).unwrap().data, [1]);
        let cert = b"not really DER, but bytes".to_vec();
        let esl = x509_signature_list(SHIM_LOCK, &cert);
        s.set(
            "MokList",
            SHIM_LOCK,
            NON_VOLATILE | BOOTSERVICE_ACCESS,
            &esl,
        )
        .unwrap();
        s.set(
            "MokList",
            SHIM_LOCK,
            NON_VOLATILE | BOOTSERVICE_ACCESS,
            &esl,
        )
        .unwrap();
        // Parsed again from the bytes, as the firmware will.
        let again = VarStore::parse(s.into_bytes()).unwrap();
        let all = again.variables();
        let moks: Vec<_> = all.iter().filter(|v| v.name == "MokList").collect();
        assert_eq!(moks.len(), 2);
        assert_eq!(moks.iter().filter(|v| v.live).count(), 1);
        let v = again.get("MokList", SHIM_LOCK).unwrap();
        assert_eq!(v.attributes, 3);
        assert_eq!(v.offset % 4, 0);
        assert_eq!(
            signature_lists(&v.data).unwrap(),
            [(CERT_X509, SHIM_LOCK, cert)]
        );
        // Another GUID's variable of the same name is another variable.
        assert!(again.get("MokList", GLOBAL_VARIABLE).is_none());
    }

    #[test]
    fn a_full_store_is_refused_and_left_alone() {
        let before = store(256);
        let mut s = VarStore::parse(before.clone()).unwrap();
        let e = s.set("MokList", SHIM_LOCK, 3, &[0u8; 300]).unwrap_err();
        assert!(matches!(e, Error::Full { .. }), "{e}");
        assert_eq!(s.into_bytes(), before);
    }

    #[test]
    fn what_is_not_a_store_is_named() {
        assert!(matches!(
            VarStore::parse(vec![0; 4096]),
            Err(Error::NoVolume)
        ));
        let mut b = store(4096);
        b[0x48] ^= 1;
        assert!(matches!(
            VarStore::parse(b),
            Err(Error::NotAuthenticated(_))
        ));
        let mut b = store(4096);
        // A variable whose data runs past the store.
        let first = 0x48 + STORE_HEADER;
        b[first + 40..first + 44].copy_from_slice(&0x10000u32.to_le_bytes());
        assert!(matches!(VarStore::parse(b), Err(Error::Truncated { .. })));
    }
}
