//! The configuration's tests: every key read, the defaults the documentation states, the
//! errors naming the file, the key and the problem.

use std::path::{Path, PathBuf};
use std::time::Duration;
use wharf_core::{SessionReuse, TlsPolicy};

use super::keys::{parse_event_command, KEYS};
use super::Settings;
use crate::tls::{ClientCertMode, ClientIdentitySource, MinTlsVersion};

/// Fails unless `all` holds every one of `wants`.
fn contains_all(all: &str, wants: &[&str]) {
    for want in wants {
        assert!(all.contains(want), "missing {want:?} in:\n{all}");
    }
}

fn errors(text: &str) -> Vec<String> {
    Settings::parse(text, "wharf.toml", Path::new("/etc/wharf"))
        .unwrap_err()
        .iter()
        .map(|e| e.to_string())
        .collect()
}

#[test]
fn defaults() {
    let s = Settings::parse("", "wharf.toml", Path::new("")).unwrap();
    assert_eq!(s.listen, vec!["127.0.0.1:2121".parse().unwrap()]);
    assert_eq!(s.max_connections, 2048);
    assert_eq!(s.login_cache, Duration::from_secs(300));
    assert_eq!(s.core.idle_timeout, Duration::from_secs(300));
    assert_eq!(s.data_stall_timeout, Duration::from_secs(300));
    assert!(s.passive_ports.is_any() && !s.anonymous);
    let c = s.core_config();
    assert_eq!(c.max_line_len, 4096);
    assert_eq!(c.max_login_failures, 3);
}

#[test]
fn every_key_is_read() {
    let text = r#"
        listen = ["127.0.0.1:0", "[::1]:2121"]
        root = "data"
        users_file = "/var/lib/wharf/users.toml"
        anonymous = true
        anonymous_root = "pub"
        max_connections = 10
        max_connections_per_ip = 2
        passive_ports = "30000-30010, 40000"
        passive_address = "203.0.113.7"
        active_local_port = 2020
        data_connect_timeout_secs = 5
        data_stall_timeout_secs = 6
        idle_timeout_secs = 7
        login_timeout_secs = 8
        max_login_failures = 9
        login_failure_delay_ms = 10
        login_cache_secs = 0
        max_line_length = 1000
        fxp_peers = ["192.0.2.10", "198.51.100.0/24"]
        allow_privileged_data_port = true
        greeting = "Hello\nthere"
        tls = true
        tls_cert = "cert.pem"
        tls_key = "/keys/key.pem"
        tls_key_password_file = "pw.txt"
        tls_dir = "tls"
        tls_min_version = "1.3"
        tls_client_cert = "request"
        tls_client_ca = "ca.pem"
        tls_client_identity = "san-email"
        tls_required_control = "accounts"
        tls_required_data = "all"
        implicit_listen = ["127.0.0.1:990"]
        allow_ccc = true
        require_tls_session_reuse = false
        tls_session_reuse_scope = "connection"
    "#;
    let s = Settings::parse(text, "wharf.toml", Path::new("/etc/wharf")).unwrap();
    assert_eq!(s.listen.len(), 2);
    assert_eq!(s.root, PathBuf::from("/etc/wharf/data"));
    assert_eq!(s.users_file, PathBuf::from("/var/lib/wharf/users.toml"));
    assert!(s.users_file_explicit && s.anonymous);
    assert_eq!(s.anonymous_root(), Path::new("/etc/wharf/pub"));
    assert_eq!((s.max_connections, s.max_connections_per_ip), (10, 2));
    assert!(s.login_cache.is_zero());
    assert_eq!(s.passive_ports.len(), 12);
    assert_eq!(s.core.passive_address, Some("203.0.113.7".parse().unwrap()));
    assert_eq!(s.active_local_port, Some(2020));
    assert_eq!(s.data_connect_timeout, Duration::from_secs(5));
    assert_eq!(s.data_stall_timeout, Duration::from_secs(6));
    assert_eq!(s.core.idle_timeout, Duration::from_secs(7));
    assert_eq!(s.core.login_timeout, Duration::from_secs(8));
    assert_eq!(s.core.max_login_failures, 9);
    assert_eq!(s.core.login_failure_delay, Duration::from_millis(10));
    assert_eq!(s.core.max_line_len, 1000);
    assert!(s.core.allow_privileged_data_port);
    assert_eq!(s.core.fxp_peers.len(), 2);
    assert!(s.core.fxp_peers[1].contains("198.51.100.77".parse().unwrap()));
    assert_eq!(s.core_config().greeting, "Hello\nthere");
    assert!(s.tls);
    assert_eq!(s.tls_cert, Some(PathBuf::from("/etc/wharf/cert.pem")));
    assert_eq!(s.tls_key, Some(PathBuf::from("/keys/key.pem")));
    assert_eq!(
        s.tls_options.key_password_file,
        Some(PathBuf::from("/etc/wharf/pw.txt"))
    );
    assert_eq!(s.tls_dir, PathBuf::from("/etc/wharf/tls"));
    assert_eq!(s.tls_options.min_version, MinTlsVersion::Tls13);
    assert_eq!(s.tls_options.client_cert, ClientCertMode::Request);
    assert_eq!(
        s.tls_options.client_ca_path,
        Some(PathBuf::from("/etc/wharf/ca.pem"))
    );
    assert_eq!(
        s.tls_options.client_identity,
        ClientIdentitySource::SanEmail
    );
    assert_eq!(s.implicit_listen, vec!["127.0.0.1:990".parse().unwrap()]);
    let c = s.core_config();
    assert_eq!(c.tls_control, TlsPolicy::Accounts);
    assert_eq!(c.tls_data, TlsPolicy::All);
    assert!(c.allow_ccc && c.tls_session_reuse == SessionReuse::NotRequired);
    let strict = Settings::parse(
        "tls_session_reuse_scope = \"connection\"",
        "wharf.toml",
        Path::new(""),
    )
    .unwrap();
    assert_eq!(
        strict.core_config().tls_session_reuse,
        SessionReuse::SameConnection
    );
    assert_eq!(
        errors("tls_session_reuse_scope = \"anyone\""),
        vec![
            "wharf.toml: key 'tls_session_reuse_scope': 'anyone': expected \"client\" (a \
             session of the same user from the same address) or \"connection\" (only the \
             control connection's own)"
        ]
    );
    let t = s.tls_settings(Path::new("c"), Path::new("k"));
    assert_eq!(t.min_version, MinTlsVersion::Tls13);
    assert_eq!(t.key_password_file, s.tls_options.key_password_file);
    assert_eq!(
        (t.cert_path.to_str(), t.key_path.to_str()),
        (Some("c"), Some("k"))
    );
}

