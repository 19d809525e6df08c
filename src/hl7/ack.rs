//! Building HL7 acknowledgements (ACK: MSH + MSA [+ ERR]) for received
//! messages, including rejects for input that did not even parse.
//!
//! This room only renders ACK text (segments joined by '\r', no MLLP
//! framing). It must not decide whether a message is accepted, do I/O, or
//! put patient data in an ACK: error texts are caller-written reasons, and
//! only header fields (applications, facilities, control id, version,
//! charset) are echoed from the original.

use super::escape::escape;
use super::message::{Delimiters, Message};

/// MSA-1 acknowledgement code.
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckCode {
    /// Application accept.
    AA,
    /// Application error.
    AE,
    /// Application reject.
    AR,
}

impl AckCode {
    pub fn as_str(&self) -> &'static str {
        match self {
            AckCode::AA => "AA",
            AckCode::AE => "AE",
            AckCode::AR => "AR",
        }
    }
}

/// What went wrong, for MSA-3 and ERR. `text` must hold no patient data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckError {
    /// HL7 table 0357: 0 OK, 100 segment sequence error, 101 required
    /// field missing, 102 data type error, 103 table value not found, 200
    /// unsupported message type, 201 unsupported event code, 202
    /// unsupported processing id, 203 unsupported version id, 204 unknown
    /// key identifier, 205 duplicate key, 206 application record locked,
    /// 207 application internal error.
    pub hl7_code: u16,
    pub text: String,
    pub segment: Option<String>,
    pub field: Option<usize>,
}

impl AckError {
    pub fn new(hl7_code: u16, text: impl Into<String>) -> Self {
        AckError {
            hl7_code,
            text: text.into(),
            segment: None,
            field: None,
        }
    }

    /// 207 application internal error.
    pub fn internal(text: impl Into<String>) -> Self {
        AckError::new(207, text)
    }

    /// 101 required field missing, at `segment`-`field`.
    pub fn required_field_missing(segment: &str, field: usize, text: impl Into<String>) -> Self {
        AckError::new(101, text).at(segment, field)
    }

    /// 200 unsupported message type.
    pub fn unsupported_message_type(text: impl Into<String>) -> Self {
        AckError::new(200, text)
    }

    /// 100 segment sequence error (also used for unparseable messages).
    pub fn segment_sequence(text: impl Into<String>) -> Self {
        AckError::new(100, text)
    }

    /// Sets the error location.
    pub fn at(mut self, segment: &str, field: usize) -> Self {
        self.segment = Some(segment.to_string());
        self.field = Some(field);
        self
    }
}

/// The header values an ACK echoes, raw (still escaped) as received.
struct Original {
    d: Delimiters,
    encoding_chars: String,
    sending_app: String,
    sending_fac: String,
    receiving_app: String,
    receiving_fac: String,
    trigger: String,
    control_id: String,
    processing_id: String,
    version: String,
    charset: String,
}

/// True when `version` is before 2.5 (numeric, part by part).
fn before_2_5(version: &str) -> bool {
    let parts: Vec<u32> = version.split('.').map_while(|p| p.trim().parse().ok()).collect();
    !parts.is_empty() && parts.as_slice() < [2, 5].as_slice()
}

fn render(o: &Original, code: AckCode, error: Option<&AckError>, ack_id: &str, ts: &str) -> String {
    let d = &o.d;
    let f = d.field.to_string();
    let c = d.component;
    let e = |s: &str| escape(s, d);
    let msh9 = if o.trigger.is_empty() {
        "ACK".to_string()
    } else {
        format!("ACK{c}{}{c}ACK", e(&o.trigger))
    };
    let processing = if o.processing_id.is_empty() {
        "P"
    } else {
        &o.processing_id
    };
    let version = if o.version.is_empty() { "2.5" } else { &o.version };
    let mut msh = vec![
        format!("MSH{f}{}", o.encoding_chars),
        o.receiving_app.clone(),
        o.receiving_fac.clone(),
        o.sending_app.clone(),
        o.sending_fac.clone(),
        e(ts),
        String::new(),
        msh9,
        e(ack_id),
        processing.to_string(),
        version.to_string(),
    ];
    if !o.charset.is_empty() {
        // msh[k] is MSH-(k + 2); MSH-18 goes at index 16.
        msh.resize(16, String::new());
        msh.push(o.charset.clone());
    }
    let mut segs = vec![msh.join(&f)];
    let mut msa = format!("MSA{f}{}{f}{}", code.as_str(), o.control_id);
    if let Some(err) = error {
        msa.push_str(&format!("{f}{}", e(&err.text)));
    }
    segs.push(msa);
    if let Some(err) = error {
        let seg = err.segment.as_deref().map(e).unwrap_or_default();
        let seq = if err.segment.is_some() { "1" } else { "" };
        let field = err.field.map(|n| n.to_string()).unwrap_or_default();
        let text = e(&err.text);
        let hl7 = err.hl7_code;
        let ver = o.version.split(c).next().unwrap_or("");
        if before_2_5(ver) {
            let code_part = match d.subcomponent {
                Some(s) => format!("{hl7}{s}{text}{s}HL70357"),
                None => hl7.to_string(),
            };
            segs.push(format!("ERR{f}{seg}{c}{seq}{c}{field}{c}{code_part}"));
        } else {
            let loc = if seg.is_empty() && field.is_empty() {
                String::new()
            } else {
                format!("{seg}{c}{seq}{c}{field}")
            };
            segs.push(format!(
                "ERR{f}{f}{loc}{f}{hl7}{c}{text}{c}HL70357{f}E{f}{f}{f}{f}{text}"
            ));
        }
    }
    segs.join("\r")
}

