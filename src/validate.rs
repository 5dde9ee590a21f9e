//! Checks a built probe before anyone ships it: ELF shape, metadata sections, maps, programs,
//! relocations. Pure over bytes (the `object` crate); each failure names its check.

use object::elf;
use object::read::elf::{ElfFile64, FileHeader, Rel, SectionHeader, Sym};
use object::{LittleEndian as LE, Object, ObjectSection, ObjectSymbol};

use crate::kernel::Arch;

/// Size of the legacy probe's `struct bpf_map_def`.
pub const MAP_DEF_SIZE: usize = 28;

/// What the object must match; `None` skips that comparison.
#[derive(Debug, Default, Clone)]
pub struct Expect {
    pub kernel_release: Option<String>,
    pub driver_version: Option<String>,
    pub api_version: Option<u64>,
    pub schema_version: Option<u64>,
    pub arch: Option<Arch>,
}

/// One check's verdict.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// What was found, and every check.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    pub kernel_version: Option<String>,
    pub probe_version: Option<String>,
    pub license: Option<String>,
    pub build_commit: Option<String>,
    pub api_version: Option<u64>,
    pub schema_version: Option<u64>,
    pub maps: Vec<String>,
    pub programs: Vec<String>,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
    pub fn failures(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| !c.ok).collect()
    }
    pub(crate) fn check(&mut self, name: &'static str, ok: bool, detail: impl Into<String>) {
        self.checks.push(Check {
            name,
            ok,
            detail: detail.into(),
        });
    }
}

#[derive(Debug, thiserror::Error)]
#[error("probe failed validation: {}", .0.failures().iter().map(|c| format!("{}: {}", c.name, c.detail)).collect::<Vec<_>>().join("; "))]
pub struct Invalid(pub Report);

/// The text of a NUL-terminated (or unterminated) byte string.
pub(crate) fn cstr(data: &[u8]) -> String {
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    String::from_utf8_lossy(&data[..end]).into_owned()
}