#[test]
fn tls_defaults_and_contradictions() {
    let s = Settings::parse("", "wharf.toml", Path::new("")).unwrap();
    assert!(s.tls && s.tls_cert.is_none() && s.implicit_listen.is_empty());
    assert_eq!(s.tls_dir, PathBuf::from("wharf-tls"));
    let c = s.core_config();
    assert_eq!(
        (c.tls_control, c.tls_data),
        (TlsPolicy::None, TlsPolicy::None)
    );
    assert!(!c.allow_ccc && c.tls_session_reuse == SessionReuse::SameClient);

    let e = errors(
        "tls_cert = \"c.pem\"\ntls_key_password = \"a\"\ntls_key_password_file = \"p\"\n\
         tls_client_cert = \"require\"\ntls_min_version = \"1.1\"\n\
         tls_required_data = \"some\"\ntls_client_identity = \"uid\"\nimplicit_listen = 990",
    );
    let all = e.join("\n");
    contains_all(
        &all,
        &[
            "wharf.toml: key 'tls_key': missing: tls_cert is set",
            "wharf.toml: key 'tls_key_password_file': set together with tls_key_password",
            "wharf.toml: key 'tls_client_ca': missing: tls_client_cert = \"require\"",
            "wharf.toml: key 'tls_min_version': TLS 1.1 is not supported",
            "wharf.toml: key 'tls_required_data': 'some': expected none, accounts",
            "wharf.toml: key 'tls_client_identity': unknown client identity field",
            "wharf.toml: key 'implicit_listen': must be an array of strings such as [\"0.0.0.0:990\"]",
        ],
    );
    assert_eq!(e.len(), 7, "{all}");

    let e = errors(
        "tls = false\ntls_required_control = \"accounts\"\nimplicit_listen = [\"127.0.0.1:990\"]",
    );
    assert_eq!(
        e,
        vec![
            "wharf.toml: key 'tls_required_control': is \"accounts\" but tls = false: nobody \
             could log in; turn TLS on or set it to \"none\"",
            "wharf.toml: key 'implicit_listen': implicit-TLS listeners need tls = true",
        ]
    );
}

#[test]
fn the_old_fxp_switch_is_refused_with_what_replaced_it() {
    let e = errors("allow_foreign_data_address = true");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(
            "wharf.toml: key 'allow_foreign_data_address': was replaced by 'fxp_peers'"
        ),
        "{e:?}"
    );
    let e = errors("fxp_peers = [\"192.0.2.0/33\"]");
    assert_eq!(
        e,
        ["wharf.toml: key 'fxp_peers': `192.0.2.0/33`: the prefix length must be 0 to 32"]
    );
    // A retired key is not one of the keys the unknown-key error lists.
    let e = errors("colour = 1");
    assert!(!e[0].contains("allow_foreign_data_address"), "{e:?}");
}

