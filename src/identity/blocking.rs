//! Blocking keys: which stored records an incoming one is compared with.
//!
//! Comparing with every stored record is quadratic; the store instead keeps, per record, a
//! handful of *blocking keys* as indexed rows, and an incoming record is scored only against
//! records sharing at least one key. The keys are chosen so that a true duplicate almost
//! always shares one (pair completeness) even when several fields carry errors, while each
//! key stays selective (few candidates). Each key survives a different kind of error:
//!
//! | key | survives errors in |
//! | --- | --- |
//! | `dob:YYYYMMDD` (day and month sorted, so a swap keeps the key) | names, address, contact |
//! | `ph:<phonetic name>\|<birth year>` for the family and the given name | date day/month, typos that keep the sound |
//! | `nm:<phonetic family>\|<phonetic given>` (sorted, so a name swap keeps the key) | the whole birth date |
//! | `ny:<both phonetic names>\|<birth year>` | day and month, contact, address (selective where `nm` and `dob` are not) |
//! | `pc:<postcode>\|<initial>` for the given and the family initial | birth date and most name typos |
//! | `tel:<last 8 digits>` | everything but the phone |
//! | `em:<email>` | everything but the email |
//! | `id:<system>\|<value>` | everything but the identifier |
//!
//! Han names have no phonetic code; their compact text stands in for it. Keys carry
//! normalised personal data: the store should keep them like the record itself (or hash
//! them, which changes nothing here since keys are only compared for equality).

use super::prepare::{DatePrecision, NameValue, Prepared};

/// The blocking keys of a record, sorted and without duplicates.
pub fn blocking_keys(p: &Prepared) -> Vec<String> {
    let mut keys = Vec::with_capacity(10);
    let year = p.dob.and_then(|d| d.year);
    if let Some(d) = p.dob.filter(|d| d.precision == DatePrecision::Day) {
        let (lo, hi) = if d.month <= d.day {
            (d.month, d.day)
        } else {
            (d.day, d.month)
        };
        if let Some(y) = d.year {
            keys.push(format!("dob:{y:04}{lo:02}{hi:02}"));
        }
    }
    let code = |n: &NameValue| -> String { n.code.as_deref().unwrap_or(&n.key).to_string() };
    let names: Vec<String> = [&p.family, &p.given].into_iter().flatten().map(code).collect();
    if let Some(y) = year {
        for c in &names {
            keys.push(format!("ph:{c}|{y:04}"));
        }
    }
    if let [a, b] = names.as_slice() {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        keys.push(format!("nm:{lo}|{hi}"));
        // Both names and the year: what still narrows a common name among millions when the
        // record carries no phone or email and its birth date is shared by too many.
        if let Some(y) = year {
            keys.push(format!("ny:{lo}|{hi}|{y:04}"));
        }
    }
    if let Some(pc) = &p.postcode {
        let pc: String = pc.iter().collect();
        for n in [&p.given, &p.family].into_iter().flatten() {
            keys.push(format!("pc:{pc}|{}", n.initial));
        }
    }
    for phone in &p.phones {
        let tail = &phone[phone.len().saturating_sub(8)..];
        keys.push(format!("tel:{tail}"));
    }
    for e in &p.emails {
        keys.push(format!("em:{}", e.full));
        // The local part alone survives typos in the domain.
        let local: String = e.local.iter().collect();
        keys.push(format!("eml:{local}"));
    }
    for id in &p.ids {
        let v: String = id.value.iter().collect();
        keys.push(format!("id:{}|{v}", id.system));
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::super::prepare::{MatchRecord, prepare};
    use super::*;

    #[test]
    fn keys_of_a_full_record() {
        let r = MatchRecord {
            given: vec!["Thị Mai".into()],
            family: Some("Nguyễn".into()),
            birth_date: Some("1985-07-03".into()),
            phones: vec!["+84 903 123 456".into()],
            emails: vec!["Mai@Example.com".into()],
            postcode: Some("700000".into()),
            identifiers: vec![("VN-CCCD".into(), "079185000123".into())],
            ..Default::default()
        };
        let keys = blocking_keys(&prepare(&r));
        for k in [
            "dob:19850307",
            "ph:NGN|1985",
            "ph:TM|1985",
            "nm:NGN|TM",
            "ny:NGN|TM|1985",
            "pc:700000|t",
            "pc:700000|n",
            "tel:03123456",
            "em:mai@example.com",
            "id:vncccd|079185000123",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} missing from {keys:?}");
        }
    }

    #[test]
    fn swapped_dates_and_names_share_keys() {
        let a = prepare(&MatchRecord {
            given: vec!["An".into()],
            family: Some("Tran".into()),
            birth_date: Some("1985-03-07".into()),
            ..Default::default()
        });
        let b = prepare(&MatchRecord {
            given: vec!["Tran".into()],
            family: Some("An".into()),
            birth_date: Some("1985-07-03".into()),
            ..Default::default()
        });
        let (ka, kb) = (blocking_keys(&a), blocking_keys(&b));
        assert!(ka.iter().any(|k| k.starts_with("dob:") && kb.contains(k)));
        assert!(ka.iter().any(|k| k.starts_with("nm:") && kb.contains(k)));
    }

    #[test]
    fn han_names_and_empty_records() {
        let p = prepare(&MatchRecord {
            given: vec!["小明".into()],
            family: Some("王".into()),
            birth_date: Some("1990".into()),
            ..Default::default()
        });
        let keys = blocking_keys(&p);
        assert!(keys.contains(&"ph:王|1990".to_string()), "{keys:?}");
        assert!(blocking_keys(&prepare(&MatchRecord::default())).is_empty());
    }
}
