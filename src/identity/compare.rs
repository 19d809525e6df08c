//! Field comparators: each turns a pair of prepared values into a *level*.
//!
//! Fellegi–Sunter needs discrete outcomes, not raw similarities: each level gets its own
//! m and u probability, so the model learns from data how much "Jaro–Winkler ≥ 0.94 on the
//! family name" is worth compared with "same birth year". Levels are ordered from the
//! strongest agreement to disagreement and the first that holds is taken. A field missing on
//! either side has no level at all (`None`): it weighs 0, since a clinic that did not record
//! an email says nothing about whether the person is the same.

use serde::{Deserialize, Serialize};

use super::prepare::{DatePrecision, DateValue, EmailValue, IdValue, NameValue, Sex, TextValue};
use super::similarity::{jaro_winkler, osa_within};

/// Number of compared fields.
pub const N_FIELDS: usize = 11;
/// Largest number of levels a field has.
pub const MAX_LEVELS: usize = 6;

/// A compared field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Given,
    Family,
    BirthDate,
    Sex,
    Phone,
    Email,
    Postcode,
    Street,
    City,
    State,
    Identifier,
}

/// Levels of the name comparators (given and family).
pub const NAME_LEVELS: &[&str] = &["exact", "jw_0.94", "jw_0.88", "jw_0.80", "phonetic", "disagree"];
/// Levels of the birth-date comparator.
pub const DATE_LEVELS: &[&str] = &[
    "exact",
    "day_month_swap",
    "one_digit_off",
    "same_year",
    "disagree",
];
/// Levels of the sex comparator.
pub const SEX_LEVELS: &[&str] = &["agree", "disagree"];
/// Levels of the phone comparator.
pub const PHONE_LEVELS: &[&str] = &["exact", "last8", "one_digit_off", "disagree"];
/// Levels of the email comparator.
pub const EMAIL_LEVELS: &[&str] = &["exact", "local_similar", "disagree"];
/// Levels of the postcode comparator.
pub const POSTCODE_LEVELS: &[&str] = &["exact", "one_char_off", "disagree"];
/// Levels of the street and city comparators.
pub const TEXT_LEVELS: &[&str] = &["exact", "jw_0.94", "jw_0.88", "jw_0.80", "disagree"];
/// Levels of the state comparator.
pub const STATE_LEVELS: &[&str] = &["exact", "jw_0.88", "disagree"];
/// Levels of the identifier comparator.
pub const ID_LEVELS: &[&str] = &["exact", "one_char_off", "disagree"];

impl Field {
    /// Every field, in index order.
    pub const ALL: [Field; N_FIELDS] = [
        Field::Given,
        Field::Family,
        Field::BirthDate,
        Field::Sex,
        Field::Phone,
        Field::Email,
        Field::Postcode,
        Field::Street,
        Field::City,
        Field::State,
        Field::Identifier,
    ];

    /// Position in [`Field::ALL`] and in a [`Comparison`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The field's name as written in configuration and explanations.
    pub const fn name(self) -> &'static str {
        match self {
            Field::Given => "given",
            Field::Family => "family",
            Field::BirthDate => "birth_date",
            Field::Sex => "sex",
            Field::Phone => "phone",
            Field::Email => "email",
            Field::Postcode => "postcode",
            Field::Street => "street",
            Field::City => "city",
            Field::State => "state",
            Field::Identifier => "identifier",
        }
    }

    /// The names of the field's levels, strongest agreement first; the last is disagreement.
    pub const fn levels(self) -> &'static [&'static str] {
        match self {
            Field::Given | Field::Family => NAME_LEVELS,
            Field::BirthDate => DATE_LEVELS,
            Field::Sex => SEX_LEVELS,
            Field::Phone => PHONE_LEVELS,
            Field::Email => EMAIL_LEVELS,
            Field::Postcode => POSTCODE_LEVELS,
            Field::Street | Field::City => TEXT_LEVELS,
            Field::State => STATE_LEVELS,
            Field::Identifier => ID_LEVELS,
        }
    }

    /// The level index meaning disagreement.
    pub const fn disagree(self) -> u8 {
        (self.levels().len() - 1) as u8
    }
}

