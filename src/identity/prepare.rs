//! The input record and its prepared form.
//!
//! Normalisation (Unicode folding, transliteration, phonetic coding, date parsing) costs far
//! more than a comparison, and a stored record is compared with many incoming ones. So every
//! record is normalised once into a [`Prepared`] value, which keeps exactly what the
//! comparators read: compact strings, their `char` slices for Jaro–Winkler, phonetic codes,
//! the date's digits. Comparing two `Prepared` values then allocates nothing.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::normalise::{compact, is_han, normalise};
use super::phonetic::phonetic_code;
use super::similarity::CharHistogram;

/// What one source says about a person, as plain strings: the input of matching.
///
/// Every field may be empty; an empty field is *missing*, which is neutral (weight 0),
/// never a disagreement.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MatchRecord {
    /// Given names (first, middle…), in the order the source gave them.
    pub given: Vec<String>,
    /// Family name. Sources that put the family name first (Vietnamese, Chinese) or swap
    /// the two fields are handled by the name comparison, which also tries the swapped order.
    pub family: Option<String>,
    /// `YYYY`, `YYYY-MM`, `YYYY-MM-DD` or `YYYYMMDD`. Anything else is kept as its digits,
    /// which still take part in the "one digit off" and "same year" comparisons.
    pub birth_date: Option<String>,
    /// `male`, `female`, `other` or `unknown` (also `m`/`f`/`o`/`u`); unknown is missing.
    pub sex: Option<String>,
    /// Phone numbers, ideally E.164 (`+84903123456`); only the digits are used.
    pub phones: Vec<String>,
    /// Email addresses.
    pub emails: Vec<String>,
    /// Street line(s) including the house number (`7 wallaby place`).
    pub street: Option<String>,
    /// City, suburb or district.
    pub city: Option<String>,
    /// Postal code.
    pub postcode: Option<String>,
    /// State, province or region.
    pub state: Option<String>,
    /// Identifiers as `(system, value)`: values are only compared within one system.
    pub identifiers: Vec<(String, String)>,
}

/// Administrative sex, as far as matching cares: `unknown` is simply missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sex {
    Male,
    Female,
    Other,
}

/// A normalised name (given or family).
#[derive(Clone, PartialEq)]
pub(crate) struct NameValue {
    /// Compact form (separators removed): equality, TF look-up.
    pub(crate) key: Box<str>,
    /// `key` as chars, for Jaro–Winkler.
    pub(crate) chars: Box<[char]>,
    /// Fingerprint of `chars`, to skip hopeless Jaro–Winkler computations.
    pub(crate) hist: CharHistogram,
    /// Tokens sorted then concatenated, when there are several (`minh anh` = `anh minh`).
    pub(crate) sorted: Option<Box<str>>,
    /// The normalised tokens separated by spaces, when there are several.
    pub(crate) tokens: Option<Box<str>>,
    /// Phonetic code, `None` for names without Latin letters.
    pub(crate) code: Option<Box<str>>,
    /// Contains Han characters: compared exactly only.
    pub(crate) han: bool,
    /// First character of the compact form, for blocking keys.
    pub(crate) initial: char,
}

impl NameValue {
    fn new(raw: &str) -> Option<Self> {
        let norm = normalise(raw);
        if norm.is_empty() {
            return None;
        }
        let key: String = norm.chars().filter(|c| *c != ' ').collect();
        let sorted = norm.contains(' ').then(|| {
            let mut tokens: Vec<&str> = norm.split(' ').collect();
            tokens.sort_unstable();
            tokens.concat().into_boxed_str()
        });
        let tokens = norm.contains(' ').then(|| norm.clone().into_boxed_str());
        let han = key.chars().any(is_han);
        let code = if han {
            None
        } else {
            phonetic_code(&key).map(String::into_boxed_str)
        };
        let initial = key.chars().next()?;
        let chars: Box<[char]> = key.chars().collect();
        Some(Self {
            hist: CharHistogram::of(&chars),
            chars,
            key: key.into_boxed_str(),
            sorted,
            tokens,
            code,
            han,
            initial,
        })
    }
}

