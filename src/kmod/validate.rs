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
    if c.builtin("PREEMPT_RT") {
        v.push_str("preempt_rt ");
    } else if c.builtin("PREEMPT_BUILD") || c.builtin("PREEMPT") {
        v.push_str("preempt ");
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
        // struct modversion_info { unsigned long crc; char name[64 - sizeof(long)]; }
        if data.len() % 64 != 0 {
            return Err(ValidateError::BadVersions(data.len()));
        }
        for e in data.chunks(64) {
            let raw: [u8; 8] = e[..8].try_into().expect("8 bytes");
            let crc = if f.is_little_endian() {
                u64::from_le_bytes(raw)
            } else {
                u64::from_be_bytes(raw)
            } as u32;
            let name_bytes = &e[8..];
            let end = name_bytes.iter().position(|b| *b == 0).unwrap_or(56);
            let symbol = String::from_utf8_lossy(&name_bytes[..end]).into_owned();
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
}