/// Marks a missing field in [`Comparison::levels`].
pub const MISSING: u8 = u8::MAX;

/// The outcome of comparing two records: one level per field (the comparison vector γ of
/// Fellegi–Sunter), and whether the names were compared in swapped order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Comparison {
    /// Level index per field ([`Field::index`]), [`MISSING`] when either side lacks it.
    pub levels: [u8; N_FIELDS],
    /// The given/family names agreed better crosswise (given ↔ family).
    pub names_swapped: bool,
}

impl Comparison {
    /// The level of one field, `None` when missing.
    pub fn level(&self, field: Field) -> Option<u8> {
        let l = self.levels[field.index()];
        (l != MISSING).then_some(l)
    }
}

pub(crate) fn opt(level: Option<u8>) -> u8 {
    level.unwrap_or(MISSING)
}

/// One name's tokens all appear among the other's (`Mai` in `Thị Mai`): a middle name or
/// a second given name left out, which Vietnamese records do all the time.
fn token_subset(a: &NameValue, b: &NameValue) -> bool {
    let (short, long) = match (&a.tokens, &b.tokens) {
        (None, None) => return false,
        (Some(x), Some(y)) => {
            if x.len() <= y.len() {
                (&**x, &**y)
            } else {
                (&**y, &**x)
            }
        }
        (None, Some(y)) => (&*a.key, &**y),
        (Some(x), None) => (&*b.key, &**x),
    };
    short.split(' ').all(|t| long.split(' ').any(|u| u == t))
}

/// Name comparison. Han names are compared exactly only; a Han name against a name without
/// Han characters (`王` against `Wang`) is not comparable and counts as missing. A name whose
/// tokens are a subset of the other's reaches the `jw_0.88` level at least.
pub(crate) fn compare_name(a: &NameValue, b: &NameValue) -> Option<u8> {
    if a.key == b.key {
        return Some(0);
    }
    let sorted_a = a.sorted.as_deref().unwrap_or(&a.key);
    let sorted_b = b.sorted.as_deref().unwrap_or(&b.key);
    if (a.sorted.is_some() || b.sorted.is_some()) && sorted_a == sorted_b {
        return Some(0);
    }
    if a.han != b.han {
        return None;
    }
    if a.han {
        return Some(5);
    }
    let subset = (a.tokens.is_some() || b.tokens.is_some()) && token_subset(a, b);
    let phonetic = a.code.is_some() && a.code == b.code;
    if shared_tokens_only(a, b) {
        return Some(if phonetic { 4 } else { 5 });
    }
    if !a.hist.may_reach(&b.hist, 0.80) {
        return Some(if subset {
            2
        } else if phonetic {
            4
        } else {
            5
        });
    }
    let jw = jaro_winkler(&a.chars, &b.chars);
    Some(if jw >= 0.94 {
        1
    } else if jw >= 0.88 || subset {
        2
    } else if jw >= 0.80 {
        3
    } else if phonetic {
        4
    } else {
        5
    })
}

/// Names of several tokens that share some (`Thị Lan` / `Thị Mai`, `Văn Hùng` / `Văn Nam`) are
/// as alike as the tokens they do not share: a middle name most people of one sex carry says
/// nothing, and Jaro–Winkler's prefix bonus would call the two names close.
fn shared_tokens_only(a: &NameValue, b: &NameValue) -> bool {
    let (Some(ta), Some(tb)) = (a.tokens.as_deref(), b.tokens.as_deref()) else {
        return false;
    };
    let va: Vec<&str> = ta.split(' ').collect();
    let vb: Vec<&str> = tb.split(' ').collect();
    if !va.iter().any(|t| vb.contains(t)) {
        return false;
    }
    let rest = |from: &[&str], other: &[&str]| -> Vec<char> {
        from.iter()
            .filter(|t| !other.contains(t))
            .flat_map(|t| t.chars())
            .collect()
    };
    let (ra, rb) = (rest(&va, &vb), rest(&vb, &va));
    !ra.is_empty() && !rb.is_empty() && jaro_winkler(&ra, &rb) < 0.80
}