/// Validates a probe object.
pub fn validate(bytes: &[u8], expect: &Expect) -> Report {
    let mut r = Report::default();
    let hdr = bytes.get(..20);
    let ident_ok = hdr.is_some_and(|h| {
        h[..4] == *b"\x7fELF" && h[4] == elf::ELFCLASS64 && h[5] == elf::ELFDATA2LSB
    });
    r.check(
        "elf-header",
        ident_ok,
        if ident_ok {
            "ELF64 little-endian"
        } else {
            "not an ELF64 little-endian object"
        },
    );
    if !ident_ok {
        return r;
    }
    let file = match ElfFile64::<LE>::parse(bytes) {
        Ok(f) => f,
        Err(e) => {
            r.check("elf-parse", false, e.to_string());
            return r;
        }
    };
    let eh = file.elf_header();
    let e_type = eh.e_type(LE);
    let machine = eh.e_machine(LE);
    r.check(
        "elf-type",
        e_type == elf::ET_REL,
        format!("e_type {e_type} (want ET_REL)"),
    );
    r.check(
        "elf-machine",
        machine == elf::EM_BPF,
        format!("e_machine {machine} (want EM_BPF, 247)"),
    );

    let section = |name: &str| file.section_by_name(name).and_then(|s| s.data().ok());
    // Metadata.
    r.license = section("license").map(cstr);
    r.check(
        "license",
        r.license.as_deref().is_some_and(|l| l.contains("GPL")),
        format!(
            "license section: {:?} (the kernel needs a GPL-compatible one)",
            r.license
        ),
    );
    r.kernel_version = section("kernel_version").map(cstr);
    match (&r.kernel_version, &expect.kernel_release) {
        (None, _) => r.check("kernel-version", false, "no kernel_version section"),
        (Some(v), Some(want)) => r.check(
            "kernel-version",
            v == want,
            format!("kernel_version `{v}`, kernel release `{want}` (libscap refuses a mismatch)"),
        ),
        (Some(v), None) => r.check("kernel-version", true, format!("kernel_version `{v}`")),
    }
    r.probe_version = section("probe_version").map(cstr);
    if let Some(want) = &expect.driver_version {
        let got = r.probe_version.clone().unwrap_or_default();
        r.check(
            "probe-version",
            &got == want,
            format!("probe_version `{got}`, driver version `{want}`"),
        );
    }
    r.build_commit = section("build_commit").map(cstr);
    let u64_section = |name: &str| {
        section(name).and_then(|d| {
            d.get(..8)
                .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
        })
    };
    r.api_version = u64_section("api_version");
    r.schema_version = u64_section("schema_version");
    for (name, got, want) in [
        ("api-version", r.api_version, expect.api_version),
        ("schema-version", r.schema_version, expect.schema_version),
    ] {
        if let Some(want) = want {
            r.check(
                name,
                got == Some(want),
                format!("section holds {got:?}, driver says {want}"),
            );
        }
    }

    // Maps: a whole number of 28-byte definitions, each with a symbol.
    match file.section_by_name("maps") {
        None => r.check("maps", false, "no maps section"),
        Some(s) => {
            let size = s.size() as usize;
            let idx = s.index();
            let mut maps: Vec<(u64, String)> = file
                .symbols()
                .filter(|sym| sym.section_index() == Some(idx) && sym.is_definition())
                .filter_map(|sym| Some((sym.address(), sym.name().ok()?.to_owned())))
                .collect();
            maps.sort();
            r.maps = maps.into_iter().map(|(_, n)| n).collect();
            let whole = size.is_multiple_of(MAP_DEF_SIZE) && size > 0;
            let count_ok = whole && r.maps.len() == size / MAP_DEF_SIZE;
            r.check(
                "maps",
                count_ok,
                format!(
                    "{size} bytes = {} map definitions of {MAP_DEF_SIZE} bytes, {} map symbols",
                    size as f64 / MAP_DEF_SIZE as f64,
                    r.maps.len()
                ),
            );
        }
    }
    for m in ["perf_map", "tail_map", "settings_map"] {
        let ok = r.maps.iter().any(|x| x == m);
        r.check(
            "map-present",
            ok,
            format!("map `{m}`{}", if ok { "" } else { " missing" }),
        );
    }

    // Programs.
    r.programs = file
        .sections()
        .filter(|s| s.kind() == object::SectionKind::Text && s.size() > 0)
        .filter_map(|s| s.name().ok().map(str::to_owned))
        .collect();
    for p in ["raw_tracepoint/sys_enter", "raw_tracepoint/sys_exit"] {
        let ok = r.programs.iter().any(|x| x == p);
        r.check(
            "program-present",
            ok,
            format!("program `{p}`{}", if ok { "" } else { " missing" }),
        );
    }
    let fillers = r.programs.iter().filter(|p| p.contains("/filler/")).count();
    r.check(
        "fillers",
        fillers >= 50,
        format!("{fillers} filler programs"),
    );
    let text_empty = file.section_by_name(".text").is_none_or(|s| s.size() == 0);
    r.check(
        "text-empty",
        text_empty,
        "`.text` must be empty (no unrelocatable calls)",
    );

    // Symbols and relocations.
    let undefined: Vec<String> = file
        .symbols()
        .filter(|s| s.is_undefined() && !s.name().unwrap_or("").is_empty())
        .filter_map(|s| s.name().ok().map(str::to_owned))
        .collect();
    r.check(
        "no-undefined-symbols",
        undefined.is_empty(),
        if undefined.is_empty() {
            "none".to_owned()
        } else {
            format!("undefined: {}", undefined.join(", "))
        },
    );
    let bad_relocs = check_relocations(bytes, &file);
    r.check(
        "relocations",
        bad_relocs.is_empty(),
        if bad_relocs.is_empty() {
            "every relocation resolves to a map or section".to_owned()
        } else {
            bad_relocs.join("; ")
        },
    );
    if let Some(a) = expect.arch {
        let has_pf = r.programs.iter().any(|p| p.contains("page_fault"));
        if a == Arch::X86_64 {
            r.check(
                "arch-programs",
                has_pf,
                "x86_64 probes carry the page_fault programs",
            );
        } else {
            r.check(
                "arch-programs",
                !has_pf,
                format!("{a} probes have no page_fault programs"),
            );
        }
    }
    r
}

