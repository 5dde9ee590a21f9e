//! Hermetic builds: a real Bazel genrule (Debian's bazel-bootstrap) twice from clean, the
//! sandbox contract by hand (no network namespace, empty environment, read-only inputs, umask),
//! determinism across directories, input order and parallelism, and the pinned toolchain.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use probeforge::kernel::Arch;

fn inputs() -> (String, Vec<PathBuf>, PathBuf) {
    let (k, files) = debian_kernel("bookworm", Arch::X86_64);
    // The release in Falco's file name (on Debian: package version and flavour).
    (k.file_release(), header_files(&k, &files), libs_0_20_0())
}

fn sha_of_only_file(dir: &Path) -> String {
    let files: Vec<_> = fs::read_dir(dir).unwrap().flatten().collect();
    assert_eq!(files.len(), 1, "{files:?}");
    sha256_file(&files[0].path())
}

#[test]
fn bazel_genrule_twice_gives_identical_digests() {
    let (release, headers, driver) = inputs();
    let t = tmpdir();
    let ws = t.path().join("ws");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/bazel");
    fs::create_dir_all(ws.join("headers")).unwrap();
    fs::create_dir_all(ws.join("driver")).unwrap();
    fs::create_dir_all(ws.join("tools")).unwrap();
    fs::copy(example.join("WORKSPACE"), ws.join("WORKSPACE")).unwrap();
    let build = fs::read_to_string(example.join("BUILD.bazel"))
        .unwrap()
        .replace(
            "FILE_RELEASE = \"6.1.176-1-amd64\"",
            &format!("FILE_RELEASE = \"{release}\""),
        );
    fs::write(ws.join("BUILD.bazel"), build).unwrap();
    // Cached packages are named by digest; in the workspace they get their .deb names.
    for (i, h) in headers.iter().enumerate() {
        fs::copy(h, ws.join("headers").join(format!("headers-{i}.deb"))).unwrap();
    }
    fs::copy(
        &driver,
        ws.join("driver/falcosecurity-libs_0.20.0.orig.tar.gz"),
    )
    .unwrap();
    fs::copy(bin(), ws.join("tools/probeforge")).unwrap();
    let user_root = t.path().join("bazel-root");
    let bazel = |args: &[&str]| {
        let o = Command::new("bazel")
            .arg("--batch")
            .arg(format!("--output_user_root={}", user_root.display()))
            .args(args)
            .current_dir(&ws)
            .env("HOME", t.path())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "bazel {args:?}:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let probe = ws.join(format!("bazel-bin/falco_debian_{release}_1.o"));
    bazel(&["build", "//:probe"]);
    let first = sha256_file(&probe);
    let prov1 = fs::read(ws.join("bazel-bin/provenance.json")).unwrap();
    bazel(&["clean", "--expunge"]);
    bazel(&["build", "//:probe"]);
    assert_eq!(sha256_file(&probe), first);
    assert_eq!(
        fs::read(ws.join("bazel-bin/provenance.json")).unwrap(),
        prov1
    );
    let v: serde_json::Value = serde_json::from_slice(&prov1).unwrap();
    assert_eq!(v["subject"][0]["digest"]["sha256"], first.as_str());
    // The same as a plain build of the same inputs outside Bazel.
    let out = t.path().join("plain");
    let a = build_args(&headers, &driver, &out);
    let (code, _, err) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    assert_eq!(sha_of_only_file(&out), first);
}

/// The Please rule of `examples/please/BUILD`: its `cmd`, read from the file, run as Please
/// runs a sandboxed genrule (a fresh directory holding the declared srcs at their package paths,
/// `$TOOLS`, `$SRCS_<NAME>`, `$OUT`, `$TMP_DIR`, HOME in it, an empty environment, no network
/// namespace), gives the bytes of a plain build of the same inputs. Please itself is not
/// packaged for Debian nor on the registries this CI reaches, so the rule's command is what runs.
#[test]
fn please_genrule_command_builds_the_same_probe_in_its_sandbox() {
    let (release, headers, driver) = inputs();
    let rule =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/please/BUILD"))
            .unwrap();
    let constant = |name: &str| {
        let line = rule
            .lines()
            .find(|l| l.starts_with(&format!("{name} = ")))
            .unwrap_or_else(|| panic!("{name} in examples/please/BUILD"));
        line.split('"').nth(1).unwrap().to_owned()
    };
    let driver_version = constant("DRIVER_VERSION");
    let expand = |s: &str| {
        s.replace("{FILE_RELEASE}", &release)
            .replace("{DRIVER_VERSION}", &driver_version)
    };
    // cmd = " ".join([ "<piece>", f"<piece>", ... ]),
    let start = rule.find("cmd = \" \".join([").expect("the rule's cmd");
    let body = &rule[start..start + rule[start..].find("]),").unwrap()];
    let cmd: Vec<String> = body
        .lines()
        .skip(1)
        .filter_map(|l| {
            let l = l.trim();
            let q = l.find('"')?;
            Some(expand(&l[q + 1..l.rfind('"')?]))
        })
        .collect();
    assert!(cmd.len() >= 5, "{cmd:?}");
    let cmd = cmd.join(" ");
    let outs = rule
        .lines()
        .find(|l| l.trim().starts_with("outs = "))
        .unwrap();
    let out_name = expand(outs.split('"').nth(1).unwrap());
    assert_eq!(out_name, format!("falco_debian_{release}_1.o"));

    let t = tmpdir();
    let sandbox = t.path().join("plz-out/tmp/probe._build");
    for d in ["headers", "driver", "tools"] {
        fs::create_dir_all(sandbox.join(d)).unwrap();
    }
    let mut srcs_headers = Vec::new();
    for (i, h) in headers.iter().enumerate() {
        let rel = format!("headers/headers-{i}.deb");
        fs::copy(h, sandbox.join(&rel)).unwrap();
        srcs_headers.push(rel);
    }
    let srcs_driver = "driver/falcosecurity-libs_0.20.0.orig.tar.gz";
    fs::copy(&driver, sandbox.join(srcs_driver)).unwrap();
    fs::copy(bin(), sandbox.join("tools/probeforge")).unwrap();
    let o = Command::new("unshare")
        .args(["-n", "--", "/usr/bin/env", "-i", "PATH=/usr/bin:/bin"])
        .arg(format!("TMP_DIR={}", sandbox.display()))
        .arg(format!("HOME={}", sandbox.display()))
        .arg(format!(
            "TOOLS={}",
            sandbox.join("tools/probeforge").display()
        ))
        .arg(format!("SRCS_HEADERS={}", srcs_headers.join(" ")))
        .arg(format!("SRCS_DRIVER={srcs_driver}"))
        .arg(format!("OUT={out_name}"))
        .args(["NAME=probe", "PKG="])
        .args(["sh", "-c", &cmd])
        .current_dir(&sandbox)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{cmd}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let probe = sandbox.join(&out_name);
    assert!(probe.is_file(), "the rule's declared output {out_name}");
    let plain = t.path().join("plain");
    let a = build_args(&headers, &driver, &plain);
    let (code, _, err) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    assert_eq!(sha256_file(&probe), sha_of_only_file(&plain));
}

/// A non-English locale that is really installed (`locale -a`) and really takes effect: `date`
/// names a weekday in German under it. The test fails, naming what to install, if it is missing.
fn installed_locale() -> &'static str {
    let o = Command::new("locale")
        .arg("-a")
        .output()
        .expect("locale -a");
    let all = String::from_utf8_lossy(&o.stdout).to_lowercase();
    assert!(
        all.lines().any(|l| l == "de_de.utf8" || l == "de_de.utf-8"),
        "locale de_DE.UTF-8 is not installed (locale -a: {all:?}); .ci/setup generates it"
    );
    let d = Command::new("date")
        .args(["-u", "-d", "@0", "+%A"])
        .env("LC_ALL", "de_DE.UTF-8")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&d.stdout).trim(), "Donnerstag");
    "de_DE.UTF-8"
}

