//! What "the same meaning" is when carehub's output and the guide's FHIR say one thing two ways:
//! dates as instants at a precision (`2024-01-05T08:30:00+03:00` is `2024-01-05T05:30:00Z`, and
//! `1970-10` is not `1970-10-01`), phones by their digits, code systems by what they name (`LN`
//! is `http://loinc.org`), and how entries of two lists are paired before they are compared.

use serde_json::Value;

/// Same text once white space is collapsed.
pub(super) fn same_text(a: &str, b: &str) -> bool {
    a.split_whitespace().eq(b.split_whitespace())
}

/// Same code or token, case aside.
pub(super) fn same_token(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// HL7 table 0396 names and the URIs FHIR uses for them, so that `LN` means `http://loinc.org`.
const CODE_SYSTEMS: &[(&str, &str)] = &[
    ("LN", "http://loinc.org"),
    ("SCT", "http://snomed.info/sct"),
    ("SNM", "http://snomed.info/sct"),
    ("UCUM", "http://unitsofmeasure.org"),
    ("I10", "http://hl7.org/fhir/sid/icd-10"),
    ("I10C", "http://hl7.org/fhir/sid/icd-10-cm"),
    ("ICD10CM", "http://hl7.org/fhir/sid/icd-10-cm"),
    ("CVX", "http://hl7.org/fhir/sid/cvx"),
    (
        "L",
        "https://terminology.hl7.org/CodeSystem-v2-0396.html#v2-0396-99zzzorL",
    ),
    (
        "99zzz",
        "https://terminology.hl7.org/CodeSystem-v2-0396.html#v2-0396-99zzzorL",
    ),
];

fn code_system(s: &str) -> String {
    let s = s.trim();
    CODE_SYSTEMS
        .iter()
        .find(|(name, uri)| s.eq_ignore_ascii_case(name) || s == *uri)
        .map_or_else(|| s.to_ascii_lowercase(), |(_, uri)| uri.to_string())
}

pub(super) fn same_code_system(a: &str, b: &str) -> bool {
    code_system(a) == code_system(b)
}

/// Two numbers, written either way (`5`, `5.0`).
pub(super) fn same_number(a: &str, b: &str) -> bool {
    match (a.trim().parse::<f64>(), b.trim().parse::<f64>()) {
        (Ok(x), Ok(y)) => (x - y).abs() < 1e-9,
        _ => false,
    }
}

/// Phones by their digits: equal, or one is the other with a country code (1–3 digits) before
/// it. Emails and other systems case-insensitively.
pub(super) fn same_contact(a: &str, b: &str) -> bool {
    if a.contains('@') || b.contains('@') {
        return same_token(a, b);
    }
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    let (x, y) = (digits(a), digits(b));
    let (short, long) = if x.len() <= y.len() { (x, y) } else { (y, x) };
    short.len() >= 7 && long.ends_with(&short) && long.len() - short.len() <= 3
}

/// A point in time at the precision it was written: a date (`YYYY`, `YYYY-MM`, `YYYY-MM-DD`)
/// or an instant.
#[derive(Debug, PartialEq)]
enum Moment {
    Date(String),
    Instant(jiff::Timestamp),
}

/// Reads FHIR `date`/`dateTime`/`instant`, or an HL7 DTM (carehub keeps an OBX value as sent;
/// a DTM without an offset is UTC here, as the guide reads it).
fn moment(s: &str) -> Option<Moment> {
    let s = s.trim();
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Some(Moment::Instant(t));
    }
    let is_year = |y: &str| y.len() == 4 && y.bytes().all(|b| b.is_ascii_digit());
    let fhir_date = s.parse::<jiff::civil::Date>().is_ok()
        || (s.len() == 7 && is_year(&s[..4]) && &s[4..5] == "-" && s[5..].parse::<u8>().is_ok());
    if fhir_date || is_year(s) {
        return Some(Moment::Date(s.to_string()));
    }
    let (body, offset) = match s.find(['+', '-']) {
        Some(i) => (&s[..i], Some(&s[i..])),
        None => (s, None),
    };
    let (digits, frac) = body.split_once('.').map_or((body, None), |(d, f)| (d, Some(f)));
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let d = digits;
    match d.len() {
        6 => Some(Moment::Date(format!("{}-{}", &d[..4], &d[4..6]))),
        8 => Some(Moment::Date(format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..8]))),
        10 | 12 | 14 => {
            let d = format!("{d:0<14}");
            let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
            let offset = match offset {
                Some(o) if o.len() == 5 => format!("{}:{}", &o[..3], &o[3..]),
                Some(_) => return None,
                None => "Z".to_string(),
            };
            let fhir = format!(
                "{}-{}-{}T{}:{}:{}{frac}{offset}",
                &d[..4],
                &d[4..6],
                &d[6..8],
                &d[8..10],
                &d[10..12],
                &d[12..14]
            );
            fhir.parse().ok().map(Moment::Instant)
        }
        _ => None,
    }
}

