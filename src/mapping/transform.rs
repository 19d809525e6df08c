//! Value transforms a mapping rule can apply, in order, to the text it read.
//!
//! Each transform takes text and gives text back, or says why it cannot. They are pure and know
//! nothing of HL7 or FHIR beyond the date formats; the region and time zone they need come in a
//! [`TransformEnv`] from the connector, never from global state.

use std::fmt;

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;

/// Defaults a connector hands to the transforms.
#[derive(Debug, Clone)]
pub struct TransformEnv {
    /// Region for phone numbers written without a country code.
    pub phone_region: String,
    /// Zone for times written without an offset.
    pub timezone: TimeZone,
    /// The connector the record came through (`$connector` in a mapping), when there is one.
    pub connector: Option<String>,
}

impl Default for TransformEnv {
    fn default() -> Self {
        TransformEnv {
            phone_region: "VN".into(),
            timezone: TimeZone::UTC,
            connector: None,
        }
    }
}

/// A compiled transform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transform {
    Trim,
    Upper,
    Lower,
    /// Runs of white space become one space; ends trimmed.
    CollapseSpaces,
    /// `Nguyen van AN` → `Nguyen Van An` (Unicode-aware).
    NameCase,
    /// HL7 DT/DTM → `YYYY`, `YYYY-MM` or `YYYY-MM-DD` (a time part is dropped).
    Hl7Date,
    /// HL7 DTM → RFC 3339 with offset (the clinic's zone when the value has none); partial
    /// values keep their precision as a date.
    Hl7DateTime,
    /// A phone number → E.164, read in `region` or the connector's default region.
    Phone {
        region: Option<String>,
    },
    /// An email address, trimmed, with its domain lower-cased; refused when it is not one.
    Email,
    /// Keeps digits only.
    Digits,
    /// An ISO 8601 / FHIR date or date-time → the same at its precision; a date-time without an
    /// offset is read in the clinic's zone (FHIR requires one; some servers leave it out).
    DateTime,
    /// The `part`-th (1-based) piece of the value cut at `sep`.
    Split {
        sep: String,
        part: usize,
    },
}

/// Why a transform refused a value. Never holds the value itself (it may be PHI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformError(pub String);

impl fmt::Display for TransformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Every transform name, for `validate` messages.
pub const NAMES: &[&str] = &[
    "trim",
    "upper",
    "lower",
    "collapse_spaces",
    "name_case",
    "hl7_date",
    "hl7_datetime",
    "phone",
    "email",
    "digits",
    "datetime",
    "split",
];

impl Transform {
    /// Builds a transform from its name and optional argument map (`{phone: {region: US}}`).
    pub fn from_name(name: &str, args: Option<&serde_json::Value>) -> Result<Transform, String> {
        let no_args = |t: Transform| match args {
            None | Some(serde_json::Value::Null) => Ok(t),
            Some(_) => Err(format!("transform {name} takes no arguments")),
        };
        match name {
            "trim" => no_args(Transform::Trim),
            "upper" => no_args(Transform::Upper),
            "lower" => no_args(Transform::Lower),
            "collapse_spaces" => no_args(Transform::CollapseSpaces),
            "name_case" => no_args(Transform::NameCase),
            "hl7_date" => no_args(Transform::Hl7Date),
            "hl7_datetime" => no_args(Transform::Hl7DateTime),
            "email" => no_args(Transform::Email),
            "digits" => no_args(Transform::Digits),
            "datetime" => no_args(Transform::DateTime),
            "split" => {
                let m = args
                    .and_then(serde_json::Value::as_object)
                    .ok_or("transform split: expected {sep: TEXT, part: N}")?;
                if let Some(k) = m.keys().find(|k| k.as_str() != "sep" && k.as_str() != "part") {
                    return Err(format!(
                        "transform split: unknown argument {k} (expected sep, part)"
                    ));
                }
                let sep = match m.get("sep") {
                    Some(serde_json::Value::String(s)) if !s.is_empty() => s.clone(),
                    _ => return Err("transform split: sep must be a non-empty text".into()),
                };
                let part = match m.get("part").and_then(serde_json::Value::as_u64) {
                    Some(n) if n >= 1 => n as usize,
                    None if !m.contains_key("part") => 1,
                    _ => return Err("transform split: part must be a number from 1".into()),
                };
                Ok(Transform::Split { sep, part })
            }
            "phone" => {
                let region = match args {
                    None | Some(serde_json::Value::Null) => None,
                    Some(serde_json::Value::Object(m)) => {
                        if let Some(k) = m.keys().find(|k| k.as_str() != "region") {
                            return Err(format!("transform phone: unknown argument {k} (expected region)"));
                        }
                        match m.get("region") {
                            Some(serde_json::Value::String(r)) if crate::config::is_region(r) => {
                                Some(r.to_uppercase())
                            }
                            Some(other) => {
                                return Err(format!(
                                    "transform phone: region must be a two-letter region such as VN, got {other}"
                                ));
                            }
                            None => None,
                        }
                    }
                    Some(_) => return Err("transform phone: expected {region: XX}".into()),
                };
                Ok(Transform::Phone { region })
            }
            other => Err(format!(
                "unknown transform \"{other}\" (expected one of {})",
                NAMES.join(", ")
            )),
        }
    }

