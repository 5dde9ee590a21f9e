//! Kernels whose headers are not packages, through the CLI on loopback servers laid out as
//! their publishers lay them out: kernel.org (`v<major>.x/linux-<ver>.tar.xz` listed by a
//! clear-signed `sha256sums.asc`, signed here by gpg), Flatcar's release server (a directory
//! index per channel and arch, each release's `flatcar_production_image_kernel_config.txt`),
//! and kernel-crawler lists and driverkit configs carrying `kernelconfigdata` (talos,
//! minikube, flatcar). The configs are a real Debian kernel's `.config`, its version line
//! rewritten to the distro's kernel. The full build from a real source tarball, proven in its
//! VM, is tests/vanilla.rs.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use common::gpg::{test_key, TestKey};
use common::server::Server;
use common::*;
use probeforge::kernel::Arch;

/// A small real `.tar.xz` holding `linux-<version>/Makefile` (not a kernel: enough to list,
/// fetch and check a digest).
fn small_tarball(t: &Path, version: &str) -> PathBuf {
    let dir = t.join(format!("src-{version}"));
    let top = dir.join(format!("linux-{version}"));
    fs::create_dir_all(&top).unwrap();
    fs::write(top.join("Makefile"), format!("# linux {version}\n")).unwrap();
    let out = t.join(format!("linux-{version}.tar.xz"));
    let ok = Command::new("tar")
        .arg("-cJf")
        .arg(&out)
        .arg("-C")
        .arg(&dir)
        .arg(format!("linux-{version}"))
        .status()
        .unwrap()
        .success();
    assert!(ok, "tar -cJf {}", out.display());
    out
}

/// kernel.org's layout under `root`: each tarball in its series folder, and each series'
/// `sha256sums.asc` clear-signed by `key`, listing (as kernel.org's do) patches and `.tar.gz`
/// too, which are not kernels to list.
fn kernel_org(root: &Path, key: &TestKey, tarballs: &[(&str, &Path)]) {
    for major in ["5", "6"] {
        let series = root.join(format!("v{major}.x"));
        fs::create_dir_all(&series).unwrap();
        let mut sums = String::new();
        for (v, file) in tarballs
            .iter()
            .filter(|(v, _)| v.starts_with(&format!("{major}.")))
        {
            let sum = sha256_file(file);
            fs::copy(file, series.join(format!("linux-{v}.tar.xz"))).unwrap();
            sums.push_str(&format!("{sum}  linux-{v}.tar.xz\n"));
            sums.push_str(&format!("{}  linux-{v}.tar.gz\n", "0".repeat(64)));
            sums.push_str(&format!("{}  patch-{v}.xz\n", "1".repeat(64)));
        }
        fs::write(series.join("sha256sums"), sums).unwrap();
        key.clearsign(&series.join("sha256sums"), &series.join("sha256sums.asc"));
    }
}