pub(crate) fn compare_name_opt(a: Option<&NameValue>, b: Option<&NameValue>) -> Option<u8> {
    compare_name(a?, b?)
}

/// Birth date: exact, day and month swapped, one digit off (edit distance 1 on `YYYYMMDD`,
/// a transposition counting as one), same year, else disagreement. Partial dates (year or
/// year-month only) can reach "same year" at best: they cannot tell more.
pub(crate) fn compare_date(a: &DateValue, b: &DateValue) -> u8 {
    use DatePrecision::*;
    const EXACT: u8 = 0;
    const SWAP: u8 = 1;
    const ONE_OFF: u8 = 2;
    const SAME_YEAR: u8 = 3;
    const DISAGREE: u8 = 4;
    let same_year = a.year.is_some() && a.year == b.year;
    match (a.precision, b.precision) {
        (Day, Day) => {
            if a.len == b.len && a.digits == b.digits {
                EXACT
            } else if same_year && a.day == b.month && a.month == b.day {
                SWAP
            } else if osa_within(a.digits(), b.digits(), 1).is_some() {
                ONE_OFF
            } else if same_year {
                SAME_YEAR
            } else {
                DISAGREE
            }
        }
        (Garbled, _) | (_, Garbled) => {
            if osa_within(a.digits(), b.digits(), 1).is_some() {
                ONE_OFF
            } else if same_year {
                SAME_YEAR
            } else {
                DISAGREE
            }
        }
        _ => {
            if same_year {
                SAME_YEAR
            } else {
                DISAGREE
            }
        }
    }
}

pub(crate) fn compare_sex(a: Sex, b: Sex) -> u8 {
    u8::from(a != b)
}

fn last_n(s: &str, n: usize) -> &[u8] {
    let b = s.as_bytes();
    &b[b.len().saturating_sub(n)..]
}

/// Phones: exact, same last 8 digits (the subscriber number whatever the country or trunk
/// prefix: `0903123456` against `+84903123456`), one digit off, else disagreement. With
/// several numbers per side the best pair counts.
pub(crate) fn compare_phones(a: &[Box<str>], b: &[Box<str>]) -> Option<u8> {
    let mut best: Option<u8> = None;
    for x in a {
        for y in b {
            let level = if x == y {
                0
            } else if x.len() >= 8 && y.len() >= 8 && last_n(x, 8) == last_n(y, 8) {
                1
            } else if osa_within(x.as_bytes(), y.as_bytes(), 1).is_some()
                || (x.len() >= 8 && y.len() >= 8 && osa_within(last_n(x, 8), last_n(y, 8), 1).is_some())
            {
                2
            } else {
                3
            };
            best = Some(best.map_or(level, |b| b.min(level)));
        }
    }
    best
}

/// Emails: exact, local parts similar (Jaro–Winkler ≥ 0.88, whatever the domain, and their
/// numbers at most one digit apart), else disagreement. The best pair counts.
///
/// The number is what tells apart the many mailboxes built from one common name
/// (`lan.nguyen85`, `lan.nguyen1990`): two of them are two persons, not a typo.
pub(crate) fn compare_emails(a: &[EmailValue], b: &[EmailValue]) -> Option<u8> {
    let digits = |s: &[char]| {
        s.iter()
            .copied()
            .filter(char::is_ascii_digit)
            .collect::<Vec<char>>()
    };
    let mut best: Option<u8> = None;
    for x in a {
        for y in b {
            let level = if x.full == y.full {
                0
            } else if jaro_winkler(&x.local, &y.local) >= 0.88
                && osa_within(&digits(&x.local), &digits(&y.local), 1).is_some()
            {
                1
            } else {
                2
            };
            best = Some(best.map_or(level, |b| b.min(level)));
        }
    }
    best
}

/// Postcode: exact, one character off, else disagreement.
pub(crate) fn compare_postcode(a: &[char], b: &[char]) -> u8 {
    if a == b {
        0
    } else if osa_within(a, b, 1).is_some() {
        1
    } else {
        2
    }
}

