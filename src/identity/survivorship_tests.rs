use super::*;
use crate::model::{ContactPoint, HumanName};

fn patch(json: serde_json::Value) -> ProfilePatch {
    serde_json::from_value(json).expect("a valid patch")
}

fn rules(yaml: &str) -> Survivorship {
    Survivorship::new(serde_saphyr::from_str(yaml).expect("valid survivorship YAML"))
}

struct Sources(Vec<(i64, &'static str, &'static str, ProfilePatch)>);

impl Sources {
    fn states(&self) -> Vec<SourceState<'_>> {
        self.0
            .iter()
            .map(|(id, system, at, patch)| SourceState {
                record_id: *id,
                system,
                at,
                message_id: *id,
                patch,
            })
            .collect()
    }
}

/// EMR (oldest), LIS, then the booking system (newest), disagreeing on most fields.
fn three_sources() -> Sources {
    Sources(vec![
        (
            1,
            "EMR^CLINIC",
            "2026-01-01T08:00:00Z",
            patch(serde_json::json!({
                "names": [{"family": "Nguyễn", "given": ["Thị", "Lan"]}],
                "birth_date": "1985-03-07", "sex": "female",
                "telecom": [{"system": "phone", "value": "+84903000001"}],
            })),
        ),
        (
            2,
            "LIS",
            "2026-02-01T08:00:00Z",
            patch(serde_json::json!({
                "names": [{"family": "NGUYEN", "given": ["THI", "LAN"]}],
                "birth_date": "1985-07-03", "sex": "female",
            })),
        ),
        (
            3,
            "BOOKING",
            "2026-03-01T08:00:00Z",
            patch(serde_json::json!({
                "names": [{"family": "Nguyen", "given": ["Lan"]}],
                "sex": "male",
                "telecom": [{"system": "phone", "value": "+84903000002"}],
            })),
        ),
    ])
}

#[test]
fn most_recent_takes_the_newest_value_and_never_an_empty_one() {
    let s = three_sources();
    let g = Survivorship::default().golden(&s.states());
    assert_eq!(
        g.sex,
        Some(crate::model::Sex::Male),
        "the booking system spoke last"
    );
    // The booking system states no birth date: the LIS's, the newest stated, survives.
    assert_eq!(g.birth_date.as_ref().map(|b| b.as_str()), Some("1985-07-03"));
    assert_eq!(g.names[0].family.as_deref(), Some("Nguyen"));
    assert_eq!(
        g.names.len(),
        3,
        "every source's name is kept, the winner's first"
    );
    let phones: Vec<&str> = g.telecom.iter().map(|t| t.value.as_str()).collect();
    assert_eq!(phones, ["+84903000002", "+84903000001"]);
}

#[test]
fn source_priority_prefers_the_trusted_source_even_when_older() {
    let s = three_sources();
    let r = rules(
        "sources: [EMR, LIS]\nfields:\n  birth_date: source_priority\n  names: {rule: source_priority, keep: winner}\n",
    );
    let (g, chosen) = r.derive(&s.states());
    // "EMR" names the sending application of "EMR^CLINIC".
    assert_eq!(g.birth_date.as_ref().map(|b| b.as_str()), Some("1985-03-07"));
    assert_eq!(chosen["birth_date"], vec![1]);
    assert_eq!(
        g.names,
        vec![HumanName {
            family: Some("Nguyễn".into()),
            given: vec!["Thị".into(), "Lan".into()],
            ..HumanName::default()
        }]
    );
    // Fields without a rule keep the default.
    assert_eq!(g.sex, Some(crate::model::Sex::Male));
}

#[test]
fn source_priority_falls_back_to_unlisted_sources_by_recency() {
    let s = three_sources();
    let r = rules("fields:\n  telecom: {rule: source_priority, sources: [LIS], keep: winner}\n");
    // The LIS states no phone: the most recent of the others wins.
    let g = r.golden(&s.states());
    let phones: Vec<&str> = g.telecom.iter().map(|t| t.value.as_str()).collect();
    assert_eq!(phones, ["+84903000002"]);
}

#[test]
fn most_frequent_outvotes_a_newer_value_and_ties_go_to_the_newest() {
    let s = three_sources();
    let (g, chosen) = rules("fields: {sex: most_frequent, birth_date: most_frequent}").derive(&s.states());
    assert_eq!(g.sex, Some(crate::model::Sex::Female), "two sources say female");
    assert_eq!(chosen["sex"], vec![2, 1], "both supporting records, newest first");
    // One vote each: the newest stated birth date.
    assert_eq!(g.birth_date.as_ref().map(|b| b.as_str()), Some("1985-07-03"));
}

