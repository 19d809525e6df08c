//! HL7 v2 escape sequences: turning `\F\`, `\X0D\`, `\.br\` ... into text
//! and text back into escaped field content.
//!
//! This room works on one leaf value (already split out of its field) with
//! the delimiters the message declared in MSH-2; the escape character is
//! never assumed to be `\`. It must not split fields, know about charsets
//! (that is `charset`), or fail: malformed input is kept literally, never a
//! panic.
//!
//! Decoding choices (where we differ from other libraries): highlighting
//! `\H\` / `\N\` is removed (python-hl7 turns it into `_`, rust-hl7 keeps
//! it); `\.br\` and `\.sp\` become a newline; locally defined `\Z..\` and
//! character-set switches `\C..\` / `\M..\` are dropped; other formatting
//! commands (`\.fi\`, `\.in+2\`, ...) are unknown and kept literally.
//! Encoding never hex-escapes non-ASCII text (python-hl7 does): non-ASCII is
//! carried by the message charset (MSH-18).

use super::message::Delimiters;

enum Seq {
    Text(char),
    Hex(Vec<u8>),
    Drop,
    Unknown,
}

fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn is_hex(s: &str, lens: &[usize]) -> bool {
    lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn classify(seq: &str, d: &Delimiters) -> Seq {
    let one = |c: Option<char>| c.map_or(Seq::Unknown, Seq::Text);
    match seq {
        "F" => Seq::Text(d.field),
        "S" => Seq::Text(d.component),
        "R" => Seq::Text(d.repetition),
        "E" => one(d.escape),
        "T" => one(d.subcomponent),
        "P" => one(d.truncation),
        ".br" => Seq::Text('\n'),
        "H" | "N" => Seq::Drop,
        _ => {
            if let Some(n) = seq.strip_prefix(".sp")
                && n.bytes().all(|b| b.is_ascii_digit() || b == b'+')
            {
                return Seq::Text('\n');
            }
            if let Some(h) = seq.strip_prefix('X') {
                return hex_bytes(h).map_or(Seq::Unknown, Seq::Hex);
            }
            if seq.starts_with('Z') {
                return Seq::Drop;
            }
            if let Some(h) = seq.strip_prefix('C')
                && is_hex(h, &[4])
            {
                return Seq::Drop;
            }
            if let Some(h) = seq.strip_prefix('M')
                && is_hex(h, &[4, 6])
            {
                return Seq::Drop;
            }
            Seq::Unknown
        }
    }
}

/// Appends pending `\X..\` bytes: as UTF-8 if valid, else as Latin-1.
fn flush(pending: &mut Vec<u8>, out: &mut String) {
    if pending.is_empty() {
        return;
    }
    match std::str::from_utf8(pending) {
        Ok(s) => out.push_str(s),
        Err(_) => out.extend(pending.iter().map(|&b| char::from(b))),
    }
    pending.clear();
}

/// Resolves escape sequences in one raw leaf value. Adjacent `\X..\`
/// sequences are joined before decoding, so a UTF-8 character split over
/// several of them comes out whole. Unterminated or unknown sequences are
/// kept literally.
pub fn unescape(raw: &str, d: &Delimiters) -> String {
    let Some(esc) = d.escape else {
        return raw.to_string();
    };
    if !raw.contains(esc) {
        return raw.to_string();
    }
    let w = esc.len_utf8();
    let mut out = String::with_capacity(raw.len());
    let mut pending = Vec::new();
    let mut rest = raw;
    while let Some(i) = rest.find(esc) {
        if i > 0 {
            flush(&mut pending, &mut out);
            out.push_str(&rest[..i]);
        }
        let after = &rest[i + w..];
        let Some(j) = after.find(esc) else {
            flush(&mut pending, &mut out);
            out.push_str(&rest[i..]);
            return out;
        };
        match classify(&after[..j], d) {
            Seq::Text(c) => {
                flush(&mut pending, &mut out);
                out.push(c);
            }
            Seq::Hex(bytes) => pending.extend(bytes),
            Seq::Drop => {}
            Seq::Unknown => {
                // Keep the escape character; rescan from the next one.
                flush(&mut pending, &mut out);
                out.push(esc);
                rest = after;
                continue;
            }
        }
        rest = &after[j + w..];
    }
    flush(&mut pending, &mut out);
    out.push_str(rest);
    out
}

/// Escapes text for use as one leaf value: the delimiters become `\F\`
/// `\S\` `\R\` `\E\` `\T\` `\P\`, "\n" becomes `\.br\` and "\r" `\X0D\`.
/// When the message declares no escape character nothing can be escaped,
/// so delimiters and line breaks are replaced by a space.
pub fn escape(text: &str, d: &Delimiters) -> String {
    let special = |c: char| {
        c == d.field
            || c == d.component
            || c == d.repetition
            || Some(c) == d.escape
            || Some(c) == d.subcomponent
            || Some(c) == d.truncation
            || c == '\n'
            || c == '\r'
    };
    if !text.contains(special) {
        return text.to_string();
    }
    let Some(esc) = d.escape else {
        return text.chars().map(|c| if special(c) { ' ' } else { c }).collect();
    };
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        let code = if c == d.field {
            "F"
        } else if c == d.component {
            "S"
        } else if c == d.repetition {
            "R"
        } else if c == esc {
            "E"
        } else if Some(c) == d.subcomponent {
            "T"
        } else if Some(c) == d.truncation {
            "P"
        } else if c == '\n' {
            ".br"
        } else if c == '\r' {
            "X0D"
        } else {
            out.push(c);
            continue;
        };
        out.push(esc);
        out.push_str(code);
        out.push(esc);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{Json, corpus_dir};
    use super::*;

    fn d() -> Delimiters {
        Delimiters::default()
    }

    #[test]
    fn unescapes_delimiters_and_formatting() {
        let d = d();
        assert_eq!(unescape("plain", &d), "plain");
        assert_eq!(unescape("a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f", &d), "a|b^c&d~e\\f");
        assert_eq!(
            unescape("one\\.br\\two\\.sp\\three\\.sp2\\", &d),
            "one\ntwo\nthree\n"
        );
        assert_eq!(unescape("\\H\\bold\\N\\ text", &d), "bold text");
        assert_eq!(unescape("a\\Zfoo\\b\\C2842\\c\\M2442\\d\\M244241\\", &d), "abcd");
        assert_eq!(unescape("\\P\\", &d), "\\P\\");
        let v27 = Delimiters {
            truncation: Some('#'),
            ..d.clone()
        };
        assert_eq!(unescape("\\P\\", &v27), "#");
    }

    #[test]
    fn hex_sequences() {
        let d = d();
        assert_eq!(unescape("\\X0D0A\\", &d), "\r\n");
        assert_eq!(unescape("\\XC3A9\\", &d), "é");
        assert_eq!(unescape("\\XC3\\\\XA9\\", &d), "é", "UTF-8 split over sequences");
        assert_eq!(unescape("\\XE9\\t\\XE9\\", &d), "été", "Latin-1 fallback");
        assert_eq!(unescape("\\X\\ \\XABC\\ \\XZZ\\", &d), "\\X\\ \\XABC\\ \\XZZ\\");
    }

    #[test]
    fn malformed_is_literal_never_panics() {
        let d = d();
        for s in [
            "\\",
            "\\\\",
            "a\\",
            "\\F",
            "C:\\temp\\file",
            "\\é\\",
            "é\\Xé\\",
            "\\\\F\\",
            "\\.in+4\\x",
        ] {
            let _ = unescape(s, &d);
        }
        assert_eq!(unescape("C:\\temp\\file", &d), "C:\\temp\\file");
        assert_eq!(unescape("\\\\F\\", &d), "\\|");
        assert_eq!(unescape("a\\b\\F\\", &d), "a\\b|");
        assert_eq!(unescape("\\.in+4\\x", &d), "\\.in+4\\x");
    }

    #[test]
    fn custom_escape_character() {
        let d = match Delimiters::from_msh('^', "!@#$") {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(unescape("a #F# b #S# \\F\\", &d), "a ^ b ! \\F\\");
        assert_eq!(escape("a^b!\\#", &d), "a#F#b#S#\\#E#");
        let none = Delimiters {
            escape: None,
            ..Delimiters::default()
        };
        assert_eq!(unescape("\\F\\", &none), "\\F\\");
        assert_eq!(escape("a|b\nc", &none), "a b c");
    }

    #[test]
    fn escape_round_trips() {
        let d = Delimiters {
            truncation: Some('#'),
            ..d()
        };
        let text = "A|B^C~D\\E&F#G\r\nH é ✓";
        let e = escape(text, &d);
        assert_eq!(e, "A\\F\\B\\S\\C\\R\\D\\E\\E\\T\\F\\P\\G\\X0D\\\\.br\\H é ✓");
        assert_eq!(unescape(&e, &d), text);
        assert_eq!(escape("plain", &d), "plain");
    }

    fn delimiters_from(sep: &str) -> Delimiters {
        let msh = sep.split(' ').next().unwrap_or("");
        let mut chars = msh.chars().skip(3);
        match chars.next() {
            Some(f) => Delimiters::from_msh(f, &chars.collect::<String>()).unwrap_or_default(),
            None => Delimiters::default(),
        }
    }

    /// Runs the escape vectors of python-hl7 and rust-hl7. Cases where our
    /// documented behaviour differs are listed with what we produce instead.
    #[test]
    fn third_party_escape_vectors() {
        let Some(dir) = corpus_dir() else { return };
        // (suite, op, input, our output, why we differ)
        let differ: [(&str, &str, &str, &str, &str); 6] = [
            (
                "python",
                "unescape",
                "\\H\\text\\N\\",
                "text",
                "we remove highlighting; python-hl7 maps \\H\\ \\N\\ to '_'",
            ),
            (
                "python-app_map",
                "unescape",
                "\\H\\text\\N\\",
                "text",
                "no application-defined map: highlighting is removed",
            ),
            (
                "python",
                "escape",
                "áéíóú",
                "áéíóú",
                "we never hex-escape non-ASCII: MSH-18 carries it",
            ),
            (
                "python",
                "escape",
                "äsdf",
                "äsdf",
                "we never hex-escape non-ASCII: MSH-18 carries it",
            ),
            (
                "rust",
                "decode",
                "Don't escape this \\H\\highlighted text\\N\\ please",
                "Don't escape this highlighted text please",
                "we remove highlighting; rust-hl7 keeps it",
            ),
            (
                "rust",
                "decode",
                "Don't escape this custom sequence \\Z1234\\ please",
                "Don't escape this custom sequence  please",
                "we drop locally defined \\Z..\\ sequences; rust-hl7 keeps them",
            ),
        ];
        let mut checked = 0;
        let mut differing = 0;
        for (suite, file) in [
            ("python", "python-hl7-escape-vectors/escape_vectors.json"),
            ("rust", "rust-hl7-escape-vectors/escape_vectors.json"),
        ] {
            let path = dir.join("suites").join(file);
            let Ok(text) = std::fs::read_to_string(&path) else {
                panic!("escape vectors missing: {}", path.display());
            };
            let Some(json) = Json::parse(&text) else {
                panic!("cannot parse {}", path.display());
            };
            let cases = json.get("cases").and_then(Json::as_array).unwrap_or(&[]);
            assert!(!cases.is_empty(), "{file} has no cases");
            for case in cases {
                let s = |k: &str| case.get(k).and_then(Json::as_str).unwrap_or("");
                let (op, input, expected) = (s("op"), s("input"), s("expected"));
                let d = delimiters_from(
                    case.get("separators")
                        .and_then(Json::as_str)
                        .unwrap_or("MSH|^~\\&"),
                );
                let tag = match case.get("app_map") {
                    Some(Json::Object(_)) => "python-app_map",
                    _ => suite,
                };
                let got = match op {
                    "unescape" | "decode" => unescape(input, &d),
                    "escape" | "encode" => escape(input, &d),
                    other => panic!("unknown op {other}"),
                };
                let known = differ
                    .iter()
                    .find(|(t, o, i, _, _)| *t == tag && *o == op && *i == input);
                match known {
                    Some((_, _, _, ours, why)) => {
                        assert_eq!(&got, ours, "{tag} {op} {input:?} ({why})");
                        assert_ne!(got, expected);
                        differing += 1;
                    }
                    None => assert_eq!(got, expected, "{tag} {op} {input:?}"),
                }
                checked += 1;
            }
        }
        assert_eq!(differing, differ.len(), "every listed difference must be seen");
        eprintln!("escape vectors: {checked} cases, {differing} documented differences");
    }
}
