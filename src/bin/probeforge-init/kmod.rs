//! Falco's kernel module in the VM, as libscap's kmod engine and Falco's loaders use it: load it
//! with `finit_module`, say plainly what the kernel said (a refusal's reason from its log, the
//! taint it took, whether signatures are enforced, the lockdown level), open one device per
//! CPU, map each ring buffer and its info page, enable capture through the driver's ioctls,
//! run the workload, read the rings back, and unload the module so the next one starts alone.
//!
//! Two ioctl generations: drivers from 2023 on (`PPM_IOCTL_ENABLE_SYSCALL` and
//! `PPM_IOCTL_ENABLE_TP`, a consumer starts with nothing attached) and the older ones
//! (`PPM_IOCTL_ENABLE_CAPTURE` per ring, every event enabled at open).

use std::ffi::CString;
use std::fs;

use object::{Object, ObjectSection};

use super::workload::{EXEC_ARG, INIT_PATH, MARKER_PATH};

/// `_IO('s', nr)`: no direction, no size, the same on x86_64 and arm64.
const fn ppm_ioctl(nr: u64) -> u64 {
    ((b's' as u64) << 8) | nr
}
const DISABLE_CAPTURE: u64 = ppm_ioctl(0);
const ENABLE_CAPTURE: u64 = ppm_ioctl(1);
const GET_API_VERSION: u64 = ppm_ioctl(24);
const GET_SCHEMA_VERSION: u64 = ppm_ioctl(25);
const ENABLE_SYSCALL: u64 = ppm_ioctl(29);
const DISABLE_SYSCALL: u64 = ppm_ioctl(30);
const ENABLE_TP: u64 = ppm_ioctl(31);
const DISABLE_TP: u64 = ppm_ioctl(32);

/// `kmod_prog_codes` (ppm_tp.h): what libscap attaches for syscalls, fork and exec.
const TP_SYS_ENTER: u64 = 0;
const TP_SYS_EXIT: u64 = 1;
const TP_SCHED_PROC_FORK: u64 = 7;
const TP_SCHED_PROC_EXEC: u64 = 8;

/// Native syscall numbers tried with `PPM_IOCTL_ENABLE_SYSCALL`; the driver refuses those
/// beyond its table (`EINVAL`).
const SYSCALL_IDS: u64 = 1024;

/// The ring size when the driver has no `g_buffer_bytes_dim` parameter (libscap's default).
const DEFAULT_RING_BYTES: usize = 8 << 20;

/// `struct ppm_ring_buffer_info`: head and tail (u32), then n_evts and n_drops_buffer (u64).
const INFO_BYTES: usize = 24;

/// `struct ppm_evt_hdr`: ts, tid (u64), len (u32), type (u16), nparams (u32), packed.
const HEADER_BYTES: usize = 26;

/// Taint flags by bit, as `/proc/sys/kernel/tainted` and the kernel's own letters say them.
const TAINTS: &[(u32, char, &str)] = &[
    (0, 'P', "proprietary module"),
    (1, 'F', "module force-loaded"),
    (9, 'W', "kernel warning"),
    (12, 'O', "out-of-tree module"),
    (13, 'E', "unsigned module"),
    (15, 'K', "live-patched"),
];

