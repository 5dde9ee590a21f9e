//! Event capture in the verification VM: the driver's own tables (what libscap copies into the
//! probe's maps before it captures), the workload the loader runs, and the decoding of the
//! scap events the probe wrote, checked against that workload.
//!
//! The tables come from the driver source the probe was built from: its `event_table.c`,
//! `fillers_table.c` and syscall table, compiled by clang for the probe's arch exactly as
//! libscap compiles them into itself, and read back from the object's symbols. Nothing here
//! restates the driver's event numbering or struct layouts: the layout constants are
//! `sizeof`/`offsetof` values clang computes from the driver's own headers.

use std::path::{Path, PathBuf};

use object::{Object, ObjectSection, ObjectSymbol};
use serde::{Deserialize, Serialize};

use crate::kernel::Arch;
use crate::toolchain::Toolchain;

pub use super::workload::{EXEC_ARG, INIT_PATH, MARKER_PATH};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot write `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{driver}`: no `{file}` in this driver source")]
    Missing { driver: PathBuf, file: &'static str },
    #[error(
        "cannot compile the driver's event tables of `{driver}` for {arch} (`{command}`): {stderr}"
    )]
    Compile {
        driver: PathBuf,
        arch: String,
        command: String,
        stderr: String,
    },
    #[error("the driver's event tables of `{driver}` are unreadable: {what}")]
    Object { driver: PathBuf, what: Malformed },
    #[error(transparent)]
    Driver(#[from] crate::driver::Error),
    #[error("`{0}`: no `struct scap_bpf_settings` in bpf/types.h")]
    NoSettings(PathBuf),
}

