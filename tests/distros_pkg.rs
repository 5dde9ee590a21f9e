//! Distros with their own package formats, end to end through the CLI on loopback
//! repositories laid out as the distros publish them, holding a real Debian kernel's headers:
//! Arch Linux (pacman databases made by the real `repo-add`, signed `.pkg.tar.zst`) and
//! Bottlerocket (a signed TUF repository listing kmod kits). One real probe per distro.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::distros::{arch_package, debian_tree_as, repo_add, tuf_repo, upstream};
use common::gpg::test_key;
use common::server::{Fault, Server};
use common::*;

fn build_args<'a>(target: &'a str, kernel: &'a str, src: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "build",
        "--target",
        target,
        "--kernel",
        kernel,
        "--driver-source",
        src,
        "--driver-version",
        "8.0.0+driver",
        "-o",
        out,
    ]
}

#[test]
fn arch_pacman_repository_lists_verifies_and_builds() {
    let t = tmpdir();
    // The headers tree as Arch's PKGBUILD installs it: objtree and srctree in one directory,
    // `usr/lib/modules/<uname -r>/build`, and `usr/src/linux` linking to it.
    let stage = t.path().join("pkgroot");
    let uts_v = "#2 SMP PREEMPT_DYNAMIC Sat, 16 Mar 2024 17:15:35 +0000";
    let arch_release = |k: &probeforge::repo::KernelRecord| format!("{}-arch1-1", upstream(k));
    let k = debian_tree_as(
        t.path(),
        |k| stage.join(format!("usr/lib/modules/{}/build", arch_release(k))),
        |k| (arch_release(k), uts_v.to_owned()),
    );
    let up = upstream(&k);
    let pkgver = format!("{up}.arch1-1");
    let release = arch_release(&k);
    let build_dir = stage.join(format!("usr/lib/modules/{release}/build"));
    fs::write(build_dir.join("version"), format!("{release}\n")).unwrap();
    fs::create_dir_all(stage.join("usr/src")).unwrap();
    std::os::unix::fs::symlink(
        format!("../lib/modules/{release}/build"),
        stage.join("usr/src/linux"),
    )
    .unwrap();

    let key = test_key(t.path(), "arch-packager");
    let srv = t.path().join("srv");
    let core = srv.join("core/os/x86_64");
    let extra = srv.join("extra/os/x86_64");
    fs::create_dir_all(&core).unwrap();
    fs::create_dir_all(&extra).unwrap();
    let pkg = arch_package(&core, &stage, "linux-headers", "linux", &pkgver, Some(&key));
    // extra: an xz database holding a package that is not a kernel's headers.
    let small = t.path().join("pahole");
    fs::create_dir_all(small.join("usr/bin")).unwrap();
    fs::write(small.join("usr/bin/pahole"), "#!/bin/sh\n").unwrap();
    let other = arch_package(&extra, &small, "pahole", "pahole", "1:1.26-1", Some(&key));
    repo_add(&core, "core", "gz", std::slice::from_ref(&pkg));
    repo_add(&extra, "extra", "xz", &[other]);
    // pacman's metadata members are read, never written: the package's name and version come
    // from its .PKGINFO, and the tree holds only what the package installs.
    let root = t.path().join("unpacked");
    let (infos, _) = probeforge::extract::unpack_all(
        std::slice::from_ref(&pkg),
        &root,
        probeforge::extract::Selection::Everything,
        Default::default(),
    )
    .unwrap();
    assert_eq!(infos[0].name.as_deref(), Some("linux-headers"));
    assert_eq!(infos[0].version.as_deref(), Some(pkgver.as_str()));
    for meta in [".PKGINFO", ".MTREE", ".BUILDINFO"] {
        assert!(!root.join(meta).exists(), "{meta} was written");
    }
    let tree = probeforge::kernel::KernelTree::find(&root, None).unwrap();
    assert_eq!(tree.release, release);
    assert_eq!(
        tree.objtree,
        root.join(format!("usr/lib/modules/{release}/build"))
    );
    assert_eq!(tree.srctree, tree.objtree);
    fs::remove_dir_all(&root).unwrap();

    let server = Server::start(srv.clone());
    let mirror = format!("arch={}", server.base);
    let keyring = key.public.to_str().unwrap().to_owned();

    // Listed through the CLI with the packager's key: uname -r and -v from the tree.
    let cache = t.path().join("cache");
    let list = |extra: &[&str], cache: &Path| {
        let mut a = vec!["--mirror", mirror.as_str()];
        a.extend_from_slice(extra);
        a.extend(["list-kernels", "arch", "--arch", "x86_64", "--json"]);
        cli(&a, cache)
    };
    let (code, out, err) = list(&["--keyring", &keyring], &cache);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["release"], release.as_str());
    assert_eq!(v[0]["target_id"], "arch");
    assert_eq!(v[0]["kernel_version"], "2");
    assert_eq!(v[0]["origin"], "core");
    assert!(v[0].get("unsigned_metadata").is_none(), "{v}");
    let p = &v[0]["packages"][0];
    assert_eq!(p["name"], "linux-headers");
    assert_eq!(p["version"], pkgver.as_str());
    assert_eq!(p["sha256"], sha256_file(&pkg).as_str());
    assert_eq!(
        p["url"],
        format!(
            "{}/core/os/x86_64/{}",
            server.base,
            pkg.file_name().unwrap().to_str().unwrap()
        )
        .as_str()
    );
    // The DB is not signed (as Arch's are not): the package's own signature was checked.
    assert!(server.hits("/core/os/x86_64/core.db.sig").contains(&404));

    // A real probe, named as Falco's loader asks for it.
    let out_dir = t.path().join("out");
    let src = libs_0_20_0();
    let mut a = vec!["--mirror", mirror.as_str(), "--keyring", keyring.as_str()];
    a.extend(build_args(
        "arch",
        &release,
        src.to_str().unwrap(),
        out_dir.to_str().unwrap(),
    ));
    let (code, _, err) = cli(&a, &cache);
    assert_eq!(code, 0, "{err}");
    let probe = out_dir.join(format!("falco_arch_{release}_2.o"));
    let bytes = fs::read(&probe).unwrap_or_else(|e| panic!("{}: {e}", probe.display()));
    assert_eq!(&bytes[..4], b"\x7fELF");
    // The section itself, not the string anywhere in the file (debug info names it too).
    let kernel_version = {
        use object::{Object, ObjectSection};
        let f = object::File::parse(&bytes[..]).unwrap();
        let s = f
            .section_by_name("kernel_version")
            .expect("a kernel_version section");
        s.data().unwrap().to_vec()
    };
    assert_eq!(
        kernel_version,
        format!("{release}\0").as_bytes(),
        "the probe's kernel_version section names {release}"
    );

    // With the shipped Arch keyring only, the test packager's signature is not trusted.
    let (code, _, err) = list(&[], &t.path().join("c-untrusted"));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("no valid signature by a trusted key")
            && err.contains("archlinux.gpg")
            && err.contains("--allow-unsigned"),
        "{err}"
    );
    let (code, out, err) = list(&["--allow-unsigned"], &t.path().join("c-allow"));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["unsigned_metadata"], true, "{v}");

    // A database signature, where a mirror has one, is checked: by an unknown key it is
    // refused; by a trusted key it vouches for the packages (the packager's key not given).
    let db = core.join("core.db.tar.gz");
    let stranger = test_key(t.path(), "stranger");
    stranger.detach(&db, &core.join("core.db.tar.gz.sig"), false);
    std::os::unix::fs::symlink("core.db.tar.gz.sig", core.join("core.db.sig")).unwrap();
    let (code, _, err) = list(&["--keyring", &keyring], &t.path().join("c-db-stranger"));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("`core.db` of") && err.contains("no valid signature by a trusted key"),
        "{err}"
    );
    let owner = test_key(t.path(), "db-owner");
    owner.detach(&db, &core.join("core.db.tar.gz.sig"), false);
    let owner_ring = owner.public.to_str().unwrap();
    let (code, out, err) = list(&["--keyring", owner_ring], &t.path().join("c-db-owner"));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v[0].get("unsigned_metadata").is_none(), "{v}");
    fs::remove_file(core.join("core.db.sig")).unwrap();

    // A package the database lists but the mirror does not serve (mid-sync) is passed over,
    // named; the listing goes on.
    let path = format!(
        "/core/os/x86_64/{}",
        pkg.file_name().unwrap().to_str().unwrap()
    );
    server.fault(&path, Fault::Status(404, 1));
    let (code, out, err) = list(&["--keyring", &keyring], &t.path().join("c-404"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "[]", "{out}");
    assert!(
        err.contains("is unavailable from this mirror") && err.contains("HTTP 404"),
        "{err}"
    );

    // A package whose bytes differ from the database's sha256 is refused, naming it.
    let path = format!(
        "/core/os/x86_64/{}",
        pkg.file_name().unwrap().to_str().unwrap()
    );
    server.fault(&path, Fault::Corrupt);
    let (code, _, err) = list(&["--keyring", &keyring], &t.path().join("c-corrupt"));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(pkg.file_name().unwrap().to_str().unwrap())
            && err.contains("does not match the sha256"),
        "{err}"
    );
}