/// Same instant (offsets aside) or same date at the same precision.
pub(super) fn same_moment(a: &str, b: &str) -> bool {
    matches!((moment(a), moment(b)), (Some(x), Some(y)) if x == y)
}

// ---- pairing list entries -----------------------------------------------------------------

/// Pairs expected entries with produced ones: the pairs that agree most first, each entry used
/// once; an expected entry that agrees with nothing left takes the next produced entry left, if
/// any (its fields then differ), else none (its fields are missing). Returns the pairs in the
/// expected order and the produced entries left over.
pub(super) fn pair<'a>(
    expected: &'a [Value],
    ours: &'a [Value],
    score: impl Fn(&Value, &Value) -> usize,
) -> (Vec<(&'a Value, Option<&'a Value>)>, Vec<&'a Value>) {
    let mut candidates: Vec<(usize, usize, usize)> = Vec::new();
    for (i, e) in expected.iter().enumerate() {
        for (j, o) in ours.iter().enumerate() {
            let s = score(e, o);
            if s > 0 {
                candidates.push((s, i, j));
            }
        }
    }
    candidates.sort_by_key(|&(s, i, j)| (std::cmp::Reverse(s), i, j));
    let mut of_expected: Vec<Option<usize>> = vec![None; expected.len()];
    let mut used = vec![false; ours.len()];
    for (_, i, j) in candidates {
        if of_expected[i].is_none() && !used[j] {
            of_expected[i] = Some(j);
            used[j] = true;
        }
    }
    for slot in of_expected.iter_mut().filter(|s| s.is_none()) {
        if let Some(j) = (0..ours.len()).find(|&j| !used[j]) {
            *slot = Some(j);
            used[j] = true;
        }
    }
    let pairs = expected
        .iter()
        .zip(of_expected)
        .map(|(e, j)| (e, j.map(|j| &ours[j])))
        .collect();
    let left = ours
        .iter()
        .zip(used)
        .filter(|(_, u)| !u)
        .map(|(o, _)| o)
        .collect();
    (pairs, left)
}

pub(super) fn agree(e: Option<String>, g: Option<String>, same: fn(&str, &str) -> bool) -> usize {
    usize::from(matches!((e, g), (Some(x), Some(y)) if same(&x, &y)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_compare_by_instant_and_precision() {
        assert!(same_moment("2024-01-05T08:30:00+03:00", "2024-01-05T05:30:00Z"));
        assert!(same_moment("2023-11-02T11:04:05.67Z", "20231102110405.67"));
        assert!(same_moment("2023-05-01T10:25:31-04:00", "20230501102531-0400"));
        assert!(same_moment("1970-10", "1970-10"));
        assert!(!same_moment("1970-10", "1970-10-01"));
        assert!(!same_moment("2023-11-02", "2023-11-02T00:00:00Z"));
    }

    #[test]
    fn phones_compare_by_digits_and_systems_by_name() {
        assert!(same_contact("+1 (555) 7259890", "+15557259890"));
        assert!(same_contact("(555) 7259890", "+15557259890"));
        assert!(!same_contact("+1 (555) 7259890", "+15557259891"));
        assert!(same_contact("A@Example.org", "a@example.org"));
        assert!(same_code_system("LN", "http://loinc.org"));
        assert!(!same_code_system("LN", "http://snomed.info/sct"));
    }
}
