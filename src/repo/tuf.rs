//! The Update Framework (TUF) as Bottlerocket publishes it: `root.json` (keys and roles,
//! rotated by `<n>.root.json`), `timestamp.json` -> `snapshot.json` -> `targets.json`, each
//! `{"signed": ..., "signatures": [{"keyid", "sig"}]}` signed over the canonical JSON of
//! `signed`; and the kmod kits `targets.json` lists (`<variant>-<arch>-kmod-kit-v<ver>.tar.xz`).
//!
//! Pure: bytes and the current time in, verified values out. Signatures of the schemes
//! `rsassa-pss-sha256` (RSA), `ed25519` and `ecdsa-sha2-nistp256` are checked; a signature of
//! any other scheme never counts toward a threshold. Policy (whether an unverified chain may be
//! used) stays with the caller.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{file}` is not TUF metadata: {what}")]
    Shape { file: String, what: String },
    #[error("`{file}`: {found} valid signature(s) of the `{role}` role's keys, {threshold} needed{}", unsupported_note(.unsupported))]
    Threshold {
        file: String,
        role: String,
        found: usize,
        threshold: usize,
        /// Key schemes of the role that this build cannot check.
        unsupported: Vec<String>,
    },
    #[error("`{file}` is version {found}, expected {expected}")]
    Version {
        file: String,
        found: u64,
        expected: u64,
    },
    #[error("`{file}` expired at {expires} (now {now})")]
    Expired {
        file: String,
        expires: String,
        now: String,
    },
    #[error("`{file}` does not match the {what} `{by}` lists for it")]
    Mismatch {
        file: String,
        what: &'static str,
        by: String,
    },
}

fn unsupported_note(schemes: &[String]) -> String {
    if schemes.is_empty() {
        String::new()
    } else {
        format!(
            " (schemes this build cannot verify: {})",
            schemes.join(", ")
        )
    }
}

/// Canonical JSON (OLPC, as TUF signs it): keys sorted, no white space, strings escaping only
/// `"` and `\`. Floats do not occur in TUF metadata and are written as serde_json writes them.
pub fn canonical(v: &Value) -> Vec<u8> {
    fn string(s: &str, out: &mut Vec<u8>) {
        out.push(b'"');
        for b in s.bytes() {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    }
    fn go(v: &Value, out: &mut Vec<u8>) {
        match v {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
            Value::String(s) => string(s, out),
            Value::Array(a) => {
                out.push(b'[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    go(x, out);
                }
                out.push(b']');
            }
            Value::Object(m) => {
                out.push(b'{');
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    string(k, out);
                    out.push(b':');
                    go(&m[k], out);
                }
                out.push(b'}');
            }
        }
    }
    let mut out = Vec::new();
    go(v, &mut out);
    out
}

#[derive(Debug, Clone)]
pub struct Key {
    pub keytype: String,
    pub scheme: String,
    pub public: String,
}

#[derive(Debug, Clone)]
pub struct Role {
    pub keyids: Vec<String>,
    pub threshold: usize,
}

/// A root's `signed` part: the keys and which of them each role needs.
#[derive(Debug, Clone)]
pub struct Root {
    pub version: u64,
    pub expires: String,
    pub consistent_snapshot: bool,
    pub keys: BTreeMap<String, Key>,
    pub roles: BTreeMap<String, Role>,
}

/// One file's entry in a snapshot's or a timestamp's `meta`, or in `targets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    pub version: Option<u64>,
    pub length: Option<u64>,
    pub sha256: Option<String>,
}

/// A signed document: its `signed` value and its signatures (keyid, signature bytes).
struct Envelope {
    signed: Value,
    sigs: Vec<(String, Vec<u8>)>,
}

fn shape(file: &str, what: impl Into<String>) -> Error {
    Error::Shape {
        file: file.to_owned(),
        what: what.into(),
    }
}