#[test]
fn bottlerocket_tuf_repository_lists_verifies_and_builds() {
    let t = tmpdir();
    let (variant, arch, ver) = ("aws-k8s-1.33", "x86_64", "1.20.0");
    let kit = format!("{variant}-{arch}-kmod-kit-v{ver}");
    let stage = t.path().join("kit");
    let devel = stage.join(&kit).join("kernel-devel");
    // Bottlerocket's `uname -r` is the plain upstream version.
    let k = debian_tree_as(
        t.path(),
        |_| devel.clone(),
        |k| {
            (
                upstream(k),
                "#1 SMP Thu Oct 10 19:21:57 UTC 2024".to_owned(),
            )
        },
    );
    let release = upstream(&k);
    fs::create_dir_all(stage.join(&kit).join("toolchain/usr/bin")).unwrap();
    let kit_file = t.path().join(format!("{kit}.tar.xz"));
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar -C '{}' -cf - '{kit}' | xz -0 -T2 > '{}'",
            stage.display(),
            kit_file.display()
        ))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // A second variant's kit with an entry that climbs out of the root.
    let evil_kit = format!("aws-ecs-2-{arch}-kmod-kit-v{ver}");
    let evil_file = t.path().join(format!("{evil_kit}.tar.xz"));
    let o = Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import io, lzma, sys, tarfile