#[test]
fn sandbox_contract_no_network_empty_env_read_only_inputs() {
    let (_, headers, driver) = inputs();
    let t = tmpdir();
    // Read-only inputs in a read-only directory.
    let ro = t.path().join("ro");
    fs::create_dir_all(&ro).unwrap();
    let mut ro_headers = Vec::new();
    for h in headers.iter().rev() {
        let d = ro.join(h.file_name().unwrap());
        fs::copy(h, &d).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o444)).unwrap();
        ro_headers.push(d);
    }
    let ro_driver = ro.join("libs.tar.gz");
    fs::copy(&driver, &ro_driver).unwrap();
    fs::set_permissions(&ro_driver, fs::Permissions::from_mode(0o444)).unwrap();
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
    let (tmp, home, out) = (
        t.path().join("tmp"),
        t.path().join("home"),
        t.path().join("out"),
    );
    fs::create_dir_all(&tmp).unwrap();
    fs::create_dir_all(&home).unwrap();
    let sandboxed = |args: &[String], umask: &str| {
        let script = format!("umask {umask}; exec \"$@\"");
        Command::new("unshare")
            .arg("-n")
            .arg("--")
            .arg("/usr/bin/env")
            .arg("-i")
            .arg("PATH=/usr/bin:/bin")
            .arg(format!("TMPDIR={}", tmp.display()))
            .arg(format!("HOME={}", home.display()))
            .arg("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(bin())
            .args(args)
            .output()
            .unwrap()
    };
    let a = build_args(&ro_headers, &ro_driver, &out);
    let o = sandboxed(&a, "077");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let sandbox_sha = sha_of_only_file(&out);
    // Nothing written anywhere else: HOME untouched, TMPDIR cleaned up.
    assert_eq!(fs::read_dir(&home).unwrap().count(), 0);
    assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
    // The same bytes as an ordinary build with the inputs in the other order, umask 022, one
    // thread, and the driver as a read-only unpacked source tree instead of the tarball.
    let tree = t.path().join("tree");
    probeforge::extract::unpack_all(
        std::slice::from_ref(&driver),
        &tree,
        probeforge::extract::Selection::Driver,
        Default::default(),
    )
    .unwrap();
    assert!(Command::new("chmod")
        .args(["-R", "a-w"])
        .arg(&tree)
        .status()
        .unwrap()
        .success());
    let out2 = t.path().join("out2");
    let a = build_args(&headers, &tree, &out2);
    let o = Command::new("sh")
        .arg("-c")
        .arg("umask 022; exec \"$@\"")
        .arg("sh")
        .arg(bin())
        .args(&a)
        .env("RAYON_NUM_THREADS", "1")
        .env("LC_ALL", installed_locale())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(sha_of_only_file(&out2), sandbox_sha);
    // A missing input is named; so is what an offline target build would have needed.
    let missing = ro.join("linux-headers-missing.deb");
    let mut a = build_args(&ro_headers, &ro_driver, &t.path().join("out3"));
    a.push(missing.display().to_string());
    let o = sandboxed(&a, "022");
    // A missing input file is a usage error (exit 2, README "exit codes").
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&missing.display().to_string()), "{err}");
    let o = sandboxed(
        &[
            "--offline".into(),
            "--cache-dir".into(),
            t.path().join("empty-cache").display().to_string(),
            "build".into(),
            "--target".into(),
            "debian-bookworm".into(),
            "--driver-source".into(),
            ro_driver.display().to_string(),
            "--driver-version".into(),
            "8.0.0+driver".into(),
        ],
        "022",
    );
    // What --offline needs and the cache lacks is a request problem (exit 2).
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("offline") && err.contains("not in the cache") && err.contains("Release"),
        "{err}"
    );
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o755)).unwrap();
    assert!(Command::new("chmod")
        .args(["-R", "u+w"])
        .arg(&tree)
        .status()
        .unwrap()
        .success());
}

