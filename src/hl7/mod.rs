//! HL7 v2 for carehub: our own parser, escaping, charsets, ACKs, MLLP
//! framing and file splitting, in pure Rust with no I/O.
//!
//! This room is the front door of the `hl7` module: it declares the
//! sub-modules (`access` is private: it only adds the reading methods of
//! [`Message`]) and re-exports their public API. It must not hold logic of
//! its own (only the corpus test and a tiny JSON reader for tests), and no
//! code in `hl7` may do I/O, log patient data, or drop a segment silently.
//!
//! Typical flow: bytes → [`decode`] → [`split_file`] (files) or
//! [`MllpDecoder`] (network) → [`Message::parse`] → [`Message::get`] with a
//! [`Path`] → [`build_ack`] → [`encode`] → [`encode_frame`].

mod access;
pub mod ack;
pub mod batch;
pub mod charset;
pub mod escape;
pub mod message;
pub mod mllp;
pub mod path;

pub use ack::{AckCode, AckError, build_ack, build_reject_for_raw};
pub use batch::{BatchError, split_file};
pub use charset::{Charset, CharsetError, decode, encode};
pub use escape::{escape, unescape};
pub use message::{Delimiters, Message, MessageType, ParseError, Segment};
pub use mllp::{FrameError, MllpDecoder, encode_frame};
pub use path::{FieldRef, Path, PathError, RelPath};

#[cfg(test)]
pub(crate) mod test_support {
    //! Test helpers: where the third-party corpus is, and a minimal JSON
    //! reader (the crate takes no JSON dependency for this module).

    use std::path::PathBuf;

    /// `$CAREHUB_CORPUS_DIR` or `../shared/data`; None (said loudly) when
    /// absent.
    pub fn corpus_dir() -> Option<PathBuf> {
        let dir =
            PathBuf::from(std::env::var("CAREHUB_CORPUS_DIR").unwrap_or_else(|_| "../shared/data".into()));
        if dir.is_dir() {
            Some(dir)
        } else {
            eprintln!(
                "!!!!! SKIPPED: corpus directory {} not found; set CAREHUB_CORPUS_DIR !!!!!",
                dir.display()
            );
            None
        }
    }

    #[derive(Debug, Clone, PartialEq)]
    pub enum Json {
        Null,
        Bool(bool),
        Number(f64),
        String(String),
        Array(Vec<Json>),
        Object(Vec<(String, Json)>),
    }

    impl Json {
        pub fn parse(s: &str) -> Option<Json> {
            let mut p = Parser {
                s: s.as_bytes(),
                i: 0,
            };
            let v = p.value()?;
            p.ws();
            (p.i == p.s.len()).then_some(v)
        }

        pub fn get(&self, key: &str) -> Option<&Json> {
            match self {
                Json::Object(kv) => kv.iter().find(|(k, _)| k == key).map(|(_, v)| v),
                _ => None,
            }
        }

        pub fn as_str(&self) -> Option<&str> {
            match self {
                Json::String(s) => Some(s),
                _ => None,
            }
        }

        pub fn as_array(&self) -> Option<&[Json]> {
            match self {
                Json::Array(a) => Some(a),
                _ => None,
            }
        }
    }

    struct Parser<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl Parser<'_> {
        fn ws(&mut self) {
            while self.s.get(self.i).is_some_and(|b| b.is_ascii_whitespace()) {
                self.i += 1;
            }
        }

        fn eat(&mut self, lit: &str) -> bool {
            let ok = self.s[self.i..].starts_with(lit.as_bytes());
            if ok {
                self.i += lit.len();
            }
            ok
        }

