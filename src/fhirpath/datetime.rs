//! Partial dates, date-times and times (FHIRPath precision rules): parsing, comparison with
//! timezone normalisation, calendar arithmetic with quantities, and formatting back.
//!
//! It must not consult the system clock except in `now_utc`, and must not panic: all
//! arithmetic is checked or bounded, and unparseable text yields `None`.

use std::cmp::Ordering;

/// A parsed (possibly partial) date/time. `prec`: 0 year .. 5 second (milliseconds count
/// as second precision); `time_only` marks a `Time` value.
#[derive(Debug, Clone, PartialEq)]
pub struct Dt {
    parts: [i64; 6],
    ms: i64,
    frac: bool,
    prec: usize,
    tz: Option<i64>,
    time_only: bool,
}

fn num(s: &str, len: usize) -> Option<i64> {
    (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

impl Dt {
    /// Parse `YYYY[-MM[-DD[Thh[:mm[:ss[.fff]]]]]][tz]` or, with `time_only`, `hh[:mm[:ss[.fff]]]`.
    pub fn parse(s: &str, time_only: bool) -> Option<Dt> {
        let (body, tz) = split_tz(s)?;
        let mut parts = [0i64, 1, 1, 0, 0, 0];
        let (mut prec, mut ms, mut frac) = (0, 0, false);
        let (date, time) = if time_only {
            ("", Some(body))
        } else {
            match body.split_once('T') {
                Some((d, "")) => (d, None),
                Some((d, t)) => (d, Some(t)),
                None => (body, None),
            }
        };
        if !time_only {
            for (i, p) in date.split('-').enumerate() {
                parts[i] = num(p, if i == 0 { 4 } else { 2 })?;
                prec = i;
                if i >= 2 {
                    break;
                }
            }
            if date.split('-').count() > 3 {
                return None;
            }
        }
        if let Some(t) = time {
            if !time_only && prec < 2 {
                return None;
            }
            let (hms, f) = match t.split_once('.') {
                Some((a, f)) => (a, Some(f)),
                None => (t, None),
            };
            let fields: Vec<&str> = hms.split(':').collect();
            if fields.len() > 3 {
                return None;
            }
            for (i, p) in fields.iter().enumerate() {
                parts[3 + i] = num(p, 2)?;
                prec = 3 + i;
            }
            if let Some(f) = f {
                if prec != 5 || f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let f3: String = f.chars().chain("000".chars()).take(3).collect();
                ms = f3.parse().ok()?;
                frac = true;
            }
        }
        let ok = (1..=12).contains(&parts[1])
            && (1..=days_in_month(parts[0], parts[1])).contains(&parts[2])
            && parts[3] < 24
            && parts[4] < 60
            && parts[5] < 60;
        (ok && (tz.is_none() || (time.is_some() && !time_only))).then_some(Dt {
            parts,
            ms,
            frac,
            prec,
            tz,
            time_only,
        })
    }

    fn epoch_ms(&self) -> i64 {
        let days = days_from_civil(self.parts[0], self.parts[1], self.parts[2]);
        days * 86_400_000
            + self.parts[3] * 3_600_000
            + self.parts[4] * 60_000
            + self.parts[5] * 1000
            + self.ms
            - self.tz.unwrap_or(0) * 60_000
    }

    /// Compare; `None` when precision differs on the shared prefix or timezones are mixed.
    pub fn compare(&self, o: &Dt) -> Option<Ordering> {
        if self.time_only != o.time_only {
            return None;
        }
        let p = self.prec.min(o.prec);
        let has_time = p >= 3 && !self.time_only;
        if has_time && self.tz.is_some() != o.tz.is_some() {
            return None;
        }
        if has_time {
            let unit = [0, 0, 86_400_000, 3_600_000, 60_000, 1][p];
            let (a, b) = (self.epoch_ms(), o.epoch_ms());
            let ord = a.div_euclid(unit).cmp(&b.div_euclid(unit));
            return if ord == Ordering::Equal && self.prec != o.prec {
                None
            } else {
                Some(ord)
            };
        }
        for i in 0..=p {
            let ord = self.parts[i].cmp(&o.parts[i]);
            if ord != Ordering::Equal {
                return Some(ord);
            }
        }
        if self.prec != o.prec {
            return None;
        }
        Some(self.ms.cmp(&o.ms))
    }

    /// Add `value` of a calendar unit (`year`, `month`, `week`, `day`, `hour`, ..., or UCUM
    /// `wk`, `d`, `h`, `min`, `s`, `ms`). Variable-length UCUM units (`a`, `mo`) are rejected.
    pub fn add(&self, value: f64, unit: &str) -> Option<Dt> {
        let mut r = self.clone();
        let whole = value.trunc();
        if whole.abs() > 1e9 {
            return None;
        }
        let n = whole as i64;
        let u = unit.trim_end_matches('s');
        let ms_per = match (u, unit) {
            ("year", _) | ("month", _) => {
                let months = if u == "year" { n * 12 } else { n };
                let total = r.parts[0] * 12 + (r.parts[1] - 1) + months;
                r.parts[0] = total.div_euclid(12);
                r.parts[1] = total.rem_euclid(12) + 1;
                r.parts[2] = r.parts[2].min(days_in_month(r.parts[0], r.parts[1]));
                return (0..=9999).contains(&r.parts[0]).then_some(r);
            }
            ("week", _) | (_, "wk") => 7 * 86_400_000,
            ("day", _) | (_, "d") => 86_400_000,
            ("hour", _) | (_, "h") => 3_600_000,
            ("minute", _) | (_, "min") => 60_000,
            ("second", _) | (_, "s") => 1000,
            ("millisecond", _) | (_, "ms") => 1,
            _ => return None,
        };
        // Below the value's precision the addition is truncated to whole units of it.
        let prec_unit = [0, 0, 86_400_000, 3_600_000, 60_000, 1][r.prec];
        let delta = if ms_per >= 1000 {
            n * ms_per
        } else {
            (value * ms_per as f64) as i64
        };
        let delta = if self.time_only || r.prec >= 2 {
            delta - delta % prec_unit.max(1)
        } else {
            return None;
        };
        let shifted = self.epoch_ms() + self.tz.unwrap_or(0) * 60_000 + delta;
        let days = shifted.div_euclid(86_400_000);
        let rest = shifted.rem_euclid(86_400_000);
        let (y, m, d) = civil_from_days(days);
        if !self.time_only {
            r.parts[0] = y;
            r.parts[1] = m;
            r.parts[2] = d;
        }
        r.parts[3] = rest / 3_600_000;
        r.parts[4] = rest / 60_000 % 60;
        r.parts[5] = rest / 1000 % 60;
        r.ms = rest % 1000;
        (0..=9999).contains(&r.parts[0]).then_some(r)
    }

    /// Text without the `@` (and without `T` for times), at the original precision.
    pub fn format(&self) -> String {
        let p = &self.parts;
        let mut s = String::new();
        if !self.time_only {
            s.push_str(&format!("{:04}", p[0]));
            for v in p.iter().take(self.prec.min(2) + 1).skip(1) {
                s.push_str(&format!("-{v:02}"));
            }
            if self.prec >= 3 {
                s.push('T');
            }
        }
        let time_parts = p.iter().enumerate().take(self.prec + 1).skip(3);
        for (i, v) in time_parts {
            if i > 3 {
                s.push(':');
            }
            s.push_str(&format!("{v:02}"));
        }
        if self.frac || self.ms != 0 {
            s.push_str(&format!(".{:03}", self.ms));
        }
        match self.tz {
            Some(0) => s.push('Z'),
            Some(m) => s.push_str(&format!(
                "{}{:02}:{:02}",
                if m < 0 { '-' } else { '+' },
                m.abs() / 60,
                m.abs() % 60
            )),
            None => {}
        }
        s
    }
}

fn split_tz(s: &str) -> Option<(&str, Option<i64>)> {
    if let Some(b) = s.strip_suffix('Z') {
        return Some((b, Some(0)));
    }
    let t = s.find('T').map_or(s.len(), |i| i + 1);
    match s[t..].rfind(['+', '-']) {
        Some(i) => {
            let (body, tz) = s.split_at(t + i);
            let (h, m) = tz.get(1..)?.split_once(':')?;
            let mins = num(h, 2)? * 60 + num(m, 2)?;
            Some((body, Some(if tz.starts_with('-') { -mins } else { mins })))
        }
        None => Some((s, None)),
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Current UTC date-time text (`YYYY-MM-DDThh:mm:ss.fffZ`) from the system clock.
pub fn now_utc() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0));
    let (y, m, d) = civil_from_days(ms.div_euclid(86_400_000));
    let r = ms.rem_euclid(86_400_000);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        r / 3_600_000,
        r / 60_000 % 60,
        r / 1000 % 60,
        r % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(s: &str) -> Dt {
        Dt::parse(s, false).unwrap()
    }

    #[test]
    fn parse_and_format() {
        for s in [
            "2014",
            "2014-01",
            "2014-01-05",
            "2014-01-05T10:30",
            "2014-01-05T10:30:00.050+10:00",
            "2014-01-05T10:30:00Z",
        ] {
            assert_eq!(dt(s).format(), s);
        }
        assert_eq!(Dt::parse("10:30", true).unwrap().format(), "10:30");
        for bad in [
            "2014-13",
            "20x4",
            "2014-02-30",
            "2014-01-01T25:00",
            "",
            "2014-01-01T10:00+1",
        ] {
            assert!(Dt::parse(bad, false).is_none(), "{bad}");
        }
    }

    #[test]
    fn compare_rules() {
        assert_eq!(
            dt("2012-04-15T15:00:00+02:00").compare(&dt("2012-04-15T16:00:00+03:00")),
            Some(Ordering::Equal)
        );
        assert_eq!(
            dt("2012-04-15T15:30:31").compare(&dt("2012-04-15T15:30:31.0")),
            Some(Ordering::Equal)
        );
        assert_eq!(dt("1974-12-25").compare(&dt("1974-12-25T12:34:00")), None);
        assert_eq!(dt("2014").compare(&dt("2015-01")), Some(Ordering::Less));
    }

    #[test]
    fn arithmetic() {
        assert_eq!(dt("1973-12-25").add(7.7, "days").unwrap().format(), "1974-01-01");
        assert_eq!(dt("1974-01-31").add(1.0, "month").unwrap().format(), "1974-02-28");
        assert_eq!(
            dt("1973-12-25T00:00:00.000+10:00")
                .add(10.0, "ms")
                .unwrap()
                .format(),
            "1973-12-25T00:00:00.010+10:00"
        );
        assert!(dt("1973-12-25").add(1.0, "a").is_none());
        assert!(dt("9999-12-31").add(1.0, "day").is_none());
        assert_eq!(now_utc().len(), 24);
    }
}