#[test]
fn consents_are_decided_per_purpose() {
    let s = Sources(vec![
        (
            1,
            "EMR",
            "2026-01-01T00:00:00Z",
            patch(serde_json::json!({"consents": [
                {"scope": "sms", "decision": "deny"}, {"scope": "marketing", "decision": "permit"}]})),
        ),
        (
            2,
            "BOOKING",
            "2026-02-01T00:00:00Z",
            patch(serde_json::json!({"consents": [{"scope": "sms", "decision": "permit"}]})),
        ),
    ]);
    let g = Survivorship::default().golden(&s.states());
    let decision = |scope: &str| g.consents.iter().find(|c| c.scope == scope).map(|c| c.decision);
    assert_eq!(decision("sms"), Some(crate::model::ConsentDecision::Permit));
    assert_eq!(decision("marketing"), Some(crate::model::ConsentDecision::Permit));
    let g = rules("sources: [EMR]\nfields: {consents: source_priority}").golden(&s.states());
    let sms = g.consents.iter().find(|c| c.scope == "sms").map(|c| c.decision);
    assert_eq!(sms, Some(crate::model::ConsentDecision::Deny));
}

#[test]
fn identifiers_are_all_kept_and_one_source_is_its_own_golden_record() {
    let s = Sources(vec![
        (
            7,
            "EMR",
            "2026-01-01T00:00:00Z",
            patch(
                serde_json::json!({"identifiers": [{"system": "EMR", "value": "1"}],
                "deceased_at": "2026-01-01"}),
            ),
        ),
        (
            8,
            "LIS",
            "2026-01-02T00:00:00Z",
            patch(serde_json::json!({"identifiers": [{"system": "LIS", "value": "9"}]})),
        ),
    ]);
    let states = s.states();
    let g = Survivorship::default().golden(&states);
    assert_eq!(g.identifiers.len(), 2);
    assert_eq!(g.deceased, Some(true), "a death date implies death");
    let (one, chosen) = Survivorship::default().derive(&states[..1]);
    assert_eq!(one.identifiers.len(), 1);
    assert_eq!(one.deceased, Some(true));
    assert_eq!(chosen["identifiers"], vec![7]);
}

#[test]
fn overlay_replaces_what_a_source_restates_and_keeps_what_it_leaves_out() {
    let mut stored = patch(serde_json::json!({
        "identifiers": [{"system": "EMR", "value": "1"}],
        "telecom": [{"system": "phone", "value": "+84903000001"}],
        "sex": "female", "language": "vi"}));
    stored.overlay(&patch(serde_json::json!({
        "identifiers": [{"system": "EMR", "value": "2"}],
        "telecom": [{"system": "phone", "value": "+84903000009"}],
        "sex": "male"})));
    assert_eq!(stored.identifiers.len(), 2, "identifiers accumulate");
    assert_eq!(
        stored.telecom,
        vec![ContactPoint {
            system: crate::model::ContactSystem::Phone,
            value: "+84903000009".into(),
            contact_use: None,
            rank: None,
        }]
    );
    assert_eq!(stored.sex, Some(crate::model::Sex::Male));
    assert_eq!(stored.language.as_deref(), Some("vi"), "not restated, not erased");
}

#[test]
fn configuration_reads_both_forms_and_reports_what_cannot_work() {
    let c: SurvivorshipConfig = serde_saphyr::from_str(
        "default: most_frequent\nfields:\n  sex: most_recent\n  names: {rule: source_priority, sources: [EMR], keep: winner}\n",
    )
    .expect("valid");
    assert_eq!(c.default, Rule::MostFrequent);
    assert_eq!(c.fields[&SurvivingField::Names].sources, vec!["EMR".to_string()]);
    assert!(c.problems().is_empty());

    let bad = serde_saphyr::from_str::<SurvivorshipConfig>("fields: {sex: newest}").unwrap_err();
    assert!(bad.to_string().contains("most_recent"), "{bad}");
    let bad = serde_saphyr::from_str::<SurvivorshipConfig>("fields: {eye_colour: most_recent}").unwrap_err();
    assert!(bad.to_string().contains("eye_colour"), "{bad}");
    let bad = serde_saphyr::from_str::<SurvivorshipConfig>("fields: {sex: {rule: most_recent, order: 1}}")
        .unwrap_err();
    assert!(bad.to_string().contains("order"), "{bad}");

    let c: SurvivorshipConfig =
        serde_saphyr::from_str("fields: {birth_date: source_priority, sex: {rule: most_recent, keep: all}}")
            .expect("parses");
    let problems: Vec<String> = c.problems().into_iter().map(|(f, _)| f).collect();
    assert_eq!(problems, ["fields.birth_date", "fields.sex.keep"]);
}