/// A normalised free-text field (street, city, state).
#[derive(Clone, PartialEq)]
pub(crate) struct TextValue {
    pub(crate) key: Box<str>,
    pub(crate) chars: Box<[char]>,
    pub(crate) hist: CharHistogram,
}

impl TextValue {
    fn new(raw: &str) -> Option<Self> {
        let key = compact(raw);
        if key.is_empty() {
            return None;
        }
        let chars: Box<[char]> = key.chars().collect();
        Some(Self {
            hist: CharHistogram::of(&chars),
            chars,
            key: key.into_boxed_str(),
        })
    }
}

/// How much of a birth date is known.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum DatePrecision {
    Day,
    Month,
    Year,
    /// Digits that do not form a date (a keying error, an impossible month): only the
    /// digit-level comparisons apply.
    Garbled,
}

/// A birth date reduced to its digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct DateValue {
    /// ASCII digits, `YYYYMMDD` for a full date.
    pub(crate) digits: [u8; 12],
    pub(crate) len: u8,
    pub(crate) precision: DatePrecision,
    pub(crate) year: Option<u16>,
    pub(crate) month: u8,
    pub(crate) day: u8,
}

impl DateValue {
    pub(crate) fn digits(&self) -> &[u8] {
        &self.digits[..usize::from(self.len)]
    }

