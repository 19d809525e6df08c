//! The console's own strings in English, Vietnamese, Russian and Chinese, in one table.
//!
//! Only the console's words are here: data (connector names, statuses as stored, patient
//! values) is shown as it is. A page picks the language from the `carehub_lang` cookie (the
//! picker), else from `Accept-Language`, else English. A unit test checks that every string
//! a template asks for is in the table, in every language.

use std::collections::BTreeMap;

use super::strings::STRINGS;

/// The cookie the language picker sets.
pub const LANG_COOKIE: &str = "carehub_lang";

/// A language the console speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    Vi,
    Ru,
    Zh,
}

impl Lang {
    pub const ALL: [Lang; 4] = [Lang::En, Lang::Vi, Lang::Ru, Lang::Zh];

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Vi => "vi",
            Lang::Ru => "ru",
            Lang::Zh => "zh",
        }
    }

    /// Its own name, for the picker.
    pub fn name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Vi => "Tiếng Việt",
            Lang::Ru => "Русский",
            Lang::Zh => "中文",
        }
    }

    /// `vi`, `vi-VN`, `zh-Hans-CN`… (the primary subtag decides).
    pub fn parse(tag: &str) -> Option<Lang> {
        let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        Lang::ALL.into_iter().find(|l| l.code() == primary)
    }

    fn column(self) -> usize {
        self as usize
    }

    /// Every string in this language, by key.
    pub fn strings(self) -> BTreeMap<&'static str, &'static str> {
        STRINGS
            .iter()
            .map(|(key, texts)| (*key, texts[self.column()]))
            .collect()
    }
}

/// The first language of an `Accept-Language` header the console speaks, by preference.
pub fn from_accept_language(header: &str) -> Option<Lang> {
    let mut ranked: Vec<(f32, usize, Lang)> = header
        .split(',')
        .enumerate()
        .filter_map(|(i, part)| {
            let mut bits = part.split(';');
            let lang = Lang::parse(bits.next()?)?;
            let q = bits
                .find_map(|b| b.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            (q > 0.0).then_some((q, i, lang))
        })
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    ranked.first().map(|r| r.2)
}

/// The picker's choices.
pub fn choices() -> Vec<serde_json::Value> {
    Lang::ALL
        .iter()
        .map(|l| serde_json::json!({"code": l.code(), "name": l.name()}))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_preferred_known_language() {
        assert_eq!(from_accept_language("vi-VN,vi;q=0.9,en;q=0.8"), Some(Lang::Vi));
        assert_eq!(from_accept_language("de-DE, ru;q=0.5, en;q=0.7"), Some(Lang::En));
        assert_eq!(from_accept_language("zh-Hans-CN"), Some(Lang::Zh));
        assert_eq!(from_accept_language("de, fr;q=0.5"), None);
        assert_eq!(from_accept_language("ru;q=0, vi;q=0.1"), Some(Lang::Vi));
    }

    #[test]
    fn every_string_a_template_asks_for_is_here_in_every_language() {
        let keys: std::collections::BTreeSet<&str> = STRINGS.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys.len(), STRINGS.len(), "a key is listed twice");
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/console");
        let read = |sub: &str, ext: &str| -> Vec<String> {
            std::fs::read_dir(format!("{dir}/{sub}"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == ext))
                .map(|p| std::fs::read_to_string(p).unwrap())
                .collect()
        };
        let mut asked = 0;
        // Templates ask with `t.key`; handlers with `t["key"]`.
        for text in read("templates", "html") {
            for (i, _) in text.match_indices("t.") {
                if text[..i]
                    .chars()
                    .last()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
                {
                    continue;
                }
                let key: String = text[i + 2..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                    .collect();
                asked += 1;
                assert!(keys.contains(key.as_str()), "t.{key} is not in the string table");
            }
        }
        for text in read(".", "rs") {
            for (i, _) in text.match_indices("t[\"") {
                let key: String = text[i + 3..].chars().take_while(|c| *c != '"').collect();
                if key.is_empty() || key.contains('{') {
                    continue;
                }
                asked += 1;
                assert!(
                    keys.contains(key.as_str()),
                    "t[\"{key}\"] is not in the string table"
                );
            }
        }
        assert!(asked > 50, "{asked} strings asked for");
        for (key, texts) in STRINGS {
            assert!(
                texts.iter().all(|t| !t.trim().is_empty()),
                "{key} has an empty translation"
            );
        }
    }
}