/// Every REL entry must name a defined symbol in the maps section or another section.
fn check_relocations(bytes: &[u8], file: &ElfFile64<LE>) -> Vec<String> {
    let mut bad = Vec::new();
    let eh = file.elf_header();
    let Ok(sections) = eh.sections(LE, bytes) else {
        return vec!["section table unreadable".into()];
    };
    let Ok(symtab) = sections.symbols(LE, bytes, elf::SHT_SYMTAB) else {
        return vec!["symbol table unreadable".into()];
    };
    for s in sections.iter() {
        if s.sh_type(LE) != elf::SHT_REL {
            continue;
        }
        let name = sections
            .section_name(LE, s)
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .unwrap_or_default();
        let Ok(Some((rels, _))) = s.rel(LE, bytes) else {
            bad.push(format!("{name}: unreadable"));
            continue;
        };
        for rel in rels {
            let Some(sym_idx) = rel.symbol(LE) else {
                bad.push(format!("{name}: relocation without symbol"));
                continue;
            };
            match symtab.symbol(sym_idx) {
                Ok(sym) if sym.st_shndx(LE) != elf::SHN_UNDEF => {}
                Ok(sym) => bad.push(format!(
                    "{name}: relocation against undefined `{}`",
                    String::from_utf8_lossy(symtab.symbol_name(LE, sym).unwrap_or(b"?"))
                )),
                Err(_) => bad.push(format!(
                    "{name}: relocation symbol {} out of range",
                    sym_idx.0
                )),
            }
            if bad.len() > 10 {
                return bad;
            }
        }
    }
    bad
}

/// A small ELF64 little-endian writer for tests: the sections, symbols and relocations a
/// probe or a module carries, laid out as llc and ld lay them out (section data, then
/// `.symtab`, `.strtab`, `.shstrtab`, then the section headers), so a test can build a good
/// object and change one thing in it.
#[cfg(test)]
pub(crate) mod test_elf {
    use object::elf;

    #[derive(Clone)]
    pub struct Section {
        pub name: String,
        pub sh_type: u32,
        pub flags: u64,
        pub data: Vec<u8>,
    }

    #[derive(Clone)]
    pub struct Symbol {
        pub name: String,
        /// The section it is defined in; `None`: undefined.
        pub section: Option<String>,
        pub value: u64,
        pub size: u64,
    }

    /// A relocation: (offset, symbol index in `.symtab`, type).
    pub type Rel = (u64, u32, u32);
    /// A section header: (name, type, flags, offset, size, link, info, entsize).
    type Shdr = (u32, u32, u64, u64, u64, u32, u32, u64);

    #[derive(Clone)]
    pub struct Elf {
        pub e_type: u16,
        pub machine: u16,
        pub sections: Vec<Section>,
        pub symbols: Vec<Symbol>,
        /// Per section: (offset, symbol index in `.symtab`, type). Index 0 is the null
        /// symbol; `symbols[i]` is index `i + 1`.
        pub rels: Vec<(String, Vec<Rel>)>,
    }

    impl Elf {
        pub fn new(machine: u16) -> Elf {
            Elf {
                e_type: elf::ET_REL,
                machine,
                sections: Vec::new(),
                symbols: Vec::new(),
                rels: Vec::new(),
            }
        }

        /// Adds a section; returns `self` for chaining.
        pub fn section(&mut self, name: &str, sh_type: u32, flags: u64, data: &[u8]) -> &mut Elf {
            self.sections.push(Section {
                name: name.to_owned(),
                sh_type,
                flags,
                data: data.to_vec(),
            });
            self
        }

        pub fn symbol(&mut self, name: &str, section: Option<&str>, value: u64, size: u64) {
            self.symbols.push(Symbol {
                name: name.to_owned(),
                section: section.map(str::to_owned),
                value,
                size,
            });
        }

        /// The `.symtab` index of a symbol by name.
        pub fn sym_index(&self, name: &str) -> u32 {
            1 + self
                .symbols
                .iter()
                .position(|s| s.name == name)
                .expect(name) as u32
        }

        pub fn rename_section(&mut self, from: &str, to: &str) {
            let s = self
                .sections
                .iter_mut()
                .find(|s| s.name == from)
                .expect(from);
            s.name = to.to_owned();
            for (target, _) in &mut self.rels {
                if target == from {
                    *target = to.to_owned();
                }
            }
            for sym in &mut self.symbols {
                if sym.section.as_deref() == Some(from) {
                    sym.section = Some(to.to_owned());
                }
            }
        }

        pub fn drop_section(&mut self, name: &str) {
            let before = self.sections.len();
            self.sections.retain(|s| s.name != name);
            assert_eq!(self.sections.len() + 1, before, "no section `{name}`");
            self.rels.retain(|(t, _)| t != name);
            self.symbols.retain(|s| s.section.as_deref() != Some(name));
        }