fn envelope(bytes: &[u8], file: &str, kind: &str) -> Result<Envelope, Error> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| shape(file, e.to_string()))?;
    let signed = v
        .get("signed")
        .cloned()
        .ok_or_else(|| shape(file, "no `signed`"))?;
    if signed.get("_type").and_then(Value::as_str) != Some(kind) {
        return Err(shape(file, format!("`_type` is not `{kind}`")));
    }
    let sigs = v
        .get("signatures")
        .and_then(Value::as_array)
        .ok_or_else(|| shape(file, "no `signatures`"))?
        .iter()
        .filter_map(|s| {
            let id = s.get("keyid")?.as_str()?.to_owned();
            let sig = hex::decode(s.get("sig")?.as_str()?).ok()?;
            Some((id, sig))
        })
        .collect();
    Ok(Envelope { signed, sigs })
}

fn verify_one(key: &Key, msg: &[u8], sig: &[u8]) -> Option<bool> {
    match (key.keytype.as_str(), key.scheme.as_str()) {
        ("rsa", "rsassa-pss-sha256") => {
            use rsa::pkcs8::DecodePublicKey;
            use rsa::signature::Verifier;
            let Ok(k) = rsa::RsaPublicKey::from_public_key_pem(&key.public) else {
                return Some(false);
            };
            let vk = rsa::pss::VerifyingKey::<sha2::Sha256>::new(k);
            let Ok(s) = rsa::pss::Signature::try_from(sig) else {
                return Some(false);
            };
            Some(vk.verify(msg, &s).is_ok())
        }
        ("ed25519", "ed25519") => {
            let (Ok(pk), Ok(s)) = (
                hex::decode(&key.public)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or(()),
                ed25519_dalek::Signature::from_slice(sig),
            ) else {
                return Some(false);
            };
            let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(&pk) else {
                return Some(false);
            };
            Some(vk.verify_strict(msg, &s).is_ok())
        }
        ("ecdsa" | "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256") => {
            use p256::ecdsa::signature::Verifier;
            use p256::pkcs8::DecodePublicKey;
            let Ok(vk) = p256::ecdsa::VerifyingKey::from_public_key_pem(&key.public) else {
                return Some(false);
            };
            let Ok(s) = p256::ecdsa::Signature::from_der(sig) else {
                return Some(false);
            };
            Some(vk.verify(msg, &s).is_ok())
        }
        _ => None,
    }
}

/// Whether `env` carries valid signatures of at least `role`'s threshold of distinct keys.
fn check_role(env: &Envelope, root: &Root, role: &str, file: &str) -> Result<(), Error> {
    let r = root
        .roles
        .get(role)
        .ok_or_else(|| shape(file, format!("the root has no `{role}` role")))?;
    let msg = canonical(&env.signed);
    let mut good = BTreeSet::new();
    let mut unsupported = BTreeSet::new();
    for (id, sig) in &env.sigs {
        if !r.keyids.contains(id) {
            continue;
        }
        let Some(key) = root.keys.get(id) else {
            continue;
        };
        match verify_one(key, &msg, sig) {
            Some(true) => {
                good.insert(id.clone());
            }
            Some(false) => {}
            None => {
                unsupported.insert(format!("{}/{}", key.keytype, key.scheme));
            }
        }
    }
    if r.threshold == 0 || good.len() < r.threshold {
        return Err(Error::Threshold {
            file: file.to_owned(),
            role: role.to_owned(),
            found: good.len(),
            threshold: r.threshold,
            unsupported: unsupported.into_iter().collect(),
        });
    }
    Ok(())
}