/// A real kernel `.config` (a Debian bookworm kernel's, from its headers) claiming to be of
/// kernel `version` for `arch_line` (`x86`, `arm64`), with `CONFIG_LOCALVERSION` set.
fn config_of(t: &Path, version: &str, arch_line: &str, localversion: &str) -> Vec<u8> {
    let (k, files) = debian_kernel("bookworm", Arch::X86_64);
    let root = t.join(format!("headers-{version}"));
    probeforge::extract::unpack_all(
        &header_files(&k, &files),
        &root,
        probeforge::extract::Selection::ProbeBuild,
        Default::default(),
    )
    .unwrap();
    let tree = probeforge::KernelTree::find(&root, Some(&k.release)).unwrap();
    let text = fs::read_to_string(tree.objtree.join(".config")).unwrap();
    assert!(text.contains("Kernel Configuration"), "a real .config");
    text.lines()
        .map(|l| {
            if l.starts_with("# Linux/") && l.ends_with("Kernel Configuration") {
                format!("# Linux/{arch_line} {version} Kernel Configuration")
            } else if l.starts_with("CONFIG_LOCALVERSION=") {
                format!("CONFIG_LOCALVERSION=\"{localversion}\"")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes()
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn vanilla_kernels_list_from_kernel_orgs_signed_sums() {
    let t = tmpdir();
    let key = test_key(t.path(), "kernel-org");
    let root = t.path().join("www");
    let tars: Vec<(&str, PathBuf)> = ["5.15.170", "6.6.60", "6.6.61"]
        .iter()
        .map(|v| (*v, small_tarball(t.path(), v)))
        .collect();
    let refs: Vec<(&str, &Path)> = tars.iter().map(|(v, p)| (*v, p.as_path())).collect();
    kernel_org(&root, &key, &refs);
    let server = Server::start(root.clone());
    let mirror = format!("kernel-org={}", server.base);
    let keyring = key.public.display().to_string();
    let list = |extra: &[&str], cache: &str| {
        let mut a = vec!["--mirror", mirror.as_str()];
        a.extend_from_slice(extra);
        a.extend(["list-kernels", "vanilla", "--arch", "x86_64", "--json"]);
        cli(&a, &t.path().join(cache))
    };

    // No key of kernel.org ships with probeforge: refused, naming the file and the way out
    // (a target that cannot be listed is work that failed: exit 1).
    let (code, _, err) = list(&[], "c0");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("sha256sums.asc") && err.contains("--keyring"),
        "{err}"
    );

    let (code, out, err) = list(&["--keyring", &keyring], "c1");
    assert_eq!(code, 0, "{err}");
    let v = json(&out);
    let releases: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["release"].as_str().unwrap())
        .collect();
    // Only the tarballs, in version order; no patch, no .tar.gz.
    assert_eq!(releases, ["5.15.170", "6.6.60", "6.6.61"], "{v:#}");
    for (k, (version, file)) in v.as_array().unwrap().iter().zip(&tars) {
        assert_eq!(k["target_id"], "vanilla");
        assert!(k.get("unsigned_metadata").is_none(), "{k}");
        let p = &k["packages"][0];
        assert_eq!(p["name"], "kernel-source");
        assert_eq!(p["sha256"], sha256_file(file).as_str());
        let series = &version[..1];
        assert_eq!(
            p["url"],
            format!("{}/v{series}.x/linux-{version}.tar.xz", server.base).as_str()
        );
    }

    // A digest changed after signing: the signature no longer verifies.
    let asc = root.join("v6.x/sha256sums.asc");
    let signed = fs::read_to_string(&asc).unwrap();
    let forged = signed.replacen(&sha256_file(&tars[1].1), &"f".repeat(64), 1);
    assert_ne!(forged, signed);
    fs::write(&asc, forged).unwrap();
    let (code, _, err) = list(&["--keyring", &keyring], "c2");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("v6.x`: no valid signature by a trusted key")
            && err.contains("sha256sums.asc"),
        "{err}"
    );
    // Used anyway on request, and marked.
    let (code, out, err) = list(&["--allow-unsigned"], "c3");
    assert_eq!(code, 0, "{err}");
    let v = json(&out);
    assert_eq!(v[1]["unsigned_metadata"], true, "{v:#}");
    assert_eq!(v[1]["packages"][0]["sha256"], "f".repeat(64).as_str());
    fs::write(&asc, signed).unwrap();

    // A vanilla kernel needs the user's .config: said before anything is unpacked.
    let out_dir = t.path().join("out");
    let (code, _, err) = cli(
        &[
            "--mirror",
            &mirror,
            "--keyring",
            &keyring,
            "build",
            "--target",
            "vanilla",
            "--kernel",
            "6.6.61",
            "--driver-source",
            libs_0_20_0().to_str().unwrap(),
            "-o",
            out_dir.to_str().unwrap(),
        ],
        &t.path().join("c4"),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--kernel-config"), "{err}");
    assert!(!out_dir.exists() || fs::read_dir(&out_dir).unwrap().next().is_none());
}

#[test]
fn flatcar_releases_list_by_channel_and_are_named_by_release() {
    let t = tmpdir();
    let root = t.path().join("www");
    // Two channels, as the release server has them: numbered release folders, `current`,
    // and (alpha) a release whose config is not published yet.
    let releases = [
        ("stable", "4081.2.0", "6.6.60"),
        ("stable", "3975.2.2", "6.6.54"),
        ("beta", "4152.1.0", "6.6.71"),
        ("alpha", "4186.0.0", ""),
    ];
    let mut configs = Vec::new();
    for ch in ["stable", "beta", "alpha"] {
        let dir = root.join(ch).join("amd64-usr");
        fs::create_dir_all(dir.join("current")).unwrap();
        let mut index = String::from("<html><body><pre><a href=\"../\">../</a>\n");
        for (c, rel, kver) in releases.iter().filter(|r| r.0 == ch) {
            assert_eq!(*c, ch);
            fs::create_dir_all(dir.join(rel)).unwrap();
            index.push_str(&format!("<a href=\"./{rel}/\">{rel}/</a>\n"));
            if !kver.is_empty() {
                let config = config_of(t.path(), kver, "x86", "");
                fs::write(
                    dir.join(rel)
                        .join("flatcar_production_image_kernel_config.txt"),
                    &config,
                )
                .unwrap();
                configs.push((rel.to_string(), kver.to_string(), config));
            }
        }
        index.push_str("<a href=\"./current/\">current/</a>\n</pre></body></html>\n");
        // The test server answers a folder with its `index.xml`.
        fs::write(dir.join("index.xml"), index).unwrap();
    }
    let server = Server::start(root);
    let mirror = format!("flatcar={}/{{channel}}", server.base);
    let list = |extra: &[&str], cache: &str| {
        let mut a = vec!["--mirror", mirror.as_str()];
        if extra.contains(&"--allow-unsigned") {
            a.push("--allow-unsigned");
        }
        a.extend(["list-kernels", "flatcar", "--arch", "x86_64"]);
        a.extend(extra.iter().filter(|e| **e != "--allow-unsigned"));
        cli(&a, &t.path().join(cache))
    };
    // Nothing Flatcar publishes there is signed: refused without --allow-unsigned.
    let (code, _, err) = list(&["--json"], "c0");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--allow-unsigned"), "{err}");

    let (code, out, err) = list(&["--allow-unsigned", "--json"], "c1");
    assert_eq!(code, 0, "{err}");
    let v = json(&out);
    let got: Vec<(String, String, String)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["release"].as_str().unwrap().to_owned(),
                k["packages"][0]["version"].as_str().unwrap().to_owned(),
                k["packages"][1]["version"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    // `uname -r` is the config's kernel with `-flatcar`; the config's version the release.
    assert_eq!(
        got,
        [
            ("6.6.54-flatcar".into(), "6.6.54".into(), "3975.2.2".into()),
            ("6.6.60-flatcar".into(), "6.6.60".into(), "4081.2.0".into()),
            ("6.6.71-flatcar".into(), "6.6.71".into(), "4152.1.0".into()),
        ],
        "{v:#}"
    );
    assert!(v
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k["target_id"] == "flatcar"
            && k["kernel_version"] == "1"
            && k["unsigned_metadata"] == true));
    assert!(server
        .hits("/alpha/amd64-usr/4186.0.0/flatcar_production_image_kernel_config.txt")
        .contains(&404));

    // kernel-crawler's list: Falco's name (the Flatcar release) and the config, in base64.
    let (code, out, err) = list(&["--allow-unsigned", "--format", "crawler"], "c2");
    assert_eq!(code, 0, "{err}");
    let crawler = json(&out);
    let entries = crawler["flatcar"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{crawler:#}");
    for e in entries {
        let (_, _, config) = configs
            .iter()
            .find(|(rel, _, _)| e["kernelrelease"] == rel.as_str())
            .unwrap_or_else(|| panic!("{e}"));
        assert_eq!(e["kernelconfigdata"], b64(config).as_str());
        assert_eq!(e["target"], "flatcar");
        assert!(e.get("headers").is_none(), "{e}");
    }
    // driverkit's grid: Flatcar's configs carry the release and the config, no URLs.
    let grid = t.path().join("grid");
    let (code, _, err) = list(
        &[
            "--allow-unsigned",
            "--format",
            "driverkit",
            "--driver-version",
            "8.0.0+driver",
            "-o",
            grid.to_str().unwrap(),
        ],
        "c2b",
    );
    assert_eq!(code, 0, "{err}");
    let yaml = fs::read_to_string(grid.join("8.0.0+driver/x86_64/flatcar_4081.2.0_1.yaml"))
        .unwrap_or_else(|e| panic!("{e}: {err}"));
    assert!(yaml.contains("kernelrelease: 4081.2.0"), "{yaml}");
    assert!(yaml.contains("falco_flatcar_4081.2.0_1.o"), "{yaml}");
    assert!(!yaml.contains("kernelurls"), "{yaml}");
    let (_, _, config) = configs.iter().find(|c| c.0 == "4081.2.0").unwrap();
    assert!(yaml.contains(&b64(config)[..64]), "{yaml}");
    // Read back, the list plans the same kernels under Falco's names.
    let list_file = t.path().join("flatcar.json");
    fs::write(&list_file, &out).unwrap();
    let plan = plan_of(&list_file, &t.path().join("c3"));
    let files: Vec<&str> = plan["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["file"].as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        [
            "falco_flatcar_3975.2.2_1.o",
            "falco_flatcar_4081.2.0_1.o",
            "falco_flatcar_4152.1.0_1.o"
        ],
        "{plan:#}"
    );
}

/// `build-all --plan --json` of a list: what would be built, under which names.
fn plan_of(list: &Path, cache: &Path) -> serde_json::Value {
    plan_with(list, cache, &[])
}

/// [`plan_of`] with more arguments.
fn plan_with(list: &Path, cache: &Path, extra: &[&str]) -> serde_json::Value {
    let repo = list.with_extension("repo");
    let libs = libs_0_20_0();
    let mut args = vec![
        "build-all",
        "--from",
        list.to_str().unwrap(),
        "--arch",
        "x86_64",
        "--repo",
        repo.to_str().unwrap(),
        "--driver-source",
        libs.to_str().unwrap(),
        "--driver-version",
        "8.0.0+driver",
        "--plan",
        "--json",
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = cli(&args, cache);
    assert_eq!(code, 0, "{err}");
    json(&out)
}

#[test]
fn talos_and_minikube_come_from_kernel_crawler_lists_and_driverkit_configs() {
    let t = tmpdir();
    let talos = config_of(t.path(), "6.6.60", "x86", "-talos");
    let minikube = config_of(t.path(), "5.10.207", "x86", "");
    let list = serde_json::json!({
        "talos": [{"kernelversion": "1_v1.8.3", "kernelrelease": "6.6.60-talos", "target": "talos", "kernelconfigdata": b64(&talos)}],
        "minikube": [{"kernelversion": "1_1.34.0", "kernelrelease": "5.10.207", "target": "minikube", "kernelconfigdata": b64(&minikube)}]
    });
    let list_file = t.path().join("list.json");
    fs::write(&list_file, list.to_string()).unwrap();
    // Their modules too: built in the tree prepared from their source, by the compiler that
    // prepares it; none is marked as having no compiler.
    let plan = plan_with(&list_file, &t.path().join("c0"), &["--driver", "ebpf,kmod"]);
    let modules: Vec<&serde_json::Value> = plan["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["driver"] == "kmod")
        .collect();
    assert_eq!(modules.len(), 2, "{plan:#}");
    for m in modules {
        assert_eq!(m["status"], "build", "{m}");
        assert!(
            m["compiler"]
                .as_str()
                .is_some_and(|c| c.contains("prepares")),
            "{m}"
        );
    }
    assert_eq!(plan["no_compiler"], 0, "{plan:#}");
    let plan = plan_of(&list_file, &t.path().join("c0"));
    let mut files: Vec<&str> = plan["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["file"].as_str().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "falco_minikube_5.10.207_1_1.34.0.o",
            "falco_talos_6.6.60-talos_1_v1.8.3.o"
        ],
        "{plan:#}"
    );
    for k in plan["kernels"].as_array().unwrap() {
        let (config, source, distro) = match k["target_id"].as_str().unwrap() {
            "talos" => (&talos, "6.6.60", "v1.8.3"),
            "minikube" => (&minikube, "5.10.207", "1.34.0"),
            other => panic!("{other}"),
        };
        assert_eq!(k["packages"][0]["name"], "kernel-source");
        assert_eq!(k["packages"][0]["version"], source);
        assert_eq!(k["packages"][1]["version"], distro);
        assert_eq!(k["packages"][1]["sha256"], sha256_bytes(config).as_str());
    }
    // Not base64: the entry is named.
    let mut bad = list.clone();
    bad["talos"][0]["kernelconfigdata"] = "!!!!not base64".into();
    fs::write(&list_file, bad.to_string()).unwrap();
    let (code, _, err) = cli(
        &[
            "build-all",
            "--from",
            list_file.to_str().unwrap(),
            "--repo",
            t.path().join("r").to_str().unwrap(),
            "--plan",
        ],
        &t.path().join("c1"),
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("talos kernel `6.6.60-talos`") && err.contains("base64"),
        "{err}"
    );

    // A driverkit config with kernelconfigdata and no kernelurls: the source is kernel.org's
    // tarball of the config's version, checked against the signed sums before it is used.
    // (This tarball is not a kernel: the build stops at preparing its tree, naming it.)
    let key = test_key(t.path(), "kernel-org");
    let root = t.path().join("www");
    let tarball = small_tarball(t.path(), "6.6.60");
    kernel_org(&root, &key, &[("6.6.60", &tarball)]);
    let server = Server::start(root.clone());
    let yaml = t.path().join("talos.yaml");
    fs::write(
        &yaml,
        format!(
            "kernelrelease: 6.6.60-talos\nkernelversion: 1_v1.8.3\ntarget: talos\narchitecture: amd64\ndriverversion: 8.0.0+driver\nkernelconfigdata: {}\noutput:\n  probe: {}\n",
            b64(&talos),
            t.path().join("out/falco.o").display()
        ),
    )
    .unwrap();
    let mirror = format!("kernel-org={}", server.base);
    let keyring = key.public.display().to_string();
    let build = |cache: &str| {
        cli(
            &[
                "--mirror",
                &mirror,
                "--keyring",
                &keyring,
                "build",
                "-c",
                yaml.to_str().unwrap(),
                "--driver-source",
                libs_0_20_0().to_str().unwrap(),
            ],
            &t.path().join(cache),
        )
    };
    let (code, _, err) = build("c2");
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("one top-level kernel directory (with Makefile and Kconfig)"),
        "{err}"
    );
    assert_eq!(server.hits("/v6.x/linux-6.6.60.tar.xz"), [200]);
    assert!(!t.path().join("out/falco.o").exists());
    // The mirror's tarball is not the one the signed sums list: refused, named.
    fs::write(
        root.join("v6.x/linux-6.6.60.tar.xz"),
        b"not the signed tarball",
    )
    .unwrap();
    let (code, _, err) = build("c3");
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("linux-6.6.60.tar.xz"), "{err}");
    assert!(err.contains(&sha256_file(&tarball)), "{err}");
}

fn sha256_bytes(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}
