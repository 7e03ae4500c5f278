#![no_main]
// Arbitrary wire bytes into a codec Decoder of any TYPE/STRU/MODE, from any stored offset, in
// arbitrary reads: no panic, bounded output per call, the same result whatever the reads.
// See wharf_core::fuzzing::codec_decode.
libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf_core::fuzzing::codec_decode(data));
