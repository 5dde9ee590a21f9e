//! Whether a module is one its kernel will load: ELF machine, `.modinfo` (`vermagic` equal to
//! the kernel's release and flags, `name`, `srcversion`, `license`), every undefined symbol
//! exported by that kernel (`Module.symvers`), and where MODVERSIONS is on each `__versions`
//! CRC equal to the kernel's. Pure over bytes: the caller reads the files.

use std::collections::BTreeMap;

use object::{Architecture, Object, ObjectSection, ObjectSymbol};

use crate::kernel::{Arch, KernelTree};

#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error("not an ELF relocatable object: {0}")]
    Elf(String),
    #[error("the module is for {found}, the kernel `{release}` is {expected:?}")]
    Machine {
        found: String,
        expected: Arch,
        release: String,
    },
    #[error("the module has no `.modinfo` section")]
    NoModinfo,
    #[error("the module's `.modinfo` has no `{0}`")]
    MissingModinfo(&'static str),
    #[error("vermagic `{found}` does not match kernel `{release}`'s `{expected}`")]
    Vermagic {
        found: String,
        expected: String,
        release: String,
    },
    #[error("kernel `{release}` does not export {} symbol(s) the module uses: {}", .symbols.len(), .symbols.join(", "))]
    Unexported {
        symbols: Vec<String>,
        release: String,
    },
    #[error("kernel `{release}` has CRC {kernel:#010x} for `{symbol}`, the module was built against {module:#010x}")]
    Crc {
        symbol: String,
        module: u32,
        kernel: u32,
        release: String,
    },
    #[error("kernel `{release}` has MODVERSIONS on but the module has no `__versions`")]
    NoVersions { release: String },
    #[error("`__versions` entry at offset {offset} is not a whole variable-length entry (`u32 next; u32 crc; char name[]`)")]
    BadVariableVersions { offset: usize },
    #[error("`__versions` is {0} bytes, not a whole number of 64-byte entries")]
    BadVersions(usize),
}

/// A kernel's `Module.symvers`: exported symbol -> (CRC, exporting module).
#[derive(Debug, Clone, Default)]
pub struct Symvers(BTreeMap<String, (u32, String)>);

