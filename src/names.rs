//! One kernel, every name. People and tools name a kernel in several ways: `uname -r`
//! (`6.1.0-50-amd64`), the release in Falco's file name, which kernel-crawler's and driverkit's
//! `kernelrelease` also carry (on Debian the package version and flavour, `6.1.176-1-amd64`;
//! Flatcar's release), and the header package (`linux-headers-6.1.0-50-amd64`, or its file
//! name as downloaded). This module turns any of them into the listed kernel it means.
//!
//! Pure, over listed records: it never fetches, and it never picks silently among several
//! kernels (a name two kernels answer to is an error naming both).

use crate::repo::KernelRecord;

/// Which of a kernel's names a given name was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    /// `uname -r`.
    Release,
    /// The release in Falco's file name (kernel-crawler's and driverkit's `kernelrelease`).
    FileRelease,
    /// A header package's name, or its file name.
    HeaderPackage,
}

impl std::fmt::Display for Form {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Form::Release => "uname -r",
            Form::FileRelease => "Falco's file release",
            Form::HeaderPackage => "header package",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A name several kernels answer to (a package they share, a loader's short name).
    #[error("kernel name `{name}` is ambiguous: it names {} kernels ({}{})", releases.len(), releases.iter().take(3).map(|r| format!("`{r}`")).collect::<Vec<_>>().join(", "), if releases.len() > 3 { ", ..." } else { "" })]
    Ambiguous { name: String, releases: Vec<String> },
}

/// Which form of `k`'s names `name` is, if any (`uname -r` first).
pub fn form(k: &KernelRecord, name: &str) -> Option<Form> {
    if k.release == name {
        return Some(Form::Release);
    }
    if k.file_release() == name {
        return Some(Form::FileRelease);
    }
    // By name, name-version (as RPM writes it), or the file name as downloaded.
    let package = k.packages.iter().any(|p| {
        p.name == name
            || name
                .strip_prefix(p.name.as_str())
                .and_then(|v| v.strip_prefix('-'))
                == Some(&p.version)
            || p.url.rsplit('/').next().is_some_and(|file| file == name)
    });
    package.then_some(Form::HeaderPackage)
}

/// The `uname -r` a name means among `kernels`, and which form it was: `None` when no kernel
/// answers to it (the caller says what is closest). A kernel listed by several suites counts
/// once; two kernels answering to one name are an error.
pub fn resolve(kernels: &[KernelRecord], name: &str) -> Result<Option<(String, Form)>, Error> {
    let mut found: Vec<(String, Form)> = kernels
        .iter()
        .filter_map(|k| form(k, name).map(|f| (k.release.clone(), f)))
        .collect();
    // `uname -r` wins: a name that is some kernel's release means that kernel.
    if let Some(exact) = found.iter().find(|(_, f)| *f == Form::Release) {
        return Ok(Some(exact.clone()));
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found.dedup_by(|a, b| a.0 == b.0);
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(Error::Ambiguous {
            name: name.to_owned(),
            releases: found.into_iter().map(|(r, _)| r).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::PackageRef;

    fn debian(release: &str, version: &str, origin: &str) -> KernelRecord {
        let pkg = |name: String| PackageRef {
            url: format!("pool/main/l/linux/{name}_{version}_amd64.deb"),
            name,
            version: version.into(),
            size: 1,
            sha256: String::new(),
        };
        // `6.1.0-50` of `6.1.0-50-cloud-amd64`: the flavours of one ABI share `-common`.
        let abi = release.splitn(3, '-').take(2).collect::<Vec<_>>().join("-");
        KernelRecord {
            target: "debian".into(),
            target_id: "debian".into(),
            release: release.into(),
            kernel_version: "1".into(),
            arch: crate::kernel::Arch::X86_64,
            origin: origin.into(),
            packages: vec![
                pkg(format!("linux-headers-{release}")),
                pkg(format!("linux-headers-{abi}-common")),
            ],
            unsigned_metadata: false,
        }
    }

    #[test]
    fn every_name_of_a_debian_kernel_resolves_to_its_uname_r() {
        let all = [
            debian("6.1.0-50-amd64", "6.1.176-1", "bookworm"),
            debian("6.1.0-50-amd64", "6.1.176-1", "bookworm-security"),
            debian("6.1.0-50-cloud-amd64", "6.1.176-1", "bookworm"),
            debian("6.1.0-49-amd64", "6.1.170-1", "bookworm"),
        ];
        let r = |n: &str| resolve(&all, n).unwrap();
        let want = |f| Some(("6.1.0-50-amd64".to_owned(), f));
        assert_eq!(r("6.1.0-50-amd64"), want(Form::Release));
        assert_eq!(r("6.1.176-1-amd64"), want(Form::FileRelease));
        assert_eq!(r("linux-headers-6.1.0-50-amd64"), want(Form::HeaderPackage));
        assert_eq!(
            r("linux-headers-6.1.0-50-amd64_6.1.176-1_amd64.deb"),
            want(Form::HeaderPackage)
        );
        assert_eq!(
            r("6.1.176-1-cloud-amd64").unwrap().0,
            "6.1.0-50-cloud-amd64"
        );
        assert_eq!(r("6.1.999-1-amd64"), None);
        // A package two kernels share names neither.
        let e = resolve(&all, "linux-headers-6.1.0-50-common").unwrap_err();
        assert!(
            e.to_string()
                .contains("2 kernels (`6.1.0-50-amd64`, `6.1.0-50-cloud-amd64`)"),
            "{e}"
        );
    }
}
