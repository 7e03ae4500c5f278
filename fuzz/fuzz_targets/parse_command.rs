#![no_main]
// Arbitrary bytes as a command line: no panic. See wharf_core::fuzzing::parse_command.
libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf_core::fuzzing::parse_command(data));