        fn value(&mut self) -> Option<Json> {
            self.ws();
            match *self.s.get(self.i)? {
                b'{' => {
                    self.i += 1;
                    let mut kv = Vec::new();
                    loop {
                        self.ws();
                        if self.eat("}") {
                            return Some(Json::Object(kv));
                        }
                        if !kv.is_empty() && !self.eat(",") {
                            return None;
                        }
                        self.ws();
                        let k = self.string()?;
                        self.ws();
                        if !self.eat(":") {
                            return None;
                        }
                        kv.push((k, self.value()?));
                    }
                }
                b'[' => {
                    self.i += 1;
                    let mut a = Vec::new();
                    loop {
                        self.ws();
                        if self.eat("]") {
                            return Some(Json::Array(a));
                        }
                        if !a.is_empty() && !self.eat(",") {
                            return None;
                        }
                        a.push(self.value()?);
                    }
                }
                b'"' => self.string().map(Json::String),
                b't' => self.eat("true").then_some(Json::Bool(true)),
                b'f' => self.eat("false").then_some(Json::Bool(false)),
                b'n' => self.eat("null").then_some(Json::Null),
                _ => {
                    let start = self.i;
                    while self.s.get(self.i).is_some_and(|b| b"+-.eE0123456789".contains(b)) {
                        self.i += 1;
                    }
                    let t = std::str::from_utf8(&self.s[start..self.i]).ok()?;
                    t.parse().ok().map(Json::Number)
                }
            }
        }

        fn hex4(&mut self) -> Option<u32> {
            let h = std::str::from_utf8(self.s.get(self.i..self.i + 4)?).ok()?;
            self.i += 4;
            u32::from_str_radix(h, 16).ok()
        }

        fn string(&mut self) -> Option<String> {
            if !self.eat("\"") {
                return None;
            }
            let mut out = Vec::new();
            loop {
                let b = *self.s.get(self.i)?;
                self.i += 1;
                match b {
                    b'"' => return String::from_utf8(out).ok(),
                    b'\\' => {
                        let e = *self.s.get(self.i)?;
                        self.i += 1;
                        let c = match e {
                            b'n' => '\n',
                            b'r' => '\r',
                            b't' => '\t',
                            b'b' => '\u{8}',
                            b'f' => '\u{c}',
                            b'u' => {
                                let mut u = self.hex4()?;
                                if (0xd800..0xdc00).contains(&u) && self.eat("\\u") {
                                    let lo = self.hex4()?;
                                    u = 0x10000 + ((u - 0xd800) << 10) + (lo.checked_sub(0xdc00)?);
                                }
                                char::from_u32(u)?
                            }
                            other => char::from(other),
                        };
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                    _ => out.push(b),
                }
            }
        }
    }

