//! `/init` of probeforge's verification VM: loads Falco legacy eBPF probes the way libscap does
//! and reports, per program, whether the running kernel's verifier accepted it; then powers
//! off. Runs as PID 1 in an initramfs that holds only this binary, its libraries and
//! `/probes/*.o`. Writes one `PROBEFORGE-REPORT <json>` line per probe to the verdict channel
//! the host named on the kernel command line (`probeforge.channel=`): x86's `isa-debugcon` I/O
//! port or arm64 semihosting, neither of which needs a driver or an interrupt (a PREEMPT_RT
//! kernel under TCG disables the serial port's interrupt and cuts off long console output).
//! The console gets a few short lines for people, written without blocking; only where no
//! channel can be had (kernel lockdown refuses I/O ports) does the verdict go to the console.
//!
//! Where the host put the driver's tables beside a probe (`/probes/<probe>.tables/`), the
//! loader then captures as libscap does: fills the tables and settings, opens a perf ring per
//! CPU, enables the syscalls, runs a tiny workload (open a marker file, fork, exec itself with
//! a marker argument), disables them, and reports the workload's raw events for the host to
//! decode.
//!
//! Where the host put a userspace (`/userspace.json`, `verify --userspace`), the loader instead
//! runs that userspace (Debian's sysdig, chrooted into its own root with proc, sysfs, debugfs
//! and devtmpfs mounted there) on each probe, repeats the same workload until sysdig has
//! printed its events or the deadline passes, stops sysdig with SIGINT, and reports what
//! sysdig printed and said; the host judges it.

use std::ffi::CString;
use std::fs;

use object::{Object, ObjectSection, ObjectSymbol, RelocationTarget};

// The loader builds alone too (`init/Cargo.toml`, for other arches), so it shares only this
// file with the library.
mod kmod;
#[path = "../../verify/workload.rs"]
mod workload;
use workload::{EXEC_ARG, INIT_PATH, MARKER_PATH, USERSPACE_MANIFEST};

const BPF_MAP_CREATE: i64 = 0;
const BPF_MAP_UPDATE_ELEM: i64 = 2;
const BPF_PROG_LOAD: i64 = 5;
const BPF_RAW_TRACEPOINT_OPEN: i64 = 17;
const BPF_PROG_TYPE_RAW_TRACEPOINT: u32 = 17;
const BPF_MAP_TYPE_PROG_ARRAY: u32 = 3;
const BPF_PSEUDO_MAP_FD: u8 = 1;
const MAP_DEF: usize = 28;
const ATTR: usize = 144;

fn bpf(cmd: i64, attr: &mut [u8; ATTR]) -> Result<i32, i32> {
    // SAFETY: the bpf syscall reads (and for some commands writes) `attr`, which outlives it.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), ATTR as u32) };
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(r as i32)
    }
}