    /// Applies the transform. `Ok(None)` means the value is empty after it.
    pub fn apply(&self, input: &str, env: &TransformEnv) -> Result<Option<String>, TransformError> {
        let out = match self {
            Transform::Trim => input.trim().to_string(),
            Transform::Upper => input.to_uppercase(),
            Transform::Lower => input.to_lowercase(),
            Transform::CollapseSpaces => input.split_whitespace().collect::<Vec<_>>().join(" "),
            Transform::NameCase => name_case(input),
            Transform::Digits => input.chars().filter(char::is_ascii_digit).collect(),
            Transform::Hl7Date => hl7_date(input)?,
            Transform::Hl7DateTime => hl7_datetime(input, &env.timezone)?,
            Transform::Phone { region } => phone(input, region.as_deref().unwrap_or(&env.phone_region))?,
            Transform::Email => email(input)?,
            Transform::DateTime => iso_datetime(input, &env.timezone)?,
            Transform::Split { sep, part } => input
                .split(sep.as_str())
                .nth(part - 1)
                .unwrap_or("")
                .trim()
                .to_string(),
        };
        Ok((!out.is_empty()).then_some(out))
    }
}

fn name_case(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut at_word_start = true;
    for c in input.chars() {
        if c.is_alphabetic() {
            if at_word_start {
                out.extend(c.to_uppercase());
            } else {
                out.extend(c.to_lowercase());
            }
            at_word_start = false;
        } else {
            out.push(c);
            // Apostrophes and hyphens start a new capitalised part: O'Brien, Anne-Marie.
            at_word_start = true;
        }
    }
    out
}

/// Splits an HL7 DTM into its digits part and an optional `+HHMM`/`-HHMM` offset.
fn split_offset(s: &str) -> (&str, Option<&str>) {
    match s.find(['+', '-']) {
        Some(i) => (&s[..i], Some(&s[i..])),
        None => (s, None),
    }
}

fn bad_date(what: &str) -> TransformError {
    TransformError(format!(
        "not an HL7 {what} (expected YYYY[MM[DD[HHMM[SS[.S]]]]][+/-ZZZZ])"
    ))
}

/// `0000`, `00000000`, `00000000000000`: senders write zeros for an unknown date.
fn all_zero_date(s: &str) -> bool {
    let digits: Vec<u8> = s.bytes().take_while(u8::is_ascii_digit).collect();
    digits.len() >= 4 && digits.iter().all(|&b| b == b'0')
}

fn hl7_date(input: &str) -> Result<String, TransformError> {
    let s = input.trim();
    if s.is_empty() || all_zero_date(s) {
        return Ok(String::new());
    }
    let (digits, _) = split_offset(s);
    let digits = digits.split('.').next().unwrap_or("");
    if !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() < 4 {
        return Err(bad_date("date"));
    }
    let year = &digits[..4];
    match digits.len() {
        4 => Ok(year.to_string()),
        5 => Err(bad_date("date")),
        6..=7 => {
            let m: u8 = digits[4..6].parse().map_err(|_| bad_date("date"))?;
            if !(1..=12).contains(&m) {
                return Err(bad_date("date"));
            }
            Ok(format!("{year}-{:02}", m))
        }
        _ => {
            let y: i16 = year.parse().map_err(|_| bad_date("date"))?;
            let m: i8 = digits[4..6].parse().map_err(|_| bad_date("date"))?;
            let d: i8 = digits[6..8].parse().map_err(|_| bad_date("date"))?;
            let date = Date::new(y, m, d).map_err(|_| bad_date("date"))?;
            Ok(date.to_string())
        }
    }
}

