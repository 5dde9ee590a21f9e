//! The one HTTP client: timeouts, retries with backoff for transient failures only,
//! revalidation of metadata (`If-None-Match` / `If-Modified-Since`), a content-addressed package
//! cache keyed by sha256, and `--offline`.
//!
//! Every file lands by temp file + fsync + rename, after its digest was checked while
//! streaming: a partial or corrupt file is never served from the cache. And every read of a
//! cache entry checks it again (a disk, a copy or a person can damage it later): a bad entry is
//! removed and downloaded again, or, `--offline`, named as corrupt. Credentials in URLs never
//! appear in a message.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::base::Cache;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("GET {url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("GET {url}: {what}")]
    Transport { url: String, what: String },
    #[error("GET {url}: body truncated or unreadable after {got} bytes")]
    Body {
        url: String,
        got: u64,
        #[source]
        source: io::Error,
    },
    #[error("{url}: sha256 is {found}, expected {expected} (corrupt or tampered download; nothing was cached)")]
    Digest {
        url: String,
        expected: String,
        found: String,
    },
    #[error("{url}: size is {found} bytes, expected {expected}")]
    Size {
        url: String,
        expected: u64,
        found: u64,
    },
    #[error("offline: `{url}` is not in the cache ({cache})")]
    Offline { url: String, cache: PathBuf },
    #[error("cache `{path}`")]
    Cache {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("GET {url}: larger than the limit of {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    /// A cache entry whose bytes are not what was stored, found offline (online it is
    /// downloaded again).
    #[error("cache entry `{path}` is corrupt ({what}); offline it cannot be downloaded again from `{url}` (run without --offline to replace it)")]
    Corrupt {
        path: PathBuf,
        url: Box<str>,
        what: Box<str>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `http://user:secret@host/x` -> `http://***@host/x`.
pub fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (auth_host, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
        if let Some((_, host)) = auth_host.rsplit_once('@') {
            return format!("{scheme}://***@{host}/{path}");
        }
    }
    url.to_owned()
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub cache_dir: PathBuf,
    pub offline: bool,
    pub connect_timeout: Duration,
    /// Per read; a stalled server fails after this long without a byte.
    pub read_timeout: Duration,
    pub retries: u32,
    pub backoff: Duration,
    pub max_body: u64,
}

impl Config {
    pub fn new(cache_dir: PathBuf) -> Config {
        Config {
            cache_dir,
            offline: false,
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
            retries: 3,
            backoff: Duration::from_millis(500),
            max_body: 4 << 30,
        }
    }
}

/// The default cache: `$PROBEFORGE_CACHE`, `$XDG_CACHE_HOME/probeforge`, `~/.cache/probeforge`,
/// else a directory under `$TMPDIR`.
pub fn default_cache_dir() -> PathBuf {
    Cache::default_dir()
}

pub struct Client {
    cfg: Config,
    agent: ureq::Agent,
}

/// How a fetch went (for progress and benches).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Network,
    /// Revalidated with a 304.
    NotModified,
    Cache,
}

/// What a server said identifies one version of a file: sent back to ask "changed since?".
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Validators {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
}

impl Validators {
    /// Whether there is anything to revalidate with.
    pub fn is_some(&self) -> bool {
        self.etag.is_some() || self.last_modified.is_some()
    }
}

/// The answer to a conditional GET.
#[derive(Debug)]
pub enum Conditional {
    /// 304: the version the validators name is current; no body was sent.
    NotModified,
    /// A new version (or the first look), with its validators.
    Changed {
        body: Vec<u8>,
        validators: Validators,
    },
}

fn is_transient_status(s: u16) -> bool {
    matches!(s, 408 | 425 | 429 | 500 | 502 | 503 | 504)
}

fn key(url: &str) -> String {
    hex::encode(Sha256::digest(url.as_bytes()))
}

/// What is wrong with a cache entry.
#[derive(Debug, thiserror::Error)]
pub enum Damage {
    #[error("unreadable: {0}")]
    Unreadable(#[from] io::Error),
    #[error("{found} bytes, expected {expected}")]
    Size { found: u64, expected: u64 },
    #[error("sha256 is {found}, expected {expected}")]
    Digest { found: String, expected: String },
}

/// Streams a cache entry through sha256: `Ok` when it has this digest (and size, when known),
/// else what is wrong with it. Costs one sequential read, usually from the page cache.
pub fn check_entry(path: &Path, sha256: &str, size: Option<u64>) -> Result<(), Damage> {
    let (found, n) = crate::base::sha256_file_len(path)?;
    if let Some(s) = size.filter(|&s| s != n) {
        return Err(Damage::Size {
            found: n,
            expected: s,
        });
    }
    if !found.eq_ignore_ascii_case(sha256) {
        return Err(Damage::Digest {
            found,
            expected: sha256.to_owned(),
        });
    }
    Ok(())
}

/// The first line of a memo file: what the rest must hash to.
const MEMO_MAGIC: &str = "probeforge-memo sha256=";

impl Client {
    pub fn new(cfg: Config) -> Client {
        // ureq reads http_proxy/https_proxy/ALL_PROXY/NO_PROXY with try_proxy_from_env.
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(cfg.connect_timeout)
            .timeout_read(cfg.read_timeout)
            .try_proxy_from_env(true)
            .user_agent(concat!("probeforge/", env!("CARGO_PKG_VERSION")))
            .build();
        Client { cfg, agent }
    }

    /// The cache's layout.
    pub fn cache(&self) -> Cache<'_> {
        Cache(&self.cfg.cache_dir)
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    fn cache_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
        move |source| Error::Cache {
            path: path.to_owned(),
            source,
        }
    }

    /// One GET with retries for transient failures; `headers` are sent as given.
    fn get(&self, url: &str, headers: &[(&str, String)]) -> Result<ureq::Response> {
        let mut attempt = 0;
        loop {
            let mut req = self.agent.get(url);
            for (k, v) in headers {
                req = req.set(k, v);
            }
            let err = match req.call() {
                Ok(r) => return Ok(r),
                Err(ureq::Error::Status(304, r)) => return Ok(r),
                Err(ureq::Error::Status(s, _)) if !is_transient_status(s) => {
                    return Err(Error::Status {
                        url: redact(url),
                        status: s,
                    })
                }
                Err(ureq::Error::Status(s, _)) => Error::Status {
                    url: redact(url),
                    status: s,
                },
                Err(ureq::Error::Transport(t)) => {
                    let what = t.to_string().replace(url, &redact(url));
                    // A name that does not resolve or a bad URL will not get better.
                    if matches!(
                        t.kind(),
                        ureq::ErrorKind::Dns
                            | ureq::ErrorKind::InvalidUrl
                            | ureq::ErrorKind::UnknownScheme
                    ) {
                        return Err(Error::Transport {
                            url: redact(url),
                            what,
                        });
                    }
                    Error::Transport {
                        url: redact(url),
                        what,
                    }
                }
            };
            attempt += 1;
            if attempt > self.cfg.retries {
                return Err(err);
            }
            tracing::debug!("retrying after: {err}");
            std::thread::sleep(self.cfg.backoff * 2u32.pow(attempt - 1));
        }
    }

    /// Streams a body into a temp file in `dir`, hashing as it goes.
    fn download_to_temp(
        &self,
        url: &str,
        resp: ureq::Response,
        dir: &Path,
    ) -> Result<(tempfile::NamedTempFile, String, u64)> {
        fs::create_dir_all(dir).map_err(Self::cache_err(dir))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".partial-")
            .tempfile_in(dir)
            .map_err(Self::cache_err(dir))?;
        let mut r = resp.into_reader();
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut n: u64 = 0;
        loop {
            let k = match r.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(Error::Body {
                        url: redact(url),
                        got: n,
                        source,
                    })
                }
            };
            n += k as u64;
            if n > self.cfg.max_body {
                return Err(Error::TooLarge {
                    url: redact(url),
                    limit: self.cfg.max_body,
                });
            }
            h.update(&buf[..k]);
            tmp.write_all(&buf[..k]).map_err(Self::cache_err(dir))?;
        }
        tmp.as_file().sync_all().map_err(Self::cache_err(dir))?;
        Ok((tmp, hex::encode(h.finalize()), n))
    }

    /// What to do with a cache entry that failed its check: online, remove it (the caller
    /// downloads it again); offline, an error naming it and its URL.
    fn heal(&self, path: &Path, url: &str, checked: Result<(), Damage>) -> Result<()> {
        let Err(what) = checked else { return Ok(()) };
        if self.cfg.offline {
            return Err(Error::Corrupt {
                path: path.to_owned(),
                url: redact(url).into(),
                what: what.to_string().into(),
            });
        }
        tracing::warn!(
            "cache entry `{}` is corrupt ({what}): removed, downloading `{}` again",
            path.display(),
            redact(url)
        );
        fs::remove_file(path).map_err(Self::cache_err(path))
    }

    /// The intact cache entry of a digest, if there is one (a damaged one is removed when
    /// online): for rebuilding from recorded inputs without knowing where they came from.
    pub fn cached(&self, sha256: &str) -> Option<PathBuf> {
        if sha256.len() < 2 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let path = self.cache().blob(sha256);
        if !path.is_file() {
            return None;
        }
        match check_entry(&path, sha256, None) {
            Ok(()) => Some(path),
            Err(what) => {
                let _ = self.heal(&path, &format!("sha256:{sha256}"), Err(what));
                None
            }
        }
    }

    /// A derived-data memo (a parsed index), stored with its own digest: `None` when absent
    /// or damaged (a damaged one is removed), so the caller computes it again.
    pub fn memo_get(&self, name: &str) -> Option<Vec<u8>> {
        let path = self.cache().parsed(name);
        let bytes = fs::read(&path).ok()?;
        let intact = bytes.iter().position(|&b| b == b'\n').and_then(|nl| {
            let head = std::str::from_utf8(&bytes[..nl]).ok()?;
            let want = head.strip_prefix(MEMO_MAGIC)?;
            let body = &bytes[nl + 1..];
            (hex::encode(Sha256::digest(body)) == want).then_some(nl + 1)
        });
        match intact {
            Some(start) => Some(bytes[start..].to_vec()),
            None => {
                tracing::warn!(
                    "cache memo `{}` is damaged or from an older version: computed again",
                    path.display()
                );
                let _ = fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores a memo for [`Client::memo_get`] (best effort: a memo is only a shortcut).
    pub fn memo_put(&self, name: &str, bytes: &[u8]) {
        let path = self.cache().parsed(name);
        let mut out = format!("{MEMO_MAGIC}{}\n", hex::encode(Sha256::digest(bytes))).into_bytes();
        out.extend_from_slice(bytes);
        let _ = crate::base::write_atomic(&path, &out);
    }

    /// A package by digest: served from the cache if present (and re-verified), else
    /// downloaded, verified and cached. Retries a download that arrives corrupt once more.
    pub fn fetch_verified(
        &self,
        url: &str,
        sha256: &str,
        size: Option<u64>,
    ) -> Result<(PathBuf, Source)> {
        let path = self.cache().blob(sha256);
        let dir = path.parent().expect("a blob has a folder").to_owned();
        if path.is_file() {
            self.heal(&path, url, check_entry(&path, sha256, size))?;
            if path.is_file() {
                return Ok((path, Source::Cache));
            }
        }
        if self.cfg.offline {
            return Err(Error::Offline {
                url: redact(url),
                cache: path,
            });
        }
        let mut tries = 0;
        loop {
            tries += 1;
            let resp = self.get(url, &[])?;
            let res = self.download_to_temp(url, resp, &dir);
            let (tmp, digest, n) = match res {
                Ok(t) => t,
                Err(e @ Error::Body { .. }) if tries < 2 => {
                    tracing::warn!("{e}; retrying");
                    continue;
                }
                Err(e) => return Err(e),
            };
            if let Some(s) = size.filter(|&s| s != n) {
                if tries < 2 {
                    continue;
                }
                return Err(Error::Size {
                    url: redact(url),
                    expected: s,
                    found: n,
                });
            }
            if !digest.eq_ignore_ascii_case(sha256) {
                if tries < 2 {
                    continue;
                }
                return Err(Error::Digest {
                    url: redact(url),
                    expected: sha256.to_owned(),
                    found: digest,
                });
            }
            tmp.persist(&path).map_err(|e| Error::Cache {
                path: path.clone(),
                source: e.error,
            })?;
            return Ok((path, Source::Network));
        }
    }

    /// A file whose digest nobody published (a source archive): downloaded, then cached under
    /// the digest it turned out to have, which is returned for provenance. Offline, a previous
    /// download of the same URL is served.
    pub fn fetch_unverified(&self, url: &str) -> Result<(PathBuf, String)> {
        let index = self.cache().by_url(&key(url));
        if let Ok(d) = fs::read_to_string(&index) {
            let d = d.trim().to_owned();
            let p = self.cache().blob(&d);
            if p.is_file() {
                // Named by its digest: it must still have it.
                self.heal(&p, url, check_entry(&p, &d, None))?;
                if p.is_file() {
                    return Ok((p, d));
                }
            }
        }
        if self.cfg.offline {
            return Err(Error::Offline {
                url: redact(url),
                cache: index,
            });
        }
        let resp = self.get(url, &[])?;
        let staging = self.cache().blobs();
        let (tmp, digest, _) = self.download_to_temp(url, resp, &staging)?;
        let dir = staging.join(&digest[..2]);
        fs::create_dir_all(&dir).map_err(Self::cache_err(&dir))?;
        let path = dir.join(&digest);
        tmp.persist(&path).map_err(|e| Error::Cache {
            path: path.clone(),
            source: e.error,
        })?;
        if let Some(parent) = index.parent() {
            fs::create_dir_all(parent).map_err(Self::cache_err(parent))?;
        }
        crate::base::write_atomic(&index, digest.as_bytes()).map_err(Self::cache_err(&index))?;
        Ok((path, digest))
    }

    /// Metadata (indexes, Release files): cached by URL and revalidated with the server's
    /// ETag / Last-Modified. Offline, the cached copy is served as is.
    pub fn fetch_metadata(&self, url: &str) -> Result<(Vec<u8>, Source)> {
        let dir = self.cache().meta();
        let k = key(url);
        let body = dir.join(&k);
        let validators = dir.join(format!("{k}.validators"));
        let recorded = fs::read_to_string(&validators).unwrap_or_default();
        // The body's digest, recorded beside it when it was stored: a body that no longer has
        // it is damaged (and an entry without one is from an older version).
        let digest = recorded
            .lines()
            .find_map(|l| l.strip_prefix("sha256 "))
            .map(str::to_owned);
        let cached_body = fs::read(&body).ok().map(|b| match &digest {
            Some(d) if hex::encode(Sha256::digest(&b)) == *d => Ok(b),
            Some(d) => Err(format!(
                "sha256 is {}, expected {d}",
                hex::encode(Sha256::digest(&b))
            )),
            None if self.cfg.offline => Ok(b),
            None => Err("stored without its digest".into()),
        });
        if self.cfg.offline {
            return match cached_body {
                Some(Ok(b)) => Ok((b, Source::Cache)),
                Some(Err(what)) => Err(Error::Corrupt {
                    path: body,
                    url: redact(url).into(),
                    what: what.to_string().into(),
                }),
                None => Err(Error::Offline {
                    url: redact(url),
                    cache: body,
                }),
            };
        }
        let cached_body = match cached_body {
            Some(Ok(b)) => Some(b),
            Some(Err(what)) => {
                if digest.is_some() {
                    tracing::warn!(
                        "cache entry `{}` is corrupt ({what}): downloading `{}` again",
                        body.display(),
                        redact(url)
                    );
                }
                None
            }
            None => None,
        };
        let mut headers = Vec::new();
        // Only an intact body may be revalidated: a 304 would serve it again.
        if cached_body.is_some() {
            for line in recorded.lines() {
                if let Some(e) = line.strip_prefix("etag ") {
                    headers.push(("If-None-Match", e.to_owned()));
                } else if let Some(m) = line.strip_prefix("last-modified ") {
                    headers.push(("If-Modified-Since", m.to_owned()));
                }
            }
        }
        let resp = self.get(url, &headers)?;
        if resp.status() == 304 {
            if let Some(b) = cached_body {
                return Ok((b, Source::NotModified));
            }
        }
        let etag = resp.header("ETag").map(str::to_owned);
        let lm = resp.header("Last-Modified").map(str::to_owned);
        let expected_len = resp
            .header("Content-Length")
            .and_then(|l| l.parse::<u64>().ok());
        let (tmp, sha, n) = self.download_to_temp(url, resp, &dir)?;
        if let Some(l) = expected_len.filter(|&l| l != n) {
            return Err(Error::Size {
                url: redact(url),
                expected: l,
                found: n,
            });
        }
        let bytes = fs::read(tmp.path()).map_err(Self::cache_err(&dir))?;
        tmp.persist(&body).map_err(|e| Error::Cache {
            path: body.clone(),
            source: e.error,
        })?;
        let mut v = format!("sha256 {sha}\n");
        if let Some(e) = etag {
            v.push_str(&format!("etag {e}\n"));
        }
        if let Some(m) = lm {
            v.push_str(&format!("last-modified {m}\n"));
        }
        let _ = crate::base::write_atomic(&validators, v.as_bytes());
        Ok((bytes, Source::Network))
    }

    /// A conditional GET outside the cache, for a caller that keeps its own validators
    /// (`probeforge watch` keeps them in the repository): `If-None-Match` / `If-Modified-Since`
    /// from `previous`; a 304 reads no body. Retried like every GET.
    pub fn fetch_conditional(&self, url: &str, previous: &Validators) -> Result<Conditional> {
        let mut headers = Vec::new();
        if let Some(e) = &previous.etag {
            headers.push(("If-None-Match", e.clone()));
        }
        if let Some(m) = &previous.last_modified {
            headers.push(("If-Modified-Since", m.clone()));
        }
        let resp = self.get(url, &headers)?;
        if resp.status() == 304 && previous.is_some() {
            return Ok(Conditional::NotModified);
        }
        let validators = Validators {
            etag: resp.header("ETag").map(str::to_owned),
            last_modified: resp.header("Last-Modified").map(str::to_owned),
        };
        let expected_len = resp
            .header("Content-Length")
            .and_then(|l| l.parse::<u64>().ok());
        let mut body = Vec::new();
        resp.into_reader()
            .take(self.cfg.max_body + 1)
            .read_to_end(&mut body)
            .map_err(|source| Error::Body {
                url: redact(url),
                got: body.len() as u64,
                source,
            })?;
        if body.len() as u64 > self.cfg.max_body {
            return Err(Error::TooLarge {
                url: redact(url),
                limit: self.cfg.max_body,
            });
        }
        if let Some(l) = expected_len.filter(|&l| l != body.len() as u64) {
            return Err(Error::Size {
                url: redact(url),
                expected: l,
                found: body.len() as u64,
            });
        }
        Ok(Conditional::Changed { body, validators })
    }

    /// One API request (no retries beyond transport errors, no cache): method, URL, headers,
    /// optional body. Returns the status and body for any HTTP status.
    pub fn request(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> Result<(u16, Vec<u8>)> {
        let mut req = self.agent.request(method, url);
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let resp = match body {
            Some(b) => req.send_bytes(b),
            None => req.call(),
        };
        let resp = match resp {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(ureq::Error::Transport(t)) => {
                return Err(Error::Transport {
                    url: redact(url),
                    what: t.to_string().replace(url, &redact(url)),
                })
            }
        };
        let status = resp.status();
        let mut out = Vec::new();
        resp.into_reader()
            .take(self.cfg.max_body)
            .read_to_end(&mut out)
            .map_err(|source| Error::Body {
                url: redact(url),
                got: out.len() as u64,
                source,
            })?;
        Ok((status, out))
    }

    /// Whether a URL exists (HEAD; 404 is `false`).
    pub fn exists(&self, url: &str) -> Result<bool> {
        match self.agent.head(url).call() {
            Ok(_) => Ok(true),
            Err(ureq::Error::Status(404 | 410, _)) => Ok(false),
            Err(ureq::Error::Status(s, _)) => Err(Error::Status {
                url: redact(url),
                status: s,
            }),
            Err(ureq::Error::Transport(t)) => Err(Error::Transport {
                url: redact(url),
                what: t.to_string().replace(url, &redact(url)),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache entry is checked on every read: one flipped byte or a lost one is caught, and
    /// a damaged memo is dropped rather than served.
    #[test]
    fn damaged_cache_entries_and_memos_are_caught() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("entry");
        let body = b"some package bytes".repeat(1000);
        fs::write(&p, &body).unwrap();
        let sha = hex::encode(Sha256::digest(&body));
        assert!(check_entry(&p, &sha, Some(body.len() as u64)).is_ok());
        let mut bad = body.clone();
        bad[body.len() / 2] ^= 1;
        fs::write(&p, &bad).unwrap();
        let e = check_entry(&p, &sha, Some(body.len() as u64))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("sha256 is ") && e.ends_with(&sha), "{e}");
        fs::write(&p, &body[1..]).unwrap();
        assert!(check_entry(&p, &sha, Some(body.len() as u64))
            .unwrap_err()
            .to_string()
            .contains("bytes, expected"));

        let mut cfg = Config::new(t.path().join("cache"));
        cfg.offline = true;
        let c = Client::new(cfg);
        c.memo_put("m.json", b"[1,2,3]");
        assert_eq!(c.memo_get("m.json").as_deref(), Some(&b"[1,2,3]"[..]));
        let mp = t.path().join("cache/parsed/m.json");
        let mut m = fs::read(&mp).unwrap();
        let last = m.len() - 2;
        m[last] = b'4';
        fs::write(&mp, &m).unwrap();
        assert_eq!(c.memo_get("m.json"), None);
        assert!(!mp.exists(), "a damaged memo is removed");
        assert_eq!(c.memo_get("absent.json"), None);
    }

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(
            super::redact("https://me:secret@example.org/a/b"),
            "https://***@example.org/a/b"
        );
        assert_eq!(
            super::redact("http://example.org/x"),
            "http://example.org/x"
        );
    }
}
