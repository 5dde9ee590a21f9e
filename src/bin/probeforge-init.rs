//! `/init` of probeforge's verification VM: loads Falco legacy eBPF probes the way libscap does
//! and reports, per program, whether the running kernel's verifier accepted it; then powers
//! off. Runs as PID 1 in an initramfs that holds only this binary, its libraries and
//! `/probes/*.o`. Prints one `PROBEFORGE-REPORT <json>` line per probe on the console.

use std::ffi::CString;
use std::fs;

use object::{Object, ObjectSection, ObjectSymbol, RelocationTarget};

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

fn verify(path: &str, bytes: &[u8], release: &str, ncpus: u32) -> serde_json::Value {
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
    let mut map_fds: Vec<i32> = Vec::new();
    let mut tail_map = None;
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
        match bpf(BPF_MAP_CREATE, &mut a) {
            Ok(fd) => {
                if ty == BPF_MAP_TYPE_PROG_ARRAY && name == "tail_map" {
                    tail_map = Some((fd, me));
                }
                map_fds.push(fd);
            }
            Err(e) => {
                map_errors.push(format!("map `{name}`: {}", errno_name(e)));
                map_fds.push(-1);
            }
        }
    }
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
            let fd = map_fds.get(idx).copied().unwrap_or(-1);
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
                let mut attached = None;
                if let Some(tp) = name
                    .strip_prefix("raw_tracepoint/")
                    .filter(|t| !t.starts_with("filler/"))
                {
                    let c = CString::new(tp).unwrap();
                    let mut a = [0u8; ATTR];
                    put64(&mut a, 0, c.as_ptr() as u64);
                    put32(&mut a, 8, fd as u32);
                    attached = Some(bpf(BPF_RAW_TRACEPOINT_OPEN, &mut a).is_ok());
                } else if let Some((tm, max)) = tail_map {
                    if filler_slot < max {
                        let (key, val) = (filler_slot, fd as u32);
                        let mut a = [0u8; ATTR];
                        put32(&mut a, 0, tm as u32);
                        put64(&mut a, 8, &key as *const u32 as u64);
                        put64(&mut a, 16, &val as *const u32 as u64);
                        let _ = bpf(BPF_MAP_UPDATE_ELEM, &mut a);
                        filler_slot += 1;
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
                let tail: Vec<&str> = log
                    .lines()
                    .rev()
                    .take(8)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                results.push(ProgResult {
                    name,
                    insns: count,
                    ok: false,
                    error: Some(format!("{}: {}", errno_name(e), tail.join(" | "))),
                    attached: None,
                });
            }
        }
    }
    let loaded = results.iter().filter(|r| r.ok).count();
    serde_json::json!({
        "probe": path,
        "kernel_version": kv,
        "uname_r": release,
        "maps": map_fds.len(),
        "map_errors": map_errors,
        "programs": results.len(),
        "loaded": loaded,
        "results": results.iter().map(|r| serde_json::json!({"name": r.name, "insns": r.insns, "ok": r.ok, "error": r.error, "attached": r.attached})).collect::<Vec<_>>(),
    })
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
    mount("proc", "/proc", "proc");
    mount("sysfs", "/sys", "sysfs");
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
    println!("PROBEFORGE-BOOTED {release}");
    let mut probes: Vec<_> = fs::read_dir("/probes")
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    probes.sort();
    for p in probes {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let report = match fs::read(&p) {
            Ok(b) => verify(&name, &b, &release, ncpus),
            Err(e) => serde_json::json!({"probe": name, "error": e.to_string()}),
        };
        println!("PROBEFORGE-REPORT {report}");
    }
    println!("PROBEFORGE-DONE");
    // SAFETY: sync and power off; we are PID 1 and done.
    unsafe {
        libc::sync();
        libc::reboot(libc::LINUX_REBOOT_CMD_POWER_OFF);
    }
}