fn hl7_datetime(input: &str, tz: &TimeZone) -> Result<String, TransformError> {
    let s = input.trim();
    if all_zero_date(s) {
        return Ok(String::new());
    }
    let (digits, offset) = split_offset(s);
    let (digits, frac) = match digits.split_once('.') {
        Some((d, f)) => (d, Some(f)),
        None => (digits, None),
    };
    if digits.len() <= 8 {
        return hl7_date(s);
    }
    if !digits.bytes().all(|b| b.is_ascii_digit())
        || !(digits.len() == 10 || digits.len() == 12 || digits.len() == 14)
    {
        return Err(bad_date("date/time"));
    }
    let num = |r: std::ops::Range<usize>| -> Result<i8, TransformError> {
        digits
            .get(r)
            .unwrap_or("0")
            .parse()
            .map_err(|_| bad_date("date/time"))
    };
    let y: i16 = digits[..4].parse().map_err(|_| bad_date("date/time"))?;
    let nanos: i32 = match frac {
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{f:0<9}").parse().map_err(|_| bad_date("date/time"))?
        }
        Some(_) => return Err(bad_date("date/time")),
        None => 0,
    };
    let sec = if digits.len() >= 14 { num(12..14)? } else { 0 };
    let min = if digits.len() >= 12 { num(10..12)? } else { 0 };
    let dt = DateTime::new(y, num(4..6)?, num(6..8)?, num(8..10)?, min, sec, nanos)
        .map_err(|_| bad_date("date/time"))?;
    let zoned = match offset {
        Some(o) => {
            let (sign, hhmm) = o.split_at(1);
            if hhmm.len() != 4 || !hhmm.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad_date("date/time"));
            }
            let h: i32 = hhmm[..2].parse().map_err(|_| bad_date("date/time"))?;
            let m: i32 = hhmm[2..].parse().map_err(|_| bad_date("date/time"))?;
            let secs = (h * 3600 + m * 60) * if sign == "-" { -1 } else { 1 };
            let off = jiff::tz::Offset::from_seconds(secs).map_err(|_| bad_date("date/time"))?;
            dt.to_zoned(TimeZone::fixed(off))
                .map_err(|_| bad_date("date/time"))?
        }
        None => dt.to_zoned(tz.clone()).map_err(|_| bad_date("date/time"))?,
    };
    Ok(zoned.timestamp().display_with_offset(zoned.offset()).to_string())
}

fn iso_datetime(input: &str, tz: &TimeZone) -> Result<String, TransformError> {
    let s = input.trim();
    if s.len() <= 10 && crate::model::When::try_from(s.to_string()).is_ok() {
        return Ok(s.to_string());
    }
    if s.parse::<jiff::Timestamp>().is_ok() {
        return Ok(s.to_string());
    }
    let local: DateTime = s.parse().map_err(|_| bad_date("date/time"))?;
    let zoned = local.to_zoned(tz.clone()).map_err(|_| bad_date("date/time"))?;
    Ok(zoned.timestamp().display_with_offset(zoned.offset()).to_string())
}

fn phone(input: &str, region: &str) -> Result<String, TransformError> {
    let s = input.trim();
    if s.is_empty() {
        return Ok(String::new());
    }
    let id: phonenumber::country::Id = region
        .parse()
        .map_err(|_| TransformError(format!("unknown phone region {region}")))?;
    let number = phonenumber::parse(Some(id), s).map_err(|_| TransformError("not a phone number".into()))?;
    if !phonenumber::is_valid(&number) {
        return Err(TransformError(format!(
            "not a valid phone number for region {region}"
        )));
    }
    Ok(number.format().mode(phonenumber::Mode::E164).to_string())
}