/// The ACK for a parsed message (see the module docs for what is echoed).
pub fn build_ack(
    original: &Message,
    code: AckCode,
    error: Option<&AckError>,
    ack_control_id: &str,
    timestamp: &str,
) -> String {
    let d = original.delimiters().clone();
    let raw = |n: usize| {
        original
            .segments()
            .first()
            .and_then(|s| s.field(n))
            .unwrap_or("")
            .to_string()
    };
    let o = Original {
        encoding_chars: raw(2),
        sending_app: original.sending_application(),
        sending_fac: original.sending_facility(),
        receiving_app: original.receiving_application(),
        receiving_fac: original.receiving_facility(),
        trigger: original.message_type().map(|t| t.trigger).unwrap_or_default(),
        control_id: raw(10).trim().to_string(),
        processing_id: raw(11),
        version: raw(12),
        charset: raw(18),
        d,
    };
    render(&o, code, error, ack_control_id, timestamp)
}

/// An AR for text that could not be parsed as a message: header fields
/// are pulled from its first line when it starts with "MSH" and a
/// plausible field separator; otherwise defaults (`|^~\&`, version 2.5).
pub fn build_reject_for_raw(
    raw_text: &str,
    error: &AckError,
    ack_control_id: &str,
    timestamp: &str,
) -> String {
    let text = raw_text.trim_start_matches(['\u{feff}', '\u{b}', ' ', '\t', '\r', '\n']);
    let first = text.split(['\r', '\n']).next().unwrap_or("");
    let mut o = Original {
        d: Delimiters::default(),
        encoding_chars: Delimiters::default().encoding_chars(),
        sending_app: String::new(),
        sending_fac: String::new(),
        receiving_app: String::new(),
        receiving_fac: String::new(),
        trigger: String::new(),
        control_id: String::new(),
        processing_id: String::new(),
        version: String::new(),
        charset: String::new(),
    };
    let sep = first.strip_prefix("MSH").and_then(|r| r.chars().next());
    if let Some(sep) = sep.filter(|c| !c.is_alphanumeric() && !c.is_whitespace() && !c.is_control()) {
        // parts[n - 1] is MSH-n (parts[0] is "MSH", standing in for MSH-1).
        let parts: Vec<&str> = first.split(sep).collect();
        let get = |n: usize| parts.get(n - 1).copied().unwrap_or("").to_string();
        let enc = get(2);
        if let Ok(d) = Delimiters::from_msh(sep, &enc) {
            o.d = d;
            o.encoding_chars = enc;
            o.sending_app = get(3);
            o.sending_fac = get(4);
            o.receiving_app = get(5);
            o.receiving_fac = get(6);
            o.control_id = get(10);
            o.processing_id = get(11);
            o.version = get(12);
            o.charset = get(18);
        }
    }
    render(&o, AckCode::AR, Some(error), ack_control_id, timestamp)
}

#[cfg(test)]
mod tests {
    use super::super::path::Path;
    use super::*;

    fn parse(s: &str) -> Message {
        Message::parse(s).unwrap_or_else(|e| panic!("{e}: {s:?}"))
    }

    fn get(m: &Message, p: &str) -> Option<String> {
        m.get(&Path::parse(p).unwrap_or_else(|e| panic!("{e}")))
    }

    const ORIG: &str = "MSH|^~\\&|LAB^1.2^ISO|NORTH|CAREHUB|CLINIC|20240101||ORU^R01^ORU_R01|CTRL|T|2.5.1||||||8859/1\rPID|1\r";

    #[test]
    fn accept_swaps_and_echoes() {
        let ack = build_ack(&parse(ORIG), AckCode::AA, None, "ACK1", "20240102030405");
        assert_eq!(
            ack,
            "MSH|^~\\&|CAREHUB|CLINIC|LAB^1.2^ISO|NORTH|20240102030405||ACK^R01^ACK|ACK1|T|2.5.1||||||8859/1\rMSA|AA|CTRL"
        );
        let m = parse(&ack);
        assert_eq!(
            m.message_type().map(|t| t.to_string()).as_deref(),
            Some("ACK^R01")
        );
        assert_eq!(m.charset_field().as_deref(), Some("8859/1"));
        assert_eq!(get(&m, "MSA-2").as_deref(), Some("CTRL"));
    }