/// Why the compiled tables or a captured event do not read as the driver's layout says.
#[derive(Debug, thiserror::Error)]
pub enum Malformed {
    #[error("{0}")]
    Elf(#[from] object::Error),
    #[error("`{0}` is not defined")]
    Undefined(String),
    #[error("`{0}` lies outside its section")]
    OutsideSection(String),
    #[error("no {0}")]
    Missing(&'static str),
    #[error("layout has {0} values, expected 23")]
    Layout(usize),
    #[error("g_event_info is {len} bytes, not {count} events of {size}")]
    EventInfo {
        len: usize,
        count: usize,
        size: usize,
    },
    #[error("{0} bytes, shorter than an event header")]
    Short(usize),
    #[error("event {code}: length {len} outside the {read} bytes read")]
    Length { code: u16, len: usize, read: usize },
    #[error("event code {0} is not in the driver's event table")]
    UnknownCode(u16),
    #[error("event {code} ({name}): {got} parameters, the table says {want}")]
    ParamCount {
        code: u16,
        name: String,
        got: usize,
        want: usize,
    },
    #[error("event {0}: parameter lengths run past its end")]
    LengthsPastEnd(u16),
    #[error("event {code}: parameter `{param}` runs past its end")]
    ParamPastEnd { code: u16, param: String },
    #[error("not hex: {0}")]
    Hex(#[from] hex::FromHexError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// One field of `struct scap_bpf_settings` (packed), as the driver declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsField {
    pub name: String,
    pub offset: usize,
    pub size: usize,
}

/// The layout of `struct scap_bpf_settings` from the driver's `bpf/types.h` (a packed struct
/// of fixed-size scalars and one pointer).
pub fn parse_settings(types_h: &str) -> Option<(Vec<SettingsField>, usize)> {
    let start = types_h.find("struct scap_bpf_settings {")?;
    let body = &types_h[start..];
    let body = &body[body.find('{')? + 1..body.find('}')?];
    let mut fields = Vec::new();
    let mut offset = 0;
    for decl in body.split(';') {
        let decl = decl
            .lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join(" ");
        let words: Vec<&str> = decl.split_whitespace().collect();
        let Some((name, ty)) = words.split_last() else {
            continue;
        };
        let pointer = name.starts_with('*') || ty.last().is_some_and(|t| t.ends_with('*'));
        let size = if pointer {
            8
        } else {
            match ty.join(" ").as_str() {
                "uint64_t" | "u64" | "__u64" | "unsigned long long" | "unsigned long" => 8,
                "uint32_t" | "u32" | "__u32" | "int" | "unsigned int" | "int32_t" => 4,
                "uint16_t" | "u16" | "__u16" | "int16_t" => 2,
                "bool" | "uint8_t" | "u8" | "__u8" | "char" => 1,
                _ => return None,
            }
        };
        let name = name.trim_start_matches('*').to_owned();
        fields.push(SettingsField { name, offset, size });
        offset += size;
    }
    Some((fields, offset))
}

/// What libscap puts in a map before capturing: `(map name, values)`, value `i` at key `i`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DriverTables {
    pub maps: Vec<(String, Vec<u8>)>,
    /// Filler names in `PPM_FILLER_*` order: a filler program goes into `tail_map` at its index.
    pub filler_names: Vec<String>,
    pub settings: Vec<SettingsField>,
    pub settings_size: usize,
    pub schema: EventSchema,
}

/// What a decoder needs of `g_event_info`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventSchema {
    pub header_len: usize,
    pub events: Vec<EventInfo>,
    /// `PT_*` codes decoded as text, and as signed integers.
    pub text_types: Vec<u32>,
    pub signed_types: Vec<u32>,
    pub large_payload_flag: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventInfo {
    pub name: String,
    pub flags: u32,
    pub params: Vec<(String, u32)>,
}

/// Map name in the probe → the libscap-side table that fills it.
const TABLE_SYMBOLS: &[(&str, &str)] = &[
    ("syscall_table", "g_syscall_table"),
    ("event_info_table", "g_event_info"),
    ("fillers_table", "g_ppm_events"),
    ("ia32_64_map", "g_ia32_64_map"),
    ("syscall_code_routing_table", "g_syscall_code_routing_table"),
];

const TABLES_C: &str = r#"/* written by probeforge: the driver's userspace tables, as libscap compiles them */
#include "event_table.c"
#include "fillers_table.c"
#include PF_SYSCALL_TABLE
#ifdef PF_IA32_MAP
#include "syscall_ia32_64_map.c"
#endif
#include <stddef.h>
#define PF_NAME(x) #x "\0"
const char probeforge_filler_names[] = FILLER_LIST_MAPPER(PF_NAME);
const unsigned long long probeforge_layout[] = {
	sizeof(struct ppm_event_info), offsetof(struct ppm_event_info, name),
	offsetof(struct ppm_event_info, flags), offsetof(struct ppm_event_info, nparams),
	offsetof(struct ppm_event_info, params), sizeof(struct ppm_param_info),
	offsetof(struct ppm_param_info, name), offsetof(struct ppm_param_info, type),
	PPM_MAX_NAME_LEN, sizeof(struct ppm_evt_hdr), EF_LARGE_PAYLOAD, PPM_EVENT_MAX,
	PT_CHARBUF, PT_FSPATH, PT_BYTEBUF, PT_FSRELPATH,
	PT_ERRNO, PT_FD, PT_PID, PT_INT8, PT_INT16, PT_INT32, PT_INT64,
};
"#;

/// Compiles the driver's tables (from `driver_dir`: a libs `driver/` or a dkms tree) for
/// `arch` and reads them back. `work` receives the compile's files.
pub fn driver_tables(
    driver_dir: &Path,
    arch: Arch,
    tc: &Toolchain,
    work: &Path,
) -> Result<DriverTables, Error> {
    tables(driver_dir, arch, tc, work, true)
}

/// What a kernel module's events need: the driver's event schema (no probe settings: a
/// module fills its own tables, and drivers from 10.0.0 on have no `bpf/`).
pub fn module_tables(
    driver_dir: &Path,
    arch: Arch,
    tc: &Toolchain,
    work: &Path,
) -> Result<DriverTables, Error> {
    let mut t = tables(driver_dir, arch, tc, work, false)?;
    t.maps.clear();
    t.filler_names.clear();
    Ok(t)
}

fn tables(
    driver_dir: &Path,
    arch: Arch,
    tc: &Toolchain,
    work: &Path,
    probe: bool,
) -> Result<DriverTables, Error> {
    let missing = |file| Error::Missing {
        driver: driver_dir.to_owned(),
        file,
    };
    for f in ["event_table.c", "fillers_table.c", "ppm_fillers.h"] {
        if !driver_dir.join(f).is_file() {
            return Err(missing(f));
        }
    }
    let syscall_table = ["syscall_table64.c", "syscall_table.c"]
        .into_iter()
        .find(|f| driver_dir.join(f).is_file())
        .ok_or_else(|| missing("syscall_table.c"))?;
    let (settings, settings_size) = if probe {
        let types_h = driver_dir.join("bpf/types.h");
        let types = std::fs::read_to_string(&types_h).map_err(|_| missing("bpf/types.h"))?;
        parse_settings(&types).ok_or_else(|| Error::NoSettings(driver_dir.to_owned()))?
    } else {
        (Vec::new(), 0)
    };

    // The 2022 drivers include "../userspace/common/types.h" outside the kernel: give that
    // relative path something to find (what libscap's tree has there: the fixed-width types).
    let shim = work.join("shim");
    let types_shim = shim.join("userspace/common/types.h");
    std::fs::create_dir_all(types_shim.parent().unwrap()).map_err(io(&shim))?;
    std::fs::create_dir_all(shim.join("inc")).map_err(io(&shim))?;
    std::fs::write(
        &types_shim,
        "#include <stdint.h>\n#include <stdbool.h>\n#include <stddef.h>\n",
    )
    .map_err(io(&types_shim))?;
    let src = work.join("probeforge_tables.c");
    std::fs::write(&src, TABLES_C).map_err(io(&src))?;
    let obj = work.join("probeforge_tables.o");
    let mut cmd = tc.clang_command();
    cmd.arg(format!("--target={}", arch.triple()))
        .args(["-c", "-O0", "-w", "-fno-common"])
        .arg(format!("-DPF_SYSCALL_TABLE=\"{syscall_table}\""))
        .arg(format!("-I{}", driver_dir.display()))
        .arg(format!("-I{}", shim.join("inc").display()))
        // Debian's dkms trees from libs 0.23 ship `syscall_compat.h` (and the aarch64 table it
        // picks) only in `bpf/`, where the probe's install puts them: searched last.
        .arg(format!("-I{}", driver_dir.join("bpf").display()));
    if driver_dir.join("syscall_ia32_64_map.c").is_file() {
        cmd.arg("-DPF_IA32_MAP");
    }
    cmd.arg(&src).arg("-o").arg(&obj);
    let command = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| Error::Compile {
        driver: driver_dir.to_owned(),
        arch: arch.uname_m().to_owned(),
        command: command.clone(),
        stderr: e.to_string(),
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
        return Err(Error::Compile {
            driver: driver_dir.to_owned(),
            arch: arch.uname_m().to_owned(),
            command,
            stderr: errors[..errors.len().min(6)].join("\n"),
        });
    }
    let bytes = std::fs::read(&obj).map_err(io(&obj))?;
    read_tables(&bytes, settings, settings_size).map_err(|what| Error::Object {
        driver: driver_dir.to_owned(),
        what,
    })
}

/// [`driver_tables`] for a driver source as users give it: a libs tree or tarball, a dkms tree
/// or package; with what the source says of itself (its versions, to match probes with).
/// `scratch` receives the unpacked source and the compile's files, removed on return.
pub fn tables_from_source(
    input: &Path,
    arch: Arch,
    tc: &Toolchain,
    scratch: &Path,
) -> Result<(crate::driver::DriverSource, DriverTables), Error> {
    from_source(input, arch, tc, scratch, driver_tables)
}

/// [`module_tables`] for a driver source as users give it (see [`tables_from_source`]).
pub fn module_tables_from_source(
    input: &Path,
    arch: Arch,
    tc: &Toolchain,
    scratch: &Path,
) -> Result<(crate::driver::DriverSource, DriverTables), Error> {
    from_source(input, arch, tc, scratch, module_tables)
}

type TablesFn = fn(&Path, Arch, &Toolchain, &Path) -> Result<DriverTables, Error>;

fn from_source(
    input: &Path,
    arch: Arch,
    tc: &Toolchain,
    scratch: &Path,
    tables: TablesFn,
) -> Result<(crate::driver::DriverSource, DriverTables), Error> {
    let work = tempfile::Builder::new()
        .prefix("probeforge-tables-")
        .tempdir_in(scratch)
        .map_err(io(scratch))?;
    let src = crate::driver::open(input, work.path())?;
    let tables = tables(&src.dir, arch, tc, work.path())?;
    Ok((src, tables))
}

/// Whether a probe (its `probe_version`, `api_version`, `schema_version`) was built from
/// this driver source: the same recorded version, else the same API and schema versions.
pub fn source_matches(src: &crate::driver::DriverSource, probe: &crate::validate::Report) -> bool {
    if let (Some(a), Some(b)) = (&src.recorded_version, &probe.probe_version) {
        return a == b;
    }
    probe.api_version == Some(crate::driver::encode_semver(src.api_version))
        && probe.schema_version == Some(crate::driver::encode_semver(src.schema_version))
}

fn symbol_data<'a>(file: &'a object::File<'a>, name: &str) -> Result<Option<Vec<u8>>, Malformed> {
    let Some(sym) = file.symbols().find(|s| s.name() == Ok(name)) else {
        return Ok(None);
    };
    let Some(idx) = sym.section_index() else {
        return Err(Malformed::Undefined(name.to_owned()));
    };
    let sec = file.section_by_index(idx)?;
    let (start, size) = (sym.address() as usize, sym.size() as usize);
    if sec.kind() == object::SectionKind::UninitializedData {
        return Ok(Some(vec![0; size]));
    }
    let data = sec.data()?;
    data.get(start..start + size)
        .map(|d| Some(d.to_vec()))
        .ok_or_else(|| Malformed::OutsideSection(name.to_owned()))
}

fn read_tables(
    bytes: &[u8],
    settings: Vec<SettingsField>,
    settings_size: usize,
) -> Result<DriverTables, Malformed> {
    let file = object::File::parse(bytes)?;
    let layout_bytes = symbol_data(&file, "probeforge_layout")?
        .ok_or(Malformed::Missing("probeforge_layout symbol"))?;
    let l: Vec<u64> = layout_bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    if l.len() != 23 {
        return Err(Malformed::Layout(l.len()));
    }
    let u = |i: usize| l[i] as usize;
    let mut maps = Vec::new();
    for (map, sym) in TABLE_SYMBOLS {
        if let Some(d) = symbol_data(&file, sym)? {
            maps.push(((*map).to_owned(), d));
        }
    }
    let names =
        symbol_data(&file, "probeforge_filler_names")?.ok_or(Malformed::Missing("filler names"))?;
    let filler_names: Vec<String> = names
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    let info = symbol_data(&file, "g_event_info")?.ok_or(Malformed::Missing("g_event_info"))?;
    let (ev_size, ev_name, ev_flags, ev_nparams, ev_params) = (u(0), u(1), u(2), u(3), u(4));
    let (p_size, p_name, p_type, name_len) = (u(5), u(6), u(7), u(8));
    if ev_size == 0 || info.len() != ev_size * u(11) {
        return Err(Malformed::EventInfo {
            len: info.len(),
            count: u(11),
            size: ev_size,
        });
    }
    use crate::validate::cstr;
    let u32_at = |d: &[u8], o: usize| u32::from_le_bytes(d[o..o + 4].try_into().unwrap());
    let events = info
        .chunks_exact(ev_size)
        .map(|e| {
            let n = (u32_at(e, ev_nparams) as usize).min((ev_size - ev_params) / p_size);
            EventInfo {
                name: cstr(&e[ev_name..ev_name + name_len]),
                flags: u32_at(e, ev_flags),
                params: (0..n)
                    .map(|i| {
                        let p = &e[ev_params + i * p_size..ev_params + (i + 1) * p_size];
                        (cstr(&p[p_name..p_name + name_len]), u32_at(p, p_type))
                    })
                    .collect(),
            }
        })
        .collect();
    Ok(DriverTables {
        maps,
        filler_names,
        settings,
        settings_size,
        schema: EventSchema {
            header_len: u(9),
            events,
            large_payload_flag: l[10] as u32,
            text_types: (12..16).map(|i| l[i] as u32).collect(),
            signed_types: (16..23).map(|i| l[i] as u32).collect(),
        },
    })
}

/// One decoded scap event.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub ts: u64,
    pub tid: u64,
    pub code: u16,
    pub name: String,
    /// `>` for an enter event, `<` for an exit event (as sysdig prints them).
    pub dir: char,
    pub params: Vec<(String, serde_json::Value)>,
}

