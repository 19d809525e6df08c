//! Character sets: bytes on the wire to Rust text and back, driven by
//! MSH-18 (HL7 table 0211).
//!
//! This room finds MSH-18 in raw bytes (it is ASCII in every supported
//! charset), decodes strictly with the declared charset, and encodes
//! replies. It must not parse messages beyond that one field, and its
//! errors must never contain message bytes (only a charset name and an
//! offset).
//!
//! Mapping notes: "ISO IR87" / "ISO IR159" (JIS X 0208 / 0212) are mapped
//! to Shift_JIS, the common single-byte-compatible transport for JIS text;
//! senders using true ISO 2022 escapes will fail strict decoding.
//! "8859/1" decodes as windows-1252 (WHATWG's superset: 0x80-0x9F become
//! the curly quotes Windows senders mean). GB2312 and GBK decode as
//! GB 18030, their superset. "UNICODE" is taken as UTF-8.

use encoding_rs::{DecoderResult, EncoderResult, Encoding};
use thiserror::Error;

/// A supported character set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Charset {
    Utf8,
    Ascii,
    /// ISO 8859-1 ("8859/1").
    Latin1,
    /// ISO 8859-n for n in 2..=9 and 15 ("8859/n"). Other numbers behave
    /// as Latin1.
    Iso8859(u8),
    Gb18030,
    Big5,
    EucKr,
    ShiftJis,
    /// windows-125n, n in 1250..=1258. Other numbers behave as 1252.
    Windows(u16),
}

/// Why bytes could not be decoded. Never holds message bytes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CharsetError {
    #[error("MSH-18 names a character set we do not support: '{0}'")]
    Unsupported(String),
    #[error("the message is not valid {} (MSH-18): first bad byte at offset {byte_offset}", charset.hl7_name())]
    Invalid { charset: Charset, byte_offset: usize },
}

impl Charset {
    /// Parses an HL7 table 0211 name, or a common non-standard one,
    /// case-insensitively. None when unknown.
    pub fn from_hl7(name: &str) -> Option<Charset> {
        let n = name.trim().to_ascii_uppercase();
        let n = n.as_str();
        let iso = |num: &str| -> Option<Charset> {
            match num.parse::<u8>().ok()? {
                1 => Some(Charset::Latin1),
                k @ (2..=9 | 15) => Some(Charset::Iso8859(k)),
                _ => None,
            }
        };
        let win = |num: &str| -> Option<Charset> {
            let k = num.parse::<u16>().ok()?;
            (1250..=1258).contains(&k).then_some(Charset::Windows(k))
        };
        match n {
            "ASCII" | "US-ASCII" => return Some(Charset::Ascii),
            "UNICODE UTF-8" | "UNICODE" | "UTF-8" | "UTF8" => return Some(Charset::Utf8),
            "LATIN1" | "LATIN-1" => return Some(Charset::Latin1),
            "GB 18030-2000" | "GB18030" | "GB 18030" | "GB2312" | "GBK" => {
                return Some(Charset::Gb18030);
            }
            "BIG-5" | "BIG5" => return Some(Charset::Big5),
            "KS X 1001" | "EUC-KR" => return Some(Charset::EucKr),
            "ISO IR87" | "ISO IR159" | "SHIFT_JIS" | "SHIFT-JIS" | "SJIS" => {
                return Some(Charset::ShiftJis);
            }
            _ => {}
        }
        if let Some(num) = n.strip_prefix("8859/") {
            return iso(num);
        }
        for p in ["ISO-8859-", "ISO8859-", "ISO_8859-", "ISO 8859-"] {
            if let Some(num) = n.strip_prefix(p) {
                return iso(num);
            }
        }
        for p in ["WINDOWS-", "CP"] {
            if let Some(num) = n.strip_prefix(p) {
                return win(num);
            }
        }
        None
    }