fn email(input: &str) -> Result<String, TransformError> {
    let s = input.trim();
    if s.is_empty() {
        return Ok(String::new());
    }
    let s = s.strip_prefix("mailto:").unwrap_or(s);
    let Some((local, domain)) = s.rsplit_once('@') else {
        return Err(TransformError("not an email address (no @)".into()));
    };
    let domain_ok = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains(char::is_whitespace);
    if local.is_empty() || local.contains(char::is_whitespace) || !domain_ok {
        return Err(TransformError("not an email address".into()));
    }
    Ok(format!("{local}@{}", domain.to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> TransformEnv {
        TransformEnv {
            phone_region: "VN".into(),
            timezone: TimeZone::get("Asia/Ho_Chi_Minh").unwrap(),
            connector: None,
        }
    }

    fn run(t: Transform, s: &str) -> Result<Option<String>, TransformError> {
        t.apply(s, &env())
    }

    #[test]
    fn hl7_dates_keep_their_precision() {
        assert_eq!(
            run(Transform::Hl7Date, "19850307").unwrap().unwrap(),
            "1985-03-07"
        );
        assert_eq!(run(Transform::Hl7Date, "198503").unwrap().unwrap(), "1985-03");
        assert_eq!(run(Transform::Hl7Date, "1985").unwrap().unwrap(), "1985");
        assert_eq!(
            run(Transform::Hl7Date, "198503071230").unwrap().unwrap(),
            "1985-03-07"
        );
        assert!(run(Transform::Hl7Date, "19850230").is_err());
        assert!(run(Transform::Hl7Date, "7 March").is_err());
        // Zeros are how senders say "unknown".
        assert_eq!(run(Transform::Hl7Date, "00000000").unwrap(), None);
        assert_eq!(run(Transform::Hl7DateTime, "0000").unwrap(), None);
    }

    #[test]
    fn hl7_datetimes_use_the_offset_or_the_clinic_zone() {
        assert_eq!(
            run(Transform::Hl7DateTime, "20240105083000+0300")
                .unwrap()
                .unwrap(),
            "2024-01-05T08:30:00+03:00"
        );
        assert_eq!(
            run(Transform::Hl7DateTime, "202401050830").unwrap().unwrap(),
            "2024-01-05T08:30:00+07:00"
        );
        assert_eq!(
            run(Transform::Hl7DateTime, "20240105").unwrap().unwrap(),
            "2024-01-05"
        );
    }

    #[test]
    fn phones_become_e164_in_the_default_region() {
        let p = Transform::Phone { region: None };
        assert_eq!(run(p.clone(), "0903 123 456").unwrap().unwrap(), "+84903123456");
        assert_eq!(
            run(p.clone(), "+7 (912) 345-67-89").unwrap().unwrap(),
            "+79123456789"
        );
        let us = Transform::Phone {
            region: Some("US".into()),
        };
        assert_eq!(
            run(us, "(555) 555-2004").unwrap_err().0,
            "not a valid phone number for region US"
        );
        assert!(run(p, "not a phone").is_err());
    }

    #[test]
    fn iso_datetimes_keep_precision_and_gain_the_clinic_zone_when_they_lack_one() {
        for same in [
            "2024",
            "2024-01",
            "2024-01-05",
            "2024-01-05T08:30:00Z",
            "2024-01-05T08:30:00.250+03:00",
        ] {
            assert_eq!(run(Transform::DateTime, same).unwrap().unwrap(), same);
        }
        assert_eq!(
            run(Transform::DateTime, "2024-01-05T08:30:00").unwrap().unwrap(),
            "2024-01-05T08:30:00+07:00"
        );
        assert!(run(Transform::DateTime, "05/01/2024").is_err());
        let second = Transform::Split {
            sep: "/".into(),
            part: 2,
        };
        assert_eq!(run(second.clone(), "Patient/123").unwrap().unwrap(), "123");
        assert_eq!(run(second, "no-slash").unwrap(), None);
    }

    #[test]
    fn emails_are_checked_and_domains_lowercased() {
        assert_eq!(
            run(Transform::Email, " Lan.N@Example.VN ").unwrap().unwrap(),
            "Lan.N@example.vn"
        );
        assert!(run(Transform::Email, "lan at example").is_err());
    }

    #[test]
    fn name_case_handles_unicode() {
        assert_eq!(
            run(Transform::NameCase, "NGUYỄN THỊ LAN").unwrap().unwrap(),
            "Nguyễn Thị Lan"
        );
        assert_eq!(
            run(Transform::NameCase, "иВАНОВ-петров").unwrap().unwrap(),
            "Иванов-Петров"
        );
    }

    #[test]
    fn unknown_transforms_and_arguments_are_refused() {
        assert!(
            Transform::from_name("uppercase", None)
                .unwrap_err()
                .contains("unknown transform")
        );
        assert!(Transform::from_name("trim", Some(&serde_json::json!({"x": 1}))).is_err());
        let r = serde_json::json!({"region": "ZZ"});
        assert!(Transform::from_name("phone", Some(&r)).is_err());
    }
}