name, out = sys.argv[1], sys.argv[2]
with lzma.open(out, "wb") as f, tarfile.open(fileobj=f, mode="w") as tar:
    for path, body in [(name + "/kernel-devel/include/generated/utsrelease.h", b'#define UTS_RELEASE "6.1.1-evil"\n'),
                       (name + "/kernel-devel/../../../escaped-by-kit", b"x\n")]:
        info = tarfile.TarInfo(path)
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
"#,
        )
        .arg(&evil_kit)
        .arg(&evil_file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let srv = t.path().join("srv");
    let keys = t.path().join("tuf-keys");
    let root = tuf_repo(
        &keys,
        &srv.join(format!("2020-07-07/{variant}/{arch}")),
        &srv.join("targets"),
        std::slice::from_ref(&kit_file),
    );
    tuf_repo(
        &keys,
        &srv.join(format!("2020-07-07/aws-ecs-2/{arch}")),
        &srv.join("targets"),
        std::slice::from_ref(&evil_file),
    );
    let trusted = t.path().join("root.json");
    fs::copy(&root, &trusted).unwrap();
    let server = Server::start(srv.clone());
    let mirror = format!("bottlerocket={}", server.base);
    let trusted_s = trusted.to_str().unwrap().to_owned();

    let cache = t.path().join("cache");
    let list = |extra: &[&str], cache: &Path| {
        let mut a = vec!["--mirror", mirror.as_str()];
        a.extend_from_slice(extra);
        a.extend(["list-kernels", "bottlerocket", "--arch", arch, "--json"]);
        cli(&a, cache)
    };
    let (code, out, err) = list(&["--keyring", &trusted_s], &cache);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let all = v.as_array().unwrap();
    assert_eq!(all.len(), 2, "{v}");
    let good = all
        .iter()
        .find(|r| r["origin"] == variant)
        .expect("the good kit");
    assert_eq!(good["release"], release.as_str());
    assert_eq!(good["target_id"], "bottlerocket");
    assert_eq!(good["kernel_version"], format!("1_{ver}-aws").as_str());
    assert!(good.get("unsigned_metadata").is_none(), "{good}");
    let sha = sha256_file(&kit_file);
    assert_eq!(good["packages"][0]["sha256"], sha.as_str());
    assert_eq!(
        good["packages"][0]["url"],
        format!("{}/targets/{sha}.{kit}.tar.xz", server.base).as_str()
    );
    // The rotated root was read and checked.
    assert!(server
        .hits(&format!("/2020-07-07/{variant}/{arch}/2.root.json"))
        .contains(&200));

    // A kit targets.json lists but the mirror does not serve is passed over, named.
    server.fault(
        &format!("/targets/{sha}.{kit}.tar.xz"),
        Fault::Status(404, 1),
    );
    let (code, out, err) = list(&["--keyring", &trusted_s], &t.path().join("c-404"));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert!(
        err.contains(&format!("kmod kit `{kit}.tar.xz`")) && err.contains("HTTP 404"),
        "{err}"
    );

    let out_dir = t.path().join("out");
    let src = libs_0_20_0();
    let mut a = vec!["--mirror", mirror.as_str(), "--keyring", trusted_s.as_str()];
    a.extend(build_args(
        "bottlerocket",
        &release,
        src.to_str().unwrap(),
        out_dir.to_str().unwrap(),
    ));
    let (code, _, err) = cli(&a, &cache);
    assert_eq!(code, 0, "{err}");
    let probe = out_dir.join(format!("falco_bottlerocket_{release}_1_{ver}-aws.o"));
    assert!(probe.is_file(), "no {}: {err}", probe.display());

    // The kit whose entry escapes its root is refused naming the entry; nothing lands outside.
    let mut a = vec!["--mirror", mirror.as_str(), "--keyring", trusted_s.as_str()];
    let bad_out = t.path().join("bad-out");
    a.extend(build_args(
        "bottlerocket",
        "6.1.1-evil",
        src.to_str().unwrap(),
        bad_out.to_str().unwrap(),
    ));
    let (code, _, err) = cli(&a, &cache);
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("escaped-by-kit") && err.contains("refused") && err.contains("`..`"),
        "{err}"
    );
    assert!(!bad_out.exists() || fs::read_dir(&bad_out).unwrap().next().is_none());

    // A root of other keys does not verify this repository's rotation; Bottlerocket's own
    // (shipped, version 2, expired in 2021) has no rotation here and is refused as expired.
    let other = tuf_repo(
        &t.path().join("other-keys"),
        &t.path().join("other-meta"),
        &t.path().join("other-targets"),
        &[],
    );
    let (code, _, err) = list(
        &["--keyring", other.to_str().unwrap()],
        &t.path().join("c-other"),
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("`2.root.json`: 0 valid signature(s) of the `root` role's keys, 1 needed")
            && err.contains("--allow-unsigned"),
        "{err}"
    );
    let (code, _, err) = list(&[], &t.path().join("c-shipped"));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("`bottlerocket-root.json` expired at 2021-09-22T00:00:00Z"),
        "{err}"
    );
    // A targets.json changed after signing is refused.
    let tj = srv.join(format!("2020-07-07/{variant}/{arch}/1.targets.json"));
    let text = fs::read_to_string(&tj).unwrap();
    fs::write(
        &tj,
        text.replacen("\"custom\": {}", "\"custom\": {\"x\": 1}", 1),
    )
    .unwrap();
    let (code, _, err) = list(&["--keyring", &trusted_s], &t.path().join("c-tampered"));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("`targets.json` does not match the length `snapshot.json` lists"),
        "{err}"
    );
    // With --allow-unsigned the signatures are not looked at, the digests still are.
    let (code, _, err) = list(
        &["--keyring", other.to_str().unwrap(), "--allow-unsigned"],
        &t.path().join("c-allowed"),
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("`targets.json` does not match"), "{err}");
    fs::write(&tj, text).unwrap();
    let (code, out, err) = list(
        &["--keyring", other.to_str().unwrap(), "--allow-unsigned"],
        &t.path().join("c-allowed2"),
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .all(|r| r["unsigned_metadata"] == true),
        "{v}"
    );
    assert!(err.contains("used anyway (--allow-unsigned)"), "{err}");
}
