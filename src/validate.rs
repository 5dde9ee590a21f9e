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