impl Event {
    pub fn param(&self, name: &str) -> Option<&serde_json::Value> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

impl EventSchema {
    /// Decodes one event as the probe wrote it: `ppm_evt_hdr`, the parameter lengths (16-bit,
    /// or 32-bit for large-payload events), then the parameters.
    pub fn decode(&self, raw: &[u8]) -> Result<Event, Malformed> {
        let h = self.header_len;
        if raw.len() < h || h < 26 {
            return Err(Malformed::Short(raw.len()));
        }
        let ts = u64::from_le_bytes(raw[0..8].try_into().unwrap());
        let tid = u64::from_le_bytes(raw[8..16].try_into().unwrap());
        let len = u32::from_le_bytes(raw[16..20].try_into().unwrap()) as usize;
        let code = u16::from_le_bytes(raw[20..22].try_into().unwrap());
        let nparams = u32::from_le_bytes(raw[22..26].try_into().unwrap()) as usize;
        if len > raw.len() || len < h {
            return Err(Malformed::Length {
                code,
                len,
                read: raw.len(),
            });
        }
        let info = self
            .events
            .get(code as usize)
            .ok_or(Malformed::UnknownCode(code))?;
        if nparams != info.params.len() {
            return Err(Malformed::ParamCount {
                code,
                name: info.name.clone(),
                got: nparams,
                want: info.params.len(),
            });
        }
        let wide = info.flags & self.large_payload_flag != 0;
        let lw = if wide { 4 } else { 2 };
        let mut at = h + nparams * lw;
        if at > len {
            return Err(Malformed::LengthsPastEnd(code));
        }
        let mut params = Vec::new();
        for (i, (pname, ptype)) in info.params.iter().enumerate() {
            let o = h + i * lw;
            let plen = if wide {
                u32::from_le_bytes(raw[o..o + 4].try_into().unwrap()) as usize
            } else {
                u16::from_le_bytes(raw[o..o + 2].try_into().unwrap()) as usize
            };
            let v = raw
                .get(at..at + plen)
                .filter(|_| at + plen <= len)
                .ok_or_else(|| Malformed::ParamPastEnd {
                    code,
                    param: pname.clone(),
                })?;
            at += plen;
            params.push((pname.clone(), self.value(*ptype, v)));
        }
        Ok(Event {
            ts,
            tid,
            code,
            name: info.name.clone(),
            dir: if code % 2 == 0 { '>' } else { '<' },
            params,
        })
    }