fn put32(a: &mut [u8; ATTR], off: usize, v: u32) {
    a[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}
fn put64(a: &mut [u8; ATTR], off: usize, v: u64) {
    a[off..off + 8].copy_from_slice(&v.to_ne_bytes());
}

fn errno_name(e: i32) -> String {
    std::io::Error::from_raw_os_error(e).to_string()
}

fn uname_r() -> String {
    // SAFETY: uname fills the struct we hand it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    unsafe { libc::uname(&mut u) };
    let bytes: Vec<u8> = u
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn cstr(d: &[u8]) -> String {
    let end = d.iter().position(|&b| b == 0).unwrap_or(d.len());
    String::from_utf8_lossy(&d[..end]).into_owned()
}

struct ProgResult {
    name: String,
    insns: usize,
    ok: bool,
    error: Option<String>,
    attached: Option<bool>,
}

fn map_update(fd: i32, key: u32, val: &[u8]) -> Result<(), i32> {
    let mut a = [0u8; ATTR];
    put32(&mut a, 0, fd as u32);
    put64(&mut a, 8, &key as *const u32 as u64);
    put64(&mut a, 16, val.as_ptr() as u64);
    bpf(BPF_MAP_UPDATE_ELEM, &mut a).map(|_| ())
}

/// A map the loader created: name, fd, value size, entries.
struct Map {
    name: String,
    fd: i32,
    ty: u32,
    value_size: u32,
    entries: u32,
}

/// Everything a probe holds open; closed when the probe is done, so the next one starts alone.
#[derive(Default)]
struct Held {
    maps: Vec<Map>,
    fds: Vec<i32>,
}

impl Held {
    fn map(&self, name: &str) -> Option<&Map> {
        self.maps.iter().find(|m| m.name == name && m.fd >= 0)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        for fd in self.fds.iter().chain(self.maps.iter().map(|m| &m.fd)) {
            if *fd >= 0 {
                // SAFETY: closing descriptors this probe opened.
                unsafe { libc::close(*fd) };
            }
        }
    }
}

fn verify(
    path: &str,
    bytes: &[u8],
    release: &str,
    ncpus: u32,
    tables: Option<&std::path::Path>,
) -> serde_json::Value {
    let mut held = Held::default();
    // With the driver's tables, a filler goes where libscap puts it: at its PPM_FILLER_* index.
    let filler_names: Option<Vec<String>> = tables.and_then(|t| {
        fs::read(t.join("filler_names")).ok().map(|b| {
            b.split(|&c| c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
    });
    let file = match object::File::parse(bytes) {
        Ok(f) => f,
        Err(e) => return serde_json::json!({"probe": path, "error": format!("not an object: {e}")}),
    };
    let sec = |n: &str| {
        file.section_by_name(n)
            .and_then(|s| s.data().ok().map(|d| d.to_vec()))
    };
    let kv = sec("kernel_version").map(|d| cstr(&d)).unwrap_or_default();
    if kv != release {
        // libscap refuses such a probe before loading anything.
        return serde_json::json!({"probe": path, "kernel_version": kv, "uname_r": release,
            "error": format!("kernel_version `{kv}` does not match uname -r `{release}`")});
    }
    let license = CString::new(
        sec("license")
            .map(|d| cstr(&d))
            .unwrap_or_else(|| "GPL".into()),
    )
    .unwrap();
    // Maps, in definition order; max_entries 0 means one per CPU.
    let maps_sec = file.section_by_name("maps");
    let maps_idx = maps_sec.as_ref().map(|s| s.index());
    let maps_data = maps_sec
        .and_then(|s| s.data().ok().map(|d| d.to_vec()))
        .unwrap_or_default();
    let mut map_names: Vec<(u64, String)> = file
        .symbols()
        .filter(|s| s.section_index() == maps_idx && maps_idx.is_some())
        .filter_map(|s| Some((s.address(), s.name().ok()?.to_owned())))
        .collect();
    map_names.sort();
    let mut map_errors = Vec::new();
    for (i, def) in maps_data.chunks_exact(MAP_DEF).enumerate() {
        let f = |k: usize| u32::from_le_bytes(def[k * 4..k * 4 + 4].try_into().unwrap());
        let (ty, ks, vs, mut me, flags) = (f(0), f(1), f(2), f(3), f(4));
        if me == 0 {
            me = ncpus;
        }
        let mut a = [0u8; ATTR];
        put32(&mut a, 0, ty);
        put32(&mut a, 4, ks);
        put32(&mut a, 8, vs);
        put32(&mut a, 12, me);
        put32(&mut a, 16, flags);
        let name = map_names
            .iter()
            .find(|(off, _)| *off as usize == i * MAP_DEF)
            .map(|(_, n)| n.clone())
            .unwrap_or_default();
        let fd = bpf(BPF_MAP_CREATE, &mut a).unwrap_or_else(|e| {
            map_errors.push(format!("map `{name}`: {}", errno_name(e)));
            -1
        });
        held.maps.push(Map {
            name,
            fd,
            ty,
            value_size: vs,
            entries: me,
        });
    }
    let tail_map = held
        .map("tail_map")
        .filter(|m| m.ty == BPF_MAP_TYPE_PROG_ARRAY)
        .map(|m| (m.fd, m.entries));
    let mut results = Vec::new();
    let mut filler_slot = 0u32;
    for s in file.sections() {
        let name = s.name().unwrap_or("").to_owned();
        if s.kind() != object::SectionKind::Text || s.size() == 0 || !name.contains('/') {
            continue;
        }
        let mut insns = s.data().unwrap_or(&[]).to_vec();
        let mut reloc_err = None;
        for (off, r) in s.relocations() {
            let RelocationTarget::Symbol(si) = r.target() else {
                continue;
            };
            let Ok(sym) = file.symbol_by_index(si) else {
                continue;
            };
            if sym.section_index() != maps_idx || maps_idx.is_none() {
                reloc_err = Some(format!(
                    "relocation at {off} against `{}`, not a map",
                    sym.name().unwrap_or("?")
                ));
                break;
            }
            let idx = (sym.address() as usize) / MAP_DEF;
            let fd = held.maps.get(idx).map_or(-1, |m| m.fd);
            let o = off as usize;
            if o + 8 > insns.len() {
                reloc_err = Some(format!("relocation offset {off} outside the program"));
                break;
            }
            insns[o + 1] = (insns[o + 1] & 0x0f) | (BPF_PSEUDO_MAP_FD << 4);
            insns[o + 4..o + 8].copy_from_slice(&fd.to_le_bytes());
        }
        let count = insns.len() / 8;
        if let Some(e) = reloc_err {
            results.push(ProgResult {
                name,
                insns: count,
                ok: false,
                error: Some(e),
                attached: None,
            });
            continue;
        }
        let load = |log: Option<&mut Vec<u8>>| {
            let mut a = [0u8; ATTR];
            put32(&mut a, 0, BPF_PROG_TYPE_RAW_TRACEPOINT);
            put32(&mut a, 4, count as u32);
            put64(&mut a, 8, insns.as_ptr() as u64);
            put64(&mut a, 16, license.as_ptr() as u64);
            if let Some(buf) = log {
                put32(&mut a, 24, 1);
                put32(&mut a, 28, buf.len() as u32);
                put64(&mut a, 32, buf.as_mut_ptr() as u64);
            }
            bpf(BPF_PROG_LOAD, &mut a)
        };
        // Without a log first (fast); with a large one only to explain a failure.
        match load(None) {
            Ok(fd) => {
                held.fds.push(fd);
                let mut attached = None;
                if let Some(tp) = name
                    .strip_prefix("raw_tracepoint/")
                    .filter(|t| !t.starts_with("filler/"))
                {
                    let c = CString::new(tp).unwrap();
                    let mut a = [0u8; ATTR];
                    put64(&mut a, 0, c.as_ptr() as u64);
                    put32(&mut a, 8, fd as u32);
                    let link = bpf(BPF_RAW_TRACEPOINT_OPEN, &mut a);
                    if let Ok(l) = link {
                        held.fds.push(l);
                    }
                    attached = Some(link.is_ok());
                } else if let Some((tm, max)) = tail_map {
                    let filler = name.rsplit('/').next().unwrap_or("");
                    let slot = match &filler_names {
                        Some(names) => names.iter().position(|n| n == filler).map(|i| i as u32),
                        None => Some(filler_slot),
                    };
                    filler_slot += 1;
                    match slot {
                        Some(k) if k < max => {
                            if let Err(e) = map_update(tm, k, &(fd as u32).to_ne_bytes()) {
                                map_errors
                                    .push(format!("tail_map[{k}] = `{name}`: {}", errno_name(e)));
                            }
                        }
                        _ => map_errors.push(format!(
                            "filler `{filler}` is not in the driver's filler list"
                        )),
                    }
                }
                results.push(ProgResult {
                    name,
                    insns: count,
                    ok: true,
                    error: None,
                    attached,
                });
            }
            Err(e) => {
                let mut buf = vec![0u8; 16 << 20];
                let _ = load(Some(&mut buf));
                let log = cstr(&buf);
                // The verifier's verdict first (its last line that is not a statistic), then
                // the instructions that led to it.
                let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
                let stat = |l: &&str| {
                    [
                        "processed ",
                        "verification time",
                        "stack depth",
                        "max_states",
                        "peak_states",
                    ]
                    .iter()
                    .any(|p| l.starts_with(p))
                };
                let verdict = lines.iter().rev().find(|l| !stat(l)).copied().unwrap_or("");
                let tail = lines[lines.len().saturating_sub(8)..].join(" | ");
                results.push(ProgResult {
                    name,
                    insns: count,
                    ok: false,
                    error: Some(format!("{}: {verdict} (log tail: {tail})", errno_name(e))),
                    attached: None,
                });
            }
        }
    }
    let loaded = results.iter().filter(|r| r.ok).count();
    let capture = match tables {
        Some(t) if loaded == results.len() && map_errors.is_empty() => {
            Some(match capture(&held, t, ncpus) {
                Ok(c) => c,
                Err(e) => serde_json::json!({"capture_error": e}),
            })
        }
        Some(_) => Some(
            serde_json::json!({"capture_error": "not attempted: the probe did not load whole"}),
        ),
        None => None,
    };
    let mut report = serde_json::json!({
        "probe": path,
        "kernel_version": kv,
        "uname_r": release,
        "maps": held.maps.len(),
        "map_errors": map_errors,
        "programs": results.len(),
        "loaded": loaded,
        "results": results.iter().map(|r| serde_json::json!({"name": r.name, "insns": r.insns, "ok": r.ok, "error": r.error, "attached": r.attached})).collect::<Vec<_>>(),
    });
    if let Some(serde_json::Value::Object(c)) = capture {
        report["capture"] = serde_json::Value::Object(c);
    }
    report
}

/// One CPU's perf ring, mapped.
struct Ring {
    fd: i32,
    base: *mut u8,
    len: usize,
    page: usize,
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: unmapping and closing what `open_ring` mapped and opened.
        unsafe {
            libc::munmap(self.base as *mut libc::c_void, self.len);
            libc::close(self.fd);
        }
    }
}

/// Bytes of each CPU's ring: libscap's default (8 MiB).
const RING_BYTES: usize = 8 << 20;

fn open_ring(cpu: u32) -> Result<Ring, String> {
    // perf_event_attr, first version (64 bytes): software event BPF_OUTPUT, raw samples, and
    // nothing else, exactly what libscap opens for each CPU. In particular no wake-up per
    // event: on PREEMPT_RT each wake-up is a context switch, whose sched_switch event wakes
    // again; that storm (~190,000 events in one workload) filled the rings before the
    // workload's own events came.
    let mut attr = [0u8; 64];
    attr[0..4].copy_from_slice(&1u32.to_ne_bytes()); // PERF_TYPE_SOFTWARE
    attr[4..8].copy_from_slice(&64u32.to_ne_bytes());
    attr[8..16].copy_from_slice(&10u64.to_ne_bytes()); // PERF_COUNT_SW_BPF_OUTPUT
    attr[24..32].copy_from_slice(&(1u64 << 10).to_ne_bytes()); // PERF_SAMPLE_RAW
                                                               // SAFETY: perf_event_open reads `attr`, which outlives the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr.as_ptr(),
            -1,
            cpu as i32,
            -1,
            8,
        )
    };
    if fd < 0 {
        return Err(format!(
            "perf_event_open on cpu {cpu}: {}",
            std::io::Error::last_os_error()
        ));
    }
    let fd = fd as i32;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    // A power of two of pages, as perf requires (4, 16 and 64 KiB pages all divide 8 MiB).
    let len = page + RING_BYTES;
    // SAFETY: mapping the ring of a perf fd we own, as its ABI describes.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        let e = std::io::Error::last_os_error();
        // SAFETY: closing our own fd.
        unsafe { libc::close(fd) };
        return Err(format!("mmap of the perf ring on cpu {cpu}: {e}"));
    }
    // SAFETY: PERF_EVENT_IOC_ENABLE on our fd.
    unsafe { libc::ioctl(fd, 0x2400, 0) };
    Ok(Ring {
        fd,
        base: base as *mut u8,
        len,
        page,
    })
}

impl Ring {
    /// The raw samples in the ring (and how many were lost), oldest first.
    fn drain(&self) -> (Vec<Vec<u8>>, u64) {
        let size = RING_BYTES;
        // SAFETY: data_head/data_tail live at offsets 1024/1032 of the mapped control page.
        let head = unsafe { std::ptr::read_volatile(self.base.add(1024) as *const u64) };
        std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
        let mut tail = unsafe { std::ptr::read_volatile(self.base.add(1032) as *const u64) };
        // SAFETY: the data area follows the control page and is `size` bytes long.
        let data = unsafe { std::slice::from_raw_parts(self.base.add(self.page), size) };
        let read = |at: u64, n: usize| -> Vec<u8> {
            (0..n).map(|i| data[((at as usize) + i) % size]).collect()
        };
        let (mut out, mut lost) = (Vec::new(), 0);
        while tail + 8 <= head {
            let h = read(tail, 8);
            let ty = u32::from_ne_bytes(h[0..4].try_into().unwrap());
            let len = u16::from_ne_bytes(h[6..8].try_into().unwrap()) as u64;
            if len < 8 {
                break;
            }
            let rec = read(tail, len as usize);
            match ty {
                9 if rec.len() >= 12 => {
                    let n = u32::from_ne_bytes(rec[8..12].try_into().unwrap()) as usize;
                    out.push(rec[12..(12 + n).min(rec.len())].to_vec());
                }
                2 if rec.len() >= 24 => lost += u64::from_ne_bytes(rec[16..24].try_into().unwrap()),
                _ => {}
            }
            tail += len;
        }
        (out, lost)
    }
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the struct we hand it.
    unsafe { libc::clock_gettime(clock, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn kallsyms(symbol: &str) -> u64 {
    fs::read_to_string("/proc/kallsyms")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                let mut w = l.split_whitespace();
                let (addr, _, name) = (w.next()?, w.next()?, w.next()?);
                (name == symbol)
                    .then(|| u64::from_str_radix(addr, 16).ok())
                    .flatten()
            })
        })
        .unwrap_or(0)
}

