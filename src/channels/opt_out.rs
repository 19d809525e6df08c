//! Stop and start words: what a person may reply to stop (or resume) messages.
//!
//! A reply counts only when it is the word alone — "STOP", " stop. ", "/stop" — never when the
//! word is part of a sentence ("don't stop the reminders"). Letters are compared without case
//! and without diacritics, so "HỦY" and "HUY", "Từ chối" and "TU CHOI" are the same word.
//! The list (also in `docs/channels.md`):
//!
//! - stop: STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT (Twilio's list); Vietnamese HUY (hủy,
//!   cancel), DUNG (dừng, stop), TU CHOI (từ chối, refuse); Russian СТОП, ОТПИСАТЬСЯ, ОТПИСКА,
//!   ДОВОЛЬНО; Chinese 退订 / 退訂 and TD (the usual "reply TD to unsubscribe"), 取消订阅,
//!   停止; Telegram's `/stop`.
//! - start: START, UNSTOP, Russian СТАРТ, Telegram's `/start`.

use unicode_normalization::UnicodeNormalization;

use super::WebhookEvent;

const STOP_WORDS: &[&str] = &[
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "HUY",
    "DUNG",
    "TU CHOI",
    "СТОП",
    "ОТПИСАТЬСЯ",
    "ОТПИСКА",
    "ДОВОЛЬНО",
    "退订",
    "退訂",
    "TD",
    "取消订阅",
    "停止",
    "/STOP",
];

const START_WORDS: &[&str] = &["START", "UNSTOP", "СТАРТ", "/START"];

/// What a reply asks for, if it is a stop or start word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    Stop,
    Start,
}

/// Reads a reply as a stop or start word.
pub fn keyword(text: &str) -> Option<Keyword> {
    let word = fold(text);
    if STOP_WORDS.iter().any(|w| fold(w) == word) {
        Some(Keyword::Stop)
    } else if START_WORDS.iter().any(|w| fold(w) == word) {
        Some(Keyword::Start)
    } else {
        None
    }
}

/// The event a reply from `address` makes, if any.
pub fn event(text: &str, address: &str) -> Option<WebhookEvent> {
    let address = address.to_string();
    match keyword(text)? {
        Keyword::Stop => Some(WebhookEvent::OptOut { address }),
        Keyword::Start => Some(WebhookEvent::OptIn { address }),
    }
}

/// Upper case, without diacritics, trimmed of spaces and end punctuation, inner spaces single;
/// a bot command's `@botname` dropped (`/stop@clinic_bot`).
fn fold(text: &str) -> String {
    let text = text.trim();
    let text = match text.split_once('@') {
        Some((command, _)) if command.starts_with('/') => command,
        _ => text,
    };
    let plain: String = text
        .nfd()
        .filter(|c| !is_combining_mark(*c))
        .map(|c| if c == 'đ' || c == 'Đ' { 'D' } else { c })
        .flat_map(char::to_uppercase)
        .collect();
    plain
        .trim_matches(|c: char| c.is_whitespace() || matches!(c, '.' | '!' | '。' | '！'))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Combining diacritical marks (U+0300–U+036F), which NFD splits off Latin and Cyrillic letters.
fn is_combining_mark(c: char) -> bool {
    ('\u{0300}'..='\u{036f}').contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_words_are_matched_whole_without_case_or_diacritics() {
        for word in [
            "STOP",
            " stop ",
            "Stop.",
            "unsubscribe",
            "QUIT",
            "stopall",
            "HỦY",
            "huy",
            "Dừng",
            "từ chối",
            "TU  CHOI",
            "стоп",
            "Отписаться",
            "довольно",
            "退订",
            "退訂",
            "td",
            "/stop",
            "/stop@clinic_bot",
        ] {
            assert_eq!(keyword(word), Some(Keyword::Stop), "{word:?}");
        }
    }

    #[test]
    fn start_words_resume() {
        for word in ["START", "unstop", "/start", "старт"] {
            assert_eq!(keyword(word), Some(Keyword::Start), "{word:?}");
        }
    }

    #[test]
    fn a_sentence_with_a_stop_word_in_it_is_not_an_opt_out() {
        for text in [
            "don't stop the reminders",
            "STOP IT NOW please",
            "thanks",
            "",
            "stopp",
            "/help",
        ] {
            assert_eq!(keyword(text), None, "{text:?}");
        }
    }

    #[test]
    fn the_event_names_the_sender() {
        assert_eq!(
            event("STOP", "+84901234567"),
            Some(WebhookEvent::OptOut {
                address: "+84901234567".into()
            })
        );
        assert_eq!(event("hello", "+84901234567"), None);
    }
}