    #[test]
    fn error_v25_and_later() {
        let err = AckError::required_field_missing("PID", 3, "PID-3 | missing");
        let ack = build_ack(&parse(ORIG), AckCode::AE, Some(&err), "A2", "2024");
        let m = parse(&ack);
        assert_eq!(get(&m, "MSA-1").as_deref(), Some("AE"));
        assert_eq!(get(&m, "MSA-3").as_deref(), Some("PID-3 | missing"));
        assert_eq!(get(&m, "ERR-2.1").as_deref(), Some("PID"));
        assert_eq!(get(&m, "ERR-2.2").as_deref(), Some("1"));
        assert_eq!(get(&m, "ERR-2.3").as_deref(), Some("3"));
        assert_eq!(get(&m, "ERR-3.1").as_deref(), Some("101"));
        assert_eq!(get(&m, "ERR-3.2").as_deref(), Some("PID-3 | missing"));
        assert_eq!(get(&m, "ERR-3.3").as_deref(), Some("HL70357"));
        assert_eq!(get(&m, "ERR-4").as_deref(), Some("E"));
        assert_eq!(get(&m, "ERR-8").as_deref(), Some("PID-3 | missing"));
        let ack = build_ack(
            &parse(ORIG),
            AckCode::AE,
            Some(&AckError::internal("x")),
            "A",
            "T",
        );
        assert!(ack.ends_with("\rERR|||207^x^HL70357|E||||x"), "{ack}");
    }

    #[test]
    fn error_before_v25_uses_err1() {
        let orig = "MSH|^~\\&|A|B|C|D|2024||ADT^A04|C1|P|2.3.1\r";
        let err = AckError::new(103, "bad & code").at("PV1", 2);
        let m = parse(&build_ack(&parse(orig), AckCode::AE, Some(&err), "A", "T"));
        assert_eq!(m.version().as_deref(), Some("2.3.1"));
        assert_eq!(get(&m, "ERR-1.1").as_deref(), Some("PV1"));
        assert_eq!(get(&m, "ERR-1.3").as_deref(), Some("2"));
        assert_eq!(get(&m, "ERR-1.4.1").as_deref(), Some("103"));
        assert_eq!(get(&m, "ERR-1.4.2").as_deref(), Some("bad & code"));
        assert_eq!(get(&m, "ERR-1.4.3").as_deref(), Some("HL70357"));
        assert!(before_2_5("2.4") && before_2_5("2.1") && !before_2_5("2.5") && !before_2_5("2.10"));
        assert!(!before_2_5("") && !before_2_5("x") && !before_2_5("3"));
    }

    #[test]
    fn custom_delimiters_and_defaults() {
        let orig = "MSH$%~\\&$APP$FAC$$$2024$$ORM%O01$C%9$$\r";
        let ack = build_ack(&parse(orig), AckCode::AA, None, "A", "T");
        assert!(
            ack.starts_with("MSH$%~\\&$$$APP$FAC$T$$ACK%O01%ACK$A$P$2.5\rMSA$AA$C%9"),
            "{ack}"
        );
        let m = parse(&ack);
        assert_eq!(m.control_id().as_deref(), Some("A"));
        let ack = build_ack(&parse("MSH|^~\\&\r"), AckCode::AA, None, "A", "T");
        assert_eq!(ack, "MSH|^~\\&|||||T||ACK|A|P|2.5\rMSA|AA|");
    }

    #[test]
    fn reject_for_raw_text() {
        let err = AckError::segment_sequence("line 3: not an HL7 segment");
        let raw = "\u{b}MSH|^~\\&|LAB|NORTH|HUB|CLINIC|2024||ORU^R01|C77|P|2.4\rgarbage\r";
        let m = parse(&build_reject_for_raw(raw, &err, "R1", "T"));
        assert_eq!(get(&m, "MSA-1").as_deref(), Some("AR"));
        assert_eq!(get(&m, "MSA-2").as_deref(), Some("C77"));
        assert_eq!(m.sending_application(), "HUB");
        assert_eq!(m.receiving_facility(), "NORTH");
        assert_eq!(get(&m, "ERR-1.4.1").as_deref(), Some("100"));
        for junk in ["", "hello", "MSH", "MSHA|", "MSH|^^|x", "ééé"] {
            let ack = build_reject_for_raw(junk, &err, "R2", "T");
            let m = parse(&ack);
            assert_eq!(m.delimiters(), &Delimiters::default(), "{junk}");
            assert_eq!(get(&m, "MSA-1").as_deref(), Some("AR"));
            assert_eq!(m.version().as_deref(), Some("2.5"));
            assert_eq!(get(&m, "ERR-3.1").as_deref(), Some("100"));
        }
    }
}