#[test]
fn each_error_names_the_file_and_the_key() {
    let e = errors("passive_ports = \"5-3\"");
    assert_eq!(
        e,
        vec!["wharf.toml: key 'passive_ports': '5-3': the range runs backwards (5 > 3)"]
    );
    let e = errors(
        "colour = 1\nmax_connections = 0\nidle_timeout_secs = \"x\"\nlisten = [\"nowhere\"]\n\
         anonymous = 1\npassive_address = \"a.b\"\ngreeting = \"a\\rb\"\nmax_line_length = 10",
    );
    let all = e.join("\n");
    assert_eq!(e.len(), 8, "{all}");
    contains_all(
        &all,
        &[
            "wharf.toml: key 'colour': unknown key (known keys: listen, root,",
            "wharf.toml: key 'max_connections': 0 is out of range (1 to 100000)",
            "wharf.toml: key 'idle_timeout_secs': must be a whole number (1 to 31536000), not string",
            "wharf.toml: key 'listen': 'nowhere': not an address with a port",
            "wharf.toml: key 'anonymous': must be true or false, not integer",
            "wharf.toml: key 'passive_address': 'a.b': not an IP address",
            "wharf.toml: key 'greeting': must not contain CR",
            "wharf.toml: key 'max_line_length': 10 is out of range (128 to 65536)",
        ],
    );
}

#[test]
fn passive_address_must_be_ipv4() {
    let e = errors("passive_address = \"::1\"");
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with(
            "wharf.toml: key 'passive_address': '::1': an IPv6 address cannot be advertised"
        ),
        "{e:?}"
    );
    // An IPv4-mapped address is the IPv4 address.
    let s = Settings::parse(
        "passive_address = \"::ffff:203.0.113.7\"",
        "wharf.toml",
        Path::new(""),
    )
    .unwrap();
    assert_eq!(s.core.passive_address, Some("203.0.113.7".parse().unwrap()));
}

