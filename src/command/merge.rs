//! `probeforge merge OUT IN...`: shard repositories made one (see [`crate::merge`]).

use std::path::PathBuf;

use crate::merge::Merged;

use super::{Error, Result};

/// What `probeforge merge` is asked.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub output: PathBuf,
    pub inputs: Vec<PathBuf>,
    /// An OpenPGP secret key signing every `SHA256SUMS` of the output, and its passphrase.
    pub sign_key: Option<PathBuf>,
    pub sign_passphrase: String,
}

pub fn run(o: &Options) -> Result<Merged> {
    super::need_files("shard repository", &o.inputs)?;
    super::writable_dir("output repository", &o.output)?;
    let out = super::local_repo(&o.output, o.sign_key.as_deref(), &o.sign_passphrase)?;
    crate::merge::merge(&out, &o.inputs).map_err(|e| match e {
        // What the user named is not what it must be: not a failed build.
        e @ (crate::merge::Error::NotADirectory(_) | crate::merge::Error::OutputIsInput(_)) => {
            Error::Usage(e.to_string())
        }
        e => Error::Merge(Box::new(e)),
    })
}
