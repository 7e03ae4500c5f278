//! End to end, third-party (FXP) transfers under a policy (issue 17): two real `wharf`
//! servers on 127.0.0.1 and a client on 127.0.0.2 (tests/e2e/fxp_client.py, Python's ftplib).
//! With `fxp_peers` naming the other server, a file moves between them both ways (PASV/PORT
//! and EPSV/EPRT); without it the source refuses the PORT, and a destination closes the
//! source's data connection as it would a passive port thief's.

use std::time::Duration;
use wharf_tests::e2e::{
    assert_same_bytes, python_scenario, random_bytes, read_file, require, write_file, Server,
    ServerOptions, PASSWORD, USER,
};

const SCRIPT: &str = "fxp_client.py";
/// The other server's address, as the servers see each other's data connections.
const PEERS: &str = "fxp_peers = [\"127.0.0.1\"]\n";

fn fxp(source: &Server, destination: &Server, scenario: &str) {
    let other = destination.port().to_string();
    let out = python_scenario(
        SCRIPT,
        source,
        scenario,
        (USER, PASSWORD),
        &[other],
        Duration::from_secs(120),
    );
    print!("{out}");
}

#[test]
fn a_file_moves_between_two_servers_that_name_each_other() {
    if !require("python3") {
        return;
    }
    let a = Server::start_with("fxp-a", ServerOptions::default().config(PEERS));
    let b = Server::start_with("fxp-b", ServerOptions::default().config(PEERS));
    let big = random_bytes(3 << 20, 41);
    write_file(a.root().join("big.bin"), &big);
    fxp(&a, &b, "transfer");
    assert_same_bytes("copied to B", &read_file(b.root().join("copy.bin")), &big);
    assert_same_bytes(
        "copied back to A",
        &read_file(a.root().join("back.bin")),
        &big,
    );
}

#[test]
fn without_a_policy_the_port_is_refused_and_the_passive_listener_closes_the_peer() {
    if !require("python3") {
        return;
    }
    // The source has no policy: PORT/EPRT to the other server are refused.
    let plain = Server::start("fxp-plain");
    let other = Server::start_with("fxp-other", ServerOptions::default().config(PEERS));
    fxp(&plain, &other, "refused_port");
    // The source may, the destination may not: it closes the source's data connection.
    let closed = Server::start_with(
        "fxp-closed",
        ServerOptions::default().config("data_connect_timeout_secs = 2\n"),
    );
    write_file(other.root().join("big.bin"), &random_bytes(1 << 20, 42));
    fxp(&other, &closed, "refused_passive");
    assert!(!closed.root().join("refused.bin").exists());
}