        pub fn data_mut(&mut self, name: &str) -> &mut Vec<u8> {
            &mut self
                .sections
                .iter_mut()
                .find(|s| s.name == name)
                .expect(name)
                .data
        }

        pub fn bytes(&self) -> Vec<u8> {
            fn align(out: &mut Vec<u8>) {
                while !out.len().is_multiple_of(8) {
                    out.push(0);
                }
            }
            fn strtab_add(tab: &mut Vec<u8>, s: &str) -> u32 {
                let at = tab.len() as u32;
                tab.extend_from_slice(s.as_bytes());
                tab.push(0);
                at
            }
            // Section order: null, the sections, their `.rel` sections, `.symtab`, `.strtab`,
            // `.shstrtab`.
            let n = self.sections.len();
            let index_of = |name: &str| -> u16 {
                1 + self
                    .sections
                    .iter()
                    .position(|s| s.name == name)
                    .unwrap_or_else(|| panic!("no section `{name}`")) as u16
            };
            let symtab_idx = (1 + n + self.rels.len()) as u32;
            let mut shstr = vec![0u8];
            let mut strtab = vec![0u8];
            let mut out = vec![0u8; 64];
            let mut headers: Vec<Shdr> = vec![(0, 0, 0, 0, 0, 0, 0, 0)];
            for s in &self.sections {
                align(&mut out);
                let off = out.len() as u64;
                if s.sh_type != elf::SHT_NOBITS {
                    out.extend_from_slice(&s.data);
                }
                let name = strtab_add(&mut shstr, &s.name);
                headers.push((name, s.sh_type, s.flags, off, s.data.len() as u64, 0, 0, 0));
            }
            for (target, rels) in &self.rels {
                align(&mut out);
                let off = out.len() as u64;
                for (offset, sym, ty) in rels {
                    out.extend_from_slice(&offset.to_le_bytes());
                    out.extend_from_slice(&(((*sym as u64) << 32) | *ty as u64).to_le_bytes());
                }
                let name = strtab_add(&mut shstr, &format!(".rel{target}"));
                headers.push((
                    name,
                    elf::SHT_REL,
                    elf::SHF_INFO_LINK as u64,
                    off,
                    rels.len() as u64 * 16,
                    symtab_idx,
                    index_of(target) as u32,
                    16,
                ));
            }
            align(&mut out);
            let off = out.len() as u64;
            out.extend_from_slice(&[0u8; 24]);
            for s in &self.symbols {
                let name = strtab_add(&mut strtab, &s.name);
                let (info, shndx) = match &s.section {
                    Some(sec) => ((elf::STB_GLOBAL << 4) | elf::STT_OBJECT, index_of(sec)),
                    None => ((elf::STB_GLOBAL << 4) | elf::STT_NOTYPE, elf::SHN_UNDEF),
                };
                out.extend_from_slice(&name.to_le_bytes());
                out.push(info);
                out.push(0);
                out.extend_from_slice(&shndx.to_le_bytes());
                out.extend_from_slice(&s.value.to_le_bytes());
                out.extend_from_slice(&s.size.to_le_bytes());
            }
            let name = strtab_add(&mut shstr, ".symtab");
            let size = out.len() as u64 - off;
            // sh_info: the first global symbol (all but the null one are global).
            headers.push((name, elf::SHT_SYMTAB, 0, off, size, symtab_idx + 1, 1, 24));
            let off = out.len() as u64;
            out.extend_from_slice(&strtab);
            let name = strtab_add(&mut shstr, ".strtab");
            headers.push((name, elf::SHT_STRTAB, 0, off, strtab.len() as u64, 0, 0, 0));
            let name = strtab_add(&mut shstr, ".shstrtab");
            let off = out.len() as u64;
            out.extend_from_slice(&shstr);
            headers.push((name, elf::SHT_STRTAB, 0, off, shstr.len() as u64, 0, 0, 0));
            align(&mut out);
            let shoff = out.len() as u64;
            for (name, ty, flags, off, size, link, info, entsize) in &headers {
                out.extend_from_slice(&name.to_le_bytes());
                out.extend_from_slice(&ty.to_le_bytes());
                out.extend_from_slice(&flags.to_le_bytes());
                out.extend_from_slice(&0u64.to_le_bytes());
                out.extend_from_slice(&off.to_le_bytes());
                out.extend_from_slice(&size.to_le_bytes());
                out.extend_from_slice(&link.to_le_bytes());
                out.extend_from_slice(&info.to_le_bytes());
                out.extend_from_slice(&(if *ty == 0 { 0u64 } else { 8 }).to_le_bytes());
                out.extend_from_slice(&entsize.to_le_bytes());
            }
            let mut h = Vec::with_capacity(64);
            h.extend_from_slice(b"\x7fELF");
            h.extend_from_slice(&[elf::ELFCLASS64, elf::ELFDATA2LSB, 1, 0]);
            h.extend_from_slice(&[0u8; 8]);
            h.extend_from_slice(&self.e_type.to_le_bytes());
            h.extend_from_slice(&self.machine.to_le_bytes());
            h.extend_from_slice(&1u32.to_le_bytes());
            h.extend_from_slice(&0u64.to_le_bytes()); // e_entry
            h.extend_from_slice(&0u64.to_le_bytes()); // e_phoff
            h.extend_from_slice(&shoff.to_le_bytes());
            h.extend_from_slice(&0u32.to_le_bytes()); // e_flags
            h.extend_from_slice(&64u16.to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes());
            h.extend_from_slice(&64u16.to_le_bytes());
            h.extend_from_slice(&(headers.len() as u16).to_le_bytes());
            h.extend_from_slice(&(headers.len() as u16 - 1).to_le_bytes());
            out[..64].copy_from_slice(&h);
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_elf::Elf;
    use super::*;
    use object::elf::{EM_BPF, R_BPF_64_64, SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE, SHT_PROGBITS};

    const RELEASE: &str = "6.1.0-99-amd64";
    const DRIVER: &str = "8.0.0+driver";
    const API: u64 = (8 << 44) | 3;
    const SCHEMA: u64 = (3 << 44) | (5 << 24);
    const FILLERS: usize = 50;

    /// A probe with what a real one has (FACTS.md): empty `.text`, the tracepoint programs,
    /// `FILLERS` fillers, three maps with their symbols, `ld_imm64` relocations against them,
    /// and the metadata sections.
    fn probe(arch: Arch) -> Elf {
        let exec = (SHF_ALLOC | SHF_EXECINSTR) as u64;
        let data = (SHF_ALLOC | SHF_WRITE) as u64;
        // ld_imm64 r1, <map>; exit
        let mut ld_map = vec![0x18, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        ld_map.extend_from_slice(&[0x95, 0, 0, 0, 0, 0, 0, 0]);
        let exit = [0x95, 0, 0, 0, 0, 0, 0, 0];
        let mut e = Elf::new(EM_BPF);
        e.section(".text", SHT_PROGBITS, exec, &[]);
        for p in ["sys_enter", "sys_exit"] {
            e.section(&format!("raw_tracepoint/{p}"), SHT_PROGBITS, exec, &ld_map);
        }
        e.section(
            "raw_tracepoint/sched_process_exit",
            SHT_PROGBITS,
            exec,
            &exit,
        );
        if arch == Arch::X86_64 {
            for p in ["page_fault_user", "page_fault_kernel"] {
                e.section(&format!("raw_tracepoint/{p}"), SHT_PROGBITS, exec, &exit);
            }
        }
        for i in 0..FILLERS {
            let name = format!("raw_tracepoint/filler/f{i}");
            e.section(&name, SHT_PROGBITS, exec, &exit);
        }
        // struct bpf_map_def {type, key_size, value_size, max_entries, ...}: 28 bytes each.
        let mut maps = Vec::new();
        for (ty, k, v, n) in [(4u32, 4u32, 4u32, 0u32), (3, 4, 4, 512), (2, 4, 64, 1)] {
            for x in [ty, k, v, n, 0, 0, 0] {
                maps.extend_from_slice(&x.to_le_bytes());
            }
        }
        e.section("maps", SHT_PROGBITS, data, &maps);
        for (name, bytes) in [
            ("license", b"Dual MIT/GPL\0".to_vec()),
            ("kernel_version", format!("{RELEASE}\0").into_bytes()),
            ("probe_version", format!("{DRIVER}\0").into_bytes()),
            ("build_commit", format!("{DRIVER}\0").into_bytes()),
            ("api_version", API.to_le_bytes().to_vec()),
            ("schema_version", SCHEMA.to_le_bytes().to_vec()),
        ] {
            e.section(name, SHT_PROGBITS, data, &bytes);
        }
        for (i, m) in ["perf_map", "tail_map", "settings_map"].iter().enumerate() {
            e.symbol(
                m,
                Some("maps"),
                i as u64 * MAP_DEF_SIZE as u64,
                MAP_DEF_SIZE as u64,
            );
        }
        for (p, m) in [("sys_enter", "perf_map"), ("sys_exit", "tail_map")] {
            let sym = e.sym_index(m);
            e.rels
                .push((format!("raw_tracepoint/{p}"), vec![(0, sym, R_BPF_64_64)]));
        }
        e
    }

    fn expect(arch: Arch) -> Expect {
        Expect {
            kernel_release: Some(RELEASE.into()),
            driver_version: Some(DRIVER.into()),
            api_version: Some(API),
            schema_version: Some(SCHEMA),
            arch: Some(arch),
        }
    }

    /// (check, detail) of every failed check.
    fn failures(bytes: &[u8], expect: &Expect) -> Vec<(&'static str, String)> {
        validate(bytes, expect)
            .failures()
            .into_iter()
            .map(|c| (c.name, c.detail.clone()))
            .collect()
    }

    fn fails_x86(e: &Elf) -> Vec<(&'static str, String)> {
        failures(&e.bytes(), &expect(Arch::X86_64))
    }

    fn one(name: &'static str, detail: &str) -> Vec<(&'static str, String)> {
        vec![(name, detail.to_owned())]
    }

    /// The fixture passes every check, so each test below fails for its one change alone.
    #[test]
    fn a_well_formed_probe_passes_every_check() {
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let r = validate(&probe(arch).bytes(), &expect(arch));
            assert!(r.ok(), "{arch}: {:?}", r.failures());
            let names: Vec<&str> = r.checks.iter().map(|c| c.name).collect();
            assert_eq!(
                names,
                [
                    "elf-header",
                    "elf-type",
                    "elf-machine",
                    "license",
                    "kernel-version",
                    "probe-version",
                    "api-version",
                    "schema-version",
                    "maps",
                    "map-present",
                    "map-present",
                    "map-present",
                    "program-present",
                    "program-present",
                    "fillers",
                    "text-empty",
                    "no-undefined-symbols",
                    "relocations",
                    "arch-programs",
                ]
            );
            assert_eq!(r.maps, ["perf_map", "tail_map", "settings_map"]);
            assert_eq!(r.kernel_version.as_deref(), Some(RELEASE));
            assert_eq!(r.license.as_deref(), Some("Dual MIT/GPL"));
            assert_eq!((r.api_version, r.schema_version), (Some(API), Some(SCHEMA)));
        }
    }

    #[test]
    fn elf_header_fails_for_elf32_big_endian_and_junk() {
        let good = probe(Arch::X86_64).bytes();
        let want = one("elf-header", "not an ELF64 little-endian object");
        let mut b = good.clone();
        b[4] = object::elf::ELFCLASS32;
        assert_eq!(failures(&b, &Expect::default()), want);
        let mut b = good.clone();
        b[5] = object::elf::ELFDATA2MSB;
        assert_eq!(failures(&b, &Expect::default()), want);
        assert_eq!(failures(b"not an object", &Expect::default()), want);
    }

    #[test]
    fn elf_parse_fails_when_the_section_table_is_cut_off() {
        let b = probe(Arch::X86_64).bytes();
        let f = failures(&b[..b.len() - 64], &Expect::default());
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].0, "elf-parse");
        assert!(f[0].1.contains("section header"), "{f:?}");
    }

