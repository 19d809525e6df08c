//! Tests of the model: weights, veto, term frequencies, explanations.

use super::super::prepare::{MatchRecord, prepare};
use super::*;

fn person(given: &str, family: &str, dob: &str) -> Prepared {
    prepare(&MatchRecord {
        given: vec![given.into()],
        family: Some(family.into()),
        birth_date: Some(dob.into()),
        ..Default::default()
    })
}

fn model() -> Model {
    Model::new(ModelConfig::default()).expect("default config is valid")
}

#[test]
fn name_order_swap_is_recognised_with_penalty() {
    let m = model();
    let a = person("An", "Nguyen", "1990-01-02");
    let b = person("Nguyen", "An", "1990-01-02");
    let straight = m.score(&a, &a);
    let c = m.compare(&a, &b);
    assert!(c.names_swapped);
    assert_eq!(c.level(Field::Given), Some(0));
    assert_eq!(c.level(Field::Family), Some(0));
    assert!((m.score(&a, &b) - (straight - m.config().swap_penalty)).abs() < 1e-9);
}

#[test]
fn family_name_first_in_one_field() {
    let m = model();
    let whole = prepare(&MatchRecord {
        family: Some("Nguyễn Văn An".into()),
        birth_date: Some("1990-01-02".into()),
        ..Default::default()
    });
    let split = person("Văn An", "Nguyễn", "1990-01-02");
    let c = m.compare(&whole, &split);
    assert_eq!(c.level(Field::Family), Some(0));
    assert_eq!(c.level(Field::Given), None);
    let reversed = person("Nguyen", "Van An", "1990-01-02");
    let c = m.compare(&whole, &reversed);
    assert_eq!((c.level(Field::Family), c.names_swapped), (Some(0), true));
}

#[test]
fn missing_fields_are_neutral() {
    let m = model();
    let a = person("John", "Smith", "");
    let b = person("John", "Smith", "1970-01-01");
    let e = m.explain(&a, &b);
    let dob = e
        .fields
        .iter()
        .find(|f| f.field == Field::BirthDate)
        .expect("dob entry");
    assert_eq!((dob.level.as_deref(), dob.weight), (None, 0.0));
    let json = serde_json::to_string(&e).expect("serialises");
    assert!(json.contains("\"birth_date\""));
}

#[test]
fn tf_adjustment_rare_name_outweighs_common() {
    let mut recs: Vec<Prepared> = (0..600).map(|_| person("John", "Smith", "")).collect();
    recs.push(person("Ivan", "Szczepanski", ""));
    recs.push(person("Mary", "Smith", ""));
    let m = model().with_term_frequencies(TermFrequencies::from_prepared(&recs));
    let smith = person("John", "Smith", "1970-01-01");
    let rare = person("John", "Szczepanski", "1970-01-01");
    let s_common = m.score(&smith, &smith);
    let s_rare = m.score(&rare, &rare);
    assert!(s_rare > s_common + 5.0, "{s_rare} vs {s_common}");
    let e = m.explain(&smith, &smith);
    let fam = &e.fields[Field::Family.index()];
    assert!(fam.tf_adjustment < 0.0);
    // A young store's table (fewer names than min_total) is ignored.
    let small = model().with_term_frequencies(TermFrequencies::from_prepared(&recs[..10]));
    assert_eq!(small.score(&smith, &smith), model().score(&smith, &smith));
}

