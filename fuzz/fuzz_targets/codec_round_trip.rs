#![no_main]
// A stored file encoded then decoded in any TYPE/STRU/MODE and arbitrary calls: the same file
// back, restart markers from which a retrieve and a resumed store give exactly the rest.
// See wharf_core::fuzzing::codec_round_trip.
libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf_core::fuzzing::codec_round_trip(data));
