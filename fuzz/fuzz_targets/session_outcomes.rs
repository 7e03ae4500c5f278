#![no_main]
// Client lines and the runtime's outcomes (each action answered as the fuzzer chooses, when
// it chooses; late outcomes, ABOR at any point, the clock, a dropped connection) into a
// session, checked against the contract. See wharf_core::fuzzing::session_outcomes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wharf_core::fuzzing::session_outcomes(std::time::Instant::now(), data)
});