#[test]
fn config_overrides_and_validation() {
    let mut cfg = ModelConfig::default();
    cfg.sex.m = vec![0.5];
    assert!(matches!(Model::new(cfg), Err(ConfigError::LevelCount { .. })));
    let mut cfg = ModelConfig::default();
    cfg.thresholds.review = 99.0;
    assert_eq!(Model::new(cfg).err(), Some(ConfigError::Thresholds));
    let cfg: ModelConfig =
        serde_json::from_str(r#"{"thresholds": {"link": 20}, "swap_penalty": 2}"#).expect("parses");
    assert_eq!(cfg.thresholds.link, 20.0);
    assert_eq!(cfg.thresholds.review, Thresholds::default().review);
    assert_eq!(cfg.given, ModelConfig::default().given);
    let cfg: ModelConfig = serde_json::from_str(
        r#"{"link_veto": [], "correlated_groups": [["street", "city", "postcode", "state"]],
            "family": {"m": [0.8, 0.06, 0.04, 0.02, 0.01, 0.07], "u": [0.01, 0.002, 0.004, 0.01, 0.005, 0.969]}}"#,
    )
    .expect("parses");
    assert!(cfg.link_veto.is_empty());
    assert_eq!(cfg.correlated_groups[0][1], Field::City);
    assert!(Model::new(cfg).is_ok());
    assert!(serde_json::from_str::<ModelConfig>(r#"{"famliy": {}}"#).is_err());
}

/// Random strings from a mix of scripts, marks, controls and symbols: nothing may panic,
/// and scores stay finite.
#[test]
fn arbitrary_unicode_never_panics() {
    const ALPHABET: &[char] = &[
        'a',
        'Z',
        '0',
        '9',
        ' ',
        '-',
        '\'',
        '@',
        '+',
        '.',
        'đ',
        'Ơ',
        'ư',
        '\u{0301}',
        '\u{0323}',
        'й',
        'Щ',
        'ъ',
        'ь',
        '王',
        '小',
        '𠀀',
        'ß',
        'Æ',
        'İ',
        'ǅ',
        '\u{200B}',
        '\u{FEFF}',
        '\0',
        '\n',
        '🙂',
        '١',
        'ๆ',
        '\u{FFFD}',
        '\u{10FFFF}',
    ];
    let mut state = 0x1234_5678_u64;
    let mut next = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let text = |next: &mut dyn FnMut(usize) -> usize| -> String {
        let len = next(14);
        (0..len).map(|_| ALPHABET[next(ALPHABET.len())]).collect()
    };
    let m = model();
    let mut recs = Vec::new();
    for _ in 0..300 {
        let r = MatchRecord {
            given: (0..next(3)).map(|_| text(&mut next)).collect(),
            family: Some(text(&mut next)),
            birth_date: Some(text(&mut next)),
            sex: Some(text(&mut next)),
            phones: vec![text(&mut next)],
            emails: vec![text(&mut next)],
            street: Some(text(&mut next)),
            city: Some(text(&mut next)),
            postcode: Some(text(&mut next)),
            state: Some(text(&mut next)),
            identifiers: vec![(text(&mut next), text(&mut next))],
        };
        let p = prepare(&r);
        let _ = super::super::blocking::blocking_keys(&p);
        recs.push(p);
    }
    let m = m.with_term_frequencies(TermFrequencies::from_prepared(&recs));
    for a in &recs {
        for b in recs.iter().take(40) {
            let e = m.explain(a, b);
            assert!(e.total.is_finite());
            assert!((e.total - m.score(a, b)).abs() < 1e-9);
        }
    }
}

#[test]
fn best_candidate_picks_highest() {
    let m = model();
    let inc = person("Mary", "Jones", "1980-05-06");
    let stored = [
        person("Mary", "Jones", "1980-05-07"),
        person("Mary", "Jones", "1980-05-06"),
    ];
    let best = m.best_candidate(&inc, stored.iter().enumerate());
    assert_eq!(best.map(|(k, _)| k), Some(1));
    assert!(
        m.best_candidate(&inc, std::iter::empty::<(usize, &Prepared)>())
            .is_none()
    );
    let out = m.match_candidates(&inc, stored.iter().map(|r| ("person-1", r)));
    assert_eq!(out.decision, Decision::Link);
    let none = m.match_candidates(&inc, std::iter::empty::<(u8, &Prepared)>());
    assert_eq!((none.decision, none.best), (Decision::New, None));
}

fn household(given: &str, dob: &str, phone: &str, street: &str) -> Prepared {
    prepare(&MatchRecord {
        given: vec![given.into()],
        family: Some("Nguyễn".into()),
        birth_date: Some(dob.into()),
        sex: Some("female".into()),
        phones: vec![phone.into()],
        street: Some(street.into()),
        city: Some("Huế".into()),
        postcode: Some("530000".into()),
        state: Some("Thừa Thiên Huế".into()),
        ..Default::default()
    })
}

#[test]
fn household_members_are_never_linked_automatically() {
    let m = model();
    let mother = household("Lan", "1980-04-02", "+84903123456", "12 Lê Lợi");
    let child = household("Mai", "2012-09-15", "+84903123456", "12 Lê Lợi");
    let twin = household("Hoa", "1980-04-02", "+84903123456", "12 Lê Lợi");
    for other in [&child, &twin] {
        let e = m.explain(&mother, other);
        // Far above the link threshold: only the veto stops the merge.
        assert!(e.total > 35.0, "{}", e.total);
        assert_ne!(e.decision, Decision::Link, "{e:?}");
        assert_eq!(e.vetoed_by, Some(Field::Given));
    }
    // The same woman, who moved and changed phone: still one person.
    let moved = prepare(&MatchRecord {
        given: vec!["Lan".into()],
        family: Some("Nguyen".into()),
        birth_date: Some("1980-04-02".into()),
        phones: vec!["+84911000111".into()],
        street: Some("5 Trần Phú".into()),
        city: Some("Đà Nẵng".into()),
        postcode: Some("550000".into()),
        state: Some("Đà Nẵng".into()),
        ..Default::default()
    });
    assert_eq!(m.explain(&mother, &moved).decision, Decision::Link);
    // The twin's own earlier record is linked although her sister scores higher.
    let mut strict = m.clone();
    assert!(
        strict
            .set_thresholds(Thresholds {
                link: 500.0,
                review: 1.0,
                calibrated_for: 0,
            })
            .is_ok()
    );
    assert_eq!(strict.explain(&mother, &moved).decision, Decision::Review);
    assert!(
        strict
            .set_thresholds(Thresholds {
                link: 1.0,
                review: 5.0,
                calibrated_for: 0,
            })
            .is_err()
    );
    let twin_again = prepare(&MatchRecord {
        given: vec!["Hoa".into()],
        family: Some("Nguyen".into()),
        birth_date: Some("1980-04-02".into()),
        ..Default::default()
    });
    assert!(m.score(&twin, &mother) > m.score(&twin, &twin_again));
    let out = m.match_candidates(&twin, [("lan", &mother), ("hoa", &twin_again)]);
    assert_eq!(
        (out.decision, out.best.map(|b| b.0)),
        (Decision::Link, Some("hoa"))
    );
    let out = m.match_candidates(&twin, [("lan", &mother)]);
    assert_eq!(
        (out.decision, out.vetoed_by),
        (Decision::Review, Some(Field::Given))
    );
}

#[test]
fn correlated_fields_count_once() {
    let m = Model::new(ModelConfig {
        correlated_groups: vec![
            vec![Field::Street, Field::City, Field::Postcode, Field::State],
            vec![Field::Phone, Field::Email],
        ],
        ..Default::default()
    })
    .expect("valid");
    let a = household("Lan", "1980-04-02", "+84903123456", "12 Lê Lợi");
    let e = m.explain(&a, &a);
    let counted: Vec<Field> = e.fields.iter().filter(|f| f.counted).map(|f| f.field).collect();
    assert!(counted.contains(&Field::Street) && counted.contains(&Field::Phone));
    for f in [Field::City, Field::Postcode, Field::State] {
        assert!(!counted.contains(&f), "{f:?}");
    }
    let sum: f64 = e.fields.iter().filter(|f| f.counted).map(|f| f.weight).sum();
    assert!((sum - e.total).abs() < 1e-9);
    let mut cfg = m.config().clone();
    cfg.correlated_groups.push(vec![Field::City]);
    assert!(matches!(Model::new(cfg), Err(ConfigError::Groups { .. })));
    let mut cfg = ModelConfig {
        correlated_groups: vec![Vec::new(); 40],
        ..Default::default()
    };
    cfg.correlated_groups.push(vec![Field::Sex]);
    let m = Model::new(cfg).expect("empty groups are harmless");
    assert!(m.score(&a, &a).is_finite());
}