/// Fills the tables and settings, captures the workload, and returns what it saw.
fn capture(held: &Held, tables: &std::path::Path, ncpus: u32) -> Result<serde_json::Value, String> {
    let need = |n: &str| {
        held.map(n)
            .ok_or_else(|| format!("the probe has no `{n}` map"))
    };
    // The driver's tables, value i at key i.
    let mut entries: Vec<_> = fs::read_dir(tables)
        .map_err(|e| e.to_string())?
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let file = e.file_name().to_string_lossy().into_owned();
        if file == "filler_names" || file == "settings.json" {
            continue;
        }
        let m = need(&file)?;
        let data = fs::read(e.path()).map_err(|e| e.to_string())?;
        let vs = m.value_size as usize;
        if vs == 0 || data.len() % vs != 0 || data.len() / vs > m.entries as usize {
            return Err(format!(
                "table `{file}`: {} bytes do not fit the map ({} entries of {vs} bytes): the driver source is not the probe's",
                data.len(),
                m.entries
            ));
        }
        for (k, v) in data.chunks_exact(vs).enumerate() {
            map_update(m.fd, k as u32, v)
                .map_err(|e| format!("table `{file}`[{k}]: {}", errno_name(e)))?;
        }
    }
    // Settings: the driver's own struct layout, filled as libscap's defaults.
    let layout: serde_json::Value = serde_json::from_slice(
        &fs::read(tables.join("settings.json")).map_err(|e| format!("settings.json: {e}"))?,
    )
    .map_err(|e| format!("settings.json: {e}"))?;
    let settings_map = need("settings_map")?;
    if layout["size"].as_u64() != Some(settings_map.value_size as u64) {
        return Err(format!(
            "struct scap_bpf_settings is {} bytes in the driver source, {} in the probe",
            layout["size"], settings_map.value_size
        ));
    }
    let boot_time = clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_BOOTTIME);
    let socket_file_ops = kallsyms("socket_file_ops");
    let settings = |enabled: bool| -> Vec<u8> {
        let mut v = vec![0u8; settings_map.value_size as usize];
        for f in layout["fields"].as_array().into_iter().flatten() {
            let (name, off, size) = (
                f["name"].as_str().unwrap_or(""),
                f["offset"].as_u64().unwrap_or(0) as usize,
                f["size"].as_u64().unwrap_or(0) as usize,
            );
            let val: u64 = match name {
                "boot_time" => boot_time,
                "socket_file_ops" => socket_file_ops,
                "snaplen" => 80,
                "sampling_ratio" => 1,
                "statsd_port" => 8125,
                "capture_enabled" => enabled as u64,
                _ => 0,
            };
            if off + size <= v.len() && size <= 8 {
                v[off..off + size].copy_from_slice(&val.to_le_bytes()[..size]);
            }
        }
        v
    };
    map_update(settings_map.fd, 0, &settings(false))
        .map_err(|e| format!("settings_map: {}", errno_name(e)))?;
    // One perf ring per CPU, in perf_map at the CPU's index.
    let perf_map = need("perf_map")?;
    let mut rings = Vec::new();
    for cpu in 0..ncpus {
        let r = open_ring(cpu)?;
        map_update(perf_map.fd, cpu, &(r.fd as u32).to_ne_bytes())
            .map_err(|e| format!("perf_map[{cpu}]: {}", errno_name(e)))?;
        rings.push(r);
    }
    fs::write(MARKER_PATH, b"probeforge\n").map_err(|e| format!("{MARKER_PATH}: {e}"))?;
    let path = CString::new(MARKER_PATH).unwrap();
    let (init, arg) = (
        CString::new(INIT_PATH).unwrap(),
        CString::new(EXEC_ARG).unwrap(),
    );
    // Newer drivers select syscalls through `interesting_syscalls_table`, older ones through
    // the settings' `capture_enabled`. bpf(2) itself goes last on and first off, so the
    // loader's own map updates stay out of the capture.
    let interesting = held.map("interesting_syscalls_table");
    let sys_bpf = libc::SYS_bpf as u32;
    let set_interesting = |on: bool| -> Result<(), String> {
        let Some(m) = interesting else { return Ok(()) };
        let mut keys: Vec<u32> = (0..m.entries).filter(|&k| k != sys_bpf).collect();
        if on {
            keys.push(sys_bpf)
        } else {
            keys.insert(0, sys_bpf)
        }
        for k in keys.into_iter().filter(|&k| k < m.entries) {
            map_update(m.fd, k, &[on as u8])
                .map_err(|e| format!("interesting_syscalls_table: {}", errno_name(e)))?;
        }
        Ok(())
    };
    set_interesting(true)?;
    map_update(settings_map.fd, 0, &settings(true))
        .map_err(|e| format!("settings_map: {}", errno_name(e)))?;
    let child = workload(&path, &init, &arg);
    map_update(settings_map.fd, 0, &settings(false))
        .map_err(|e| format!("settings_map: {}", errno_name(e)))?;
    set_interesting(false)?;
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() } as u64;
    let (mut events, mut lost, mut captured) = (Vec::new(), 0, 0);
    for r in &rings {
        let (samples, l) = r.drain();
        lost += l;
        captured += samples.len();
        for s in samples {
            let tid = s
                .get(8..16)
                .map(|t| u64::from_le_bytes(t.try_into().unwrap()));
            if tid == Some(me) || tid == Some(child as u64) {
                events.push(s);
            }
        }
    }
    // Oldest first across CPUs.
    events.sort_by_key(|s| {
        s.get(0..8)
            .map(|t| u64::from_le_bytes(t.try_into().unwrap()))
    });
    Ok(serde_json::json!({
        "loader_pid": me,
        "child": child,
        "captured": captured,
        "lost": lost,
        "events": events.iter().map(Vec::as_slice).map(hex_encode).collect::<Vec<_>>(),
    }))
}