#[test]
fn build_all_bytes_do_not_depend_on_jobs() {
    let all = lister().list("debian-bookworm", &[Arch::X86_64]).unwrap();
    let two: Vec<_> = all
        .iter()
        .filter(|k| k.release.starts_with("6.1.") && !k.release.contains("-rt-"))
        .rev()
        .take(2)
        .collect();
    let only = format!(
        "^({})$",
        two.iter()
            .map(|k| regex::escape(&k.release))
            .collect::<Vec<_>>()
            .join("|")
    );
    let t = tmpdir();
    let driver = libs_0_20_0();
    let mut sums = Vec::new();
    for jobs in ["1", "2"] {
        // Separate compile caches: each run really compiles.
        let cache = t.path().join(format!("cache-{jobs}"));
        assert!(Command::new("cp")
            .arg("-a")
            .arg(cache_dir())
            .arg(&cache)
            .status()
            .unwrap()
            .success());
        let _ = fs::remove_dir_all(cache.join("probes"));
        let repo = t.path().join(format!("repo-{jobs}"));
        let o = Command::new(bin())
            .args([
                "build-all",
                "debian-bookworm",
                "--arch",
                "x86_64",
                "--only",
                &only,
                "--repo",
                repo.to_str().unwrap(),
                "--driver-source",
                driver.to_str().unwrap(),
                "--driver-version",
                "8.0.0+driver",
                "-j",
                jobs,
            ])
            .env("PROBEFORGE_CACHE", &cache)
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        sums.push(fs::read_to_string(repo.join("8.0.0+driver/x86_64/SHA256SUMS")).unwrap());
        let _ = fs::remove_dir_all(&cache);
    }
    assert_eq!(sums[0].lines().count(), 2);
    assert_eq!(sums[0], sums[1]);
}