    /// The table 0211 name to put in MSH-18 (windows-125n has none in the
    /// table; its usual label is returned).
    pub fn hl7_name(&self) -> &'static str {
        match self {
            Charset::Utf8 => "UNICODE UTF-8",
            Charset::Ascii => "ASCII",
            Charset::Latin1 => "8859/1",
            Charset::Iso8859(n) => match n {
                2 => "8859/2",
                3 => "8859/3",
                4 => "8859/4",
                5 => "8859/5",
                6 => "8859/6",
                7 => "8859/7",
                8 => "8859/8",
                9 => "8859/9",
                15 => "8859/15",
                _ => "8859/1",
            },
            Charset::Gb18030 => "GB 18030-2000",
            Charset::Big5 => "BIG-5",
            Charset::EucKr => "KS X 1001",
            Charset::ShiftJis => "ISO IR87",
            Charset::Windows(n) => match n {
                1250 => "WINDOWS-1250",
                1251 => "WINDOWS-1251",
                1253 => "WINDOWS-1253",
                1254 => "WINDOWS-1254",
                1255 => "WINDOWS-1255",
                1256 => "WINDOWS-1256",
                1257 => "WINDOWS-1257",
                1258 => "WINDOWS-1258",
                _ => "WINDOWS-1252",
            },
        }
    }

    /// The encoding_rs encoding used for this charset (ASCII uses
    /// windows-1252 plus a strict ASCII check on decode and '?' on encode).
    pub fn encoding(&self) -> &'static Encoding {
        use encoding_rs::*;
        match self {
            Charset::Utf8 => UTF_8,
            Charset::Ascii | Charset::Latin1 => WINDOWS_1252,
            Charset::Iso8859(n) => match n {
                2 => ISO_8859_2,
                3 => ISO_8859_3,
                4 => ISO_8859_4,
                5 => ISO_8859_5,
                6 => ISO_8859_6,
                7 => ISO_8859_7,
                8 => ISO_8859_8,
                // WHATWG maps ISO 8859-9 to its superset windows-1254.
                9 => WINDOWS_1254,
                15 => ISO_8859_15,
                _ => WINDOWS_1252,
            },
            Charset::Gb18030 => GB18030,
            Charset::Big5 => BIG5,
            Charset::EucKr => EUC_KR,
            Charset::ShiftJis => SHIFT_JIS,
            Charset::Windows(n) => match n {
                1250 => WINDOWS_1250,
                1251 => WINDOWS_1251,
                1253 => WINDOWS_1253,
                1254 => WINDOWS_1254,
                1255 => WINDOWS_1255,
                1256 => WINDOWS_1256,
                1257 => WINDOWS_1257,
                1258 => WINDOWS_1258,
                _ => WINDOWS_1252,
            },
        }
    }
}

/// The first repetition of MSH-18 in raw bytes, if the bytes hold an MSH
/// segment at the start of a line. Returns the (trimmed) bytes.
fn find_msh18(bytes: &[u8]) -> Option<&[u8]> {
    let start = (0..bytes.len().saturating_sub(3)).find(|&i| {
        bytes[i..].starts_with(b"MSH")
            && (i == 0 || matches!(bytes[i - 1], b'\r' | b'\n' | 0x0b | b' ' | b'\t'))
    })?;
    let line = &bytes[start + 3..];
    let line = &line[..line
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(line.len())];
    let (&sep, rest) = line.split_first()?;
    let mut fields = rest.split(|&b| b == sep);
    let enc = fields.next()?;
    // `fields` now yields MSH-3, MSH-4, ...: MSH-18 is the 16th.
    let msh18 = fields.nth(15)?;
    let rep = match enc.get(1) {
        Some(&r) if r != sep => msh18.split(|&b| b == r).next().unwrap_or(msh18),
        _ => msh18,
    };
    Some(rep.trim_ascii())
}

/// Decodes strictly; on failure returns the offset of the first bad byte.
fn decode_strict(bytes: &[u8], charset: Charset) -> Result<String, CharsetError> {
    let invalid = |byte_offset| CharsetError::Invalid { charset, byte_offset };
    match charset {
        Charset::Utf8 => {
            return std::str::from_utf8(bytes)
                .map(str::to_string)
                .map_err(|e| invalid(e.valid_up_to()));
        }
        Charset::Ascii => {
            if let Some(i) = bytes.iter().position(|b| !b.is_ascii()) {
                return Err(invalid(i));
            }
            return Ok(bytes.iter().map(|&b| char::from(b)).collect());
        }
        _ => {}
    }
    let mut decoder = charset.encoding().new_decoder_without_bom_handling();
    let cap = decoder
        .max_utf8_buffer_length_without_replacement(bytes.len())
        .unwrap_or(bytes.len().saturating_mul(3));
    let mut out = String::with_capacity(cap);
    let mut read_total = 0;
    loop {
        let (result, read) =
            decoder.decode_to_string_without_replacement(&bytes[read_total..], &mut out, true);
        read_total += read;
        match result {
            DecoderResult::InputEmpty => return Ok(out),
            DecoderResult::OutputFull => out.reserve(bytes.len() - read_total + 16),
            DecoderResult::Malformed(bad, extra) => {
                let offset = read_total.saturating_sub(usize::from(bad) + usize::from(extra));
                return Err(invalid(offset));
            }
        }
    }
}