/// The workload: open the marker, fork, and exec the loader with the marker argument in the
/// child (which exits at once); returns the child's pid.
fn workload(path: &CString, init: &CString, arg: &CString) -> libc::pid_t {
    // SAFETY: plain syscalls on valid C strings; the child only execs or exits.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_RDONLY);
        if fd >= 0 {
            libc::close(fd);
        }
        let pid = libc::fork();
        if pid == 0 {
            let argv = [init.as_ptr(), arg.as_ptr(), std::ptr::null()];
            libc::execv(init.as_ptr(), argv.as_ptr());
            libc::_exit(127);
        }
        let mut status = 0;
        if pid > 0 {
            libc::waitpid(pid, &mut status, 0);
        }
        pid
    }
}

/// A wait status in words: `0`, `1`, `signal 11 (SIGSEGV)`.
fn status_text(st: libc::c_int) -> String {
    if libc::WIFEXITED(st) {
        return libc::WEXITSTATUS(st).to_string();
    }
    let sig = libc::WTERMSIG(st);
    let name = match sig {
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGINT => "SIGINT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGTERM => "SIGTERM",
        _ => "?",
    };
    format!("signal {sig} ({name})")
}

/// The end of a file, at most `max` bytes, as text.
fn file_tail(path: &str, max: usize) -> String {
    let b = fs::read(path).unwrap_or_default();
    String::from_utf8_lossy(&b[b.len().saturating_sub(max)..]).into_owned()
}