fn modinfo(bytes: &[u8]) -> Vec<(String, String)> {
    let Ok(f) = object::File::parse(bytes) else {
        return Vec::new();
    };
    let data = f
        .section_by_name(".modinfo")
        .and_then(|s| s.data().ok())
        .unwrap_or(&[]);
    data.split(|b| *b == 0)
        .filter_map(|e| {
            let t = String::from_utf8_lossy(e);
            let (k, v) = t.split_once('=')?;
            Some((k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// `/proc/devices`' character devices: (major, name).
fn char_devices() -> Vec<(u32, String)> {
    let text = fs::read_to_string("/proc/devices").unwrap_or_default();
    text.lines()
        .skip(1)
        .take_while(|l| !l.starts_with("Block devices"))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.parse().ok()?, w.next()?.to_owned()))
        })
        .collect()
}

fn tainted() -> u64 {
    fs::read_to_string("/proc/sys/kernel/tainted")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn taint_words(t: u64) -> Vec<String> {
    TAINTS
        .iter()
        .filter(|(bit, _, _)| t & (1 << bit) != 0)
        .map(|(_, c, what)| format!("{c} ({what})"))
        .collect()
}

/// The kernel's log lines since `skip` bytes of it, those naming the module (else the last).
fn kernel_log(skip: usize, module: &str) -> (Vec<String>, usize) {
    let mut buf = vec![0u8; 1 << 20];
    // SAFETY: SYSLOG_ACTION_READ_ALL (3) copies at most `len` bytes into `buf`.
    let n = unsafe { libc::klogctl(3, buf.as_mut_ptr() as *mut libc::c_char, buf.len() as i32) };
    let n = n.max(0) as usize;
    let text = String::from_utf8_lossy(&buf[skip.min(n)..n]).into_owned();
    // `<4>[    4.958353] falco: ...`: the level and the time say nothing here.
    let all: Vec<String> = text
        .lines()
        .map(|l| {
            let l = l.trim();
            let l = l
                .strip_prefix('<')
                .and_then(|r| r.split_once('>'))
                .map_or(l, |(_, r)| r);
            let l = l
                .strip_prefix('[')
                .and_then(|r| r.split_once("] "))
                .map_or(l, |(_, r)| r);
            l.trim().to_owned()
        })
        .collect();
    let named: Vec<String> = all.iter().filter(|l| l.contains(module)).cloned().collect();
    let lines = if named.is_empty() {
        all[all.len().saturating_sub(4)..].to_vec()
    } else {
        named
    };
    (lines.into_iter().take(12).collect(), n)
}

/// What `finit_module`'s error means for a user.
fn load_refusal(errno: i32) -> &'static str {
    match errno {
        libc::ENOEXEC => "the kernel refused the module's format: it was built for another kernel (version magic or symbol CRCs differ; the kernel's lines say which)",
        libc::EKEYREJECTED | libc::ENOKEY | libc::EBADMSG => "the kernel accepts only signed modules (module.sig_enforce=1, or lockdown) and this module is not signed by a key it trusts",
        libc::EPERM => "the kernel forbids loading modules here (lockdown, or modules disabled)",
        libc::EEXIST => "a module of the same name is already loaded",
        libc::ENOENT => "the module needs a symbol this kernel does not export (the kernel's lines name it)",
        libc::EINVAL => "the kernel found the module invalid (the kernel's lines say why)",
        _ => "the kernel refused the module",
    }
}

fn first_line(path: &str) -> Option<String> {
    fs::read_to_string(path)
        .ok()
        .map(|s| s.lines().next().unwrap_or("").trim().to_owned())
}

/// One CPU's device: its fd, its mapped ring (twice, back to back) and info page.
struct Device {
    fd: i32,
    ring: *const u8,
    ring_bytes: usize,
    info: *mut u8,
    page: usize,
}

impl Drop for Device {
    fn drop(&mut self) {
        // SAFETY: unmapping and closing what `open_device` mapped and opened.
        unsafe {
            if !self.info.is_null() {
                libc::munmap(self.info as *mut libc::c_void, self.page);
            }
            if !self.ring.is_null() {
                libc::munmap(self.ring as *mut libc::c_void, self.ring_bytes * 2);
            }
            libc::close(self.fd);
        }
    }
}

fn open_device(path: &str, ring_bytes: usize) -> Result<Device, String> {
    let c = CString::new(path).unwrap();
    // SAFETY: open(2) on a valid C string.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_SYNC | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(format!("open {path}: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    let mut d = Device {
        fd,
        ring: std::ptr::null(),
        ring_bytes,
        info: std::ptr::null_mut(),
        page,
    };
    // The ring, read-only and mapped twice over (libscap's `single_buffer_dim * 2`), so an
    // event that wraps reads as one.
    // SAFETY: mmap of the driver's device as its ABI describes; checked below.
    let ring = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            ring_bytes * 2,
            libc::PROT_READ,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    if ring == libc::MAP_FAILED {
        return Err(format!(
            "mmap of the ring of {path}: {}",
            std::io::Error::last_os_error()
        ));
    }
    d.ring = ring as *const u8;
    // A mapping of at most a page is the ring's info (head, tail, counters).
    // SAFETY: as above.
    let info = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            INFO_BYTES,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    if info == libc::MAP_FAILED {
        return Err(format!(
            "mmap of the ring info of {path}: {}",
            std::io::Error::last_os_error()
        ));
    }
    d.info = info as *mut u8;
    Ok(d)
}

