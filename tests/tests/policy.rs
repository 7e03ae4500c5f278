//! Policy rules that need a clock: the ban of addresses that fail to log in too often
//! (wharf_core::policy::BanList). Kept out of core/src so nothing under core/ reads a clock.

use std::net::IpAddr;
use std::time::{Duration, Instant};
use wharf_core::policy::BanList;

#[test]
fn bans_after_threshold_and_expire() {
    let t0 = Instant::now();
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    let mut b = BanList::new(3, Duration::from_secs(60), Duration::from_secs(30), 100);
    assert!(!b.record_failure(ip, t0));
    assert!(!b.record_failure(ip, t0));
    assert!(b.banned_for(ip, t0).is_none());
    assert!(b.record_failure(ip, t0 + Duration::from_secs(1)));
    assert!(b.banned_for(ip, t0 + Duration::from_secs(2)).is_some());
    assert!(b.banned_for(ip, t0 + Duration::from_secs(40)).is_none());
    // A success before the threshold resets the count.
    let other: IpAddr = "127.0.0.3".parse().unwrap();
    b.record_failure(other, t0);
    b.record_failure(other, t0);
    b.record_success(other);
    assert!(!b.record_failure(other, t0));
}

#[test]
fn ban_table_is_bounded() {
    let t0 = Instant::now();
    let mut b = BanList::new(3, Duration::from_secs(60), Duration::from_secs(30), 10);
    for i in 0..1000u32 {
        b.record_failure(IpAddr::from(i.to_be_bytes()), t0);
    }
    assert!(b.tracked() <= 10);
}
