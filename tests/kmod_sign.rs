//! Modules signed with the user's key (Secure Boot), as a user runs probeforge: `build --driver
//! kmod --sign-key --sign-cert` of Debian's `falcosecurity-scap-dkms` 0.23.2 for the newest
//! bookworm 6.1 amd64 kernel of the live index, with an RSA key and self-signed certificate
//! made by openssl. The signature must be byte for byte what the kernel's own `sign-file` (from
//! that kernel's `linux-kbuild-6.1`) appends with the same key and certificate; `validate`
//! names the signer and, given a certificate, verifies it as the kernel would.

mod common;
#[path = "common/drivers.rs"]
mod drivers;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::*;
use probeforge::kernel::Arch;
use probeforge::kmod::sign;

struct Fixture {
    dir: tempfile::TempDir,
    kernel: probeforge::repo::KernelRecord,
    key: PathBuf,
    cert: PathBuf,
    other_key: PathBuf,
    other_cert: PathBuf,
    /// probeforge's signed module.
    signed: PathBuf,
    /// `build --json` of it.
    json: serde_json::Value,
    provenance: PathBuf,
}

/// An RSA key and a self-signed certificate, by openssl (as the README tells a user to make
/// them).
fn openssl_cert(dir: &Path, name: &str, cn: &str) -> (PathBuf, PathBuf) {
    let (key, cert) = (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pem")),
    );
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256"])
        .args([
            "-days",
            "3650",
            "-subj",
            &format!("/CN={cn}/O=probeforge test"),
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (key, cert)
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let (kernel, _) = drivers::kernel_line("6.1", Arch::X86_64);
        let dir = tmpdir();
        let (key, cert) = openssl_cert(dir.path(), "mok", "probeforge module signing");
        let (other_key, other_cert) = openssl_cert(dir.path(), "other", "another signer");
        let out = dir.path().join("out");
        let provenance = dir.path().join("provenance.json");
        let (code, stdout, err) = run(&[
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
            "--sign-key",
            key.to_str().unwrap(),
            "--sign-cert",
            cert.to_str().unwrap(),
            "--provenance",
            provenance.to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(code, 0, "{err}");
        let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        let signed = PathBuf::from(json["path"].as_str().unwrap());
        Fixture {
            dir,
            kernel,
            key,
            cert,
            other_key,
            other_cert,
            signed,
            json,
            provenance,
        }
    })
}

/// The kernel's own `sign-file`, from the kbuild package of the fixture's kernel.
fn sign_file(f: &Fixture) -> PathBuf {
    let name = kbuild_name("bookworm", Arch::X86_64, &f.kernel.release);
    let deb = debian_package(&f.kernel.target, Arch::X86_64, &name);
    let root = f.dir.path().join("kbuild");
    let out = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let series = name.trim_start_matches("linux-kbuild-");
    root.join(format!("usr/lib/linux-kbuild-{series}/scripts/sign-file"))
}

fn validate(module: &Path, cert: Option<&Path>) -> (i32, serde_json::Value) {
    let mut a = vec!["validate".to_owned(), "--json".to_owned()];
    if let Some(c) = cert {
        a.extend(["--sign-cert".into(), c.display().to_string()]);
    }
    a.push(module.display().to_string());
    let (code, out, err) = run(&a);
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    (code, v)
}

fn check<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {v:#}"))
}

/// The done-when of #33: probeforge's signed module equals sign-file's, byte for byte.
#[test]
fn the_signature_is_byte_identical_to_the_kernels_sign_file() {
    let f = fixture();
    let signed = std::fs::read(&f.signed).unwrap();
    assert!(signed.ends_with(sign::MAGIC));
    let unsigned = sign::unsigned_part(&signed);
    assert!(unsigned.len() < signed.len());
    let copy = f.dir.path().join("by-sign-file.ko");
    std::fs::write(&copy, unsigned).unwrap();
    let out = Command::new(sign_file(f))
        .args(["sha256"])
        .arg(&f.key)
        .arg(&f.cert)
        .arg(&copy)
        .output()
        .expect("sign-file");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = std::fs::read(&copy).unwrap();
    assert_eq!(theirs.len(), signed.len(), "lengths differ");
    assert!(
        theirs == signed,
        "probeforge's signed module differs from sign-file's"
    );
    // The other hashes a kernel may name (CONFIG_MODULE_SIG_HASH), through the library.
    let signer = sign::Signer::from_files(&f.key, &f.cert).unwrap();
    for (name, hash) in [
        ("sha384", sign::Hash::Sha384),
        ("sha512", sign::Hash::Sha512),
    ] {
        let copy = f.dir.path().join(format!("by-sign-file-{name}.ko"));
        std::fs::write(&copy, unsigned).unwrap();
        let out = Command::new(sign_file(f))
            .arg(name)
            .arg(&f.key)
            .arg(&f.cert)
            .arg(&copy)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ours = signer.sign(unsigned, hash).unwrap();
        assert!(
            std::fs::read(&copy).unwrap() == ours,
            "{name}: differs from sign-file's"
        );
        assert_eq!(sign::read(&ours).unwrap().unwrap().hash, hash);
    }
    // The build says who signed it, and with the kernel's hash; the key is nowhere.
    assert_eq!(f.json["signed_by"]["hash"], "sha256", "{}", f.json);
    let subject = f.json["signed_by"]["subject"].as_str().unwrap();
    assert!(
        subject.contains("CN=probeforge module signing"),
        "{subject}"
    );
    assert_eq!(f.json["sha256"], probeforge::base::sha256(&signed));
    let prov = std::fs::read_to_string(&f.provenance).unwrap();
    assert!(prov.contains("probeforge module signing"), "{prov}");
    assert!(!prov.contains("PRIVATE KEY"), "{prov}");
    let key = std::fs::read_to_string(&f.key).unwrap();
    let key_body = key.lines().nth(1).unwrap();
    assert!(!prov.contains(key_body));
}

/// validate names the signer and hash, verifies with the right certificate, and with another
/// one fails naming both.
#[test]
fn validate_reports_the_signer_and_verifies_against_a_certificate() {
    let f = fixture();
    let (code, v) = validate(&f.signed, None);
    assert_eq!(code, 0, "{v:#}");
    let s = check(&v, "signature")["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(s.contains("sha256"), "{s}");
    assert!(s.contains("CN=probeforge module signing"), "{s}");

    let (code, v) = validate(&f.signed, Some(&f.cert));
    assert_eq!(code, 0, "{v:#}");
    let c = check(&v, "signature-verify");
    assert_eq!(c["ok"], true, "{c}");

    let (code, v) = validate(&f.signed, Some(&f.other_cert));
    assert_eq!(code, 1, "{v:#}");
    let d = check(&v, "signature-verify")["detail"].as_str().unwrap();
    assert!(d.contains("CN=probeforge module signing"), "{d}");
    assert!(d.contains("CN=another signer"), "{d}");

    // The unsigned module: reported unsigned, and verification fails.
    let unsigned = f.dir.path().join("unsigned.ko");
    let bytes = std::fs::read(&f.signed).unwrap();
    std::fs::write(&unsigned, sign::unsigned_part(&bytes)).unwrap();
    let (code, v) = validate(&unsigned, None);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(check(&v, "signature")["detail"], "unsigned");
    let (code, v) = validate(&unsigned, Some(&f.cert));
    assert_eq!(code, 1, "{v:#}");
    let d = check(&v, "signature-verify")["detail"].as_str().unwrap();
    assert!(d.contains("not signed"), "{d}");
}

/// One flipped byte of the module after signing fails verification.
#[test]
fn a_flipped_byte_in_a_signed_module_fails_verification() {
    let f = fixture();
    let mut bytes = std::fs::read(&f.signed).unwrap();
    // Inside `.modinfo`'s text would still parse; any byte the signature covers will do:
    // one in the middle of the module.
    let at = sign::unsigned_part(&bytes).len() / 2;
    bytes[at] ^= 0x01;
    let flipped = f.dir.path().join("flipped.ko");
    std::fs::write(&flipped, &bytes).unwrap();
    let (code, v) = validate(&flipped, Some(&f.cert));
    assert_eq!(code, 1, "{v:#}");
    let d = check(&v, "signature-verify")["detail"].as_str().unwrap();
    assert!(d.contains("does not verify"), "{d}");
}

/// A key that is not the certificate's is refused before anything is built.
#[test]
fn a_key_of_another_certificate_is_refused_at_once() {
    let f = fixture();
    let out = f.dir.path().join("mismatch");
    let (code, _, err) = run(&[
        "build",
        "--target",
        &f.kernel.target,
        "--kernel",
        &f.kernel.release,
        "--driver",
        "kmod",
        "--driver-source",
        drivers::scap_dkms_0_23_2().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--sign-key",
        f.key.to_str().unwrap(),
        "--sign-cert",
        f.other_cert.to_str().unwrap(),
    ]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("does not belong to the certificate"), "{err}");
    assert!(!err.contains("PRIVATE KEY"), "{err}");
}

/// `build-all --module-sign-key/--module-sign-cert` signs the module before it is published
/// (the same bytes `build` signed), and `check --repo --sign-cert` verifies every module: with
/// the right certificate no problem, with another one the module is named.
#[test]
fn build_all_publishes_signed_modules_and_check_verifies_them() {
    let f = fixture();
    let repo = f.dir.path().join("repo");
    let only = format!("^{}$", f.kernel.release.replace('.', "\\."));
    let (code, out, err) = run(&[
        "build-all",
        &f.kernel.target,
        "--arch",
        "x86_64",
        "--only",
        &only,
        "--repo",
        repo.to_str().unwrap(),
        "--driver",
        "kmod",
        "--driver-source",
        drivers::scap_dkms_0_23_2().to_str().unwrap(),
        "--module-sign-key",
        f.key.to_str().unwrap(),
        "--module-sign-cert",
        f.cert.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}\n{out}");
    let published: Vec<PathBuf> = walk(&repo)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "ko"))
        .collect();
    assert_eq!(published.len(), 1, "{published:?}\n{out}");
    // Signing is deterministic: the farm's module is build's, byte for byte.
    assert_eq!(
        std::fs::read(&published[0]).unwrap(),
        std::fs::read(&f.signed).unwrap()
    );
    // index.json names the signer as `build --json` does (never the key).
    let index = walk(&repo)
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == "index.json"))
        .expect("an index.json");
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(&index).unwrap()).unwrap();
    let entry = &index["probes"][0];
    assert_eq!(entry["signed_by"], f.json["signed_by"], "{entry:#}");

    let (code, out, err) = run(&[
        "check",
        "--repo",
        repo.to_str().unwrap(),
        "--sign-cert",
        f.cert.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}\n{out}");
    assert!(out.contains("1 module signature(s) checked"), "{out}");
    let (code, out, err) = run(&[
        "check",
        "--repo",
        repo.to_str().unwrap(),
        "--sign-cert",
        f.other_cert.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 1, "{err}\n{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let p = &v["problems"][0];
    assert_eq!(p["kind"], "signature", "{v:#}");
    assert!(p["path"].as_str().unwrap().ends_with(".ko"), "{p}");
    assert!(
        p["detail"].as_str().unwrap().contains("CN=another signer"),
        "{p}"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Under `module.sig_enforce=1` (`verify --sig-enforce`) the kernel itself refuses, with its own error (EKEYREJECTED,
/// "Loading of ... is rejected"), the module unsigned, signed by another key, and signed by
/// the user's key it was not made to trust (Debian's kernel trusts only its built-in keys
/// without shim's MOK list): the refusal is the kernel's, not probeforge's. The `--mok` tests
/// below boot through shim, where the user's key is trusted.
#[test]
fn under_sig_enforce_the_kernel_refuses_unsigned_and_untrusted_modules() {
    let f = fixture();
    let dir = f.dir.path().join("enforce");
    std::fs::create_dir_all(&dir).unwrap();
    let signed = std::fs::read(&f.signed).unwrap();
    let unsigned = sign::unsigned_part(&signed).to_vec();
    let other = sign::Signer::from_files(&f.other_key, &f.other_cert)
        .unwrap()
        .sign(&unsigned, sign::Hash::Sha256)
        .unwrap();
    let modules = [
        (
            "unsigned.ko",
            unsigned,
            "Loading of unsigned module is rejected",
        ),
        (
            "other-key.ko",
            other,
            "Loading of module with unavailable key is rejected",
        ),
        (
            "user-key.ko",
            signed,
            "Loading of module with unavailable key is rejected",
        ),
    ];
    for (name, bytes, _) in &modules {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let image = debian_package(
        &f.kernel.target,
        Arch::X86_64,
        &format!("linux-image-{}-unsigned", f.kernel.release),
    );
    let mut a = vec![
        "verify".to_owned(),
        "--json".into(),
        "--no-events".into(),
        "--kernel-image".into(),
        image.display().to_string(),
        "--sig-enforce".into(),
    ];
    a.extend(
        modules
            .iter()
            .map(|(n, _, _)| dir.join(n).display().to_string()),
    );
    let (code, out, err) = run(&a);
    assert_eq!(code, 1, "{err}\n{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["booted_release"], f.kernel.release.as_str(), "{v}");
    for (name, _, said) in &modules {
        let r = v["reports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["probe"] == *name)
            .unwrap_or_else(|| panic!("no report for {name}: {v:#}"));
        assert_eq!(r["sig_enforce"], "Y", "{r:#}");
        assert_eq!(r["load_errno"], libc_ekeyrejected(), "{name}: {r:#}");
        let log = r["kernel_log"].to_string();
        assert!(log.contains(said), "{name}: the kernel's own words: {log}");
    }
}

/// The three modules the Secure Boot tests boot: the user's signed module, the same module
/// unsigned, and signed by another key.
fn secure_boot_module(f: &Fixture, which: &str) -> PathBuf {
    let dir = f.dir.path().join("secure-boot");
    std::fs::create_dir_all(&dir).unwrap();
    let signed = std::fs::read(&f.signed).unwrap();
    let unsigned = sign::unsigned_part(&signed).to_vec();
    let bytes = match which {
        "user-key" => signed,
        "unsigned" => unsigned,
        "other-key" => sign::Signer::from_files(&f.other_key, &f.other_cert)
            .unwrap()
            .sign(&unsigned, sign::Hash::Sha256)
            .unwrap(),
        other => panic!("no module {other}"),
    };
    let path = dir.join(format!("{which}.ko"));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// `verify --sig-enforce --mok CERT` of one module: the kernel's signed image (Debian's
/// `linux-image-R`, which shim and grub check), booted through Debian's OVMF with Secure Boot
/// on, shim and grub, the user's certificate enrolled in shim's MokList. Returns the exit code
/// and the module's report; checks, whatever the module's fate, that the guest booted with
/// Secure Boot on and the kernel put the user's certificate in its `.machine` keyring (so a
/// refusal is the kernel's judgement of the signature, not a missing key).
fn secure_boot_verify(f: &Fixture, module: &Path, events: bool) -> (i32, serde_json::Value) {
    let image = debian_package(
        &f.kernel.target,
        Arch::X86_64,
        &format!("linux-image-{}", f.kernel.release),
    );
    let mut a = vec![
        "verify".to_owned(),
        "--json".into(),
        "--accel".into(),
        "tcg".into(),
        "--kernel-image".into(),
        image.display().to_string(),
        "--sig-enforce".into(),
        "--mok".into(),
        f.cert.display().to_string(),
    ];
    if events {
        a.extend([
            "--driver-source".into(),
            drivers::scap_dkms_0_23_2().display().to_string(),
        ]);
    } else {
        a.push("--no-events".into());
    }
    a.push(module.display().to_string());
    let (code, out, err) = run(&a);
    let v: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    assert_eq!(v["booted_release"], f.kernel.release.as_str(), "{v}");
    // What booted, from where: the release's own packages, the user's certificate enrolled.
    let sb = &v["secure_boot"];
    let packages: Vec<&str> = sb["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        packages,
        ["ovmf", "shim-signed", "grub-efi-amd64-signed"],
        "{sb}"
    );
    let key_id = f.json["signed_by"]["key_id"].as_str().unwrap();
    assert_eq!(sb["mok"]["key_id"], key_id, "{sb}");
    let r = v["reports"][0].clone();
    let t = &r["trust"];
    assert_eq!(t["secure_boot"], true, "{t:#}");
    assert_eq!(t["secure_boot_said"], "Secure boot enabled", "{t:#}");
    assert!(
        t["mok_variables"].to_string().contains("MokListTrustedRT"),
        "shim told the kernel to trust the MOK list: {t:#}"
    );
    let in_ring = |ring: &str| t["keyrings"][ring].to_string().contains(key_id);
    assert!(in_ring(".machine"), "the user's key in .machine: {t:#}");
    assert!(!in_ring(".platform"), "{t:#}");
    assert!(
        t["keyrings"][".secondary_trusted_keys"]
            .to_string()
            .contains(".machine"),
        "the keyring module signatures are checked against links .machine: {t:#}"
    );
    assert_eq!(r["sig_enforce"], "Y", "{r:#}");
    (code, r)
}

/// #33 item 3, the node's own route: under Secure Boot (lockdown on, signatures enforced) the
/// module signed with the user's enrolled key loads, captures the workload's events decoded
/// with its driver's schema, and unloads.
#[test]
fn under_secure_boot_the_module_signed_by_the_enrolled_key_loads_and_captures() {
    let f = fixture();
    let (code, r) = secure_boot_verify(f, &secure_boot_module(f, "user-key"), true);
    let j = probeforge::verify::judge(&r);
    assert_eq!(code, 0, "{}\n{r:#}", j.line);
    assert!(j.ok, "{}", j.line);
    assert_eq!(r["loaded"], true, "{r:#}");
    assert_eq!(r["unloaded"], true, "{r:#}");
    // Secure Boot locks the kernel down: the loader ran under it.
    assert!(
        r["lockdown"].as_str().unwrap().contains("[integrity]"),
        "{r:#}"
    );
    // Signed by a trusted key: no "unsigned module" taint.
    let taint = r["taint"]["flags"].to_string();
    assert!(!taint.contains("unsigned"), "{taint}");
    let ev = &r["events"];
    assert_eq!(ev["ok"], true, "{:#}", ev["expectations"]);
    assert!(ev["decoded"].as_u64().unwrap() >= 10, "{ev}");
    let proof = ev["proof"].as_array().unwrap();
    assert_eq!(proof.last().unwrap()["name"], "execve", "{proof:#?}");
}

/// Under Secure Boot the same module unsigned is refused by the kernel, in its own words.
#[test]
fn under_secure_boot_the_unsigned_module_is_refused_by_the_kernel() {
    let f = fixture();
    let (code, r) = secure_boot_verify(f, &secure_boot_module(f, "unsigned"), false);
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(r["load_errno"], libc_ekeyrejected(), "{r:#}");
    let log = r["kernel_log"].to_string();
    assert!(
        log.contains("Loading of unsigned module is rejected"),
        "the kernel's own words: {log}"
    );
}

/// Under Secure Boot the module signed by a key not enrolled is refused by the kernel, while
/// the enrolled one sits in its keyring.
#[test]
fn under_secure_boot_a_module_signed_by_another_key_is_refused_by_the_kernel() {
    let f = fixture();
    let (code, r) = secure_boot_verify(f, &secure_boot_module(f, "other-key"), false);
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(r["load_errno"], libc_ekeyrejected(), "{r:#}");
    let log = r["kernel_log"].to_string();
    assert!(
        log.contains("Loading of module with unavailable key is rejected"),
        "the kernel's own words: {log}"
    );
}

/// EKEYREJECTED on Linux.
fn libc_ekeyrejected() -> i64 {
    129
}

/// driverkit's way (`build` with its flag names, `--output-module`): the module written where
/// driverkit says is signed too, the same bytes as `build --sign-key`'s.
#[test]
fn a_driverkit_build_signs_the_module_it_writes() {
    let f = fixture();
    let dest = f.dir.path().join("driverkit/module.ko");
    let (code, out, err) = run(&[
        "build",
        "--target",
        &f.kernel.target,
        "--kernelrelease",
        &f.kernel.release,
        "--output-module",
        dest.to_str().unwrap(),
        "--driver-source",
        drivers::scap_dkms_0_23_2().to_str().unwrap(),
        "--sign-key",
        f.key.to_str().unwrap(),
        "--sign-cert",
        f.cert.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let bytes = std::fs::read(&dest).unwrap();
    let cert = sign::Cert::from_file(&f.cert).unwrap();
    sign::verify(&bytes, &cert).expect("signed by the user's key");
    assert_eq!(bytes, std::fs::read(&f.signed).unwrap());
}