impl Symvers {
    /// `0xcrc<TAB>symbol<TAB>module<TAB>export type[<TAB>namespace]` lines.
    pub fn parse(text: &str) -> Symvers {
        let mut m = BTreeMap::new();
        for l in text.lines() {
            let mut f = l.split('\t');
            let (Some(crc), Some(sym), Some(module)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let Ok(crc) = u32::from_str_radix(crc.trim_start_matches("0x"), 16) else {
                continue;
            };
            m.insert(sym.to_owned(), (crc, module.to_owned()));
        }
        Symvers(m)
    }

    pub fn crc(&self, symbol: &str) -> Option<u32> {
        self.0.get(symbol).map(|(c, _)| *c)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What a valid module says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    pub name: String,
    pub vermagic: String,
    pub srcversion: String,
    pub license: String,
    /// Undefined symbols, all exported by the kernel.
    pub imports: usize,
    /// `__versions` entries checked against the kernel's CRCs.
    pub crcs_checked: usize,
}

/// Upstream's `__versions`: `struct modversion_info { unsigned long crc; char name[64 -
/// sizeof(long)]; }`.
fn fixed_entries(data: &[u8], le: bool) -> Result<Vec<(u32, String)>, ValidateError> {
    if !data.len().is_multiple_of(64) {
        return Err(ValidateError::BadVersions(data.len()));
    }
    Ok(data
        .chunks(64)
        .map(|e| {
            let raw: [u8; 8] = e[..8].try_into().expect("8 bytes");
            let crc = match le {
                true => u64::from_le_bytes(raw),
                false => u64::from_be_bytes(raw),
            } as u32;
            let name_bytes = &e[8..];
            let end = name_bytes.iter().position(|b| *b == 0).unwrap_or(56);
            (
                crc,
                String::from_utf8_lossy(&name_bytes[..end]).into_owned(),
            )
        })
        .collect())
}

/// Ubuntu's variable-length `__versions`: each entry `u32 next` (its own length, padded), `u32
/// crc`, the NUL-terminated name; entries follow each other to the end of the section.
fn variable_entries(data: &[u8], le: bool) -> Result<Vec<(u32, String)>, ValidateError> {
    let u32_at = |i: usize| -> Option<u32> {
        let raw: [u8; 4] = data.get(i..i + 4)?.try_into().ok()?;
        Some(match le {
            true => u32::from_le_bytes(raw),
            false => u32::from_be_bytes(raw),
        })
    };
    let mut out = Vec::new();
    let mut i = 0;
    // The section is padded to its alignment with zeros after the last entry.
    while i < data.len() && data[i..].iter().any(|b| *b != 0) {
        let bad = || ValidateError::BadVariableVersions { offset: i };
        let next = u32_at(i).ok_or_else(bad)? as usize;
        let crc = u32_at(i + 4).ok_or_else(bad)?;
        let end = if next == 0 { data.len() } else { i + next };
        let name = data.get(i + 8..end).ok_or_else(bad)?;
        let len = name.iter().position(|b| *b == 0).ok_or_else(bad)?;
        if next != 0 && next < 9 {
            return Err(bad());
        }
        out.push((crc, String::from_utf8_lossy(&name[..len]).into_owned()));
        if next == 0 {
            break;
        }
        i = end;
    }
    Ok(out)
}

/// The `vermagic` a module of this kernel must carry (`include/linux/vermagic.h`): the release,
/// then `SMP `, `preempt `/`preempt_rt `, `mod_unload `, `modversions ` and the architecture's
/// own word (arm64's `MODULE_ARCH_VERMAGIC` is `aarch64`, with no space after it), each where
/// the kernel's configuration has it.
pub fn expected_vermagic(tree: &KernelTree) -> String {
    let c = &tree.config;
    let mut v = format!("{} ", tree.release);
    if c.builtin("SMP") {
        v.push_str("SMP ");
    }
    match &tree.module_abi.vermagic_preempt {
        Some(word) => v.push_str(word),
        None if c.builtin("PREEMPT_RT") => v.push_str("preempt_rt "),
        None if c.builtin("PREEMPT_BUILD") || c.builtin("PREEMPT") => v.push_str("preempt "),
        None => {}
    }
    if c.builtin("MODULE_UNLOAD") {
        v.push_str("mod_unload ");
    }
    if c.builtin("MODVERSIONS") {
        v.push_str("modversions ");
    }
    if tree.arch == Arch::Aarch64 {
        v.push_str("aarch64");
    }
    v
}

fn machine_of(a: Architecture) -> Option<Arch> {
    Some(match a {
        Architecture::X86_64 => Arch::X86_64,
        Architecture::Aarch64 => Arch::Aarch64,
        Architecture::S390x => Arch::S390x,
        Architecture::PowerPc64 => Arch::Ppc64le,
        Architecture::Riscv64 => Arch::Riscv64,
        _ => return None,
    })
}

/// `.modinfo`'s `key=value` strings, in order.
pub fn modinfo(bytes: &[u8]) -> Result<Vec<(String, String)>, ValidateError> {
    let f = object::File::parse(bytes).map_err(|e| ValidateError::Elf(e.to_string()))?;
    let s = f
        .section_by_name(".modinfo")
        .ok_or(ValidateError::NoModinfo)?;
    let data = s.data().map_err(|e| ValidateError::Elf(e.to_string()))?;
    Ok(data
        .split(|b| *b == 0)
        .filter(|e| !e.is_empty())
        .filter_map(|e| {
            let t = String::from_utf8_lossy(e);
            let (k, v) = t.split_once('=')?;
            Some((k.to_owned(), v.to_owned()))
        })
        .collect())
}

/// Validates a kernel module (`.ko`) without its kernel's headers: a relocatable ELF for the
/// expected machine, `.modinfo` whole (`name`, `vermagic`, `srcversion`, `license`, `version`),
/// its `vermagic` naming the expected kernel release and its `version` the driver version.
/// With the headers, [`validate`] also checks every symbol and CRC (`build` does); a kernel
/// proves it by loading it (`verify`).
pub fn headerless(bytes: &[u8], expect: &crate::validate::Expect) -> crate::validate::Report {
    use object::Object;
    let mut r = crate::validate::Report::default();
    let file = match object::File::parse(bytes) {
        Ok(f) if f.kind() == object::ObjectKind::Relocatable => f,
        Ok(f) => {
            r.check(
                "elf-type",
                false,
                format!("{:?} object (want relocatable)", f.kind()),
            );
            return r;
        }
        Err(e) => {
            r.check("elf-parse", false, format!("not an ELF object: {e}"));
            return r;
        }
    };
    let machine = match file.architecture() {
        object::Architecture::X86_64 => Some(Arch::X86_64),
        object::Architecture::Aarch64 => Some(Arch::Aarch64),
        _ => None,
    };
    match expect.arch {
        Some(want) => r.check(
            "elf-machine",
            machine == Some(want),
            format!("{:?} (want {want})", file.architecture()),
        ),
        None => r.check(
            "elf-machine",
            machine.is_some(),
            format!("{:?}", file.architecture()),
        ),
    }
    let info = match modinfo(bytes) {
        Ok(i) => i,
        Err(e) => {
            r.check("modinfo", false, e.to_string());
            return r;
        }
    };
    let get = |k: &str| {
        info.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let missing: Vec<&str> = ["name", "vermagic", "srcversion", "license", "version"]
        .into_iter()
        .filter(|k| get(k).is_none())
        .collect();
    r.check(
        "modinfo",
        missing.is_empty(),
        match missing.is_empty() {
            true => format!("module `{}`", get("name").unwrap_or_default()),
            false => format!("`.modinfo` lacks {}", missing.join(", ")),
        },
    );
    r.license = get("license");
    r.probe_version = get("version");
    r.build_commit = get("build_commit");
    let vermagic = get("vermagic").unwrap_or_default();
    let release = vermagic.split_whitespace().next().unwrap_or("").to_owned();
    r.kernel_version = Some(release.clone());
    match &expect.kernel_release {
        Some(want) => r.check(
            "vermagic",
            &release == want,
            format!(
                "vermagic `{}`, kernel release `{want}` (the kernel refuses a module of another)",
                vermagic.trim()
            ),
        ),
        None => r.check(
            "vermagic",
            !release.is_empty(),
            format!("vermagic `{}`", vermagic.trim()),
        ),
    }
    if let Some(want) = &expect.driver_version {
        let got = r.probe_version.clone().unwrap_or_default();
        r.check(
            "driver-version",
            &got == want,
            format!("version `{got}`, driver version `{want}`"),
        );
    }
    r
}

/// The module's signature as a check: `signature` says who signed it with which hash (or that
/// it is unsigned, which is no failure by itself); with `cert`, `signature-verify` checks it
/// against that certificate as the kernel would, and an unsigned module fails it.
pub fn signature_checks(
    r: &mut crate::validate::Report,
    bytes: &[u8],
    cert: Option<&super::sign::Cert>,
) {
    use super::sign;
    let read = sign::read(bytes);
    match &read {
        Ok(None) => r.check("signature", true, "unsigned"),
        Ok(Some(s)) => r.check("signature", true, describe(s)),
        Err(e) => r.check("signature", false, e.to_string()),
    }
    let Some(cert) = cert else { return };
    let id = &cert.identity;
    match sign::verify(bytes, cert) {
        Ok(_) => r.check(
            "signature-verify",
            true,
            format!(
                "verified by `{}` (serial {}{})",
                id.subject,
                id.serial,
                id.key_id
                    .as_ref()
                    .map(|k| format!(", key id {k}"))
                    .unwrap_or_default()
            ),
        ),
        Err(e) => r.check("signature-verify", false, e.to_string()),
    }
}

fn describe(s: &super::sign::Signature) -> String {
    let who = match (&s.issuer, &s.serial, &s.key_id) {
        (Some(i), Some(n), _) => format!("issuer `{i}` serial {n}"),
        (_, _, Some(k)) => format!("key id {k}"),
        _ => "an unnamed signer".into(),
    };
    format!(
        "signed ({}, PKCS#7, {} bytes) by {who}",
        s.hash.name(),
        s.length
    )
}

/// Checks a module against the kernel it is meant for and that kernel's `Module.symvers`.
pub fn validate(
    bytes: &[u8],
    tree: &KernelTree,
    symvers: &Symvers,
) -> Result<Report, ValidateError> {
    let f = object::File::parse(bytes).map_err(|e| ValidateError::Elf(e.to_string()))?;
    if f.kind() != object::ObjectKind::Relocatable {
        return Err(ValidateError::Elf(format!("{:?} object", f.kind())));
    }
    if machine_of(f.architecture()) != Some(tree.arch) || f.is_little_endian() == tree.big_endian {
        return Err(ValidateError::Machine {
            found: format!(
                "{:?} ({})",
                f.architecture(),
                if f.is_little_endian() {
                    "little"
                } else {
                    "big"
                }
            ),
            expected: tree.arch,
            release: tree.release.clone(),
        });
    }
    let info = modinfo(bytes)?;
    let get = |k: &'static str| -> Result<String, ValidateError> {
        info.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .ok_or(ValidateError::MissingModinfo(k))
    };
    let vermagic = get("vermagic")?;
    let name = get("name")?;
    let srcversion = get("srcversion")?;
    let license = get("license")?;
    let expected = expected_vermagic(tree);
    if vermagic != expected {
        return Err(ValidateError::Vermagic {
            found: vermagic,
            expected,
            release: tree.release.clone(),
        });
    }
    let mut missing: Vec<String> = f
        .symbols()
        .filter(|s| s.is_undefined())
        .filter_map(|s| s.name().ok().map(str::to_owned))
        .filter(|n| !n.is_empty())
        .collect();
    missing.sort();
    missing.dedup();
    let imports = missing.len();
    missing.retain(|n| symvers.crc(n).is_none());
    if !missing.is_empty() {
        return Err(ValidateError::Unexported {
            symbols: missing,
            release: tree.release.clone(),
        });
    }
    let mut crcs_checked = 0;
    if tree.config.builtin("MODVERSIONS") {
        let s = f
            .section_by_name("__versions")
            .ok_or_else(|| ValidateError::NoVersions {
                release: tree.release.clone(),
            })?;
        let data = s.data().map_err(|e| ValidateError::Elf(e.to_string()))?;
        let entries = match tree.module_abi.variable_modversions {
            true => variable_entries(data, f.is_little_endian())?,
            false => fixed_entries(data, f.is_little_endian())?,
        };
        for (crc, symbol) in entries {
            match symvers.crc(&symbol) {
                Some(k) if k == crc => crcs_checked += 1,
                Some(k) => {
                    return Err(ValidateError::Crc {
                        symbol,
                        module: crc,
                        kernel: k,
                        release: tree.release.clone(),
                    })
                }
                None => {
                    return Err(ValidateError::Unexported {
                        symbols: vec![symbol],
                        release: tree.release.clone(),
                    })
                }
            }
        }
    }
    Ok(Report {
        name,
        vermagic,
        srcversion,
        license,
        imports,
        crcs_checked,
    })
}

#[cfg(test)]
mod vermagic_tests {
    use super::*;

    #[test]
    fn ubuntus_variable_length_versions_are_read_entry_by_entry() {
        let mut d = Vec::new();
        for (crc, name) in [(0x8a35b432u32, "sme_me_mask"), (0x11u32, "module_layout")] {
            let mut e = Vec::new();
            e.extend_from_slice(&crc.to_le_bytes());
            e.extend_from_slice(name.as_bytes());
            e.push(0);
            while (e.len() + 4) % 4 != 0 {
                e.push(0);
            }
            d.extend_from_slice(&((e.len() + 4) as u32).to_le_bytes());
            d.extend_from_slice(&e);
        }
        // Zeros after the last entry are the section's alignment.
        let mut padded = d.clone();
        padded.extend_from_slice(&[0; 12]);
        assert_eq!(variable_entries(&padded, true).unwrap().len(), 2);
        let v = variable_entries(&d, true).unwrap();
        assert_eq!(
            v,
            [
                (0x8a35b432, "sme_me_mask".to_owned()),
                (0x11, "module_layout".to_owned())
            ]
        );
        // An entry running past the section, and a name with no NUL, are refused.
        let mut cut = d.clone();
        cut.truncate(d.len() - 3);
        assert!(matches!(
            variable_entries(&cut, true),
            Err(ValidateError::BadVariableVersions { .. })
        ));
        let mut bad = d.clone();
        bad[0] = 200;
        assert!(variable_entries(&bad, true).is_err());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symvers_lines_are_read() {
        let s = Symvers::parse(
            "0x4c9d28b0\tphys_base\tvmlinux\tEXPORT_SYMBOL\t\n0x039823de\tinit_uts_ns\tvmlinux\tEXPORT_SYMBOL_GPL\t\nbroken\n",
        );
        assert_eq!(s.len(), 2);
        assert_eq!(s.crc("phys_base"), Some(0x4c9d28b0));
        assert_eq!(s.crc("nope"), None);
    }

    use crate::validate::test_elf::Elf;
    use object::elf::{
        EM_AARCH64, EM_BPF, EM_X86_64, ET_EXEC, SHF_ALLOC, SHF_EXECINSTR, SHT_PROGBITS,
    };

    const RELEASE: &str = "6.1.0-99-amd64";
    const VERMAGIC: &str = "6.1.0-99-amd64 SMP preempt mod_unload modversions ";
    const MODINFO: [(&str, &str); 5] = [
        ("version", "8.0.0+driver"),
        ("license", "Dual MIT/GPL"),
        ("srcversion", "4D2A3A5C1E3F6B7A8C9D0E1"),
        ("name", "falco"),
        ("vermagic", VERMAGIC),
    ];

    fn modinfo_bytes(pairs: &[(&str, &str)]) -> Vec<u8> {
        pairs
            .iter()
            .flat_map(|(k, v)| format!("{k}={v}\0").into_bytes())
            .collect()
    }

    /// `struct modversion_info` entries: u64 CRC, 56-byte name.
    fn versions(entries: &[(u32, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (crc, name) in entries {
            out.extend_from_slice(&(*crc as u64).to_le_bytes());
            let mut n = name.as_bytes().to_vec();
            n.resize(56, 0);
            out.extend_from_slice(&n);
        }
        out
    }

    /// A module as kbuild makes one for `RELEASE`: code calling `_printk`, `.modinfo`, and
    /// `__versions` with the kernel's CRCs.
    fn module() -> Elf {
        let mut e = Elf::new(EM_X86_64);
        let exec = (SHF_ALLOC | SHF_EXECINSTR) as u64;
        e.section(".text", SHT_PROGBITS, exec, &[0xc3]);
        e.section(
            ".modinfo",
            SHT_PROGBITS,
            SHF_ALLOC as u64,
            &modinfo_bytes(&MODINFO),
        );
        let v = versions(&[(0x1234_5678, "module_layout"), (0x9abc_def0, "_printk")]);
        e.section("__versions", SHT_PROGBITS, SHF_ALLOC as u64, &v);
        e.symbol("_printk", None, 0, 0);
        e
    }

    fn tree() -> KernelTree {
        KernelTree {
            root: Default::default(),
            objtree: Default::default(),
            srctree: Default::default(),
            release: RELEASE.into(),
            uname_v: None,
            kernel_version: None,
            arch: Arch::X86_64,
            big_endian: false,
            version: (6, 1, 0),
            os_release: None,
            compiler: None,
            module_abi: Default::default(),
            config: crate::kernel::Config::parse_dotconfig(
                "CONFIG_SMP=y\nCONFIG_PREEMPT=y\nCONFIG_MODULE_UNLOAD=y\nCONFIG_MODVERSIONS=y\n",
            ),
        }
    }

    fn symvers() -> Symvers {
        Symvers::parse(
            "0x12345678\tmodule_layout\tvmlinux\tEXPORT_SYMBOL\t\n0x9abcdef0\t_printk\tvmlinux\tEXPORT_SYMBOL\t\n",
        )
    }

    fn check(e: &Elf) -> Result<Report, ValidateError> {
        validate(&e.bytes(), &tree(), &symvers())
    }

    fn set_modinfo(e: &mut Elf, pairs: &[(&str, &str)]) {
        *e.data_mut(".modinfo") = modinfo_bytes(pairs);
    }

    #[test]
    fn a_module_of_the_kernel_validates() {
        assert_eq!(expected_vermagic(&tree()), VERMAGIC);
        let r = check(&module()).unwrap();
        assert_eq!(
            r,
            Report {
                name: "falco".into(),
                vermagic: VERMAGIC.into(),
                srcversion: MODINFO[2].1.into(),
                license: "Dual MIT/GPL".into(),
                imports: 1,
                crcs_checked: 2,
            }
        );
        let expect = crate::validate::Expect {
            kernel_release: Some(RELEASE.into()),
            driver_version: Some("8.0.0+driver".into()),
            arch: Some(Arch::X86_64),
            ..Default::default()
        };
        let r = headerless(&module().bytes(), &expect);
        assert!(r.ok(), "{:?}", r.failures());
        let names: Vec<&str> = r.checks.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            ["elf-machine", "modinfo", "vermagic", "driver-version"]
        );
    }

    #[test]
    fn not_a_relocatable_elf_is_refused() {
        match validate(b"not an object", &tree(), &symvers()) {
            Err(ValidateError::Elf(_)) => {}
            other => panic!("{other:?}"),
        }
        let mut e = module();
        e.e_type = ET_EXEC;
        let err = check(&e).unwrap_err();
        assert!(matches!(err, ValidateError::Elf(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "not an ELF relocatable object: Executable object"
        );
    }

    #[test]
    fn a_module_for_another_machine_is_refused() {
        let mut e = module();
        e.machine = EM_AARCH64;
        let err = check(&e).unwrap_err();
        assert!(matches!(err, ValidateError::Machine { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("the module is for Aarch64 (little), the kernel `{RELEASE}` is X86_64")
        );
    }

    #[test]
    fn no_modinfo_and_each_missing_key_are_refused() {
        let mut e = module();
        e.drop_section(".modinfo");
        let err = check(&e).unwrap_err();
        assert!(matches!(err, ValidateError::NoModinfo), "{err:?}");
        for key in ["vermagic", "name", "srcversion", "license"] {
            let mut e = module();
            let pairs: Vec<(&str, &str)> =
                MODINFO.iter().copied().filter(|(k, _)| *k != key).collect();
            set_modinfo(&mut e, &pairs);
            let err = check(&e).unwrap_err();
            assert!(
                matches!(err, ValidateError::MissingModinfo(k) if k == key),
                "{key}: {err:?}"
            );
            assert_eq!(
                err.to_string(),
                format!("the module's `.modinfo` has no `{key}`")
            );
        }
    }

    #[test]
    fn another_vermagic_is_refused() {
        let mut e = module();
        let mut pairs = MODINFO;
        pairs[4].1 = "6.1.0-99-amd64 SMP preempt mod_unload ";
        set_modinfo(&mut e, &pairs);
        let err = check(&e).unwrap_err();
        assert!(matches!(err, ValidateError::Vermagic { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("vermagic `6.1.0-99-amd64 SMP preempt mod_unload ` does not match kernel `{RELEASE}`'s `{VERMAGIC}`")
        );
    }

    #[test]
    fn a_symbol_the_kernel_does_not_export_is_refused() {
        let mut e = module();
        e.symbol("not_exported_anywhere", None, 0, 0);
        let err = check(&e).unwrap_err();
        assert!(
            matches!(&err, ValidateError::Unexported { symbols, .. } if symbols == &["not_exported_anywhere"]),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("kernel `{RELEASE}` does not export 1 symbol(s) the module uses: not_exported_anywhere")
        );
        // Named in `__versions` only.
        let mut e = module();
        e.data_mut("__versions")
            .extend_from_slice(&versions(&[(1, "not_in_symvers")]));
        let err = check(&e).unwrap_err();
        assert!(
            matches!(&err, ValidateError::Unexported { symbols, .. } if symbols == &["not_in_symvers"]),
            "{err:?}"
        );
    }

    #[test]
    fn another_crc_is_refused() {
        let mut e = module();
        *e.data_mut("__versions") =
            versions(&[(0x1234_5678, "module_layout"), (0x9abc_def1, "_printk")]);
        let err = check(&e).unwrap_err();
        assert!(matches!(err, ValidateError::Crc { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("kernel `{RELEASE}` has CRC 0x9abcdef0 for `_printk`, the module was built against 0x9abcdef1")
        );
    }

    #[test]
    fn modversions_without_versions_and_torn_versions_are_refused() {
        let mut e = module();
        e.drop_section("__versions");
        let err = check(&e).unwrap_err();
        assert!(matches!(err, ValidateError::NoVersions { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("kernel `{RELEASE}` has MODVERSIONS on but the module has no `__versions`")
        );
        let mut e = module();
        e.data_mut("__versions").pop();
        let err = check(&e).unwrap_err();
        assert!(matches!(err, ValidateError::BadVersions(127)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "`__versions` is 127 bytes, not a whole number of 64-byte entries"
        );
    }

    fn headerless_fails(
        bytes: &[u8],
        expect: &crate::validate::Expect,
    ) -> Vec<(&'static str, String)> {
        headerless(bytes, expect)
            .failures()
            .into_iter()
            .map(|c| (c.name, c.detail.clone()))
            .collect()
    }

    fn full_expect() -> crate::validate::Expect {
        crate::validate::Expect {
            kernel_release: Some(RELEASE.into()),
            driver_version: Some("8.0.0+driver".into()),
            arch: Some(Arch::X86_64),
            ..Default::default()
        }
    }

    #[test]
    fn headerless_elf_type_and_parse_fail() {
        let mut e = module();
        e.e_type = ET_EXEC;
        assert_eq!(
            headerless_fails(&e.bytes(), &full_expect()),
            [(
                "elf-type",
                "Executable object (want relocatable)".to_owned()
            )]
        );
        let f = headerless_fails(b"not an object", &full_expect());
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].0, "elf-parse");
        assert!(f[0].1.starts_with("not an ELF object: "), "{f:?}");
    }

    #[test]
    fn headerless_elf_machine_fails_for_another_or_an_unknown_machine() {
        let mut e = module();
        e.machine = EM_AARCH64;
        assert_eq!(
            headerless_fails(&e.bytes(), &full_expect()),
            [("elf-machine", "Aarch64 (want x86_64)".to_owned())]
        );
        let mut e = module();
        e.machine = EM_BPF;
        assert_eq!(
            headerless_fails(&e.bytes(), &Default::default()),
            [("elf-machine", "Bpf".to_owned())]
        );
    }

    #[test]
    fn headerless_modinfo_fails_when_absent_or_lacking_keys() {
        let mut e = module();
        e.drop_section(".modinfo");
        assert_eq!(
            headerless_fails(&e.bytes(), &full_expect()),
            [("modinfo", "the module has no `.modinfo` section".to_owned())]
        );
        let mut e = module();
        let pairs: Vec<(&str, &str)> = MODINFO
            .iter()
            .copied()
            .filter(|(k, _)| *k != "srcversion" && *k != "license")
            .collect();
        set_modinfo(&mut e, &pairs);
        assert_eq!(
            headerless_fails(&e.bytes(), &full_expect()),
            [("modinfo", "`.modinfo` lacks srcversion, license".to_owned())]
        );
    }

    #[test]
    fn headerless_vermagic_fails_for_another_release_or_none() {
        let other = crate::validate::Expect {
            kernel_release: Some("6.1.0-98-amd64".into()),
            ..full_expect()
        };
        assert_eq!(
            headerless_fails(&module().bytes(), &other),
            [(
                "vermagic",
                format!("vermagic `{}`, kernel release `6.1.0-98-amd64` (the kernel refuses a module of another)", VERMAGIC.trim())
            )]
        );
        let mut e = module();
        let pairs: Vec<(&str, &str)> = MODINFO
            .iter()
            .copied()
            .filter(|(k, _)| *k != "vermagic")
            .collect();
        set_modinfo(&mut e, &pairs);
        assert_eq!(
            headerless_fails(&e.bytes(), &Default::default()),
            [
                ("modinfo", "`.modinfo` lacks vermagic".to_owned()),
                ("vermagic", "vermagic ``".to_owned())
            ]
        );
    }

    #[test]
    fn headerless_driver_version_fails_for_another_driver() {
        let expect = crate::validate::Expect {
            driver_version: Some("9.1.0+driver".into()),
            ..full_expect()
        };
        assert_eq!(
            headerless_fails(&module().bytes(), &expect),
            [(
                "driver-version",
                "version `8.0.0+driver`, driver version `9.1.0+driver`".to_owned()
            )]
        );
    }
}