fn parse_root_signed(s: &Value, file: &str) -> Result<Root, Error> {
    let mut keys = BTreeMap::new();
    for (id, k) in s
        .get("keys")
        .and_then(Value::as_object)
        .ok_or_else(|| shape(file, "no `keys`"))?
    {
        let get = |f: &str| k.get(f).and_then(Value::as_str).unwrap_or("").to_owned();
        keys.insert(
            id.clone(),
            Key {
                keytype: get("keytype"),
                scheme: get("scheme"),
                public: k
                    .pointer("/keyval/public")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            },
        );
    }
    let mut roles = BTreeMap::new();
    for (name, r) in s
        .get("roles")
        .and_then(Value::as_object)
        .ok_or_else(|| shape(file, "no `roles`"))?
    {
        roles.insert(
            name.clone(),
            Role {
                keyids: r
                    .get("keyids")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
                threshold: r.get("threshold").and_then(Value::as_u64).unwrap_or(0) as usize,
            },
        );
    }
    Ok(Root {
        version: version(s, file)?,
        expires: expires(s, file)?,
        consistent_snapshot: s
            .get("consistent_snapshot")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        keys,
        roles,
    })
}

fn version(s: &Value, file: &str) -> Result<u64, Error> {
    s.get("version")
        .and_then(Value::as_u64)
        .ok_or_else(|| shape(file, "no `version`"))
}

fn expires(s: &Value, file: &str) -> Result<String, Error> {
    s.get("expires")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| shape(file, "no `expires`"))
}

/// RFC 3339 UTC stamps of the form TUF uses (`2026-12-01T00:00:00Z`) compare as strings.
fn check_expiry(s: &Value, file: &str, now: &str) -> Result<(), Error> {
    let e = expires(s, file)?;
    if e.as_str() <= now {
        return Err(Error::Expired {
            file: file.to_owned(),
            expires: e,
            now: now.to_owned(),
        });
    }
    Ok(())
}

/// A root trusted as given (shipped with probeforge, or the user's): parsed, not verified.
pub fn trusted_root(bytes: &[u8], file: &str) -> Result<Root, Error> {
    let env = envelope(bytes, file, "root")?;
    parse_root_signed(&env.signed, file)
}

/// The next root (`<n+1>.root.json`): signed by the current root's root role and by its own,
/// and exactly one version newer (TUF 5.3.4).
/// With `check` false (`--allow-unsigned` after a failed check) signatures are not looked at.
pub fn next_root(current: &Root, bytes: &[u8], file: &str, check: bool) -> Result<Root, Error> {
    let env = envelope(bytes, file, "root")?;
    if check {
        check_role(&env, current, "root", file)?;
    }
    let new = parse_root_signed(&env.signed, file)?;
    if check {
        check_role(&env, &new, "root", file)?;
    }
    if new.version != current.version + 1 {
        return Err(Error::Version {
            file: file.to_owned(),
            found: new.version,
            expected: current.version + 1,
        });
    }
    Ok(new)
}

/// The final root of a chain must not have expired.
pub fn check_root_fresh(root: &Root, file: &str, now: &str) -> Result<(), Error> {
    if root.expires.as_str() <= now {
        return Err(Error::Expired {
            file: file.to_owned(),
            expires: root.expires.clone(),
            now: now.to_owned(),
        });
    }
    Ok(())
}

fn file_meta(v: &Value) -> FileMeta {
    FileMeta {
        version: v.get("version").and_then(Value::as_u64),
        length: v.get("length").and_then(Value::as_u64),
        sha256: v
            .pointer("/hashes/sha256")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase),
    }
}

/// Checks `bytes` against what a parent lists for it (length, sha256), where it lists them.
pub fn check_listed(bytes: &[u8], listed: &FileMeta, file: &str, by: &str) -> Result<(), Error> {
    let mismatch = |what| Error::Mismatch {
        file: file.to_owned(),
        what,
        by: by.to_owned(),
    };
    if listed.length.is_some_and(|l| l != bytes.len() as u64) {
        return Err(mismatch("length"));
    }
    if let Some(h) = &listed.sha256 {
        if crate::base::sha256(bytes) != *h {
            return Err(mismatch("sha256"));
        }
    }
    Ok(())
}

