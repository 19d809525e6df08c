//! Cron schedules as IT teams write them: 5 fields (or 6 with seconds first), weekday 1 =
//! Monday, evaluated in the clinic's time zone (croner; the `cron` crate numbers weekdays from
//! Sunday = 1 and refuses 5 fields).

use croner::Cron;
use jiff::Zoned;
use jiff::tz::TimeZone;

/// Parses a schedule; the error says what is wrong, in words.
pub fn parse(expr: &str) -> Result<Cron, String> {
    let fields = expr.split_whitespace().count();
    if !(5..=6).contains(&fields) {
        return Err(format!(
            "expected a cron expression of 5 fields (minute hour day month weekday) or 6 (seconds first), got {fields}"
        ));
    }
    expr.parse::<Cron>()
        .map_err(|e| format!("invalid cron expression \"{expr}\": {e}"))
}

/// The next time after `now` that `cron` names, in `tz`.
pub fn next_after(cron: &Cron, now: jiff::Timestamp, tz: &TimeZone) -> Option<Zoned> {
    cron.find_next_occurrence(&now.to_zoned(tz.clone()), false).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekday_one_is_monday_and_five_fields_are_taken() {
        let cron = parse("0 9 * * 1").unwrap();
        let tz = TimeZone::get("Asia/Ho_Chi_Minh").unwrap();
        // Sunday 2026-11-22 10:00 in Hanoi → Monday 2026-11-23 09:00 Hanoi time.
        let now: jiff::Timestamp = "2026-11-22T03:00:00Z".parse().unwrap();
        let next = next_after(&cron, now, &tz).unwrap();
        assert_eq!(next.to_string(), "2026-11-23T09:00:00+07:00[Asia/Ho_Chi_Minh]");
        assert_eq!(next.weekday(), jiff::civil::Weekday::Monday);
    }

    #[test]
    fn seconds_are_a_sixth_field_and_nonsense_is_explained() {
        let cron = parse("*/30 * * * * *").unwrap();
        let now: jiff::Timestamp = "2026-11-22T03:00:10Z".parse().unwrap();
        let next = next_after(&cron, now, &TimeZone::UTC).unwrap();
        assert_eq!(next.timestamp().to_string(), "2026-11-22T03:00:30Z");
        assert!(parse("every five minutes").unwrap_err().contains("5 fields"));
        assert!(parse("61 * * * *").is_err());
    }
}
