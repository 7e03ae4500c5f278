//! Wall-clock values the core must print (MDTM, LIST dates, MLSD `modify`).
//!
//! The core never reads a clock. Times of files arrive with their metadata as [`UnixTime`], and
//! the current wall-clock time arrives with a listing (LIST needs it to choose between
//! `Mon dd hh:mm` and `Mon dd  yyyy`). Everything is printed in UTC: MLSD and MDTM must be UTC
//! (RFC 3659), and LIST uses the same zone so that the two agree; `SITE ZONE` says `+0000`.

/// Seconds since 1970-01-01T00:00:00Z. Negative values are before 1970.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(pub i64);

/// A broken-down UTC date and time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    /// Year, e.g. 2026.
    pub year: i64,
    /// Month, 1..=12.
    pub month: u32,
    /// Day of the month, 1..=31.
    pub day: u32,
    /// Hour, 0..=23.
    pub hour: u32,
    /// Minute, 0..=59.
    pub minute: u32,
    /// Second, 0..=59.
    pub second: u32,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl UnixTime {
    /// Splits the time into a UTC calendar date and time of day.
    pub fn to_civil(self) -> Civil {
        let days = self.0.div_euclid(86_400);
        let secs = self.0.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: secs / 3600,
            minute: secs / 60 % 60,
            second: secs % 60,
        }
    }

    /// The inverse of [`UnixTime::to_civil`].
    pub fn from_civil(c: Civil) -> UnixTime {
        let days = days_from_civil(c.year, c.month, c.day);
        UnixTime(days * 86_400 + i64::from(c.hour * 3600 + c.minute * 60 + c.second))
    }

    /// `YYYYMMDDHHMMSS`, the form of MDTM replies and the MLSD `modify` fact (RFC 3659).
    pub fn write_mdtm(self, out: &mut String) {
        use core::fmt::Write;
        let c = self.to_civil();
        // A year outside 0..=9999 cannot be written in four digits; clamp rather than garble.
        let year = c.year.clamp(0, 9999);
        let _ = write!(
            out,
            "{:04}{:02}{:02}{:02}{:02}{:02}",
            year, c.month, c.day, c.hour, c.minute, c.second
        );
    }

    /// Reads `YYYYMMDDHHMMSS`, optionally followed by `.` and one to three digits of a second
    /// (ignored), as MFMT and the two-argument MDTM send it (UTC, RFC 3659 §2.3). `None` for
    /// anything else, including an impossible date (month 13, 31 February, hour 24).
    pub fn parse_mdtm(text: &str) -> Option<UnixTime> {
        let (whole, fraction) = match text.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (text, None),
        };
        if whole.len() != 14
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || fraction.is_some_and(|f| {
                f.is_empty() || f.len() > 3 || !f.bytes().all(|b| b.is_ascii_digit())
            })
        {
            return None;
        }
        let num = |r: core::ops::Range<usize>| whole[r].parse::<u32>().ok();
        let c = Civil {
            year: i64::from(num(0..4)?),
            month: num(4..6)?,
            day: num(6..8)?,
            hour: num(8..10)?,
            minute: num(10..12)?,
            second: num(12..14)?,
        };
        let valid = (1..=12).contains(&c.month)
            && c.day >= 1
            && c.day <= days_in_month(c.year, c.month)
            && c.hour < 24
            && c.minute < 60
            && c.second < 60;
        valid.then(|| UnixTime::from_civil(c))
    }

    /// ISO 8601 in UTC, `2026-11-21T20:30:00Z` (for SITE WHO and SITE STAT).
    pub fn write_iso8601(self, out: &mut String) {
        use core::fmt::Write;
        let c = self.to_civil();
        let _ = write!(
            out,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            c.year.clamp(0, 9999),
            c.month,
            c.day,
            c.hour,
            c.minute,
            c.second
        );
    }

    /// The `ls -l` date column: `Mon dd hh:mm` for times within the last six months (and up to
    /// an hour into the future, as GNU ls), otherwise `Mon dd  yyyy`.
    pub fn write_ls(self, now: UnixTime, out: &mut String) {
        use core::fmt::Write;
        const SIX_MONTHS: i64 = 182 * 86_400;
        let c = self.to_civil();
        let month = MONTHS[(c.month as usize).saturating_sub(1).min(11)];
        // Saturating: `now` is the runtime's wall clock, any i64 (an overflow panicked).
        let recent =
            self.0 > now.0.saturating_sub(SIX_MONTHS) && self.0 <= now.0.saturating_add(3600);
        if recent {
            let _ = write!(out, "{} {:>2} {:02}:{:02}", month, c.day, c.hour, c.minute);
        } else {
            let _ = write!(out, "{} {:>2} {:>5}", month, c.day, c.year.clamp(0, 9999));
        }
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        let t = UnixTime(1_700_000_000); // 2023-11-14T22:13:20Z
        let mut s = String::new();
        t.write_mdtm(&mut s);
        assert_eq!(s, "20231114221320");
        assert_eq!(UnixTime::from_civil(t.to_civil()), t);
        let mut s = String::new();
        UnixTime(0).write_mdtm(&mut s);
        assert_eq!(s, "19700101000000");
    }

    #[test]
    fn ls_dates_recent_and_old() {
        let now = UnixTime(1_700_000_000);
        let mut s = String::new();
        UnixTime(1_700_000_000 - 86_400).write_ls(now, &mut s);
        assert_eq!(s, "Nov 13 22:13");
        let mut s = String::new();
        UnixTime(1_600_000_000).write_ls(now, &mut s);
        assert_eq!(s, "Sep 13  2020");
    }

    #[test]
    fn ls_dates_at_the_ends_of_the_range() {
        // A wall clock at either end of i64 (found by the session_outcomes fuzz target: the
        // six-month window overflowed).
        for now in [UnixTime(i64::MIN), UnixTime(i64::MAX)] {
            for t in [UnixTime(i64::MIN), UnixTime(0), UnixTime(i64::MAX)] {
                let mut s = String::new();
                t.write_ls(now, &mut s);
                assert!(!s.is_empty());
            }
        }
        let mut s = String::new();
        UnixTime(i64::MAX).write_ls(UnixTime(i64::MAX), &mut s);
        assert_eq!(s, "Dec  4 15:30");
    }

    #[test]
    fn parse_mdtm_reads_what_write_mdtm_writes() {
        assert_eq!(
            UnixTime::parse_mdtm("20231114221320"),
            Some(UnixTime(1_700_000_000))
        );
        assert_eq!(
            UnixTime::parse_mdtm("20231114221320.123"),
            Some(UnixTime(1_700_000_000))
        );
        assert_eq!(
            UnixTime::parse_mdtm("20240229000000"),
            Some(UnixTime(1_709_164_800))
        );
        for bad in [
            "",
            "2023111422132",
            "202311142213201",
            "20231314221320",
            "20230230000000",
            "20230229000000",
            "20231114241320",
            "20231114226020",
            "2023111422132x",
            "20231114221320.",
            "20231114221320.1234",
            "+0231114221320",
        ] {
            assert_eq!(UnixTime::parse_mdtm(bad), None, "{bad:?}");
        }
    }

    quickcheck::quickcheck! {
        fn mdtm_round_trip(secs: u32) -> bool {
            let t = UnixTime(i64::from(secs));
            let mut s = String::new();
            t.write_mdtm(&mut s);
            UnixTime::parse_mdtm(&s) == Some(t)
        }

        fn civil_round_trip(secs: i64) -> bool {
            let secs = secs % 400_000_000_000; // keep years within i64 arithmetic comfort
            UnixTime::from_civil(UnixTime(secs).to_civil()) == UnixTime(secs)
        }
    }
}