/// Street and city: exact, else Jaro–Winkler bands 0.94 / 0.88 / 0.80.
pub(crate) fn compare_text(a: &TextValue, b: &TextValue) -> u8 {
    if a.key == b.key {
        return 0;
    }
    if !a.hist.may_reach(&b.hist, 0.80) {
        return 4;
    }
    let jw = jaro_winkler(&a.chars, &b.chars);
    if jw >= 0.94 {
        1
    } else if jw >= 0.88 {
        2
    } else if jw >= 0.80 {
        3
    } else {
        4
    }
}

/// State: exact, Jaro–Winkler ≥ 0.88, else disagreement.
pub(crate) fn compare_state(a: &TextValue, b: &TextValue) -> u8 {
    if a.key == b.key {
        0
    } else if a.hist.may_reach(&b.hist, 0.88) && jaro_winkler(&a.chars, &b.chars) >= 0.88 {
        1
    } else {
        2
    }
}

/// Identifiers are compared only within one system (an MRN of hospital A says nothing about
/// one of hospital B): exact, one character off, else disagreement; the best pair counts,
/// and no shared system means missing.
pub(crate) fn compare_ids(a: &[IdValue], b: &[IdValue]) -> Option<u8> {
    let mut best: Option<u8> = None;
    for x in a {
        for y in b.iter().filter(|y| y.system == x.system) {
            let level = if x.value == y.value {
                0
            } else if osa_within(&x.value, &y.value, 1).is_some() {
                1
            } else {
                2
            };
            best = Some(best.map_or(level, |b| b.min(level)));
        }
    }
    best
}

#[cfg(test)]
mod shared_token_tests {
    use crate::identity::{MatchRecord, prepare};

    fn given(name: &str) -> crate::identity::Prepared {
        prepare(&MatchRecord {
            given: vec![name.to_string()],
            ..Default::default()
        })
    }