    #[test]
    fn elf_type_fails_for_an_executable() {
        let mut e = probe(Arch::X86_64);
        e.e_type = object::elf::ET_EXEC;
        assert_eq!(fails_x86(&e), one("elf-type", "e_type 2 (want ET_REL)"));
    }

    #[test]
    fn elf_machine_fails_for_x86_64_code() {
        let mut e = probe(Arch::X86_64);
        e.machine = object::elf::EM_X86_64;
        assert_eq!(
            fails_x86(&e),
            one("elf-machine", "e_machine 62 (want EM_BPF, 247)")
        );
    }

    #[test]
    fn license_fails_when_not_gpl_or_absent() {
        let mut e = probe(Arch::X86_64);
        *e.data_mut("license") = b"Proprietary\0".to_vec();
        let want = "license section: Some(\"Proprietary\") (the kernel needs a GPL-compatible one)";
        assert_eq!(fails_x86(&e), one("license", want));
        let mut e = probe(Arch::X86_64);
        e.drop_section("license");
        let want = "license section: None (the kernel needs a GPL-compatible one)";
        assert_eq!(fails_x86(&e), one("license", want));
    }

    #[test]
    fn kernel_version_fails_when_absent_or_another_release() {
        let mut e = probe(Arch::X86_64);
        e.drop_section("kernel_version");
        assert_eq!(
            fails_x86(&e),
            one("kernel-version", "no kernel_version section")
        );
        // Absent fails even when no release is expected.
        assert_eq!(
            failures(&e.bytes(), &Expect::default()),
            one("kernel-version", "no kernel_version section")
        );
        let mut e = probe(Arch::X86_64);
        *e.data_mut("kernel_version") = b"6.1.0-98-amd64\0".to_vec();
        let want = format!(
            "kernel_version `6.1.0-98-amd64`, kernel release `{RELEASE}` (libscap refuses a mismatch)"
        );
        assert_eq!(fails_x86(&e), one("kernel-version", &want));
    }

