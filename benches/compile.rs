//! One probe, native against kbuild (`make -C <objtree> M=...`, as falco-driver-loader runs
//! it), same headers, same driver, same clang/llc, measured in the same run: CPU (children's
//! rusage) and wall, as ratios (< 1 means native is cheaper), and where native's time goes.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use probeforge::kernel::Arch;

fn children_cpu() -> Duration {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    Duration::from_secs((ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) as u64)
        + Duration::from_micros((ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) as u64)
}

fn measure(f: impl FnOnce()) -> (Duration, Duration) {
    let cpu0 = children_cpu();
    let t = Instant::now();
    f();
    (t.elapsed(), children_cpu() - cpu0)
}

fn main() {
    let (k, files) = common::debian_kernel("bookworm", Arch::X86_64);
    let debs = common::header_files(&k, &files);
    let kbuild_name = common::kbuild_name("bookworm", Arch::X86_64, &k.release);
    let kbuild_deb = common::debian_package("debian-bookworm", Arch::X86_64, &kbuild_name);
    let driver = common::libs_0_20_0();
    let t = common::tmpdir();

    // Both sides start from the packages, as falco-driver-loader/driverkit and probeforge do:
    // kbuild's side unpacks with dpkg-deb (headers + linux-kbuild) and lays the driver out as
    // its CMake install does, then runs make; both work on the same file system.
    let all: Vec<PathBuf> = debs.iter().cloned().chain([kbuild_deb.clone()]).collect();
    let mut prepared_bpf = PathBuf::new();
    let (kw, kc) = measure(|| {
        let tree = common::kbuild_setup(
            &all,
            &driver,
            Some("8.0.0+driver"),
            &t.path().join("kbuild"),
        );
        prepared_bpf = tree.bpf_dir.clone();
        let s = Command::new("make")
            .arg("-C")
            .arg(&tree.objtree)
            .arg(format!("M={}", tree.bpf_dir.display()))
            .arg(format!("KERNELDIR={}", tree.objtree.display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(s.success());
    });

    // Native, from the packages themselves (unpacking included).
    let out = t.path().join("out");
    let mut report = serde_json::Value::Null;
    let (nw, nc) = measure(|| {
        let mut args: Vec<String> = vec![
            "build".into(),
            "--json".into(),
            "-o".into(),
            out.display().to_string(),
            "--driver-source".into(),
            driver.display().to_string(),
            "--driver-version".into(),
            "8.0.0+driver".into(),
            "--scratch".into(),
            t.path().display().to_string(),
            "--headers".into(),
        ];
        args.extend(debs.iter().map(|p: &PathBuf| p.display().to_string()));
        let o = Command::new(common::bin()).args(&args).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        report = serde_json::from_slice(&o.stdout).unwrap();
    });
    let secs =
        |v: &serde_json::Value| v["secs"].as_f64().unwrap() + v["nanos"].as_f64().unwrap() / 1e9;
    let tm = &report["timing"];
    println!("one probe: libs 0.20.0 (8.0.0+driver) on {}", k.release);
    println!(
        "  kbuild  wall {:>6.2} s  cpu {:>6.2} s",
        kw.as_secs_f64(),
        kc.as_secs_f64()
    );
    println!(
        "  native  wall {:>6.2} s  cpu {:>6.2} s   (both from the .debs, unpacking included)",
        nw.as_secs_f64(),
        nc.as_secs_f64()
    );
    println!(
        "  ratio native/kbuild: wall {:.2}  cpu {:.2}",
        nw.as_secs_f64() / kw.as_secs_f64(),
        nc.as_secs_f64() / kc.as_secs_f64()
    );
    println!(
        "  native breakdown: unpack {:.2} s wall; configure clang {:.2} + llc {:.2} s cpu ({} tests, in parallel); probe clang {:.2} + llc {:.2} s cpu",
        tm["unpack_s"].as_f64().unwrap(),
        secs(&tm["configure"]["clang_cpu"]),
        secs(&tm["configure"]["llc_cpu"]),
        report["configure"].as_array().unwrap().len(),
        secs(&tm["probe"]["clang_cpu"]),
        secs(&tm["probe"]["llc_cpu"]),
    );
    let same =
        common::sha256_file(&prepared_bpf.join("probe.o")) == report["sha256"].as_str().unwrap();
    println!(
        "  (kbuild's probe here has unmapped debug paths; byte identity is the tests' job: {})",
        if same {
            "identical anyway"
        } else {
            "differs only by paths"
        }
    );
}