/// sysdig's output kept for the host: all of it up to 1 MiB, else only the lines naming the
/// workload.
fn userspace_stdout(path: &str) -> (String, bool) {
    let text = String::from_utf8_lossy(&fs::read(path).unwrap_or_default()).into_owned();
    if text.len() <= 1 << 20 {
        return (text, false);
    }
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(MARKER_PATH) || l.contains(EXEC_ARG))
        .take(2000)
        .collect();
    (kept.join("\n"), true)
}

/// Runs the userspace of the manifest on one probe over the workload; the raw outcome.
/// With `module`, the module is loaded already: the arguments naming the probe are left out,
/// so the userspace uses its kernel module engine.
fn run_userspace(
    name: &str,
    probe: &std::path::Path,
    m: &serde_json::Value,
    module: bool,
) -> serde_json::Value {
    let start = std::time::Instant::now();
    let who = m["name"].as_str().unwrap_or("userspace").to_owned();
    let root = m["root"].as_str().unwrap_or("/userspace").to_owned();
    let fail =
        |e: String| serde_json::json!({"probe": name, "userspace": {"name": who, "error": e}});
    // What a host's sysdig finds mounted; mounting twice (a second probe) only fails.
    mount("proc", &format!("{root}/proc"), "proc");
    mount("sysfs", &format!("{root}/sys"), "sysfs");
    mount("debugfs", &format!("{root}/sys/kernel/debug"), "debugfs");
    mount("tracefs", &format!("{root}/sys/kernel/tracing"), "tracefs");
    mount("devtmpfs", &format!("{root}/dev"), "devtmpfs");
    let inside = format!("/probes/{name}");
    if let Err(e) = fs::copy(probe, format!("{root}{inside}")) {
        return fail(format!("copying the probe into {root}: {e}"));
    }
    if let Err(e) = fs::write(MARKER_PATH, b"probeforge\n") {
        return fail(format!("{MARKER_PATH}: {e}"));
    }
    let strings = |k: &str| -> Vec<CString> {
        m[k].as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str())
            .filter(|a| !(module && a.contains("{probe}")))
            .filter_map(|a| CString::new(a.replace("{probe}", &inside)).ok())
            .collect()
    };
    let (argv, env) = (strings("argv"), strings("env"));
    if argv.is_empty() {
        return fail("the manifest names no program".into());
    }
    let (out_path, err_path) = (
        format!("{root}/tmp/userspace.out"),
        format!("{root}/tmp/userspace.err"),
    );
    let (out, err) = match (fs::File::create(&out_path), fs::File::create(&err_path)) {
        (Ok(o), Ok(e)) => (o, e),
        (Err(e), _) | (_, Err(e)) => return fail(format!("{root}/tmp: {e}")),
    };
    use std::os::fd::AsRawFd;
    let croot = CString::new(root.clone()).unwrap();
    let mut argp: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argp.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: the child only makes async-signal-safe calls on memory prepared before the fork.
    let pid = unsafe {
        let pid = libc::fork();
        if pid == 0 {
            if libc::chroot(croot.as_ptr()) != 0 || libc::chdir(c"/".as_ptr()) != 0 {
                libc::_exit(126);
            }
            libc::dup2(out.as_raw_fd(), 1);
            libc::dup2(err.as_raw_fd(), 2);
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
            if null >= 0 {
                libc::dup2(null, 0);
            }
            libc::execve(argp[0], argp.as_ptr(), envp.as_ptr());
            let msg = b"probeforge-init: execve of the userspace failed\n";
            libc::write(2, msg.as_ptr() as *const libc::c_void, msg.len());
            libc::_exit(127);
        }
        pid
    };
    if pid < 0 {
        return fail(format!("fork: {}", std::io::Error::last_os_error()));
    }
    let deadline = std::time::Duration::from_secs(m["deadline_secs"].as_u64().unwrap_or(120));
    let (path, init, arg) = (
        CString::new(MARKER_PATH).unwrap(),
        CString::new(INIT_PATH).unwrap(),
        CString::new(EXEC_ARG).unwrap(),
    );
    let mut status = None;
    let mut rounds = 0u64;
    let mut seen_at = None;
    let wait = |block: bool| -> Option<libc::c_int> {
        let mut st = 0;
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut st, if block { 0 } else { libc::WNOHANG }) };
        (r == pid).then_some(st)
    };
    // Capture starts some seconds after sysdig does (the probe loads first): run the
    // workload until sysdig has printed both of its events.
    while start.elapsed() < deadline {
        if let Some(st) = wait(false) {
            status = Some(st);
            break;
        }
        workload(&path, &init, &arg);
        rounds += 1;
        std::thread::sleep(std::time::Duration::from_millis(700));
        let text = fs::read_to_string(&out_path).unwrap_or_default();
        if text.contains(MARKER_PATH) && text.contains(EXEC_ARG) {
            seen_at = Some(start.elapsed().as_secs_f64());
            // Both exit events are out by now; a moment for the last lines.
            std::thread::sleep(std::time::Duration::from_millis(500));
            break;
        }
    }
    let exited_early = status.is_some();
    if status.is_none() {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid, libc::SIGINT) };
        let stop = std::time::Instant::now();
        while status.is_none() && stop.elapsed() < std::time::Duration::from_secs(15) {
            status = wait(false);
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        if status.is_none() {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            status = wait(true);
        }
    }
    let (stdout, truncated) = userspace_stdout(&out_path);
    serde_json::json!({
        "probe": name,
        "userspace": {
            "name": who,
            "status": status.map(status_text),
            "exited_early": exited_early,
            "rounds": rounds,
            "seconds": start.elapsed().as_secs_f64(),
            "seconds_to_capture": seen_at,
            "stdout": stdout,
            "stdout_truncated": truncated,
            "stderr": file_tail(&err_path, 16 << 10),
        },
    })
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The verdict's way out: the channel the host asked for on the kernel command line, else the
/// console.
struct Verdicts {
    channel: Channel,
    /// Why the console carries the verdict, where a channel was asked for and refused.
    fallback: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Channel {
    Console,
    /// QEMU's `isa-debugcon` at I/O port 0xe9 (x86).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Debugcon,
    /// Semihosting `SYS_WRITE0` (arm64; QEMU allows it from user mode when asked to).
    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
    Semihosting,
}

/// The I/O port of QEMU's `isa-debugcon` device as the host configures it.
#[cfg(target_arch = "x86_64")]
const DEBUGCON_PORT: u16 = 0xe9;

impl Verdicts {
    fn open() -> Verdicts {
        let cmdline = fs::read_to_string("/proc/cmdline").unwrap_or_default();
        let want = cmdline
            .split_whitespace()
            .find_map(|w| w.strip_prefix("probeforge.channel="))
            .unwrap_or("console")
            .to_owned();
        let (channel, fallback) = match Self::channel(&want) {
            Ok(c) => (c, None),
            Err(why) => (Channel::Console, Some(format!("{want}: {why}"))),
        };
        if channel != Channel::Console {
            // Lines for people must never stall the loader on a console whose interrupt the
            // kernel disabled: drop what does not fit.
            // SAFETY: fcntl on our own stdout.
            unsafe {
                let fl = libc::fcntl(1, libc::F_GETFL);
                libc::fcntl(1, libc::F_SETFL, fl | libc::O_NONBLOCK);
            }
        }
        Verdicts { channel, fallback }
    }