    #[test]
    fn json_reader() {
        let j = Json::parse(r#" {"a": [1, "x\"\\\u00e9\ud83d\ude00", null, true], "b": {}} "#);
        let a = j.as_ref().and_then(|j| j.get("a")).and_then(Json::as_array);
        assert_eq!(a.map(|a| a.len()), Some(4));
        assert_eq!(a.and_then(|a| a[1].as_str()), Some("x\"\\é😀"));
        assert_eq!(Json::parse("[1,"), None);
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::corpus_dir;
    use super::*;
    use std::collections::BTreeMap;
    use std::path::{Path as FsPath, PathBuf};

    fn walk(dir: &FsPath, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<_> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }

    /// Deterministic garbage made of delimiters, escapes, line breaks and
    /// MLLP bytes: nothing may panic, and a parsed message keeps every line.
    #[test]
    fn garbage_never_panics() {
        let alphabet: Vec<char> = "MSHPIDX|^~\\&#\r\n\u{b}\u{1c} aZ09.é\u{feff}".chars().collect();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let d = Delimiters::default();
        let path = Path::parse("PID[2]-3[2].1.2").unwrap_or_else(|e| panic!("{e}"));
        for round in 0..4000 {
            let len = (next() % 60) as usize;
            let mut s = String::new();
            if round % 2 == 0 {
                s.push_str("MSH|^~\\&|");
            }
            s.extend((0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]));
            if let Ok(m) = Message::parse(&s) {
                let body = s.strip_prefix('\u{feff}').unwrap_or(&s);
                let lines = body.split(['\r', '\n']).filter(|l| !l.trim().is_empty()).count();
                assert_eq!(m.segment_count(), lines, "{s:?}");
                let _ = (m.get(&path), m.get_all(&path), m.control_id(), m.message_type());
                let _ = build_ack(&m, AckCode::AE, Some(&AckError::internal("x")), "1", "2");
            }
            let _ = split_file(&s);
            let _ = build_reject_for_raw(&s, &AckError::internal("x"), "1", "2");
            let _ = (unescape(&s, &d), escape(&s, &d));
            let _ = (Path::parse(&s), Path::parse_relative(&s));
            let _ = decode(s.as_bytes(), Charset::Latin1);
            let mut dec = MllpDecoder::new(16);
            dec.extend(s.as_bytes());
            while let Ok(Some(_)) | Err(_) = dec.next_frame() {}
        }
    }

    /// Every corpus file goes through decode → split_file → Message::parse
    /// without a panic; every parsed message keeps all its segments, and in
    /// files where every message parsed, every non-blank line of the file
    /// (outside the FHS/BHS/BTS/FTS envelope) is a segment of some message.
    #[test]
    fn corpus_parses_without_panic() {
        let Some(dir) = corpus_dir() else { return };
        let root = dir.join("hl7v2");
        let mut files = Vec::new();
        walk(&root, &mut files);
        // Metadata files that ship with the corpus are not HL7.
        let meta = |p: &PathBuf| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("csv" | "json" | "md")
            )
        };
        files.retain(|p| !meta(p));
        assert!(!files.is_empty(), "no files under {}", root.display());
        let (mut parsed, mut messages, mut whole_files) = (0usize, 0usize, 0usize);
        let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for file in &files {
            let name = file.strip_prefix(&root).unwrap_or(file).display().to_string();
            let Ok(bytes) = std::fs::read(file) else {
                errors.entry("unreadable file".into()).or_default().push(name);
                continue;
            };
            let text = match decode(&bytes, Charset::Latin1) {
                Ok((t, _)) => t,
                Err(e) => {
                    errors.entry(format!("charset: {e}")).or_default().push(name);
                    continue;
                }
            };
            let msgs = match split_file(&text) {
                Ok(m) => m,
                Err(e) => {
                    errors.entry(format!("batch: {e}")).or_default().push(name);
                    continue;
                }
            };
            let file_lines = text
                .split(['\r', '\n', '\u{b}', '\u{1c}'])
                .map(|l| l.trim_start_matches('\u{feff}'))
                .filter(|l| !l.trim().is_empty())
                .filter(|l| !matches!(l.get(..3), Some("FHS" | "BHS" | "BTS" | "FTS")))
                .count();
            let (mut file_segments, mut all_parsed) = (0, true);
            for (i, m) in msgs.iter().enumerate() {
                messages += 1;
                match Message::parse(m) {
                    Ok(msg) => {
                        parsed += 1;
                        let lines = m.split('\r').filter(|l| !l.trim().is_empty()).count();
                        assert_eq!(msg.segment_count(), lines, "{name} message {}", i + 1);
                        file_segments += msg.segment_count();
                        let _ = (msg.control_id(), msg.message_type(), msg.charset_field());
                    }
                    Err(e) => {
                        all_parsed = false;
                        let reason = match &e {
                            ParseError::BadSegment { .. } => "parse: bad segment line".to_string(),
                            other => format!("parse: {other}"),
                        };
                        eprintln!("  {name} #{}: {e}", i + 1);
                        errors
                            .entry(reason)
                            .or_default()
                            .push(format!("{name} #{}", i + 1));
                    }
                }
            }
            if all_parsed {
                assert_eq!(
                    file_segments, file_lines,
                    "{name}: lines lost between file and messages"
                );
                whole_files += 1;
            }
        }
        eprintln!(
            "corpus: {} files ({whole_files} checked line for line), {messages} messages, \
             {parsed} parsed, {} errors",
            files.len(),
            errors.values().map(Vec::len).sum::<usize>()
        );
        for (reason, who) in &errors {
            eprintln!("  {} x {reason}", who.len());
            for w in who {
                eprintln!("      {w}");
            }
        }
        assert!(parsed > 0);
    }
}