impl Device {
    fn ioctl(&self, req: u64, arg: u64) -> Result<i64, i32> {
        // SAFETY: the driver's ioctls take an integer, or a pointer we pass and own.
        let r = unsafe { libc::ioctl(self.fd, req as _, arg) };
        if r < 0 {
            Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
        } else {
            Ok(r as i64)
        }
    }

    fn version(&self, req: u64) -> Option<String> {
        let mut v = 0u64;
        self.ioctl(req, &mut v as *mut u64 as u64).ok()?;
        Some(format!(
            "{}.{}.{}",
            v >> 44,
            (v >> 24) & 0xfffff,
            v & 0xffffff
        ))
    }

    /// The events between tail and head, and the driver's drop count.
    fn drain(&self) -> (Vec<Vec<u8>>, u64, u64) {
        // SAFETY: head, tail and the counters live at the start of the mapped info page.
        let (head, tail, n_evts, drops) = unsafe {
            (
                std::ptr::read_volatile(self.info as *const u32) as usize,
                std::ptr::read_volatile(self.info.add(4) as *const u32) as usize,
                std::ptr::read_volatile(self.info.add(8) as *const u64),
                std::ptr::read_volatile(self.info.add(16) as *const u64),
            )
        };
        std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
        let size = self.ring_bytes;
        if head >= size || tail >= size {
            return (Vec::new(), n_evts, drops);
        }
        let avail = if head >= tail {
            head - tail
        } else {
            size - tail + head
        };
        // SAFETY: the ring is mapped twice over, so `avail` bytes from `tail` are contiguous.
        let data = unsafe { std::slice::from_raw_parts(self.ring.add(tail), avail) };
        let mut out = Vec::new();
        let mut off = 0;
        while off + HEADER_BYTES <= avail {
            let len = u32::from_ne_bytes(data[off + 16..off + 20].try_into().unwrap()) as usize;
            if len < HEADER_BYTES || off + len > avail {
                break;
            }
            out.push(data[off..off + len].to_vec());
            off += len;
        }
        (out, n_evts, drops)
    }
}

/// A module loaded, and what its report says so far.
pub struct Loaded {
    pub module: String,
    /// The character device that appeared with it: (major, name).
    pub device: Option<(u32, String)>,
}

/// Loads, proves and unloads one module; the report the host judges.
pub fn verify(
    name: &str,
    path: &std::path::Path,
    bytes: &[u8],
    release: &str,
    ncpus: u32,
    capture: bool,
) -> serde_json::Value {
    let (loaded, mut report) = load(name, path, bytes, release);
    let Some(loaded) = loaded else {
        return report;
    };
    match &loaded.device {
        None => report["error"] = "the module registered no character device".into(),
        Some((major, dev)) => {
            report["device"] = format!("/dev/{dev}[0-{}] (major {major})", ncpus - 1).into();
            let paths = device_nodes("/dev", *major, dev, ncpus);
            if capture {
                match capture_events(&loaded.module, &paths) {
                    Ok(c) => {
                        report["api_version"] = c["api_version"].clone();
                        report["schema_version"] = c["schema_version"].clone();
                        report["capture"] = c;
                    }
                    Err(e) => report["capture"] = serde_json::json!({"capture_error": e}),
                }
            } else {
                // Without capture, the devices still open and map as a consumer's would.
                let opened: Result<Vec<Device>, String> = paths
                    .iter()
                    .map(|p| open_device(p, ring_bytes(&loaded.module)))
                    .collect();
                if let Err(e) = opened {
                    report["error"] = e.into();
                }
            }
        }
    }
    unload(&loaded, &mut report);
    report
}

