//! Data representations as pure streaming transforms, applied by the runtime to the bytes of a
//! transfer when the representation needs one (TYPE A). TYPE I needs none and takes the
//! zero-copy path.

mod ascii;

pub use ascii::{AsciiDecoder, AsciiEncoder};