    #[test]
    fn probe_version_fails_when_absent_or_another_driver() {
        let mut e = probe(Arch::X86_64);
        *e.data_mut("probe_version") = b"9.1.0+driver\0".to_vec();
        let want = format!("probe_version `9.1.0+driver`, driver version `{DRIVER}`");
        assert_eq!(fails_x86(&e), one("probe-version", &want));
        let mut e = probe(Arch::X86_64);
        e.drop_section("probe_version");
        let want = format!("probe_version ``, driver version `{DRIVER}`");
        assert_eq!(fails_x86(&e), one("probe-version", &want));
    }

    #[test]
    fn api_and_schema_version_fail_when_other_or_absent() {
        let mut e = probe(Arch::X86_64);
        *e.data_mut("api_version") = (API + 1).to_le_bytes().to_vec();
        let want = format!("section holds Some({}), driver says {API}", API + 1);
        assert_eq!(fails_x86(&e), one("api-version", &want));
        let mut e = probe(Arch::X86_64);
        e.drop_section("schema_version");
        let want = format!("section holds None, driver says {SCHEMA}");
        assert_eq!(fails_x86(&e), one("schema-version", &want));
        // Fewer than 8 bytes is no version either.
        let mut e = probe(Arch::X86_64);
        e.data_mut("api_version").truncate(4);
        let want = format!("section holds None, driver says {API}");
        assert_eq!(fails_x86(&e), one("api-version", &want));
    }