/// Loads a module with `finit_module`: `Some` when the kernel took it; the report says what the
/// kernel said either way (its log lines, the taint it took, signatures and lockdown).
pub fn load(
    name: &str,
    path: &std::path::Path,
    bytes: &[u8],
    release: &str,
) -> (Option<Loaded>, serde_json::Value) {
    let info = modinfo(bytes);
    let get = |k: &str| {
        info.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let module = get("name").unwrap_or_else(|| "falco".into());
    let mut report = serde_json::json!({
        "probe": name,
        "kind": "kmod",
        "module": module,
        "vermagic": get("vermagic"),
        "version": get("version"),
        "kernel": release,
        "sig_enforce": first_line("/sys/module/module/parameters/sig_enforce"),
        "lockdown": first_line("/sys/kernel/security/lockdown"),
        "trust": trust(),
    });
    let before = char_devices();
    let (_, log_at) = kernel_log(0, &module);
    let taint_before = tainted();
    let c = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: open(2) on a valid C string.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        report["error"] = format!("open: {}", std::io::Error::last_os_error()).into();
        return (None, report);
    }
    // SAFETY: finit_module(fd, "", 0) reads the module from our fd.
    let r = unsafe { libc::syscall(libc::SYS_finit_module, fd, c"".as_ptr(), 0) };
    let load_errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    // SAFETY: closing our fd.
    unsafe { libc::close(fd) };
    let (lines, _) = kernel_log(log_at, &module);
    report["kernel_log"] = lines.clone().into();
    if r != 0 {
        report["load_errno"] = load_errno.into();
        report["error"] = format!(
            "finit_module: {} ({}){}",
            load_refusal(load_errno),
            std::io::Error::from_raw_os_error(load_errno),
            match lines.last() {
                Some(l) => format!("; the kernel said: {l}"),
                None => String::new(),
            }
        )
        .into();
        return (None, report);
    }
    report["loaded"] = true.into();
    let taint = tainted();
    // The kernel's taint after the load (a module loaded before may have set it already).
    report["taint"] = serde_json::json!({
        "value": taint,
        "flags": taint_words(taint),
        "new": taint_words(taint & !taint_before),
    });
    let device = char_devices().into_iter().find(|d| !before.contains(d));
    (Some(Loaded { module, device }), report)
}

/// The keyrings a module's signature is checked against (the secondary one links `.machine`,
/// where the kernel puts MOK keys it was told to trust) and `.platform` (firmware and untrusted
/// MOK keys: never used for modules).
const KEYRINGS: &[&str] = &[
    ".builtin_trusted_keys",
    ".secondary_trusted_keys",
    ".machine",
    ".platform",
];