    fn new(raw: &str) -> Option<Self> {
        let parts: Vec<&str> = raw
            .split(|c: char| !c.is_ascii_digit())
            .filter(|p| !p.is_empty())
            .take(4)
            .collect();
        let mut digits = [0u8; 12];
        let mut len = 0usize;
        let mut push = |s: &str, width: usize, buf: &mut [u8; 12]| {
            for _ in s.len()..width {
                if len < buf.len() {
                    buf[len] = b'0';
                    len += 1;
                }
            }
            for b in s.bytes() {
                if len < buf.len() {
                    buf[len] = b;
                    len += 1;
                }
            }
        };
        let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
        let precision = match lens.as_slice() {
            [8] | [4, 1..=2, 1..=2] | [4] | [6] | [4, 1..=2] => {
                if lens.len() == 1 {
                    push(parts[0], 0, &mut digits);
                } else {
                    push(parts[0], 4, &mut digits);
                    for p in &parts[1..] {
                        push(p, 2, &mut digits);
                    }
                }
                match len {
                    8 => DatePrecision::Day,
                    6 => DatePrecision::Month,
                    _ => DatePrecision::Year,
                }
            }
            _ => {
                for p in &parts {
                    push(p, 0, &mut digits);
                }
                DatePrecision::Garbled
            }
        };
        if len == 0 {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<u16> {
            let s = digits.get(r)?;
            s.iter().try_fold(0u16, |acc, d| {
                acc.checked_mul(10)?.checked_add(u16::from(d - b'0'))
            })
        };
        let year = if len >= 4 { num(0..4) } else { None };
        let two = |r: std::ops::Range<usize>| num(r).and_then(|v| u8::try_from(v).ok()).unwrap_or(0);
        let month = if len >= 6 { two(4..6) } else { 0 };
        let day = if len >= 8 { two(6..8) } else { 0 };
        let precision = match precision {
            DatePrecision::Day if !(1..=12).contains(&month) || !(1..=31).contains(&day) => {
                DatePrecision::Garbled
            }
            DatePrecision::Month if !(1..=12).contains(&month) => DatePrecision::Garbled,
            p => p,
        };
        Some(Self {
            digits,
            len: len as u8,
            precision,
            year,
            month,
            day,
        })
    }
}

/// A normalised email address.
#[derive(Clone, PartialEq)]
pub(crate) struct EmailValue {
    pub(crate) full: Box<str>,
    pub(crate) local: Box<[char]>,
}

impl EmailValue {
    /// Lower-cases, drops `+tag` sub-addressing and, for Gmail, the dots it ignores.
    fn new(raw: &str) -> Option<Self> {
        let s: String = raw
            .trim()
            .chars()
            .filter(|c| !c.is_whitespace())
            .flat_map(char::to_lowercase)
            .collect();
        let (local, domain) = s.rsplit_once('@')?;
        let local = local.split('+').next().unwrap_or(local);
        let (local, domain) = match domain {
            "gmail.com" | "googlemail.com" => (local.replace('.', ""), "gmail.com"),
            d => (local.to_string(), d),
        };
        if local.is_empty() || domain.is_empty() {
            return None;
        }
        Some(Self {
            full: format!("{local}@{domain}").into_boxed_str(),
            local: local.chars().collect(),
        })
    }
}

/// An identifier: normalised system and value.
#[derive(Clone, PartialEq)]
pub(crate) struct IdValue {
    pub(crate) system: Box<str>,
    pub(crate) value: Box<[char]>,
}

/// A record normalised once for matching (see the module documentation).
///
/// Its `Debug` output names which fields are present, never their contents.
#[derive(Clone, PartialEq)]
pub struct Prepared {
    pub(crate) given: Option<NameValue>,
    pub(crate) family: Option<NameValue>,
    /// `family + given` and `given + family`, compact: a whole name typed into one field
    /// still meets the same name split over two.
    pub(crate) full_fg: Box<str>,
    pub(crate) full_gf: Box<str>,
    pub(crate) dob: Option<DateValue>,
    pub(crate) sex: Option<Sex>,
    /// Digits only.
    pub(crate) phones: Vec<Box<str>>,
    pub(crate) emails: Vec<EmailValue>,
    pub(crate) postcode: Option<Box<[char]>>,
    pub(crate) street: Option<TextValue>,
    pub(crate) city: Option<TextValue>,
    pub(crate) state: Option<TextValue>,
    pub(crate) ids: Vec<IdValue>,
}

/// Normalises a record once for matching. Never fails: values that cannot be read are
/// treated as missing.
pub fn prepare(r: &MatchRecord) -> Prepared {
    let given = NameValue::new(&r.given.join(" "));
    let family = r.family.as_deref().and_then(NameValue::new);
    let key = |n: &Option<NameValue>| n.as_ref().map_or("", |n| &*n.key).to_string();
    let (g, f) = (key(&given), key(&family));
    let sex = r
        .sex
        .as_deref()
        .and_then(|s| match s.trim().to_ascii_lowercase().as_str() {
            "male" | "m" => Some(Sex::Male),
            "female" | "f" => Some(Sex::Female),
            "other" | "o" => Some(Sex::Other),
            _ => None,
        });
    let mut phones: Vec<Box<str>> = r
        .phones
        .iter()
        .map(|p| p.chars().filter(char::is_ascii_digit).collect::<String>())
        .filter(|d| d.len() >= 4)
        .map(String::into_boxed_str)
        .collect();
    phones.sort_unstable();
    phones.dedup();
    let mut emails: Vec<EmailValue> = r.emails.iter().filter_map(|e| EmailValue::new(e)).collect();
    emails.dedup_by(|a, b| a.full == b.full);
    let mut ids: Vec<IdValue> = r
        .identifiers
        .iter()
        .filter_map(|(system, value)| {
            let value = compact(value);
            (!value.is_empty()).then(|| IdValue {
                system: compact(system).into_boxed_str(),
                value: value.chars().collect(),
            })
        })
        .collect();
    ids.dedup();
    let postcode = r
        .postcode
        .as_deref()
        .map(compact)
        .filter(|p| !p.is_empty())
        .map(|p| p.chars().collect());
    Prepared {
        full_fg: format!("{f}{g}").into_boxed_str(),
        full_gf: format!("{g}{f}").into_boxed_str(),
        given,
        family,
        dob: r.birth_date.as_deref().and_then(DateValue::new),
        sex,
        phones,
        emails,
        postcode,
        street: r.street.as_deref().and_then(TextValue::new),
        city: r.city.as_deref().and_then(TextValue::new),
        state: r.state.as_deref().and_then(TextValue::new),
        ids,
    }
}

impl Prepared {
    /// The normalised family name, as counted in a [`super::tf::TermFrequencies`] table.
    pub fn family_key(&self) -> Option<&str> {
        self.family.as_ref().map(|n| &*n.key)
    }