    #[test]
    fn maps_fails_without_the_section_or_with_definitions_and_symbols_apart() {
        let mut e = probe(Arch::X86_64);
        e.rename_section("maps", "maps.renamed");
        let mut want = one("maps", "no maps section");
        for m in ["perf_map", "tail_map", "settings_map"] {
            want.push(("map-present", format!("map `{m}` missing")));
        }
        assert_eq!(fails_x86(&e), want);
        // A fourth definition without its symbol.
        let mut e = probe(Arch::X86_64);
        e.data_mut("maps").extend_from_slice(&[0u8; MAP_DEF_SIZE]);
        let want = "112 bytes = 4 map definitions of 28 bytes, 3 map symbols";
        assert_eq!(fails_x86(&e), one("maps", want));
        // Not a whole number of definitions.
        let mut e = probe(Arch::X86_64);
        e.data_mut("maps").truncate(3 * MAP_DEF_SIZE - 4);
        let want = format!(
            "80 bytes = {} map definitions of 28 bytes, 3 map symbols",
            80.0 / 28.0
        );
        assert_eq!(fails_x86(&e), one("maps", &want));
    }

    #[test]
    fn map_present_fails_for_a_missing_map() {
        let mut e = probe(Arch::X86_64);
        e.symbols
            .iter_mut()
            .find(|s| s.name == "tail_map")
            .unwrap()
            .name = "tail_mop".into();
        assert_eq!(fails_x86(&e), one("map-present", "map `tail_map` missing"));
    }

