//! The primitives every stage uses, at the bottom of the crate: digests, atomic writes, time
//! stamps, URL path segments. Nothing here knows about kernels, drivers or repositories, and
//! nothing here imports another probeforge module: any stage may use it, it uses none.

mod digest;
mod time;
mod url;
mod write;

pub use digest::{digest_input, sha256, sha256_file, HashingReader};
pub use time::{timestamp, utc};
pub use url::escape_segment;
pub use write::write_atomic;
