//! What the relay checks when a notification falls due, as pure functions: consent, segment,
//! quiet hours, the address a channel sends to, the language chain and the template context.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Value, json};

use super::config::{ClinicInfo, QuietHours};
use crate::channels::AddressKind;
use crate::model::{ConsentDecision, ContactSystem, ProfilePatch, Sex};
use crate::rules::{SegmentConfig, Span, codes_match, parse_clock, parse_sort_key};
use crate::store::{ConsentView, PersonFacts};

/// Whether the person agrees to `category` sends through `channel`. The most specific recorded
/// decision wins — (category, channel), then (any, channel), (category, any), (any, any) — so
/// a STOP on one channel outlasts a general opt-in. Without one, a source system's consent for
/// the category (`scope: marketing`) decides; without that, care messages go and marketing
/// does not (it needs an opt-in).
pub fn consent(
    category: &str,
    channel: &str,
    recorded: &[ConsentView],
    profile: &ProfilePatch,
) -> Result<(), String> {
    let specific = [(category, channel), ("*", channel), (category, "*"), ("*", "*")];
    for (cat, ch) in specific {
        if let Some(c) = recorded.iter().find(|c| c.category == cat && c.channel == ch) {
            // Marketing needs a permit that names marketing: a general "yes" is not an opt-in.
            if c.decision == "permit" && category == "marketing" && cat == "*" {
                continue;
            }
            return match c.decision.as_str() {
                "permit" => Ok(()),
                _ => Err(format!("{category} sends by {channel} refused ({})", c.source)),
            };
        }
    }
    let from_source = profile
        .consents
        .iter()
        .find(|c| c.scope.eq_ignore_ascii_case(category) || c.scope.eq_ignore_ascii_case(channel));
    match (from_source.map(|c| c.decision), category) {
        (Some(ConsentDecision::Permit), _) => Ok(()),
        (Some(ConsentDecision::Deny), _) => Err(format!("{category} refused in the source system")),
        (None, "marketing") => Err("marketing needs an opt-in".into()),
        (None, _) => Ok(()),
    }
}

/// Whether the person is in the rule's segment; the error names the condition that failed.
pub fn segment(
    s: &SegmentConfig,
    facts: &PersonFacts,
    language: Option<&str>,
    now: Timestamp,
    tz: &TimeZone,
) -> Result<(), String> {
    let p = &facts.profile;
    if let Some(range) = &s.age {
        let today = now.to_zoned(tz.clone()).date();
        let age = p
            .birth_date
            .as_ref()
            .and_then(|b| b.as_str().parse::<jiff::civil::Date>().ok())
            .map(|born| {
                let mut years = i32::from(today.year()) - i32::from(born.year());
                if (today.month(), today.day()) < (born.month(), born.day()) {
                    years -= 1;
                }
                years.max(0) as u32
            })
            .ok_or("age unknown")?;
        if range.min.is_some_and(|min| age < min) || range.max.is_some_and(|max| age > max) {
            return Err("outside the age range".into());
        }
    }
    if !s.sex.is_empty() {
        let sex = match p.sex {
            Some(Sex::Female) => "female",
            Some(Sex::Male) => "male",
            Some(Sex::Other) => "other",
            Some(Sex::Unknown) | None => "unknown",
        };
        if !s.sex.iter().any(|x| x == sex) {
            return Err("outside the segment's sex".into());
        }
    }
    if !s.language.is_empty() {
        let lang = language.unwrap_or("");
        if !s.language.iter().any(|l| l.eq_ignore_ascii_case(lang)) {
            return Err("outside the segment's languages".into());
        }
    }
    if !s.diagnosis.is_empty() && !facts.diagnoses.iter().any(|d| codes_match(&s.diagnosis, Some(d))) {
        return Err("no diagnosis of the segment".into());
    }
    if let Some(w) = &s.last_visit {
        let last = facts
            .last_visit
            .as_deref()
            .and_then(parse_sort_key)
            .ok_or("no visit on record")?;
        let span = |t: &Option<String>| t.as_deref().and_then(|t| Span::parse(t).ok());
        let newest = span(&w.from).map(|f| f.before(now, tz));
        let oldest = span(&w.within).or(span(&w.to)).map(|t| t.before(now, tz));
        if newest.is_some_and(|n| last > n) || oldest.is_some_and(|o| last < o) {
            return Err("last visit outside the window".into());
        }
    }
    for tag in &s.tags {
        if !facts.preferences.tags.contains(tag) {
            return Err("a segment tag is missing".into());
        }
    }
    Ok(())
}