    /// The normalised given name(s), as counted in a [`super::tf::TermFrequencies`] table.
    pub fn given_key(&self) -> Option<&str> {
        self.given.as_ref().map(|n| &*n.key)
    }

    /// True when nothing usable for matching is present.
    pub fn is_empty(&self) -> bool {
        self.given.is_none()
            && self.family.is_none()
            && self.dob.is_none()
            && self.sex.is_none()
            && self.phones.is_empty()
            && self.emails.is_empty()
            && self.postcode.is_none()
            && self.street.is_none()
            && self.city.is_none()
            && self.state.is_none()
            && self.ids.is_empty()
    }
}

impl fmt::Debug for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Record contents are patient data: only say which fields are present.
        f.debug_struct("Prepared")
            .field("given", &self.given.is_some())
            .field("family", &self.family.is_some())
            .field("dob", &self.dob.map(|d| d.precision))
            .field("sex", &self.sex.is_some())
            .field("phones", &self.phones.len())
            .field("emails", &self.emails.len())
            .field("postcode", &self.postcode.is_some())
            .field("street", &self.street.is_some())
            .field("city", &self.city.is_some())
            .field("state", &self.state.is_some())
            .field("identifiers", &self.ids.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> Option<DateValue> {
        DateValue::new(s)
    }

    #[test]
    fn dates_of_every_precision() {
        let d = date("1985-03-07").expect("date");
        assert_eq!((d.digits(), d.precision), (&b"19850307"[..], DatePrecision::Day));
        assert_eq!(date("19850307").map(|d| d.precision), Some(DatePrecision::Day));
        assert_eq!(
            date("1985-3-7").map(|d| d.digits().to_vec()),
            Some(b"19850307".to_vec())
        );
        assert_eq!(date("1985-03").map(|d| d.precision), Some(DatePrecision::Month));
        assert_eq!(date("1985").map(|d| d.precision), Some(DatePrecision::Year));
        assert_eq!(
            date("19851307").map(|d| d.precision),
            Some(DatePrecision::Garbled)
        );
        assert_eq!(date("1985037").map(|d| d.precision), Some(DatePrecision::Garbled));
        assert!(date("").is_none());
        assert!(date("unknown").is_none());
        assert_eq!(date("99999999999999999999").map(|d| d.len), Some(12));
    }

    #[test]
    fn prepare_odd_input_does_not_panic() {
        let r = MatchRecord {
            given: vec![String::new(), "\u{0301}".into()],
            family: Some("🙂".into()),
            birth_date: Some("--".into()),
            sex: Some("?".into()),
            phones: vec!["+".into()],
            emails: vec!["@".into(), "a@".into(), "x".into()],
            street: Some(" ".into()),
            city: Some("\0".into()),
            postcode: Some("-".into()),
            state: Some(String::new()),
            identifiers: vec![(String::new(), " ".into())],
        };
        let p = prepare(&r);
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn emails_are_normalised() {
        let e = EmailValue::new(" John.Smith+clinic@GMail.com ").expect("email");
        assert_eq!(&*e.full, "johnsmith@gmail.com");
        assert_eq!(
            EmailValue::new("a.b@example.org").map(|e| e.full),
            Some("a.b@example.org".into())
        );
    }
}
