//! The cost of signing a kernel module (Secure Boot), measured in one run: probeforge's
//! signer (in process: the key and certificate parsed once, then each module signed and its
//! signature checked against the certificate; and parsed anew per module, as a separate run
//! would) against the kernel's own `scripts/sign-file` from `linux-kbuild-6.1` (one process per
//! module, as dkms and kbuild run it). The module is Debian's `falcosecurity-scap-dkms` 0.23.2
//! built for the newest bookworm 6.1 amd64 kernel; the key is RSA-2048 made by openssl; the
//! hash the kernel's (sha256). Prints milliseconds per module and whether the outputs are the
//! same bytes.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/drivers.rs"]
mod drivers;

use std::process::Command;
use std::time::Instant;

use probeforge::kernel::Arch;
use probeforge::kmod::sign;

const N: u32 = 20;

fn main() {
    let (kernel, _) = drivers::kernel_line("6.1", Arch::X86_64);
    let dir = common::tmpdir();
    let d = dir.path();
    let out = d.join("out");
    let (code, stdout, err) = common::run(&[
        "build",
        "--target",
        &kernel.target,
        "--kernel",
        &kernel.release,
        "--driver",
        "kmod",
        "--driver-source",
        drivers::scap_dkms_0_23_2().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let module_path = std::path::PathBuf::from(v["path"].as_str().unwrap());
    let module = std::fs::read(&module_path).unwrap();

    let (key, cert) = (d.join("key.pem"), d.join("cert.pem"));
    let o = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256"])
        .args(["-days", "3650", "-subj", "/CN=bench"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(o.status.success());

    let kbuild = common::kbuild_name("bookworm", Arch::X86_64, &kernel.release);
    let deb = common::debian_package(&kernel.target, Arch::X86_64, &kbuild);
    let root = d.join("kbuild");
    assert!(Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&root)
        .status()
        .unwrap()
        .success());
    let series = kbuild.trim_start_matches("linux-kbuild-");
    let sign_file = root.join(format!("usr/lib/linux-kbuild-{series}/scripts/sign-file"));

    // probeforge, key parsed once.
    let signer = sign::Signer::from_files(&key, &cert).unwrap();
    // One untimed round each: pages of the module and of both programs warm.
    signer.sign_checked(&module, sign::Hash::Sha256).unwrap();
    let _ = Command::new(&sign_file)
        .arg("sha256")
        .arg(&key)
        .arg(&cert)
        .arg(&module_path)
        .arg(d.join("warm.ko"))
        .status();
    let t = Instant::now();
    let mut ours = Vec::new();
    for _ in 0..N {
        ours = signer.sign_checked(&module, sign::Hash::Sha256).unwrap();
    }
    let once = t.elapsed().as_secs_f64() * 1000.0 / N as f64;
    // probeforge, key and certificate read and parsed for every module.
    let t = Instant::now();
    for _ in 0..N {
        let s = sign::Signer::from_files(&key, &cert).unwrap();
        ours = s.sign_checked(&module, sign::Hash::Sha256).unwrap();
    }
    let fresh = t.elapsed().as_secs_f64() * 1000.0 / N as f64;
    // sign-file, one process per module.
    let dest = d.join("signed.ko");
    let t = Instant::now();
    for _ in 0..N {
        let s = Command::new(&sign_file)
            .arg("sha256")
            .arg(&key)
            .arg(&cert)
            .arg(&module_path)
            .arg(&dest)
            .status()
            .unwrap();
        assert!(s.success());
    }
    let theirs_ms = t.elapsed().as_secs_f64() * 1000.0 / N as f64;
    let theirs = std::fs::read(&dest).unwrap();

    println!(
        "module {} ({} bytes), kernel {}, RSA-2048, sha256, {N} signings each",
        module_path.file_name().unwrap().to_string_lossy(),
        module.len(),
        kernel.release
    );
    println!("probeforge (key parsed once, signature checked): {once:8.2} ms/module");
    println!("probeforge (key parsed per module):              {fresh:8.2} ms/module");
    println!("sign-file (one process per module):             {theirs_ms:8.2} ms/module");
    println!(
        "ratio sign-file / probeforge (parsed once): {:.1}x; same bytes: {}",
        theirs_ms / once,
        ours == theirs
    );
}