/// Decodes a message file's bytes. Strips a UTF-8 BOM, reads MSH-18 (first
/// repetition): a supported name decodes strictly with that charset, an
/// unknown name is [`CharsetError::Unsupported`]. With no MSH-18, valid
/// UTF-8 is UTF-8 and anything else is decoded (leniently) with `default`.
pub fn decode(bytes: &[u8], default: Charset) -> Result<(String, Charset), CharsetError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let declared = find_msh18(bytes).filter(|n| !n.is_empty());
    if let Some(name) = declared {
        let name: String = String::from_utf8_lossy(name)
            .chars()
            .take(40)
            .map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' })
            .collect();
        let charset = Charset::from_hl7(&name).ok_or(CharsetError::Unsupported(name))?;
        // A sender that declares ASCII or a Western single-byte set but sends multi-byte UTF-8
        // is common (an EMR upgraded, its MSH-18 not). Valid UTF-8 with non-ASCII bytes is
        // practically never real Latin-1 text, so it is read as what it is.
        if matches!(
            charset,
            Charset::Ascii | Charset::Latin1 | Charset::Windows(1252) | Charset::Iso8859(15)
        ) && !bytes.is_ascii()
            && let Ok(s) = std::str::from_utf8(bytes)
        {
            return Ok((s.to_string(), Charset::Utf8));
        }
        return Ok((decode_strict(bytes, charset)?, charset));
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Ok((s.to_string(), Charset::Utf8));
    }
    let text = match default {
        Charset::Ascii => bytes
            .iter()
            .map(|&b| if b.is_ascii() { char::from(b) } else { '\u{fffd}' })
            .collect(),
        _ => default
            .encoding()
            .decode_without_bom_handling(bytes)
            .0
            .into_owned(),
    };
    Ok((text, default))
}