    fn channel(want: &str) -> Result<Channel, String> {
        match want {
            "console" => Ok(Channel::Console),
            #[cfg(target_arch = "x86_64")]
            "debugcon" => {
                // SAFETY: ioperm only changes this process's I/O permission bitmap. Lockdown
                // (integrity and up) refuses it.
                if unsafe { libc::ioperm(DEBUGCON_PORT as libc::c_ulong, 1, 1) } != 0 {
                    return Err(format!("ioperm: {}", std::io::Error::last_os_error()));
                }
                Ok(Channel::Debugcon)
            }
            #[cfg(target_arch = "aarch64")]
            "semihosting" => Ok(Channel::Semihosting),
            other => Err(format!(
                "`{other}` is not a channel of the {} loader",
                std::env::consts::ARCH
            )),
        }
    }

    fn describe(&self) -> String {
        let name = match self.channel {
            Channel::Console => "console",
            Channel::Debugcon => "debugcon",
            Channel::Semihosting => "semihosting",
        };
        match &self.fallback {
            Some(why) => format!("{name} ({why})"),
            None => name.to_owned(),
        }
    }

    /// One line of the verdict, for the host.
    fn line(&mut self, text: &str) {
        let mut b = Vec::with_capacity(text.len() + 1);
        b.extend_from_slice(text.as_bytes());
        b.push(b'\n');
        match self.channel {
            Channel::Console => {
                use std::io::Write;
                let mut o = std::io::stdout().lock();
                let _ = o.write_all(&b);
                let _ = o.flush();
            }
            #[cfg(target_arch = "x86_64")]
            Channel::Debugcon => {
                // SAFETY: `rep outsb` reads `b` (valid for its length) and writes it to the
                // port this process was granted by ioperm.
                unsafe {
                    std::arch::asm!(
                        "rep outsb",
                        in("dx") DEBUGCON_PORT,
                        inout("rsi") b.as_ptr() => _,
                        inout("rcx") b.len() => _,
                        options(nostack, preserves_flags, readonly)
                    );
                }
            }
            #[cfg(target_arch = "aarch64")]
            Channel::Semihosting => {
                // SYS_WRITE0 takes a NUL-terminated string: the text holds no NUL (JSON escapes
                // it), so it goes in NUL-terminated chunks.
                for chunk in b.chunks(4096) {
                    let mut c = Vec::with_capacity(chunk.len() + 1);
                    c.extend_from_slice(chunk);
                    c.push(0);
                    // SAFETY: the semihosting trap reads the string at x1, which lives for the
                    // call; QEMU handles it without the kernel.
                    unsafe {
                        std::arch::asm!(
                            "hlt #0xf000",
                            inout("x0") 0x04u64 => _,
                            in("x1") c.as_ptr(),
                            options(nostack)
                        );
                    }
                }
            }
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }

    /// A line for people on the console; the host does not read it.
    fn person(&self, text: &str) {
        if self.channel == Channel::Console {
            return;
        }
        use std::io::Write;
        let _ = writeln!(std::io::stdout().lock(), "{text}");
    }
}

fn mount(src: &str, dst: &str, fs: &str) {
    let (s, d, f) = (
        CString::new(src).unwrap(),
        CString::new(dst).unwrap(),
        CString::new(fs).unwrap(),
    );
    let _ = fs::create_dir_all(dst);
    // SAFETY: plain mount(2) with valid C strings.
    unsafe { libc::mount(s.as_ptr(), d.as_ptr(), f.as_ptr(), 0, std::ptr::null()) };
}

fn main() {
    // The workload's exec: the loader run again with the marker argument does nothing.
    if std::env::args().nth(1).as_deref() == Some(EXEC_ARG) {
        std::process::exit(0);
    }
    mount("proc", "/proc", "proc");
    mount("sysfs", "/sys", "sysfs");
    // The lockdown level, reported with a module's load.
    mount("securityfs", "/sys/kernel/security", "securityfs");
    // Locked memory: 5.10 still charges BPF maps and programs to RLIMIT_MEMLOCK.
    let inf = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit with a valid struct.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &inf) };
    let release = uname_r();
    // SAFETY: sysconf has no preconditions.
    let ncpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as u32;
    let mut out = Verdicts::open();
    out.line(&format!("PROBEFORGE-CHANNEL {}", out.describe()));
    out.line(&format!("PROBEFORGE-BOOTED {release}"));
    out.person(&format!(
        "probeforge: booted {release}; verdicts over {}",
        out.describe()
    ));
    let mut probes: Vec<_> = fs::read_dir("/probes")
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    probes.sort();
    let userspace: Option<serde_json::Value> = fs::read(USERSPACE_MANIFEST)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    for p in probes {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let tables = p.with_file_name(format!("{name}.tables"));
        let tables = tables.is_dir().then_some(tables);
        if let Some(m) = &userspace {
            out.person(&format!(
                "probeforge: {name}: running {}",
                m["name"].as_str().unwrap_or("the userspace")
            ));
            // A module is loaded first (sysdig's kmod engine opens its devices, which
            // devtmpfs makes in the userspace's /dev), and unloaded after.
            let report = if name.ends_with(".ko") {
                let bytes = fs::read(&p).unwrap_or_default();
                match kmod::load(&name, &p, &bytes, &release) {
                    (None, refused) => refused,
                    (Some(loaded), base) => {
                        let mut r = run_userspace(&name, &p, m, true);
                        for k in ["kind", "module", "taint", "kernel_log"] {
                            r[k] = base[k].clone();
                        }
                        kmod::unload(&loaded, &mut r);
                        r
                    }
                }
            } else {
                run_userspace(&name, &p, m, false)
            };
            let u = &report["userspace"];
            out.person(&format!(
                "probeforge: {name}: {} exited {}, {} workload round(s), capture seen {}",
                m["name"].as_str().unwrap_or("the userspace"),
                u["status"],
                u["rounds"],
                if u["seconds_to_capture"].is_null() {
                    "never".to_owned()
                } else {
                    format!("after {}s", u["seconds_to_capture"])
                }
            ));
            out.line(&format!("PROBEFORGE-REPORT {report}"));
            continue;
        }
        let report = match fs::read(&p) {
            Ok(b) if name.ends_with(".ko") => {
                kmod::verify(&name, &p, &b, &release, ncpus, tables.is_some())
            }
            Ok(b) => verify(&name, &b, &release, ncpus, tables.as_deref()),
            Err(e) => serde_json::json!({"probe": name, "error": e.to_string()}),
        };
        out.person(&format!(
            "probeforge: {name}: {}",
            match report["error"].as_str() {
                Some(e) => e.to_owned(),
                None if report["kind"] == "kmod" => format!("module {} loaded", report["module"]),
                None => format!(
                    "{}/{} programs loaded",
                    report["loaded"], report["programs"]
                ),
            }
        ));
        out.line(&format!("PROBEFORGE-REPORT {report}"));
    }
    out.line("PROBEFORGE-DONE");
    out.person("probeforge: done, powering off");
    // SAFETY: sync and power off; we are PID 1 and done.
    unsafe {
        libc::sync();
        libc::reboot(libc::LINUX_REBOOT_CMD_POWER_OFF);
    }
}