/// What the kernel trusts, as it says it: whether the firmware booted with Secure Boot on (its
/// log), the MOK variables shim handed over (the kernel's `mok-variables` in sysfs), and each keyring's
/// keys by description (`/proc/keys`, members read with `KEYCTL_READ`).
fn trust() -> serde_json::Value {
    // The kernel's own line from its EFI setup (`secureboot: Secure boot enabled`); efivarfs
    // is a module on Debian's kernels, and none can be loaded here before the probe.
    let mut buf = vec![0u8; 1 << 20];
    // SAFETY: SYSLOG_ACTION_READ_ALL (3) copies at most `len` bytes into `buf`.
    let n = unsafe { libc::klogctl(3, buf.as_mut_ptr() as *mut libc::c_char, buf.len() as i32) };
    let log = String::from_utf8_lossy(&buf[..n.max(0) as usize]).into_owned();
    let said = log.lines().find_map(|l| {
        l.split_once("secureboot: ")
            .map(|(_, r)| r.trim().to_owned())
    });
    let secure_boot: serde_json::Value = match said.as_deref() {
        Some("Secure boot enabled") => true.into(),
        Some(_) => false.into(),
        None if !std::path::Path::new("/sys/firmware/efi").exists() => "no EFI".into(),
        None => serde_json::Value::Null,
    };
    let mut mok: Vec<String> = fs::read_dir("/sys/firmware/efi/mok-variables")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    mok.sort();
    // `<id hex> <flags> <usage> <expiry> <perm> <uid> <gid> <type> <description>: <summary>`
    let text = fs::read_to_string("/proc/keys").unwrap_or_default();
    let keys: Vec<(i32, String, String)> = text
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let id = i32::from_str_radix(w.first()?, 16).ok()?;
            let kind = w.get(7)?.to_string();
            let rest = w.get(8..)?.join(" ");
            Some((id, kind, rest))
        })
        .collect();
    let mut rings = serde_json::Map::new();
    for name in KEYRINGS {
        let Some((id, _, _)) = keys
            .iter()
            .find(|(_, kind, d)| kind == "keyring" && d.split(':').next() == Some(name))
        else {
            continue;
        };
        let mut ids = vec![0i32; 256];
        // SAFETY: KEYCTL_READ (11) writes at most `len` bytes of key ids into `ids`.
        let n =
            unsafe { libc::syscall(libc::SYS_keyctl, 11, *id, ids.as_mut_ptr(), ids.len() * 4) };
        let members: Vec<String> = if n < 0 {
            vec![format!("KEYCTL_READ: {}", std::io::Error::last_os_error())]
        } else {
            ids.truncate((n as usize / 4).min(ids.len()));
            ids.iter()
                .map(|m| {
                    keys.iter()
                        .find(|(k, _, _)| k == m)
                        .map_or_else(|| format!("key {m:08x}"), |(_, _, d)| d.clone())
                })
                .collect()
        };
        rings.insert((*name).to_owned(), members.into());
    }
    serde_json::json!({
        "secure_boot": secure_boot,
        "secure_boot_said": said,
        "mok_variables": mok,
        "keyrings": rings,
    })
}

/// `<dir>/<name><cpu>` for every CPU, made with the driver's major (minor: the CPU).
pub fn device_nodes(dir: &str, major: u32, name: &str, ncpus: u32) -> Vec<String> {
    (0..ncpus)
        .map(|cpu| {
            let p = format!("{dir}/{name}{cpu}");
            if !std::path::Path::new(&p).exists() {
                let cp = CString::new(p.clone()).unwrap();
                // SAFETY: mknod(2) with a valid C string.
                unsafe {
                    libc::mknod(
                        cp.as_ptr(),
                        libc::S_IFCHR | 0o600,
                        libc::makedev(major, cpu),
                    )
                };
            }
            p
        })
        .collect()
}

/// Unloads the module (every fd and mapping of ours is gone by now); a failure is reported.
pub fn unload(loaded: &Loaded, report: &mut serde_json::Value) {
    let cm = CString::new(loaded.module.clone()).unwrap();
    // SAFETY: delete_module(2) with a valid C string.
    let r = unsafe { libc::syscall(libc::SYS_delete_module, cm.as_ptr(), libc::O_NONBLOCK) };
    report["unloaded"] = (r == 0).into();
    if r != 0 {
        report["unload_error"] = std::io::Error::last_os_error().to_string().into();
    }
}

fn ring_bytes(module: &str) -> usize {
    fs::read_to_string(format!(
        "/sys/module/{module}/parameters/g_buffer_bytes_dim"
    ))
    .ok()
    .and_then(|s| s.trim().parse().ok())
    .unwrap_or(DEFAULT_RING_BYTES)
}