/// When quiet hours end, if `now` falls inside them (local time of `tz`).
pub fn quiet_until(q: &QuietHours, now: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
    let (start, end) = (parse_clock(&q.start).ok()?, parse_clock(&q.end).ok()?);
    if start == end {
        return None;
    }
    let local = now.to_zoned(tz.clone());
    let minute = u32::from(local.hour() as u8) * 60 + u32::from(local.minute() as u8);
    let inside = if start < end {
        minute >= start && minute < end
    } else {
        minute >= start || minute < end
    };
    if !inside {
        return None;
    }
    let end_time = jiff::civil::Time::new((end / 60) as i8, (end % 60) as i8, 0, 0).ok()?;
    let mut day = local.date();
    if minute >= end {
        day = day.tomorrow().ok()?;
    }
    day.to_datetime(end_time)
        .to_zoned(tz.clone())
        .ok()
        .map(|z| z.timestamp())
}

/// The address of the person for a channel, if they have one.
pub fn address(kind: AddressKind, facts: &PersonFacts) -> Option<String> {
    let mut contacts: Vec<&crate::model::ContactPoint> = facts.profile.telecom.iter().collect();
    // Preferred first (rank 1 first), mobile before other phones, and never an old one.
    contacts.retain(|c| c.contact_use.as_deref() != Some("old"));
    contacts.sort_by_key(|c| {
        (
            c.rank.unwrap_or(u32::MAX),
            c.contact_use.as_deref() != Some("mobile"),
        )
    });
    let first = |system: ContactSystem| {
        contacts
            .iter()
            .find(|c| c.system == system)
            .map(|c| c.value.clone())
    };
    match kind {
        AddressKind::Email => first(ContactSystem::Email),
        AddressKind::Phone => first(ContactSystem::Phone).filter(|p| p.starts_with('+')),
        AddressKind::Messenger(kind) => facts.preferences.addresses.get(kind).cloned(),
        AddressKind::Any => first(ContactSystem::Phone)
            .or_else(|| first(ContactSystem::Email))
            .or_else(|| Some(String::new())),
    }
}

/// Languages to try: the patient's preference, their profile's language, the clinic's.
pub fn language_chain(facts: &PersonFacts, clinic_default: &str) -> Vec<String> {
    let mut chain = Vec::new();
    for code in [
        facts.preferences.language.as_deref(),
        facts.profile.language.as_deref(),
        Some(clinic_default),
    ]
    .into_iter()
    .flatten()
    {
        if let Some(l) = super::templates::normalize_language(code)
            && !chain.contains(&l)
        {
            chain.push(l);
        }
    }
    chain
}

/// The variables a template reads, in language `lang` (dates are written the way its
/// readers write them).
pub fn context(
    notification_context: &Value,
    facts: &PersonFacts,
    lang: &str,
    clinic: &ClinicInfo,
    link: Option<&str>,
    tz: &TimeZone,
    now: Timestamp,
) -> Value {
    let name = facts.profile.names.first();
    let given = name.and_then(|n| n.given.first().cloned());
    let family = name.and_then(|n| n.family.clone());
    let display = name.and_then(|n| n.text.clone()).or_else(|| {
        let parts: Vec<String> = match lang {
            // Family name first, as these languages write it.
            "vi" | "zh" => family
                .iter()
                .cloned()
                .chain(name.map(|n| n.given.join(" ")))
                .collect(),
            _ => name
                .map(|n| n.given.join(" "))
                .into_iter()
                .chain(family.iter().cloned())
                .collect(),
        };
        let joined = parts
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        (!joined.is_empty()).then_some(joined)
    });
    let record = notification_context.get("record").cloned().unwrap_or(Value::Null);
    let mut ctx = json!({
        "patient": {"name": display, "given": given, "family": family},
        "clinic": clinic,
        "link": link,
        "event": notification_context.get("event"),
    });
    if let Some(start) = record.get("start").and_then(Value::as_str)
        && let Ok(ts) = start.parse::<Timestamp>()
    {
        let local = ts.to_zoned(tz.clone());
        ctx["appointment"] = json!({
            "date": local_date(lang, &local),
            "time": format!("{:02}:{:02}", local.hour(), local.minute()),
            "weekday": weekday(lang, local.weekday()),
            "location": record.get("location"),
            "practitioner": record.get("practitioner"),
            "service": record.pointer("/service/text").or(record.pointer("/service/display")),
        });
    }
    if let Some(last) = notification_context.get("last_visit").and_then(Value::as_str)
        && let Some(at) = parse_sort_key(last)
    {
        let days = (now.as_second() - at.as_second()) / 86_400;
        ctx["recall"] = json!({"months": (days / 30).max(1)});
    }
    ctx
}

