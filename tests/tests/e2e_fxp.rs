//! End to end, third-party (FXP) transfers under a policy (issue 17): two real `wharf`
//! servers on 127.0.0.1 and a client on 127.0.0.2 (tests/e2e/fxp_client.py, Python's ftplib).
//! With `fxp_peers` naming the other server, a file moves between them both ways (PASV/PORT
//! and EPSV/EPRT); without it the source refuses the PORT, and a destination closes the
//! source's data connection as it would a passive port thief's.

use std::path::Path;
use std::time::Duration;
use wharf_tests::e2e::{
    assert_same_bytes, python_scenario, random_bytes, read_file, require, wharf_cli, write_file,
    Server, ServerOptions, TempDir, PASSWORD, USER,
};

const SCRIPT: &str = "fxp_client.py";
/// The other server's address, as the servers see each other's data connections.
const PEERS: &str = "fxp_peers = [\"127.0.0.1\"]\n";

fn fxp(source: &Server, destination: &Server, scenario: &str) {
    fxp_as(source, (USER, PASSWORD), destination, scenario);
}

/// The scenario with `login` on the source (the destination: alice).
fn fxp_as(source: &Server, login: (&str, &str), destination: &Server, scenario: &str) {
    let other = destination.port().to_string();
    let out = python_scenario(
        SCRIPT,
        source,
        scenario,
        login,
        &[other.as_str(), USER, PASSWORD],
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
    // The data went server to server: a passive side admitted the other server as a peer.
    let third_party = "third-party data connection from 127.0.0.";
    assert!(
        a.log().contains(third_party) || b.log().contains(third_party),
        "no server logged a third-party data connection"
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
    // The source did connect, and the destination closed it as a stranger (not a source
    // that never came).
    let log = closed.log();
    assert!(
        log.contains("passive port theft attempt"),
        "the destination did not refuse a connection from the other server:\n{log}"
    );
}

/// `wharf user add NAME --home DIR [EXTRA]` in `store`'s folder.
fn user_add(store: &Path, name: &str, password: &str, extra: &[&str]) {
    let home = store.join(name);
    let mut args = vec!["user", "add", name, "--password-stdin", "--home"];
    args.push(home.to_str().expect("UTF-8 path"));
    args.extend_from_slice(extra);
    let out = wharf_cli(
        store,
        &store.join("wharf.toml"),
        &args,
        &format!("{password}\n"),
        Duration::from_secs(60),
    );
    out.assert_success("wharf user add");
}

#[test]
fn a_users_own_fxp_peers_in_the_store_allow_it_for_that_user_only() {
    if !require("python3") {
        return;
    }
    let store = TempDir::new("fxp-store");
    user_add(store.path(), "bob", "bob-pw", &["--fxp-peers", "127.0.0.1"]);
    user_add(store.path(), "carol", "carol-pw", &[]);
    let users = store.path().join("wharf-users.toml");
    let config = format!("users_file = {:?}\n", users.to_str().expect("UTF-8"));
    let source = Server::start_with("fxp-store-source", ServerOptions::default().config(config));
    let destination = Server::start_with("fxp-store-dest", ServerOptions::default().config(PEERS));
    let big = random_bytes(1 << 20, 43);
    write_file(store.path().join("bob/big.bin"), &big);
    fxp_as(&source, ("bob", "bob-pw"), &destination, "transfer");
    assert_same_bytes(
        "bob's copy",
        &read_file(destination.root().join("copy.bin")),
        &big,
    );
    assert_same_bytes(
        "back to bob",
        &read_file(store.path().join("bob/back.bin")),
        &big,
    );
    fxp_as(&source, ("carol", "carol-pw"), &destination, "refused_port");
}
