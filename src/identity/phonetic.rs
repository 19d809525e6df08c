//! A compact phonetic code: a NYSIIS-like consonant skeleton over the transliterated name.
//!
//! Why not plain Soundex or NYSIIS: the names this hub sees come through several
//! romanisations (`Iurii`/`Yuri`, `Aleksandr`/`Alexander`, `Ivanov`/`Iwanow`,
//! `Tsoi`/`Tzoi`, `Mikhail`/`Mihail`) as well as clerks' phonetic slips
//! (`Kathryn`/`Catherine`). NYSIIS keeps a placeholder for every vowel, so `Aleksandr` and
//! `Alexander` differ; Soundex lumps whole consonant classes and truncates to four symbols,
//! which makes it too coarse to be worth a comparison level. The code here:
//!
//! * folds the transliteration digraphs first (`shch`/`sch`/`sh` → S, `zh` → J, `kh` → h,
//!   `ts`/`tz`/`z` → S, `x` → KS, `w` → V, `ph` → F, `th` → T, `ck`/`q`/hard `c` → K, soft
//!   `c` → S);
//! * keeps a vowel (or `y`) only as the first symbol, written `A` whatever it was, so that
//!   `Iurii`, `Yuri` and `Ouri` start alike;
//! * drops every other vowel and every non-initial `h`, but a dropped vowel still separates
//!   two equal consonants (`nana` → `NN`), only directly repeated symbols collapse.
//!
//! It is a weak level of the name comparison: it rescues pairs that string similarity
//! misses, it is never the only evidence.

/// The phonetic code of a name (any normalised text; only its ASCII letters count).
/// `None` when there is no ASCII letter, e.g. a Han name, which has no such code.
pub fn phonetic_code(name: &str) -> Option<String> {
    let mut s: Vec<u8> = name.bytes().filter(u8::is_ascii_lowercase).collect();
    if s.is_empty() {
        return None;
    }
    // Silent or variant beginnings.
    for (from, to) in [
        (&b"mac"[..], &b"mc"[..]),
        (b"kn", b"n"),
        (b"wr", b"r"),
        (b"ps", b"s"),
        (b"pf", b"f"),
        (b"gn", b"n"),
        (b"x", b"s"),
    ] {
        if s.starts_with(from) {
            s.splice(..from.len(), to.iter().copied());
            break;
        }
    }

    let mut out = String::with_capacity(s.len());
    let mut last: Option<u8> = None;
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        let (symbols, used): (&[u8], usize) = if rest.starts_with(b"shch") {
            (b"S", 4)
        } else if rest.starts_with(b"sch") {
            (b"S", 3)
        } else if rest.starts_with(b"tch") {
            (b"C", 3)
        } else if rest.starts_with(b"dzh") {
            (b"J", 3)
        } else if rest.starts_with(b"sh") {
            (b"S", 2)
        } else if rest.starts_with(b"ch") {
            (b"C", 2)
        } else if rest.starts_with(b"ph") {
            (b"F", 2)
        } else if rest.starts_with(b"kh") {
            (if i == 0 { b"H" } else { b"" }, 2)
        } else if rest.starts_with(b"zh") || rest.starts_with(b"dj") {
            (b"J", 2)
        } else if rest.starts_with(b"gh") {
            (b"G", 2)
        } else if rest.starts_with(b"th") {
            (b"T", 2)
        } else if rest.starts_with(b"ts") || rest.starts_with(b"tz") {
            (b"S", 2)
        } else if rest.starts_with(b"ck") {
            (b"K", 2)
        } else {
            let c = rest[0];
            let next = rest.get(1).copied();
            let sym: &[u8] = match c {
                b'a' | b'e' | b'i' | b'o' | b'u' | b'y' => {
                    if out.is_empty() {
                        b"A"
                    } else {
                        // Dropped, but it separates equal consonants.
                        last = None;
                        b""
                    }
                }
                b'h' => {
                    if i == 0 {
                        b"H"
                    } else {
                        b""
                    }
                }
                b'x' => b"KS",
                b'q' => b"K",
                b'c' => {
                    if matches!(next, Some(b'e' | b'i' | b'y')) {
                        b"S"
                    } else {
                        b"K"
                    }
                }
                b'w' => b"V",
                b'z' => b"S",
                b'b' => b"B",
                b'd' => b"D",
                b'f' => b"F",
                b'g' => b"G",
                b'j' => b"J",
                b'k' => b"K",
                b'l' => b"L",
                b'm' => b"M",
                b'n' => b"N",
                b'p' => b"P",
                b'r' => b"R",
                b's' => b"S",
                b't' => b"T",
                b'v' => b"V",
                _ => b"",
            };
            (sym, 1)
        };
        for &sym in symbols {
            if last != Some(sym) {
                out.push(char::from(sym));
                last = Some(sym);
            }
        }
        i += used;
    }
    if out.is_empty() { None } else { Some(out) }
}

#[cfg(test)]
mod tests {
    use super::super::normalise::compact;
    use super::*;

    fn code(s: &str) -> Option<String> {
        phonetic_code(&compact(s))
    }

    #[test]
    fn romanisation_variants_share_a_code() {
        assert_eq!(code("Aleksandr"), code("Alexander"));
        assert_eq!(code("Iurii"), code("Yuri"));
        assert_eq!(code("Юрий"), code("Yuri"));
        assert_eq!(code("Ivanov"), code("Iwanow"));
        assert_eq!(code("Tsoi"), code("Tzoi"));
        assert_eq!(code("Mikhail"), code("Mihail"));
        assert_eq!(code("Khrushchev"), code("Хрущёв"));
        assert_eq!(code("Catherine"), code("Kathryn"));
        assert_eq!(code("Matthew"), code("Mathew"));
        assert_eq!(code("Nguyễn"), code("Nguyen"));
        assert_eq!(code("Phạm"), code("Fam"));
    }

    #[test]
    fn different_names_differ() {
        assert_ne!(code("Smith"), code("Jones"));
        assert_ne!(code("Nguyen"), code("Tran"));
        assert_ne!(code("nana"), code("na"));
        assert_eq!(code("Aleksandr").as_deref(), Some("ALKSNDR"));
    }

    #[test]
    fn no_code_without_latin_letters() {
        assert_eq!(code("王小明"), None);
        assert_eq!(code(""), None);
        assert_eq!(phonetic_code("123"), None);
        assert_eq!(code("h").as_deref(), Some("H"));
    }
}