/// Encodes text; characters the charset cannot hold become '?'.
pub fn encode(text: &str, charset: Charset) -> Vec<u8> {
    match charset {
        Charset::Utf8 => return text.as_bytes().to_vec(),
        Charset::Ascii => {
            return text
                .chars()
                .map(|c| if c.is_ascii() { c as u8 } else { b'?' })
                .collect();
        }
        _ => {}
    }
    let mut encoder = charset.encoding().new_encoder();
    let mut out = Vec::with_capacity(text.len() + 16);
    let mut rest = text;
    loop {
        let (result, read) = encoder.encode_from_utf8_to_vec_without_replacement(rest, &mut out, true);
        rest = &rest[read..];
        match result {
            EncoderResult::InputEmpty => return out,
            EncoderResult::OutputFull => out.reserve(rest.len() * 4 + 16),
            EncoderResult::Unmappable(_) => out.push(b'?'),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn utf8_bytes_under_a_latin1_label_are_read_as_utf8() {
        let msg = "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5|||||VNM|8859/1\rPID|1||1||Nguyễn^Lan\r";
        let (text, cs) = decode(msg.as_bytes(), Charset::Latin1).unwrap();
        assert_eq!(cs, Charset::Utf8);
        assert!(text.contains("Nguyễn"));
        // Real Latin-1 bytes (not valid UTF-8) still decode as Latin-1.
        let mut latin = b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5|||||FRA|8859/1\rPID|1||1||M".to_vec();
        latin.push(0xFC);
        latin.extend_from_slice(b"ller\r");
        let (text, cs) = decode(&latin, Charset::Utf8).unwrap();
        assert_eq!(cs, Charset::Latin1);
        assert!(text.contains("Müller"));
    }

    use super::*;

    fn msg(msh18: &str, body: &[u8]) -> Vec<u8> {
        let mut v =
            format!("MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5||||||{msh18}\rPID|1||X||").into_bytes();
        v.extend_from_slice(body);
        v.push(b'\r');
        v
    }

    #[test]
    fn names() {
        let cases = [
            ("ASCII", Charset::Ascii),
            ("8859/1", Charset::Latin1),
            ("8859/2", Charset::Iso8859(2)),
            ("8859/15", Charset::Iso8859(15)),
            ("unicode utf-8", Charset::Utf8),
            ("UNICODE", Charset::Utf8),
            ("utf8", Charset::Utf8),
            ("GB 18030-2000", Charset::Gb18030),
            ("GBK", Charset::Gb18030),
            ("gb2312", Charset::Gb18030),
            ("BIG-5", Charset::Big5),
            ("KS X 1001", Charset::EucKr),
            ("ISO IR87", Charset::ShiftJis),
            ("ISO IR159", Charset::ShiftJis),
            ("ISO-8859-1", Charset::Latin1),
            ("iso-8859-5", Charset::Iso8859(5)),
            ("Latin1", Charset::Latin1),
            ("WINDOWS-1251", Charset::Windows(1251)),
            ("cp1251", Charset::Windows(1251)),
            ("WINDOWS-1258", Charset::Windows(1258)),
        ];
        for (name, want) in cases {
            assert_eq!(Charset::from_hl7(name), Some(want), "{name}");
        }
        for bad in [
            "",
            "8859/10",
            "8859/x",
            "UNICODE UTF-16",
            "EBCDIC",
            "WINDOWS-1249",
            "CP99999999",
        ] {
            assert_eq!(Charset::from_hl7(bad), None, "{bad}");
        }
        for c in [
            Charset::Utf8,
            Charset::Latin1,
            Charset::Iso8859(7),
            Charset::Big5,
            Charset::Windows(1250),
        ] {
            assert_eq!(Charset::from_hl7(c.hl7_name()), Some(c));
        }
        assert_eq!(Charset::Windows(1251).encoding(), encoding_rs::WINDOWS_1251);
    }

    #[test]
    fn decodes_by_msh18() {
        let bytes = msg("8859/1", b"M\xfcller");
        let (text, cs) = decode(&bytes, Charset::Utf8).must();
        assert_eq!(cs, Charset::Latin1);
        assert!(text.contains("Müller"));
        let bytes = msg("UNICODE UTF-8~8859/1", "Müller".as_bytes());
        let (text, cs) = decode(&bytes, Charset::Latin1).must();
        assert_eq!(cs, Charset::Utf8);
        assert!(text.contains("Müller"));
        let bytes = msg("8859/5", b"\xbc\xd0\xe0\xd8\xef");
        assert!(decode(&bytes, Charset::Utf8).must().0.contains("Мария"));
        let bytes = msg("", "Müller".as_bytes());
        assert_eq!(decode(&bytes, Charset::Latin1).must().1, Charset::Utf8);
        let bytes = msg("", b"M\xfcller");
        let (text, cs) = decode(&bytes, Charset::Latin1).must();
        assert_eq!(cs, Charset::Latin1);
        assert!(text.contains("Müller"));
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend(msg("UNICODE UTF-8", b"x"));
        assert!(decode(&bom, Charset::Utf8).must().0.starts_with("MSH|"));
    }

    #[test]
    fn decode_errors_carry_no_bytes() {
        let bytes = msg("UNICODE UTF-8", b"M\xfcller");
        let e = decode(&bytes, Charset::Latin1).err();
        let offset = bytes.iter().position(|&b| b == 0xfc).unwrap_or(0);
        assert_eq!(
            e,
            Some(CharsetError::Invalid {
                charset: Charset::Utf8,
                byte_offset: offset
            })
        );
        let bytes = msg("ASCII", b"M\xfcller");
        let offset = bytes.iter().position(|&b| b == 0xfc).unwrap_or(0);
        assert!(
            matches!(decode(&bytes, Charset::Utf8), Err(CharsetError::Invalid { charset: Charset::Ascii, byte_offset }) if byte_offset == offset)
        );
        let bytes = msg("KS X 1001", b"\xb0\xa1\xff\xff");
        assert!(matches!(
            decode(&bytes, Charset::Utf8),
            Err(CharsetError::Invalid {
                charset: Charset::EucKr,
                ..
            })
        ));
        let bytes = msg("EBCDIC\x01", b"M\xfcller");
        let e = decode(&bytes, Charset::Utf8)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("'EBCDIC?'") && !e.contains("ller"), "{e}");
    }

    #[test]
    fn odd_inputs_do_not_panic() {
        for b in [
            &b""[..],
            b"MSH",
            b"MSH|",
            b"\xEF\xBB\xBFMSH",
            b"xxMSH|^~\\&",
            b"\xff\xfe",
        ] {
            let _ = decode(b, Charset::Latin1);
        }
        assert_eq!(
            find_msh18(b"FHS|^~\\&\rMSH|^~\\&||||||||||||||||8859/2\r"),
            Some(&b"8859/2"[..])
        );
    }

    #[test]
    fn encodes_with_question_marks() {
        assert_eq!(encode("Müller ✓", Charset::Latin1), b"M\xfcller ?");
        assert_eq!(encode("Müller", Charset::Ascii), b"M?ller");
        assert_eq!(encode("Müller", Charset::Utf8), "Müller".as_bytes());
        assert_eq!(
            encode("Мария ü", Charset::Windows(1251)),
            b"\xcc\xe0\xf0\xe8\xff ?"
        );
        let gb = encode("中文", Charset::Gb18030);
        assert_eq!(decode_strict(&gb, Charset::Gb18030).ok().as_deref(), Some("中文"));
    }

    trait OrDefault {
        fn must(self) -> (String, Charset);
    }
    impl OrDefault for Result<(String, Charset), CharsetError> {
        fn must(self) -> (String, Charset) {
            match self {
                Ok(v) => v,
                Err(e) => panic!("decode failed: {e}"),
            }
        }
    }
}