    fn value(&self, ptype: u32, v: &[u8]) -> serde_json::Value {
        use serde_json::Value;
        if self.text_types.contains(&ptype) {
            // Strings end in NUL; byte buffers (execve's args) hold several.
            let s: Vec<String> = v
                .split(|&b| b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect();
            return Value::String(s.join(" "));
        }
        let signed = self.signed_types.contains(&ptype);
        match v.len() {
            1 if signed => (v[0] as i8).into(),
            2 if signed => i16::from_le_bytes([v[0], v[1]]).into(),
            4 if signed => i32::from_le_bytes(v.try_into().unwrap()).into(),
            8 if signed => i64::from_le_bytes(v.try_into().unwrap()).into(),
            1 => v[0].into(),
            2 => u16::from_le_bytes([v[0], v[1]]).into(),
            4 => u32::from_le_bytes(v.try_into().unwrap()).into(),
            8 => u64::from_le_bytes(v.try_into().unwrap()).into(),
            _ => Value::String(hex::encode(v)),
        }
    }
}

/// One thing the workload must have produced.
#[derive(Debug, Clone, Serialize)]
pub struct Expectation {
    pub what: String,
    pub seen: bool,
}

/// Decoded events and what they prove.
#[derive(Debug, Clone, Serialize)]
pub struct EventCheck {
    pub ok: bool,
    pub captured: usize,
    pub decoded: usize,
    pub lost: u64,
    pub expectations: Vec<Expectation>,
    pub errors: Vec<String>,
    /// The events that proved each expectation, in the same order (where seen).
    pub proof: Vec<Event>,
    /// The workload's events, decoded.
    pub events: Vec<Event>,
}

/// Decodes the events a loader report carries (`events`: hex strings; `lost`; `child`: the
/// exec'd child's pid) and checks the workload is there: the marker opened (with its path and
/// a file descriptor), the child forked (its pid returned to the loader) and exec'd (`/init`
/// with the marker argument, successfully).
pub fn check(schema: &EventSchema, report: &serde_json::Value) -> EventCheck {
    let mut errors = Vec::new();
    if let Some(e) = report["capture_error"].as_str() {
        errors.push(e.to_owned());
    }
    let raw: Vec<&str> = report["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .collect();
    let mut events = Vec::new();
    for h in &raw {
        match hex::decode(h)
            .map_err(Malformed::from)
            .and_then(|b| schema.decode(&b))
        {
            Ok(e) => events.push(e),
            Err(e) => errors.push(e.to_string()),
        }
    }
    let child = report["child"].as_u64();
    let loader = report["loader_pid"].as_u64().unwrap_or(1);
    let int = |e: &Event, p: &str| e.param(p).and_then(|v| v.as_i64());
    let text = |e: &Event, p: &str| e.param(p).and_then(|v| v.as_str()).unwrap_or("").to_owned();
    let opened = events.iter().find(|e| {
        e.dir == '<'
            && e.tid == loader
            && e.name.starts_with("open")
            && text(e, "name") == MARKER_PATH
            && int(e, "fd").is_some_and(|fd| fd >= 0)
    });
    let forked = events.iter().find(|e| {
        e.dir == '<'
            && e.tid == loader
            && matches!(e.name.as_str(), "clone" | "clone3" | "fork" | "vfork")
            && child.is_some()
            && int(e, "res").map(|r| r as u64) == child
    });
    let execd = events.iter().find(|e| {
        e.dir == '<'
            && Some(e.tid) == child
            && e.name == "execve"
            && int(e, "res") == Some(0)
            && text(e, "exe") == INIT_PATH
            && text(e, "args").contains(EXEC_ARG)
    });
    let expectations = vec![
        Expectation {
            what: format!("openat `{MARKER_PATH}` returned a file descriptor"),
            seen: opened.is_some(),
        },
        Expectation {
            what: "clone returned the child's pid".into(),
            seen: forked.is_some(),
        },
        Expectation {
            what: format!("execve `{INIT_PATH} {EXEC_ARG}` succeeded"),
            seen: execd.is_some(),
        },
    ];
    let proof = [opened, forked, execd]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    let decoded = events.len();
    EventCheck {
        ok: expectations.iter().all(|e| e.seen) && errors.is_empty(),
        captured: raw.len(),
        decoded,
        lost: report["lost"].as_u64().unwrap_or(0),
        expectations,
        errors,
        proof,
        events,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_layout_of_both_generations() {
        let new = "struct scap_bpf_settings {\n\tuint64_t boot_time;\n\tvoid *socket_file_ops;\n\tuint32_t snaplen;\n\tuint32_t sampling_ratio;\n\tbool do_dynamic_snaplen;\n\tbool dropping_mode;\n\tbool is_dropping;\n\tbool drop_failed;\n\tuint16_t fullcapture_port_range_start;\n\tuint16_t fullcapture_port_range_end;\n\tuint16_t statsd_port;\n} __attribute__((packed));";
        let (f, size) = parse_settings(new).unwrap();
        assert_eq!(size, 34);
        assert_eq!(f[1].name, "socket_file_ops");
        assert_eq!((f[1].offset, f[1].size), (8, 8));
        assert_eq!(f.last().unwrap().name, "statsd_port");
        let old = new.replace(
            "bool do_dynamic_snaplen;",
            "bool capture_enabled;\n\tbool do_dynamic_snaplen; // note",
        );
        let (f, size) = parse_settings(&old).unwrap();
        assert_eq!(size, 35);
        let c = f.iter().find(|x| x.name == "capture_enabled").unwrap();
        assert_eq!((c.offset, c.size), (24, 1));
        assert!(parse_settings("struct scap_bpf_settings { struct foo x; };").is_none());
    }

    fn schema() -> EventSchema {
        EventSchema {
            header_len: 26,
            events: vec![
                EventInfo {
                    name: "open".into(),
                    flags: 0,
                    params: vec![("fd".into(), 1), ("name".into(), 2)],
                },
                EventInfo {
                    name: "open".into(),
                    flags: 0,
                    params: vec![("fd".into(), 1), ("name".into(), 2)],
                },
            ],
            text_types: vec![2],
            signed_types: vec![1],
            large_payload_flag: 1 << 11,
        }
    }

    fn event(code: u16, params: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        let len = 26 + params.len() * 2 + params.iter().map(|p| p.len()).sum::<usize>();
        v.extend_from_slice(&5u64.to_le_bytes());
        v.extend_from_slice(&1u64.to_le_bytes());
        v.extend_from_slice(&(len as u32).to_le_bytes());
        v.extend_from_slice(&code.to_le_bytes());
        v.extend_from_slice(&(params.len() as u32).to_le_bytes());
        for p in params {
            v.extend_from_slice(&(p.len() as u16).to_le_bytes());
        }
        for p in params {
            v.extend_from_slice(p);
        }
        v
    }

    #[test]
    fn decodes_and_refuses_broken_events() {
        let s = schema();
        let raw = event(1, &[&3i64.to_le_bytes(), b"/tmp/x\0"]);
        let e = s.decode(&raw).unwrap();
        assert_eq!((e.name.as_str(), e.dir), ("open", '<'));
        assert_eq!(e.param("fd").unwrap().as_i64(), Some(3));
        assert_eq!(e.param("name").unwrap().as_str(), Some("/tmp/x"));
        // Truncated, wrong parameter count, unknown code: errors, not garbage.
        assert!(s.decode(&raw[..raw.len() - 2]).is_err());
        assert!(s
            .decode(&event(1, &[b"x"]))
            .unwrap_err()
            .to_string()
            .contains("parameters"));
        assert!(s
            .decode(&event(9, &[]))
            .unwrap_err()
            .to_string()
            .contains("not in"));
    }

    #[test]
    fn check_needs_every_expectation() {
        let s = schema();
        let ev = event(
            1,
            &[&3i64.to_le_bytes(), format!("{MARKER_PATH}\0").as_bytes()],
        );
        let report = serde_json::json!({"events": [hex::encode(&ev)], "child": 7, "loader_pid": 1});
        let c = check(&s, &report);
        assert!(c.expectations[0].seen, "{c:?}");
        assert!(!c.ok, "no fork or exec seen, yet ok");
        let c = check(&s, &serde_json::json!({"events": ["zz"]}));
        assert!(!c.ok && !c.errors.is_empty());
    }
}