/// Opens every CPU's device, enables capture as libscap does, runs the workload, disables
/// capture and reads back the workload's events.
fn capture_events(module: &str, paths: &[String]) -> Result<serde_json::Value, String> {
    let ring = ring_bytes(module);
    let devices = paths
        .iter()
        .map(|p| open_device(p, ring))
        .collect::<Result<Vec<_>, _>>()?;
    let first = &devices[0];
    let api = first.version(GET_API_VERSION);
    let schema = first.version(GET_SCHEMA_VERSION);
    fs::write(MARKER_PATH, b"probeforge\n").map_err(|e| format!("{MARKER_PATH}: {e}"))?;
    let path = CString::new(MARKER_PATH).unwrap();
    let (init, arg) = (
        CString::new(INIT_PATH).unwrap(),
        CString::new(EXEC_ARG).unwrap(),
    );
    let errno = |e: i32| std::io::Error::from_raw_os_error(e).to_string();
    // The generation: a driver without ENABLE_TP answers ENOTTY.
    let generation;
    match first.ioctl(ENABLE_TP, TP_SYS_ENTER) {
        Err(libc::ENOTTY) => {
            generation = "ENABLE_CAPTURE";
            for d in &devices {
                d.ioctl(ENABLE_CAPTURE, 0)
                    .map_err(|e| format!("PPM_IOCTL_ENABLE_CAPTURE: {}", errno(e)))?;
            }
        }
        Err(e) => return Err(format!("PPM_IOCTL_ENABLE_TP sys_enter: {}", errno(e))),
        Ok(_) => {
            generation = "ENABLE_SYSCALL/ENABLE_TP";
            // Syscalls first (nothing is attached to report them yet), then the tracepoints.
            first.ioctl(DISABLE_TP, TP_SYS_ENTER).ok();
            // The driver's table is indexed by the native number: the first EINVAL is its end
            // (and every refusal is a kernel log line, so no more are asked for).
            let mut enabled = 0;
            for id in 0..SYSCALL_IDS {
                match first.ioctl(ENABLE_SYSCALL, id) {
                    Ok(_) => enabled += 1,
                    Err(libc::EINVAL) => break,
                    Err(_) => {}
                }
            }
            if enabled == 0 {
                return Err("PPM_IOCTL_ENABLE_SYSCALL accepted no syscall".into());
            }
            for tp in [TP_SYS_ENTER, TP_SYS_EXIT] {
                first
                    .ioctl(ENABLE_TP, tp)
                    .map_err(|e| format!("PPM_IOCTL_ENABLE_TP {tp}: {}", errno(e)))?;
            }
            // Fork and exec children's own events (newer drivers only: EINVAL before).
            for tp in [TP_SCHED_PROC_FORK, TP_SCHED_PROC_EXEC] {
                first.ioctl(ENABLE_TP, tp).ok();
            }
        }
    }
    let child = super::workload(&path, &init, &arg);
    if generation == "ENABLE_CAPTURE" {
        for d in &devices {
            d.ioctl(DISABLE_CAPTURE, 0).ok();
        }
    } else {
        for tp in [
            TP_SCHED_PROC_EXEC,
            TP_SCHED_PROC_FORK,
            TP_SYS_EXIT,
            TP_SYS_ENTER,
        ] {
            first.ioctl(DISABLE_TP, tp).ok();
        }
        for id in 0..SYSCALL_IDS {
            if first.ioctl(DISABLE_SYSCALL, id) == Err(libc::EINVAL) {
                break;
            }
        }
    }
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() } as u64;
    let (mut events, mut lost, mut captured, mut total) = (Vec::new(), 0, 0, 0);
    for d in &devices {
        let (evs, n_evts, drops) = d.drain();
        lost += drops;
        total += n_evts;
        captured += evs.len();
        for e in evs {
            let tid = u64::from_le_bytes(e[8..16].try_into().unwrap());
            if tid == me || tid == child as u64 {
                events.push(e);
            }
        }
    }
    events.sort_by_key(|e| u64::from_le_bytes(e[0..8].try_into().unwrap()));
    Ok(serde_json::json!({
        "engine": generation,
        "api_version": api,
        "schema_version": schema,
        "ring_bytes": ring,
        "devices": devices.len(),
        "loader_pid": me,
        "child": child,
        "captured": captured,
        "driver_events": total,
        "lost": lost,
        "events": events.iter().map(|e| super::hex_encode(e)).collect::<Vec<_>>(),
    }))
}
