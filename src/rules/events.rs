//! Events: what a batch changed, in words a rule can name. Pure — the writer hands over each
//! clinical record as written with the record it replaced, and gets back the event, if any.

use super::EventName;

/// A clinical record before a batch touched it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prior {
    pub status: Option<String>,
    /// Its time as a UTC sort key (an appointment's start).
    pub sort_at: Option<String>,
}

/// One change a rule may react to.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub name: EventName,
    pub person_id: String,
    /// What it is about: `kind|source system|record key` (none for a person event).
    pub subject: Option<String>,
    /// The record's code, `system|code`.
    pub code: Option<String>,
    /// The record as stored (JSON), for templates.
    pub record: serde_json::Value,
    /// The record's time as a UTC sort key (an appointment's start).
    pub sort_at: Option<String>,
}

/// The event a clinical record's write makes, given what was stored before (`None`: new).
pub fn detect(
    kind: &str,
    status: Option<&str>,
    sort_at: Option<&str>,
    prior: Option<&Prior>,
) -> Option<EventName> {
    let before = prior.and_then(|p| p.status.as_deref());
    // A status left out by the message keeps the stored one (the store COALESCEs it).
    let now = status.or(before);
    match kind {
        "appointment" => match (before, now) {
            (Some("booked"), Some("booked")) => {
                let moved = match (prior.and_then(|p| p.sort_at.as_deref()), sort_at) {
                    (Some(old), Some(new)) => old != new,
                    _ => false,
                };
                moved.then_some(EventName::AppointmentRescheduled)
            }
            (_, Some("booked")) => Some(EventName::AppointmentBooked),
            (Some(b), Some("cancelled")) if b != "cancelled" => Some(EventName::AppointmentCancelled),
            (Some(b), Some("noshow")) if b != "noshow" => Some(EventName::AppointmentNoShow),
            _ => None,
        },
        "result" => {
            let is_final = |s: Option<&str>| matches!(s, Some("final" | "amended" | "corrected"));
            (is_final(now) && !is_final(before)).then_some(EventName::LabResultFinal)
        }
        "encounter" => {
            (now == Some("finished") && before != Some("finished")).then_some(EventName::EncounterDischarged)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prior(status: &str, at: &str) -> Prior {
        Prior {
            status: Some(status.into()),
            sort_at: Some(at.into()),
        }
    }

    #[test]
    fn appointments_book_move_and_cancel() {
        assert_eq!(
            detect("appointment", Some("booked"), Some("a"), None),
            Some(EventName::AppointmentBooked)
        );
        assert_eq!(
            detect(
                "appointment",
                Some("booked"),
                Some("a"),
                Some(&prior("booked", "a"))
            ),
            None
        );
        assert_eq!(
            detect(
                "appointment",
                Some("booked"),
                Some("b"),
                Some(&prior("booked", "a"))
            ),
            Some(EventName::AppointmentRescheduled)
        );
        assert_eq!(
            detect("appointment", None, Some("b"), Some(&prior("booked", "a"))),
            Some(EventName::AppointmentRescheduled),
            "a reschedule that repeats no status keeps the booked one"
        );
        assert_eq!(
            detect(
                "appointment",
                Some("cancelled"),
                None,
                Some(&prior("booked", "a"))
            ),
            Some(EventName::AppointmentCancelled)
        );
        assert_eq!(
            detect("appointment", Some("cancelled"), None, None),
            None,
            "nothing to cancel"
        );
        assert_eq!(
            detect(
                "appointment",
                Some("booked"),
                None,
                Some(&prior("cancelled", "a"))
            ),
            Some(EventName::AppointmentBooked),
            "re-booked"
        );
    }

    #[test]
    fn a_result_becomes_final_once() {
        assert_eq!(
            detect("result", Some("final"), None, None),
            Some(EventName::LabResultFinal)
        );
        assert_eq!(
            detect("result", Some("final"), None, Some(&prior("preliminary", ""))),
            Some(EventName::LabResultFinal)
        );
        assert_eq!(
            detect("result", Some("corrected"), None, Some(&prior("final", ""))),
            None
        );
        assert_eq!(detect("result", Some("preliminary"), None, None), None);
        assert_eq!(
            detect(
                "encounter",
                Some("finished"),
                None,
                Some(&prior("in-progress", ""))
            ),
            Some(EventName::EncounterDischarged)
        );
    }
}
