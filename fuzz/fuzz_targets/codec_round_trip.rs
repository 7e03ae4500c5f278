#![no_main]
// A stored file encoded then decoded in any TYPE/STRU/MODE: the same file back, restart markers
// that restart exactly. See wharf_core::fuzzing::codec_round_trip.
libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf_core::fuzzing::codec_round_trip(data));