#[test]
fn pinned_toolchain_gives_the_host_clang_14_bytes_and_refuses_substitutes() {
    let (_, headers, driver) = inputs();
    let t = tmpdir();
    let host_out = t.path().join("host");
    let a = build_args(&headers, &driver, &host_out);
    let (code, _, err) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    let pinned_out = t.path().join("pinned");
    let mut a = build_args(&headers, &driver, &pinned_out);
    a.extend([
        "--toolchain".into(),
        "llvm-14-debian12".into(),
        "--provenance".into(),
        t.path().join("prov.json").display().to_string(),
    ]);
    let (code, _, err) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    assert_eq!(sha_of_only_file(&pinned_out), sha_of_only_file(&host_out));
    let prov: serde_json::Value =
        serde_json::from_slice(&fs::read(t.path().join("prov.json")).unwrap()).unwrap();
    assert_eq!(prov["predicate"]["toolchain"]["pinned"], "llvm-14-debian12");
    assert!(
        !prov.to_string().contains("test-cache"),
        "no machine paths in provenance"
    );
    // Pinning does not silently take another clang.
    let mut a = build_args(&headers, &driver, &t.path().join("x"));
    a.extend([
        "--toolchain".into(),
        "llvm-14-debian12".into(),
        "--clang".into(),
        "/usr/bin/clang".into(),
    ]);
    let (code, _, err) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("pins clang and llc"), "{err}");
    let mut a = build_args(&headers, &driver, &t.path().join("y"));
    a.extend(["--require-llvm".into(), "14.0.7".into()]);
    let (code, _, err) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("pinned to LLVM 14.0.7"), "{err}");
    let (code, out, _) = run(&["toolchain", "list"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("llvm-14-debian12") && out.contains("in cache"),
        "{out}"
    );
}