    #[test]
    fn program_present_fails_for_a_renamed_or_empty_program() {
        let mut e = probe(Arch::X86_64);
        e.rename_section("raw_tracepoint/sys_enter", "raw_tracepoint/sys_entex");
        assert_eq!(
            fails_x86(&e),
            one(
                "program-present",
                "program `raw_tracepoint/sys_enter` missing"
            )
        );
        let mut e = probe(Arch::X86_64);
        e.rels.retain(|(t, _)| t != "raw_tracepoint/sys_exit");
        e.data_mut("raw_tracepoint/sys_exit").clear();
        assert_eq!(
            fails_x86(&e),
            one(
                "program-present",
                "program `raw_tracepoint/sys_exit` missing"
            )
        );
    }

    #[test]
    fn fillers_fails_below_fifty() {
        let mut e = probe(Arch::X86_64);
        e.drop_section("raw_tracepoint/filler/f0");
        assert_eq!(fails_x86(&e), one("fillers", "49 filler programs"));
    }

    #[test]
    fn text_empty_fails_for_code_in_text() {
        let mut e = probe(Arch::X86_64);
        *e.data_mut(".text") = vec![0x95, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            fails_x86(&e),
            one(
                "text-empty",
                "`.text` must be empty (no unrelocatable calls)"
            )
        );
    }

    #[test]
    fn no_undefined_symbols_fails_for_an_undefined_symbol() {
        let mut e = probe(Arch::X86_64);
        e.symbol("bpf_helper_nobody_defines", None, 0, 0);
        assert_eq!(
            fails_x86(&e),
            one(
                "no-undefined-symbols",
                "undefined: bpf_helper_nobody_defines"
            )
        );
    }

    #[test]
    fn relocations_fail_against_undefined_null_and_out_of_range_symbols() {
        let rel = ".relraw_tracepoint/sys_enter";
        let mut e = probe(Arch::X86_64);
        e.symbol("missing_map", None, 0, 0);
        let sym = e.sym_index("missing_map");
        e.rels[0].1[0].1 = sym;
        assert_eq!(
            fails_x86(&e),
            [
                ("no-undefined-symbols", "undefined: missing_map".to_owned()),
                (
                    "relocations",
                    format!("{rel}: relocation against undefined `missing_map`")
                ),
            ]
        );
        let mut e = probe(Arch::X86_64);
        e.rels[0].1[0].1 = 0;
        let want = format!("{rel}: relocation without symbol");
        assert_eq!(fails_x86(&e), one("relocations", &want));
        let mut e = probe(Arch::X86_64);
        e.rels[0].1[0].1 = 99;
        let want = format!("{rel}: relocation symbol 99 out of range");
        assert_eq!(fails_x86(&e), one("relocations", &want));
    }

    /// A `.rel` section whose data lies outside the file: named, the others still checked.
    #[test]
    fn relocations_fail_for_an_unreadable_rel_section() {
        let e = probe(Arch::X86_64);
        let mut b = e.bytes();
        let shoff = u64::from_le_bytes(b[40..48].try_into().unwrap()) as usize;
        // The first `.rel` section follows the null section and the others.
        let rel = shoff + (1 + e.sections.len()) * 64;
        b[rel + 24..rel + 32].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert_eq!(
            failures(&b, &expect(Arch::X86_64)),
            one("relocations", ".relraw_tracepoint/sys_enter: unreadable")
        );
    }

    #[test]
    fn arch_programs_fails_both_ways() {
        let arm = probe(Arch::Aarch64).bytes();
        assert_eq!(
            failures(&arm, &expect(Arch::X86_64)),
            one(
                "arch-programs",
                "x86_64 probes carry the page_fault programs"
            )
        );
        let x86 = probe(Arch::X86_64).bytes();
        assert_eq!(
            failures(&x86, &expect(Arch::Aarch64)),
            one(
                "arch-programs",
                "aarch64 probes have no page_fault programs"
            )
        );
    }

    #[test]
    fn invalid_names_each_failed_check() {
        let mut e = probe(Arch::X86_64);
        e.drop_section("kernel_version");
        *e.data_mut("license") = b"Proprietary\0".to_vec();
        let r = validate(&e.bytes(), &expect(Arch::X86_64));
        assert!(!r.ok());
        assert_eq!(
            Invalid(r).to_string(),
            "probe failed validation: license: license section: Some(\"Proprietary\") (the kernel needs a GPL-compatible one); kernel-version: no kernel_version section"
        );
    }
}