#[test]
fn event_keys() {
    let dir = std::env::temp_dir().join(format!("wharf-config-events-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = r#"
        events_file = "events.jsonl"
        xferlog_file = "/tmp/wharf-xferlog"
        event_command = ["sh", "-c", "cat >> x"]
        event_command_timeout_secs = 3
        event_command_events = ["upload_complete", "login_failed"]
    "#;
    let s = Settings::parse(text, "wharf.toml", &dir).unwrap();
    assert_eq!(s.events.events_file, Some(dir.join("events.jsonl")));
    assert_eq!(
        s.events.xferlog_file,
        Some(PathBuf::from("/tmp/wharf-xferlog"))
    );
    let c = s.events.command.unwrap();
    assert!(
        c.program.is_absolute() && c.program.ends_with("sh"),
        "{c:?}"
    );
    assert_eq!(c.args, ["-c", "cat >> x"]);
    assert_eq!(s.events.command_timeout, Duration::from_secs(3));
    assert_eq!(
        s.events.command_events,
        Some(vec!["upload_complete".into(), "login_failed".into()])
    );
    let d = Settings::parse("", "wharf.toml", &dir).unwrap();
    assert!(d.events.events_file.is_none() && d.events.xferlog_file.is_none());
    assert!(d.events.command.is_none() && d.events.command_events.is_none());
    assert_eq!(d.events.command_timeout, Duration::from_secs(10));
    std::fs::remove_dir_all(&dir).unwrap();

    let e = errors(
        "events_file = \"/nonexistent-wharf/e.jsonl\"\nxferlog_file = \"/tmp\"\n\
         event_command = \"/bin/sh -c x\"\nevent_command_timeout_secs = 0\n\
         event_command_events = [\"upload\"]",
    );
    let all = e.join("\n");
    contains_all(
        &all,
        &[
            "wharf.toml: key 'events_file': /nonexistent-wharf/e.jsonl: the folder /nonexistent-wharf does not exist",
            "wharf.toml: key 'xferlog_file': /tmp exists and is not a file",
            "wharf.toml: key 'event_command': must be an array of strings such as",
            "wharf.toml: key 'event_command_timeout_secs': 0 is out of range (1 to 3600)",
            "wharf.toml: key 'event_command_events': unknown event name(s) [\"upload\"]",
        ],
    );
    assert_eq!(e.len(), 5, "{all}");
    let plain = std::env::temp_dir().join(format!("wharf-not-exec-{}", std::process::id()));
    std::fs::write(&plain, "#!/bin/sh\n").unwrap();
    for (argv, want) in [
        (vec![], "must name a program"),
        (
            vec!["bin/x"],
            "must be an absolute path or a name found on PATH",
        ),
        (vec!["/nonexistent-wharf/x"], "does not exist"),
        (vec![plain.to_str().unwrap()], "is not an executable file"),
        (vec!["wharf-no-such-program"], "is not found on PATH"),
    ] {
        let argv: Vec<String> = argv.iter().map(|s: &&str| s.to_string()).collect();
        let m = parse_event_command(&argv).unwrap_err();
        assert!(m.contains(want), "{argv:?}: {m}");
    }
    std::fs::remove_file(&plain).unwrap();
}

#[test]
fn login_policy_and_partner_keys() {
    let s = Settings::parse("", "wharf.toml", Path::new("")).unwrap();
    assert_eq!(s.partners_root, PathBuf::from("wharf-partners"));
    assert!(s.atomic_uploads && s.direct_uploads && s.core.site_chmod);
    let c = &s.core;
    assert_eq!(
        (c.max_logins, c.max_anonymous_logins, c.max_logins_per_ip),
        (0, 0, 0)
    );
    assert_eq!(s.ban_after_failures, 10);
    assert_eq!(
        (s.ban_window, s.ban_duration),
        (Duration::from_secs(600), Duration::from_secs(900))
    );
    assert!(s.core_config().ip_filter.is_open());
    let s = Settings::parse(
        "partners_root = \"p\"\natomic_uploads = false\ndirect_uploads = false\nmax_logins = 5\n\
         max_anonymous_logins = 1\nmax_logins_per_ip = 2\nip_allow = [\"127.0.0.0/8\", \"::1\"]\n\
         ip_deny = \"127.0.0.2\"\nban_after_failures = 0\nban_window_secs = 60\n\
         ban_duration_secs = 30\nsite_chmod = false\n",
        "wharf.toml",
        Path::new("/etc/wharf"),
    )
    .unwrap();
    assert_eq!(s.partners_root, PathBuf::from("/etc/wharf/p"));
    assert!(!s.atomic_uploads && !s.direct_uploads);
    assert_eq!(s.ban_after_failures, 0);
    assert_eq!(s.ban_duration, Duration::from_secs(30));
    let c = s.core_config();
    assert_eq!(
        (c.max_logins, c.max_anonymous_logins, c.max_logins_per_ip),
        (5, 1, 2)
    );
    assert!(!c.site_chmod);
    assert!(c.ip_filter.permits("127.0.0.1".parse().unwrap()));
    assert!(c.ip_filter.permits("::1".parse().unwrap()));
    assert!(!c.ip_filter.permits("127.0.0.2".parse().unwrap()));
    assert!(!c.ip_filter.permits("10.0.0.1".parse().unwrap()));
    let e =
        errors("ip_allow = [\"10.0.0.0/40\"]\nip_deny = 3\nmax_logins = -1\nban_window_secs = 0");
    let all = e.join("\n");
    contains_all(
        &all,
        &[
            "wharf.toml: key 'ip_allow': `10.0.0.0/40`: the prefix length must be 0 to 32",
            "wharf.toml: key 'ip_deny': must be an array of addresses or CIDR networks",
            "wharf.toml: key 'max_logins': -1 is out of range (0 to 100000)",
            "wharf.toml: key 'ban_window_secs': 0 is out of range",
        ],
    );
}

#[test]
fn syntax_errors_give_the_line() {
    let e = errors("root = \"a\"\nmax_connections = = 3\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("wharf.toml: line 2, column"), "{}", e[0]);
}

/// Each key's documented default, when it is a TOML value, is its default: read from a file,
/// it leaves the settings as they were.
#[test]
fn the_documented_defaults_are_the_defaults() {
    let default = format!("{:?}", Settings::default());
    let mut literals = 0;
    for key in KEYS {
        if !key.default_is_value() {
            // In words ("none", "every event"): the default is no value.
            continue;
        }
        let text = format!("{} = {}", key.name, key.default);
        let mut s = Settings::parse(&text, "wharf.toml", Path::new(""))
            .unwrap_or_else(|e| panic!("{text}: {e:?}"));
        // Naming the store, even the default one, makes it required.
        s.users_file_explicit = false;
        assert_eq!(format!("{s:?}"), default, "{text}");
        literals += 1;
    }
    assert!(literals > 40, "{literals}");
}

#[test]
fn every_key_is_documented_once() {
    let mut names: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), KEYS.len());
    for key in KEYS {
        assert!(
            !key.doc.is_empty() && !key.default.is_empty(),
            "{}",
            key.name
        );
        assert!(
            !key.doc.contains('|'),
            "{}: a '|' breaks the table",
            key.name
        );
    }
}