/// A verified role file's `signed` part, and its version.
fn role_file(
    root: &Root,
    bytes: &[u8],
    role: &str,
    file: &str,
    now: Option<&str>,
) -> Result<(Value, u64), Error> {
    let env = envelope(bytes, file, role)?;
    if let Some(now) = now {
        check_role(&env, root, role, file)?;
        check_expiry(&env.signed, file, now)?;
    }
    let v = version(&env.signed, file)?;
    Ok((env.signed, v))
}

/// `timestamp.json`: what it says of `snapshot.json`. `now` is the time expiry is checked
/// against; `None` checks neither signatures nor expiry (`--allow-unsigned`, after a failure).
pub fn timestamp(root: &Root, bytes: &[u8], now: Option<&str>) -> Result<FileMeta, Error> {
    let file = "timestamp.json";
    let (s, _) = role_file(root, bytes, "timestamp", file, now)?;
    s.pointer("/meta/snapshot.json")
        .map(file_meta)
        .ok_or_else(|| shape(file, "no `meta` for `snapshot.json`"))
}

/// `snapshot.json` (of the version the timestamp names): what it says of `targets.json`.
pub fn snapshot(
    root: &Root,
    bytes: &[u8],
    listed: &FileMeta,
    now: Option<&str>,
) -> Result<FileMeta, Error> {
    let file = "snapshot.json";
    check_listed(bytes, listed, file, "timestamp.json")?;
    let (s, v) = role_file(root, bytes, "snapshot", file, now)?;
    if let Some(want) = listed.version.filter(|w| *w != v) {
        return Err(Error::Version {
            file: file.to_owned(),
            found: v,
            expected: want,
        });
    }
    s.pointer("/meta/targets.json")
        .map(file_meta)
        .ok_or_else(|| shape(file, "no `meta` for `targets.json`"))
}

/// `targets.json` (of the version the snapshot names): every target with its length and
/// sha256.
pub fn targets(
    root: &Root,
    bytes: &[u8],
    listed: &FileMeta,
    now: Option<&str>,
) -> Result<BTreeMap<String, FileMeta>, Error> {
    let file = "targets.json";
    check_listed(bytes, listed, file, "snapshot.json")?;
    let (s, v) = role_file(root, bytes, "targets", file, now)?;
    if let Some(want) = listed.version.filter(|w| *w != v) {
        return Err(Error::Version {
            file: file.to_owned(),
            found: v,
            expected: want,
        });
    }
    Ok(s.get("targets")
        .and_then(Value::as_object)
        .ok_or_else(|| shape(file, "no `targets`"))?
        .iter()
        .map(|(name, m)| (name.clone(), file_meta(m)))
        .collect())
}

/// A kmod kit's target name, `<variant>-<arch>-kmod-kit-v<version>.tar.xz`: its version.
pub fn kmod_kit_version<'a>(name: &'a str, variant: &str, arch: &str) -> Option<&'a str> {
    let v = name
        .strip_prefix(variant)?
        .strip_prefix('-')?
        .strip_prefix(arch)?
        .strip_prefix("-kmod-kit-v")?
        .strip_suffix(".tar.xz")?;
    (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.')).then_some(v)
}

