//! Entry points for the cargo-fuzz targets in `fuzz/` (built only under `cfg(fuzzing)`).