#[test]
fn toolchain_show_and_fetch_into_an_empty_cache() {
    let t = tmpdir();
    let cache = t.path().join("cache");
    let manifest: serde_json::Value = serde_json::from_slice(
        &fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("toolchain/llvm-14-debian12.json"))
            .unwrap(),
    )
    .unwrap();
    let pkgs = manifest["packages"].as_array().unwrap();
    assert!(pkgs.len() >= 5, "{manifest}");
    let tc = |args: &[&str]| {
        let o = Command::new(bin())
            .args(args)
            .env("PROBEFORGE_CACHE", &cache)
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    // show: every package of the manifest with its version and digest; not fetched yet.
    let (code, out, err) = tc(&["toolchain", "show", "llvm-14-debian12"]);
    assert_eq!(code, 0, "{err}");
    for p in pkgs {
        let line = out
            .lines()
            .find(|l| l.split_whitespace().next() == p["name"].as_str())
            .unwrap_or_else(|| panic!("{} missing from:\n{out}", p["name"]));
        assert!(
            line.contains(p["sha256"].as_str().unwrap())
                && line.contains(p["version"].as_str().unwrap()),
            "{line}"
        );
    }
    let last = out.lines().last().unwrap();
    assert!(last.ends_with("(not fetched)"), "{out}");
    let dir = Path::new(
        last.strip_prefix("cache: ")
            .unwrap()
            .strip_suffix(" (not fetched)")
            .unwrap(),
    )
    .to_owned();
    assert!(
        dir.starts_with(&cache),
        "{} outside the cache",
        dir.display()
    );
    // fetch: downloads exactly the manifest's packages, each with its digest, and unpacks them.
    let (code, out, err) = tc(&["toolchain", "fetch", "llvm-14-debian12"]);
    assert_eq!(code, 0, "{out}{err}");
    let mut got: Vec<String> = walkdir::WalkDir::new(cache.join("sha256"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file() && !e.file_name().to_string_lossy().contains('.'))
        .map(|e| sha256_file(e.path()))
        .collect();
    got.sort();
    let mut want: Vec<String> = pkgs
        .iter()
        .map(|p| p["sha256"].as_str().unwrap().to_owned())
        .collect();
    want.sort();
    assert_eq!(got, want, "downloaded files against the manifest");
    // The unpacked clang runs with its own loader and libraries and is the pinned version.
    let v = Command::new(dir.join(manifest["loader"].as_str().unwrap()))
        .arg("--library-path")
        .arg(
            manifest["library_path"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| dir.join(l.as_str().unwrap()).display().to_string())
                .collect::<Vec<_>>()
                .join(":"),
        )
        .arg(dir.join(manifest["clang"].as_str().unwrap()))
        .arg("--version")
        .env_clear()
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(
        text.starts_with(manifest["clang_version_line"].as_str().unwrap()),
        "{text}{}",
        String::from_utf8_lossy(&v.stderr)
    );
    let (code, out, _) = tc(&["toolchain", "show", "llvm-14-debian12"]);
    assert_eq!(code, 0);
    assert!(!out.contains("not fetched"), "{out}");
    // A second fetch downloads nothing new.
    let (code, _, err) = tc(&["--offline", "toolchain", "fetch", "llvm-14-debian12"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn driver_version_alone_downloads_the_known_copy_by_digest() {
    let (_, headers, driver) = inputs();
    let t = tmpdir();
    // The archive host answers, but is never asked: the known copy comes first.
    let empty = t.path().join("empty");
    fs::create_dir_all(&empty).unwrap();
    let gh = common::server::Server::start(empty);
    let cache = t.path().join("cache");
    let out = t.path().join("out");
    let mut args = vec![
        "-v".to_owned(),
        "build".to_owned(),
        "--driver-version".into(),
        "8.0.0+driver".into(),
        "-o".into(),
        out.display().to_string(),
        "--headers".into(),
    ];
    args.extend(headers.iter().map(|h| h.display().to_string()));
    let o = Command::new(bin())
        .args(&args)
        .env("PROBEFORGE_CACHE", &cache)
        .env("PROBEFORGE_DRIVER_ARCHIVE", &gh.base)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    // The known copy, pinned by digest, is taken before the archive host is asked.
    assert!(gh.all_hits().is_empty(), "{:?}", gh.all_hits());
    // It names the copy it used (-v).
    assert!(
        err.contains("falcosecurity-libs_0.20.0.orig.tar.gz") && err.contains("checked"),
        "the copy is not named:\n{err}"
    );
    // That copy, checked against the catalog's digest, is in the cache; the probe is the one
    // built from the same file given by hand.
    let cat: serde_json::Value = serde_json::from_slice(
        &fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("catalog/drivers.json")).unwrap(),
    )
    .unwrap();
    let known = cat["known"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["version"] == "8.0.0+driver")
        .unwrap();
    let digest = known["sources"][0]["sha256"].as_str().unwrap();
    assert_eq!(sha256_file(&driver), digest);
    let cached = walkdir::WalkDir::new(&cache)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .any(|e| sha256_file(e.path()) == digest);
    assert!(cached, "the Debian copy is not in the cache");
    let by_hand = t.path().join("by-hand");
    let a = build_args(&headers, &driver, &by_hand);
    let (code, _, err) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    assert_eq!(sha_of_only_file(&out), sha_of_only_file(&by_hand));
}
