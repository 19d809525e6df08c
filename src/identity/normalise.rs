//! Text normalisation shared by every comparator and blocking key.
//!
//! The same person's name reaches the hub typed by different people on different systems:
//! `Nguyễn Thị Đào`, `NGUYEN THI DAO`, `nguyen thi  dao`; `Иванов`, `Ivanov`; `O'Brien`,
//! `OBRIEN`. Comparators must see one spelling for all of these, otherwise every field
//! comparison starts from a spurious disagreement. Normalisation therefore:
//!
//! 1. decomposes compatibility forms (NFKD: full-width Latin, ligatures) and drops the
//!    combining marks that result (tone marks, horns, breves, cedillas …), so Vietnamese
//!    `ơ`/`ư`/`ế` become `o`/`u`/`e`;
//! 2. lower-cases;
//! 3. maps the Latin letters that carry no decomposable mark (`đ`, `ø`, `ł`, `ß`, `æ` …);
//! 4. transliterates Cyrillic to Latin with the ICAO Doc 9303 table, the one printed in
//!    Russian and Ukrainian passports, so that a record keyed in from a passport in Latin
//!    meets the one typed in Cyrillic (other romanisations such as `Yuri`/`Iurii` are left
//!    to the phonetic code, see [`super::phonetic`]);
//! 5. keeps Han characters (and any other script's letters) as they are: Han names are
//!    compared exactly, per character, since each character is a morpheme and a string
//!    similarity tuned on alphabets says nothing about them;
//! 6. removes apostrophes (`O'Brien` = `OBrien`), turns every other punctuation or space run
//!    into one separator.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Is `c` a Han ideograph (CJK unified ideographs and their extensions)?
pub fn is_han(c: char) -> bool {
    matches!(
        c as u32,
        0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2A6DF | 0x2A700..=0x2EBEF
            | 0x30000..=0x3134F
    )
}

/// Normalises free text into lower-case tokens separated by single spaces (see the module
/// documentation for the steps). Never fails: unknown symbols become separators.
pub fn normalise(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut pending_space = false;
    for c in input.nfkd() {
        for l in c.to_lowercase() {
            if is_combining_mark(l) {
                continue;
            }
            if is_apostrophe(l) {
                // Joined, not split: `o'brien` and `obrien` are the same name.
                continue;
            }
            match fold(l) {
                Folded::Separator => pending_space = true,
                Folded::Text(t) => {
                    if t.is_empty() {
                        continue; // a letter with no Latin sound (soft sign): no separator
                    }
                    if pending_space && !out.is_empty() {
                        out.push(' ');
                    }
                    pending_space = false;
                    out.push_str(t);
                }
                Folded::Char(ch) => {
                    if pending_space && !out.is_empty() {
                        out.push(' ');
                    }
                    pending_space = false;
                    out.push(ch);
                }
            }
        }
    }
    out
}

/// [`normalise`] with the separators removed: the form used for equality and string
/// similarity, so that `mary ann`, `mary-ann` and `maryann` compare equal.
pub fn compact(input: &str) -> String {
    normalise(input).chars().filter(|c| *c != ' ').collect()
}

fn is_apostrophe(c: char) -> bool {
    matches!(
        c,
        '\'' | '\u{2019}' | '\u{2018}' | '\u{02BC}' | '\u{02BB}' | '`' | '\u{00B4}'
    )
}

