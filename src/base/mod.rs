//! The primitives every stage uses, at the bottom of the crate: digests, atomic writes, time
//! stamps, URL path segments, the cache's layout. Nothing here knows about kernels, drivers or repositories, and
//! nothing here imports another probeforge module: any stage may use it, it uses none.

mod cache;
mod digest;
mod time;
mod url;
mod write;

pub use cache::Cache;
pub use digest::{digest_input, files_hashed, sha256, sha256_file, sha256_file_len, HashingReader};
pub use time::{timestamp, utc};
pub use url::escape_segment;
pub use write::write_atomic;
