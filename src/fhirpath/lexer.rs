//! Tokenizer for FHIRPath expressions: turns source text into positioned tokens.
//!
//! It must not interpret meaning (no precedence, no evaluation) and must never panic on
//! any input: every malformed construct becomes a `FhirPathError::Parse` with a byte position.

use super::FhirPathError;

/// One lexical token.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// Identifier (plain or backtick-delimited); `true` when delimited.
    Ident(String, bool),
    Str(String),
    /// Number literal text (integer or decimal).
    Num(String),
    /// Date/time literal text without the leading `@`.
    DateTime(String),
    /// `%name` environment variable.
    Var(String),
    /// `$this`, `$index`, `$total`.
    Special(String),
    /// Operator or punctuation.
    Sym(&'static str),
}

/// A token with the byte offset where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub pos: usize,
}

fn err(position: usize, message: impl Into<String>) -> FhirPathError {
    FhirPathError::Parse {
        position,
        message: message.into(),
    }
}

const SYMS: [&str; 20] = [
    "<=", ">=", "!=", "!~", "(", ")", "[", "]", "{", "}", ".", ",", "=", "~", "<", ">", "+", "-", "*", "/",
];

/// Tokenize the whole source.
pub fn tokenize(src: &str) -> Result<Vec<Token>, FhirPathError> {
    let chars: Vec<(usize, char)> = src.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let at = |i: usize| chars.get(i).map(|c| c.1);
    let pos_of = |i: usize| chars.get(i).map_or(src.len(), |c| c.0);
    while let Some(c) = at(i) {
        let pos = pos_of(i);
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == Some('/') {
            while let Some(c) = at(i) {
                if c == '\n' {
                    break;
                }
                i += 1;
            }
        } else if c == '/' && at(i + 1) == Some('*') {
            i += 2;
            loop {
                match at(i) {
                    None => return Err(err(pos, "unterminated comment")),
                    Some('*') if at(i + 1) == Some('/') => {
                        i += 2;
                        break;
                    }
                    Some(_) => i += 1,
                }
            }
        } else if c == '\'' || c == '`' {
            let (s, next) = read_quoted(&chars, i, c, pos)?;
            i = next;
            out.push(Token {
                tok: if c == '`' {
                    Tok::Ident(s, true)
                } else {
                    Tok::Str(s)
                },
                pos,
            });
        } else if c.is_ascii_digit() {
            let start = i;
            while at(i).is_some_and(|c| c.is_ascii_digit()) {
                i += 1;
            }
            if at(i) == Some('.') && at(i + 1).is_some_and(|c| c.is_ascii_digit()) {
                i += 1;
                while at(i).is_some_and(|c| c.is_ascii_digit()) {
                    i += 1;
                }
            }
            let text: String = chars[start..i].iter().map(|c| c.1).collect();
            out.push(Token {
                tok: Tok::Num(text),
                pos,
            });
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while at(i).is_some_and(|c| c.is_alphanumeric() || c == '_') {
                i += 1;
            }
            let text: String = chars[start..i].iter().map(|c| c.1).collect();
            out.push(Token {
                tok: Tok::Ident(text, false),
                pos,
            });
        } else if c == '@' {
            i += 1;
            let start = i;
            while at(i).is_some_and(|c| c.is_ascii_alphanumeric() || "-:.+".contains(c)) {
                // A '.' must be followed by a digit to belong to fractional seconds.
                if at(i) == Some('.') && !at(i + 1).is_some_and(|c| c.is_ascii_digit()) {
                    break;
                }
                i += 1;
            }
            let text: String = chars[start..i].iter().map(|c| c.1).collect();
            if text.is_empty() {
                return Err(err(pos, "empty date/time literal"));
            }
            out.push(Token {
                tok: Tok::DateTime(text),
                pos,
            });
        } else if c == '%' || c == '$' {
            i += 1;
            let name = match at(i) {
                Some(q @ ('\'' | '`')) => {
                    let (s, next) = read_quoted(&chars, i, q, pos)?;
                    i = next;
                    s
                }
                _ => {
                    let start = i;
                    while at(i).is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-') {
                        i += 1;
                    }
                    chars[start..i].iter().map(|c| c.1).collect()
                }
            };
            if name.is_empty() {
                return Err(err(pos, format!("expected a name after '{c}'")));
            }
            out.push(Token {
                tok: if c == '%' {
                    Tok::Var(name)
                } else {
                    Tok::Special(name)
                },
                pos,
            });
        } else if c == '|' || c == '&' {
            out.push(Token {
                tok: Tok::Sym(if c == '|' { "|" } else { "&" }),
                pos,
            });
            i += 1;
        } else {
            let two: String = [Some(c), at(i + 1)].iter().flatten().collect();
            let sym = SYMS
                .iter()
                .find(|s| s.len() == 2 && **s == two)
                .or_else(|| SYMS.iter().find(|s| s.len() == 1 && s.starts_with(c)));
            match sym {
                Some(s) => {
                    i += s.len();
                    out.push(Token {
                        tok: Tok::Sym(s),
                        pos,
                    });
                }
                None => return Err(err(pos, format!("unexpected character '{c}'"))),
            }
        }
    }
    Ok(out)
}

fn read_quoted(
    chars: &[(usize, char)],
    mut i: usize,
    quote: char,
    pos: usize,
) -> Result<(String, usize), FhirPathError> {
    let mut s = String::new();
    i += 1;
    loop {
        let Some(&(_, c)) = chars.get(i) else {
            return Err(err(pos, "unterminated string or identifier"));
        };
        i += 1;
        if c == quote {
            return Ok((s, i));
        }
        if c != '\\' {
            s.push(c);
            continue;
        }
        let Some(&(_, e)) = chars.get(i) else {
            return Err(err(pos, "unterminated escape"));
        };
        i += 1;
        match e {
            'n' => s.push('\n'),
            'r' => s.push('\r'),
            't' => s.push('\t'),
            'f' => s.push('\u{c}'),
            'u' => {
                let hex: String = chars.iter().skip(i).take(4).map(|c| c.1).collect();
                let code = u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 4)
                    .and_then(char::from_u32)
                    .ok_or_else(|| err(pos, "bad \\u escape"))?;
                s.push(code);
                i += 4;
            }
            other => s.push(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        tokenize(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn basic_tokens() {
        assert_eq!(
            toks("name.where(use != 'x\\'y')"),
            vec![
                Tok::Ident("name".into(), false),
                Tok::Sym("."),
                Tok::Ident("where".into(), false),
                Tok::Sym("("),
                Tok::Ident("use".into(), false),
                Tok::Sym("!="),
                Tok::Str("x'y".into()),
                Tok::Sym(")"),
            ]
        );
    }

    #[test]
    fn numbers_dates_comments() {
        assert_eq!(
            toks("1.5 // c\n @2014-01-01T10:00 /* x */ %resource $this"),
            vec![
                Tok::Num("1.5".into()),
                Tok::DateTime("2014-01-01T10:00".into()),
                Tok::Var("resource".into()),
                Tok::Special("this".into()),
            ]
        );
        assert_eq!(toks("1.abs()")[0], Tok::Num("1".into()));
    }

    #[test]
    fn errors_not_panics() {
        for bad in ["'abc", "/* x", "`a", "#", "@", "'\\u12'", "%"] {
            assert!(tokenize(bad).is_err(), "{bad}");
        }
    }
}