/// Falco's kernel version for Bottlerocket: `1_<VERSION_ID>-<VARIANT_ID up to its first '-'>`
/// (falcoctl's `bottlerocket.go`): `aws-k8s-1.29`, `1.20.0` -> `1_1.20.0-aws`.
pub fn falco_kernel_version(variant: &str, version: &str) -> String {
    let family = variant.split('-').next().unwrap_or(variant);
    format!("1_{version}-{family}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_and_escapes_only_quote_and_backslash() {
        let v: Value = serde_json::from_str(
            r#"{"b": [1, "x\"y\\z"], "a": {"d": true, "c": null}, "e": "\n"}"#,
        )
        .unwrap();
        assert_eq!(
            canonical(&v),
            b"{\"a\":{\"c\":null,\"d\":true},\"b\":[1,\"x\\\"y\\\\z\"],\"e\":\"\n\"}"
        );
    }

    #[test]
    fn kit_names_and_falco_versions() {
        assert_eq!(
            kmod_kit_version(
                "aws-k8s-1.29-x86_64-kmod-kit-v1.20.0.tar.xz",
                "aws-k8s-1.29",
                "x86_64"
            ),
            Some("1.20.0")
        );
        assert_eq!(
            kmod_kit_version(
                "aws-k8s-1.29-x86_64-kmod-kit-v1.20.0.tar.xz",
                "aws-k8s-1.2",
                "x86_64"
            ),
            None
        );
        assert_eq!(
            kmod_kit_version(
                "aws-k8s-1.29-aarch64-kmod-kit-v1.20.0.tar.xz",
                "aws-k8s-1.29",
                "x86_64"
            ),
            None
        );
        assert_eq!(
            falco_kernel_version("aws-k8s-1.29", "1.20.0"),
            "1_1.20.0-aws"
        );
        assert_eq!(
            falco_kernel_version("metal-dev", "1.11.0"),
            "1_1.11.0-metal"
        );
    }

    #[test]
    fn bottlerocket_root_shipped_parses() {
        let r = trusted_root(
            include_bytes!("../../catalog/keys/bottlerocket-root.json"),
            "bottlerocket-root.json",
        )
        .unwrap();
        assert!(r.consistent_snapshot);
        assert_eq!(r.roles["root"].threshold, 2);
        assert!(r.keys.values().all(|k| k.scheme == "rsassa-pss-sha256"));
    }

    /// Bottlerocket's real root is signed by its own root keys (and by the previous root's):
    /// the canonical JSON and RSA-PSS here agree with what its signer (tough) signed, and a
    /// changed byte of `signed` breaks every signature.
    #[test]
    fn bottlerocket_root_verifies_its_own_signatures() {
        let bytes = include_bytes!("../../catalog/keys/bottlerocket-root.json");
        let root = trusted_root(bytes, "root.json").unwrap();
        let env = envelope(bytes, "root.json", "root").unwrap();
        check_role(&env, &root, "root", "root.json").unwrap();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let changed = text.replacen("2021-09-22T00:00:00Z", "2031-09-22T00:00:00Z", 1);
        let env = envelope(changed.as_bytes(), "root.json", "root").unwrap();
        match check_role(&env, &root, "root", "root.json") {
            Err(Error::Threshold {
                found: 0,
                threshold: 2,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
    }

    /// A TUF repository signed by one Ed25519 key holding every role, as a publisher makes
    /// one: each `signed` part canonicalized and signed, each parent listing its child's
    /// version, length and sha256.
    mod chain {
        use super::*;
        use ed25519_dalek::{Signer, SigningKey};
        use serde_json::json;

        pub const NOW: &str = "2026-12-06T12:00:00Z";
        pub const FRESH: &str = "2030-01-01T00:00:00Z";
        pub const PAST: &str = "2026-12-06T11:59:59Z";

        pub struct Repo {
            pub root: Vec<u8>,
            pub timestamp: Vec<u8>,
            pub snapshot: Vec<u8>,
            pub targets: Vec<u8>,
        }

        fn sign(key: &SigningKey, keyid: &str, signed: Value) -> Vec<u8> {
            let sig = key.sign(&canonical(&signed));
            serde_json::to_vec(&json!({
                "signed": signed,
                "signatures": [{"keyid": keyid, "sig": hex::encode(sig.to_bytes())}],
            }))
            .unwrap()
        }

        fn listed(version: u64, bytes: &[u8]) -> Value {
            json!({
                "version": version,
                "length": bytes.len(),
                "hashes": {"sha256": crate::base::sha256(bytes)},
            })
        }

        /// Every role expiring at `FRESH`, except `expired`'s at `PAST`.
        pub fn repo(expired: Option<&str>) -> Repo {
            let key = SigningKey::from_bytes(&[7u8; 32]);
            let public = hex::encode(key.verifying_key().to_bytes());
            let keyid = crate::base::sha256(public.as_bytes());
            let expires = |role: &str| if expired == Some(role) { PAST } else { FRESH };
            let role = json!({"keyids": [keyid], "threshold": 1});
            let root = sign(
                &key,
                &keyid,
                json!({
                    "_type": "root",
                    "spec_version": "1.0.0",
                    "version": 1,
                    "expires": expires("root"),
                    "consistent_snapshot": true,
                    "keys": {&keyid: {"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": public}}},
                    "roles": {"root": role, "timestamp": role, "snapshot": role, "targets": role},
                }),
            );
            let kit = b"kit";
            let targets = sign(
                &key,
                &keyid,
                json!({
                    "_type": "targets",
                    "version": 3,
                    "expires": expires("targets"),
                    "targets": {"aws-k8s-1.29-x86_64-kmod-kit-v1.20.0.tar.xz": {
                        "length": kit.len(),
                        "hashes": {"sha256": crate::base::sha256(kit)},
                    }},
                }),
            );
            let snapshot = sign(
                &key,
                &keyid,
                json!({
                    "_type": "snapshot",
                    "version": 2,
                    "expires": expires("snapshot"),
                    "meta": {"targets.json": listed(3, &targets)},
                }),
            );
            let timestamp = sign(
                &key,
                &keyid,
                json!({
                    "_type": "timestamp",
                    "version": 5,
                    "expires": expires("timestamp"),
                    "meta": {"snapshot.json": listed(2, &snapshot)},
                }),
            );
            Repo {
                root,
                timestamp,
                snapshot,
                targets,
            }
        }

        /// Verifies the chain as a lister does: root, timestamp, snapshot, targets.
        pub fn verify(r: &Repo, now: Option<&str>) -> Result<BTreeMap<String, FileMeta>, Error> {
            let root = trusted_root(&r.root, "root.json")?;
            if let Some(now) = now {
                check_root_fresh(&root, "root.json", now)?;
            }
            let snap = timestamp(&root, &r.timestamp, now)?;
            let tgt = snapshot(&root, &r.snapshot, &snap, now)?;
            targets(&root, &r.targets, &tgt, now)
        }
    }

    #[test]
    fn a_fresh_signed_chain_verifies() {
        let t = chain::verify(&chain::repo(None), Some(chain::NOW)).unwrap();
        assert_eq!(
            t.keys().collect::<Vec<_>>(),
            ["aws-k8s-1.29-x86_64-kmod-kit-v1.20.0.tar.xz"]
        );
    }

    /// Each role's metadata past its `expires` is refused, naming its file, though every
    /// signature on it is good.
    #[test]
    fn every_expired_role_is_refused_naming_it() {
        for role in ["root", "timestamp", "snapshot", "targets"] {
            let r = chain::repo(Some(role));
            match chain::verify(&r, Some(chain::NOW)) {
                Err(e @ Error::Expired { .. }) => assert_eq!(
                    e.to_string(),
                    format!(
                        "`{role}.json` expired at {} (now {})",
                        chain::PAST,
                        chain::NOW
                    )
                ),
                other => panic!("{role}: {other:?}"),
            }
            // The same metadata an instant before it expired is good.
            chain::verify(&r, Some("2026-12-06T11:59:58Z")).unwrap();
        }
    }

    /// Without `now` (`--allow-unsigned` after a failed check) expiry is not looked at.
    #[test]
    fn expiry_is_not_checked_without_now() {
        for role in ["timestamp", "snapshot", "targets"] {
            chain::verify(&chain::repo(Some(role)), None).unwrap();
        }
    }
}