fn local_date(lang: &str, z: &jiff::Zoned) -> String {
    let (y, m, d) = (z.year(), z.month(), z.day());
    match lang {
        "zh" => format!("{y}年{m}月{d}日"),
        "ru" => format!("{d:02}.{m:02}.{y}"),
        _ => format!("{d:02}/{m:02}/{y}"),
    }
}

fn weekday(lang: &str, w: jiff::civil::Weekday) -> &'static str {
    let i = w.to_monday_zero_offset() as usize;
    let names: [&str; 7] = match lang {
        "vi" => [
            "Thứ Hai",
            "Thứ Ba",
            "Thứ Tư",
            "Thứ Năm",
            "Thứ Sáu",
            "Thứ Bảy",
            "Chủ Nhật",
        ],
        "ru" => [
            "понедельник",
            "вторник",
            "среда",
            "четверг",
            "пятница",
            "суббота",
            "воскресенье",
        ],
        "zh" => [
            "星期一",
            "星期二",
            "星期三",
            "星期四",
            "星期五",
            "星期六",
            "星期日",
        ],
        _ => [
            "Monday",
            "Tuesday",
            "Wednesday",
            "Thursday",
            "Friday",
            "Saturday",
            "Sunday",
        ],
    };
    names[i]
}

/// The opt-out hint marketing messages end with.
pub fn stop_hint(lang: &str) -> &'static str {
    match lang {
        "vi" => "Trả lời STOP để ngừng nhận tin.",
        "ru" => "Чтобы отписаться, ответьте STOP.",
        "zh" => "回复STOP退订。",
        _ => "Reply STOP to unsubscribe.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Consent;

    fn recorded(category: &str, channel: &str, decision: &str) -> ConsentView {
        ConsentView {
            category: category.into(),
            channel: channel.into(),
            decision: decision.into(),
            source: "api".into(),
            at: "2026-11-23T00:00:00Z".into(),
        }
    }

    #[test]
    fn marketing_needs_an_opt_in_and_a_channel_stop_outlasts_it() {
        let profile = ProfilePatch::default();
        assert!(consent("transactional", "sms", &[], &profile).is_ok());
        assert_eq!(
            consent("marketing", "sms", &[], &profile).unwrap_err(),
            "marketing needs an opt-in"
        );
        let everything = [recorded("*", "*", "permit")];
        assert!(
            consent("marketing", "sms", &everything, &profile).is_err(),
            "a general yes is no marketing opt-in"
        );
        let opted_in = [recorded("marketing", "*", "permit")];
        assert!(consent("marketing", "sms", &opted_in, &profile).is_ok());
        let stopped_sms = [recorded("marketing", "*", "permit"), recorded("*", "sms", "deny")];
        assert!(consent("marketing", "sms", &stopped_sms, &profile).is_err());
        assert!(
            consent("transactional", "sms", &stopped_sms, &profile).is_err(),
            "STOP stops the channel"
        );
        assert!(consent("marketing", "email", &stopped_sms, &profile).is_ok());
        let from_emr = ProfilePatch {
            consents: vec![Consent {
                scope: "marketing".into(),
                decision: ConsentDecision::Permit,
                at: None,
            }],
            ..Default::default()
        };
        assert!(consent("marketing", "sms", &[], &from_emr).is_ok());
    }

    #[test]
    fn a_segment_checks_age_sex_diagnosis_last_visit_and_tags() {
        let doc = crate::config::Document::parse(
            "r.yaml",
            "age: {min: 40, max: 65}\nsex: [female]\ndiagnosis: [E11]\nlast_visit: {from: 3 months, to: 6 months}\ntags: [diabetes]\n",
        )
        .unwrap();
        let seg: SegmentConfig = doc.deserialize().0.unwrap();
        let tz = TimeZone::get("Asia/Ho_Chi_Minh").unwrap();
        let now: Timestamp = "2026-11-23T03:00:00Z".parse().unwrap();
        let mut facts = PersonFacts {
            profile: ProfilePatch {
                birth_date: Some("1975-03-07".to_string().try_into().unwrap()),
                sex: Some(Sex::Female),
                ..Default::default()
            },
            last_visit: Some("2026-07-01T02:00:00Z".into()),
            diagnoses: vec!["http://hl7.org/fhir/sid/icd-10|E11.9".into()],
            ..Default::default()
        };
        facts.preferences.tags = vec!["diabetes".into()];
        assert_eq!(segment(&seg, &facts, Some("vi"), now, &tz), Ok(()));
        let mut young = facts.clone();
        young.profile.birth_date = Some("2001-01-01".to_string().try_into().unwrap());
        assert_eq!(
            segment(&seg, &young, None, now, &tz).unwrap_err(),
            "outside the age range"
        );
        let mut recent = facts.clone();
        recent.last_visit = Some("2026-11-01".into());
        assert_eq!(
            segment(&seg, &recent, None, now, &tz).unwrap_err(),
            "last visit outside the window"
        );
        let mut other = facts.clone();
        other.diagnoses = vec!["icd|E10".into()];
        assert_eq!(
            segment(&seg, &other, None, now, &tz).unwrap_err(),
            "no diagnosis of the segment"
        );
        let mut untagged = facts.clone();
        untagged.preferences.tags.clear();
        assert!(segment(&seg, &untagged, None, now, &tz).is_err());
        let mut male = facts;
        male.profile.sex = Some(Sex::Male);
        assert!(segment(&seg, &male, None, now, &tz).is_err());
    }

    #[test]
    fn quiet_hours_defer_to_their_end_in_local_time() {
        let q = QuietHours {
            start: "21:00".into(),
            end: "08:00".into(),
        };
        let hcm = TimeZone::get("Asia/Ho_Chi_Minh").unwrap();
        // 23:30 in Ho Chi Minh City → 08:00 the next morning.
        let late: Timestamp = "2026-11-23T16:30:00Z".parse().unwrap();
        assert_eq!(
            quiet_until(&q, late, &hcm).unwrap().to_string(),
            "2026-11-24T01:00:00Z"
        );
        // 06:00 → 08:00 the same morning.
        let early: Timestamp = "2026-11-23T23:00:00Z".parse().unwrap();
        assert_eq!(
            quiet_until(&q, early, &hcm).unwrap().to_string(),
            "2026-11-24T01:00:00Z"
        );
        // 10:00 → not quiet.
        let day: Timestamp = "2026-11-24T03:00:00Z".parse().unwrap();
        assert_eq!(quiet_until(&q, day, &hcm), None);
    }

    #[test]
    fn dates_are_written_the_way_each_language_writes_them() {
        let tz = TimeZone::get("Asia/Ho_Chi_Minh").unwrap();
        let ctx = json!({"record": {"start": "2026-11-25T09:00:00+07:00", "location": "P.201"}});
        let facts = PersonFacts::default();
        let now = Timestamp::now();
        let vi = context(&ctx, &facts, "vi", &ClinicInfo::default(), None, &tz, now);
        assert_eq!(vi["appointment"]["date"], "25/11/2026");
        assert_eq!(vi["appointment"]["time"], "09:00");
        assert_eq!(vi["appointment"]["weekday"], "Thứ Tư");
        let zh = context(&ctx, &facts, "zh", &ClinicInfo::default(), None, &tz, now);
        assert_eq!(zh["appointment"]["date"], "2026年11月25日");
    }
}