enum Folded {
    Separator,
    Char(char),
    Text(&'static str),
}

/// The folded form of one lower-case, mark-free character.
fn fold(c: char) -> Folded {
    if c.is_ascii_alphanumeric() {
        return Folded::Char(c);
    }
    if c.is_ascii() {
        return Folded::Separator; // ASCII punctuation, space or control
    }
    if let Some(s) = latin_special(c).or_else(|| cyrillic(c)) {
        return Folded::Text(s);
    }
    if c.is_alphanumeric() {
        // Han and every other script are kept as they are.
        Folded::Char(c)
    } else {
        Folded::Separator
    }
}

/// Latin letters whose diacritic is not a combining mark under NFKD.
fn latin_special(c: char) -> Option<&'static str> {
    Some(match c {
        'đ' | 'ð' | 'ɖ' => "d",
        'ø' => "o",
        'ł' => "l",
        'ß' => "ss",
        'æ' => "ae",
        'œ' => "oe",
        'þ' => "th",
        'ı' => "i",
        'ħ' => "h",
        'ŧ' => "t",
        'ŋ' => "ng",
        'ĸ' => "k",
        'ƒ' => "f",
        'ǥ' => "g",
        _ => return None,
    })
}

/// Cyrillic → Latin, ICAO Doc 9303 (2015). Letters with a breve or diaeresis (`й`, `ё`,
/// `ї`, `ў`) arrive here already stripped of it by NFKD, which gives the ICAO result.
fn cyrillic(c: char) -> Option<&'static str> {
    Some(match c {
        'а' => "a",
        'б' => "b",
        'в' => "v",
        'г' => "g",
        'ґ' => "g",
        'д' => "d",
        'е' => "e",
        'є' => "ie",
        'ж' => "zh",
        'з' => "z",
        'и' => "i",
        'і' => "i",
        'к' => "k",
        'л' => "l",
        'м' => "m",
        'н' => "n",
        'о' => "o",
        'п' => "p",
        'р' => "r",
        'с' => "s",
        'т' => "t",
        'у' => "u",
        'ф' => "f",
        'х' => "kh",
        'ц' => "ts",
        'ч' => "ch",
        'ш' => "sh",
        'щ' => "shch",
        'ъ' => "ie",
        'ы' => "y",
        'ь' => "",
        'э' => "e",
        'ю' => "iu",
        'я' => "ia",
        // South Slavic letters.
        'ђ' => "dj",
        'ј' => "j",
        'љ' => "lj",
        'њ' => "nj",
        'ћ' => "c",
        'џ' => "dz",
        'ѕ' => "dz",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vietnamese_diacritics_and_d_bar() {
        assert_eq!(normalise("Nguyễn Thị Đào"), "nguyen thi dao");
        assert_eq!(normalise("Trương Văn Phước"), "truong van phuoc");
        assert_eq!(normalise("Lê Thị Hồng Nhung"), "le thi hong nhung");
        assert_eq!(normalise("ĐẶNG ƯỚC"), "dang uoc");
    }

    #[test]
    fn cyrillic_transliteration() {
        assert_eq!(normalise("Иванов"), "ivanov");
        assert_eq!(normalise("Юрий Щербаков"), "iurii shcherbakov");
        assert_eq!(normalise("Пётр Хрущёв"), "petr khrushchev");
        assert_eq!(normalise("Наталья"), "natalia");
        assert_eq!(normalise("Ярослава Цой"), "iaroslava tsoi");
        assert_eq!(normalise("Олександр Їжак"), "oleksandr izhak");
    }

    #[test]
    fn han_kept_per_character() {
        assert_eq!(normalise("王 小明"), "王 小明");
        assert_eq!(compact("王小明"), "王小明");
        assert!(normalise("王").chars().all(is_han));
    }

    #[test]
    fn punctuation_and_spaces_collapse() {
        assert_eq!(normalise("  O'Brien,   Mary-Ann "), "obrien mary ann");
        assert_eq!(compact("Mary-Ann"), "maryann");
        assert_eq!(normalise("ＪＯＨＮ"), "john");
        assert_eq!(normalise("Müller ß"), "muller ss");
    }

    #[test]
    fn odd_input_never_panics() {
        for s in [
            "", " ", "---", "\u{0301}", "\u{200B}", "🙂", "\0", "İ", "ǅ", "\u{FFFF}",
        ] {
            let n = normalise(s);
            assert!(!n.starts_with(' ') && !n.ends_with(' '));
            assert!(!n.contains("  "));
        }
        assert_eq!(normalise("İstanbul"), "istanbul");
    }
}
