#![no_main]
// Arbitrary bytes into a logged-in session: no panic, well-formed replies, bounded buffering.
// See wharf_core::fuzzing::session_bytes (the instant is only the fake clock's origin).
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wharf_core::fuzzing::session_bytes(std::time::Instant::now(), data)
});