    #[test]
    fn a_shared_middle_name_does_not_make_two_given_names_alike() {
        let m = crate::identity::Model::new(Default::default()).unwrap();
        let c = m.compare(&given("Thị Lan"), &given("Thị Mai"));
        assert_eq!(c.level(crate::identity::Field::Given), Some(5), "disagree");
        let c = m.compare(&given("Thị Lan"), &given("THI LAN"));
        assert_eq!(c.level(crate::identity::Field::Given), Some(0));
        let c = m.compare(&given("Thị Lan"), &given("Thị Lam"));
        assert!(
            c.level(crate::identity::Field::Given).is_some_and(|l| l < 5),
            "a typo is still close"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::prepare::{MatchRecord, prepare};
    use super::*;

    fn name(s: &str) -> Option<NameValue> {
        prepare(&MatchRecord {
            family: Some(s.into()),
            ..Default::default()
        })
        .family
    }

    fn name_level(a: &str, b: &str) -> Option<u8> {
        compare_name_opt(name(a).as_ref(), name(b).as_ref())
    }

    fn date_level(a: &str, b: &str) -> Option<u8> {
        let d = |s: &str| {
            prepare(&MatchRecord {
                birth_date: Some(s.into()),
                ..Default::default()
            })
            .dob
        };
        Some(compare_date(&d(a)?, &d(b)?))
    }

    #[test]
    fn vietnamese_names() {
        assert_eq!(name_level("Nguyễn", "NGUYEN"), Some(0));
        assert_eq!(name_level("Đặng", "Dang"), Some(0));
        assert_eq!(name_level("Trương Thị Ước", "truong thi uoc"), Some(0));
        // Middle names in another order are the same name.
        assert_eq!(name_level("Minh Anh", "Anh Minh"), Some(0));
        // A left-out middle name still agrees partly.
        assert_eq!(name_level("Thị Mai", "Mai"), Some(2));
        assert_eq!(name_level("Văn An", "Van Anh"), Some(1));
        assert_eq!(name_level("Thị Mai", "Lan"), Some(5));
        // A typo keeps a high Jaro–Winkler band.
        assert_eq!(name_level("Nguyễn", "Nguyen"), Some(0));
        assert_eq!(name_level("Nguyen", "Nguyn"), Some(1));
    }

    #[test]
    fn russian_names() {
        assert_eq!(name_level("Иванов", "Ivanov"), Some(0));
        assert_eq!(name_level("Щербаков", "Shcherbakov"), Some(0));
        // Another romanisation: caught by Jaro–Winkler or the phonetic code.
        assert_eq!(name_level("Юрий", "Yuri"), Some(4));
        assert_eq!(name_level("Александр", "Alexander"), Some(2));
        assert_eq!(name_level("Иванов", "Petrov"), Some(5));
    }

    #[test]
    fn chinese_names() {
        assert_eq!(name_level("王小明", "王小明"), Some(0));
        assert_eq!(name_level("王小明", "王小鸣"), Some(5));
        // Han against Latin cannot be compared: missing, not a disagreement.
        assert_eq!(name_level("王", "Wang"), None);
        assert_eq!(name_level("王", ""), None);
    }

    #[test]
    fn birth_dates() {
        assert_eq!(date_level("1985-03-07", "19850307"), Some(0));
        assert_eq!(date_level("1985-03-07", "1985-07-03"), Some(1));
        assert_eq!(date_level("1985-03-07", "1985-03-08"), Some(2));
        assert_eq!(date_level("1985-03-07", "1958-03-07"), Some(2));
        assert_eq!(date_level("1985-03-07", "1985-11-21"), Some(3));
        assert_eq!(date_level("1985-03-07", "1990-11-21"), Some(4));
        assert_eq!(date_level("1985-03-07", "1985"), Some(3));
        assert_eq!(date_level("1985-03", "1985-04"), Some(3));
        assert_eq!(date_level("1985", "1986"), Some(4));
        // A garbled date (month 13) is still one digit away.
        assert_eq!(date_level("19851307", "19850307"), Some(2));
        assert_eq!(date_level("1985-03-07", ""), None);
    }

    #[test]
    fn phones_emails_ids() {
        let p = |v: &[&str]| -> Vec<Box<str>> { v.iter().map(|s| Box::from(*s)).collect() };
        assert_eq!(
            compare_phones(&p(&["84903123456"]), &p(&["84903123456"])),
            Some(0)
        );
        assert_eq!(compare_phones(&p(&["84903123456"]), &p(&["0903123456"])), Some(1));
        assert_eq!(
            compare_phones(&p(&["84903123456"]), &p(&["84903123457"])),
            Some(2)
        );
        assert_eq!(
            compare_phones(&p(&["84903123456"]), &p(&["84911999888"])),
            Some(3)
        );
        assert_eq!(compare_phones(&p(&[]), &p(&["84911999888"])), None);

        let r = |e: &str, ids: &[(&str, &str)]| {
            prepare(&MatchRecord {
                emails: vec![e.into()],
                identifiers: ids.iter().map(|(s, v)| ((*s).into(), (*v).into())).collect(),
                ..Default::default()
            })
        };
        let a = r("robert255@smith.net", &[("ssn", "123-45-6789"), ("mrn-a", "1")]);
        let b = r("roberta25@smith.net", &[("SSN", "123456780")]);
        let c = r("x@y.z", &[("mrn-b", "1")]);
        assert_eq!(compare_emails(&a.emails, &a.emails), Some(0));
        assert_eq!(compare_emails(&a.emails, &b.emails), Some(1));
        assert_eq!(compare_emails(&a.emails, &c.emails), Some(2));
        // One common name, two mailboxes told apart by their numbers.
        let lan85 = r("lan.nguyen85@mail.vn", &[]);
        let lan1990 = r("lan.nguyen1990@mail.vn", &[]);
        let lan86 = r("lan.nguyen86@gmail.com", &[]);
        assert_eq!(compare_emails(&lan85.emails, &lan1990.emails), Some(2));
        assert_eq!(compare_emails(&lan85.emails, &lan86.emails), Some(1));
        assert_eq!(compare_ids(&a.ids, &b.ids), Some(1));
        assert_eq!(compare_ids(&a.ids, &a.ids), Some(0));
        assert_eq!(compare_ids(&a.ids, &c.ids), None);
    }

    #[test]
    fn level_tables_fit() {
        for f in Field::ALL {
            assert!(f.levels().len() <= MAX_LEVELS);
            assert_eq!(Field::ALL[f.index()], f);
        }
    }
}
