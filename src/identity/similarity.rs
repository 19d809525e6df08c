//! String similarity primitives: Jaro–Winkler and a bounded edit distance.
//!
//! Both are written here rather than taken from a crate because the hot path compares
//! pre-normalised `char` slices (stored once in [`super::prepare::Prepared`]) and must not
//! allocate: the flags of Jaro live on the stack for strings up to 64 characters, and the
//! edit distance is only ever asked "is it within k", which is answered in O(k·n) with an
//! early exit instead of a full O(n·m) table.

/// Jaro similarity in `[0, 1]`. Two empty strings are identical (1.0); one empty string
/// against a non-empty one shares nothing (0.0).
pub fn jaro<T: PartialEq>(a: &[T], b: &[T]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    if a.len() <= 64 && b.len() <= 64 {
        jaro_short(a, b)
    } else {
        let mut fa = vec![false; a.len()];
        let mut fb = vec![false; b.len()];
        jaro_long(a, b, &mut fa, &mut fb)
    }
}

fn window(a: usize, b: usize) -> usize {
    (a.max(b) / 2).saturating_sub(1)
}

fn jaro_score(matches: usize, half_transpositions: usize, la: usize, lb: usize) -> f64 {
    if matches == 0 {
        return 0.0;
    }
    let m = matches as f64;
    let t = (half_transpositions / 2) as f64;
    (m / la as f64 + m / lb as f64 + (m - t) / m) / 3.0
}

/// Both strings up to 64 elements: the matched flags are bits of two words (the hot path:
/// names, streets and cities).
fn jaro_short<T: PartialEq>(a: &[T], b: &[T]) -> f64 {
    let w = window(a.len(), b.len());
    let (mut fa, mut fb) = (0u64, 0u64);
    let mut matches = 0usize;
    for (i, x) in a.iter().enumerate() {
        let lo = i.saturating_sub(w);
        let hi = (i + w + 1).min(b.len());
        let Some(candidates) = b.get(lo..hi) else { continue };
        for (off, y) in candidates.iter().enumerate() {
            let j = lo + off;
            if fb & (1 << j) == 0 && *y == *x {
                fa |= 1 << i;
                fb |= 1 << j;
                matches += 1;
                break;
            }
        }
    }
    if matches == 0 {
        return 0.0;
    }
    let mut half_transpositions = 0usize;
    let mut rest_b = fb;
    let mut rest_a = fa;
    while rest_a != 0 {
        let i = rest_a.trailing_zeros() as usize;
        let j = rest_b.trailing_zeros() as usize;
        rest_a &= rest_a - 1;
        rest_b &= rest_b.wrapping_sub(1);
        if b.get(j).is_some_and(|y| *y != a[i]) {
            half_transpositions += 1;
        }
    }
    jaro_score(matches, half_transpositions, a.len(), b.len())
}

fn jaro_long<T: PartialEq>(a: &[T], b: &[T], fa: &mut [bool], fb: &mut [bool]) -> f64 {
    let w = window(a.len(), b.len());
    let mut matches = 0usize;
    for (i, x) in a.iter().enumerate() {
        let lo = i.saturating_sub(w);
        let hi = (i + w + 1).min(b.len());
        for j in lo..hi {
            if !fb[j] && b[j] == *x {
                fa[i] = true;
                fb[j] = true;
                matches += 1;
                break;
            }
        }
    }
    let mut half_transpositions = 0usize;
    let mut k = 0usize;
    for (i, x) in a.iter().enumerate() {
        if fa[i] {
            while k < fb.len() && !fb[k] {
                k += 1;
            }
            if k < b.len() && b[k] != *x {
                half_transpositions += 1;
            }
            k += 1;
        }
    }
    jaro_score(matches, half_transpositions, a.len(), b.len())
}

/// Jaro–Winkler similarity (prefix scale 0.1, prefix of at most 4, boost only above a Jaro
/// of 0.7 as Winkler specified): names typed by clerks are most reliable at their start.
pub fn jaro_winkler<T: PartialEq>(a: &[T], b: &[T]) -> f64 {
    let j = jaro(a, b);
    if j <= 0.7 {
        return j;
    }
    let prefix = a.iter().zip(b).take(4).take_while(|(x, y)| x == y).count();
    j + prefix as f64 * 0.1 * (1.0 - j)
}

/// Character counts in 32 buckets (`char as u32 % 32`): a cheap fingerprint kept with each
/// prepared string so that most hopeless Jaro–Winkler computations are skipped.
///
/// The number of Jaro matches between two strings is at most the size of their multiset
/// intersection, which is at most the sum over buckets of the smaller count (bucket
/// collisions only enlarge it). From that bound, and no transpositions, follows an upper
/// bound of Jaro–Winkler: if even that is below a band's threshold, the band cannot be
/// reached and the quadratic comparison need not run.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CharHistogram {
    counts: [u8; 32],
    len: usize,
}

impl CharHistogram {
    /// The histogram of a string.
    pub fn of(s: &[char]) -> Self {
        let mut counts = [0u8; 32];
        for c in s {
            let b = (*c as u32 & 31) as usize;
            counts[b] = counts[b].saturating_add(1);
        }
        Self { counts, len: s.len() }
    }

    /// Can `jaro_winkler` of the two strings reach `threshold`? `false` is certain; `true`
    /// only means "compute it".
    pub fn may_reach(&self, other: &Self, threshold: f64) -> bool {
        if self.len == 0 || other.len == 0 || self.len > 255 || other.len > 255 {
            // Empty strings are handled by the caller; past 255 a count could saturate.
            return true;
        }
        let common: usize = self
            .counts
            .iter()
            .zip(&other.counts)
            .map(|(a, b)| usize::from(*a.min(b)))
            .sum();
        let m = common.min(self.len).min(other.len) as f64;
        let jaro = (m / self.len as f64 + m / other.len as f64 + 1.0) / 3.0;
        let jaro = if m == 0.0 { 0.0 } else { jaro };
        jaro + 0.4 * (1.0 - jaro) >= threshold
    }
}

/// Optimal-string-alignment distance (Levenshtein plus adjacent transposition) if it is at
/// most `max`, else `None`. A transposition counts as one edit because swapping two
/// adjacent digits or letters is one keying slip.
pub fn osa_within<T: PartialEq>(a: &[T], b: &[T], max: usize) -> Option<usize> {
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    if max == 0 {
        return (a == b).then_some(0);
    }
    if max == 1 {
        return within_one(a, b);
    }
    // Full table for the rare k > 1 case; rows are short (identifiers, names).
    let n = b.len();
    let mut prev2 = vec![0usize; n + 1];
    let mut prev: Vec<usize> = (0..=n).collect();
    let mut cur = vec![0usize; n + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        let mut row_min = cur[0];
        for j in 1..=n {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(prev2[j - 2] + 1);
            }
            cur[j] = v;
            row_min = row_min.min(v);
        }
        if row_min > max {
            return None;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    let d = prev[n];
    (d <= max).then_some(d)
}

/// The k ≤ 1 case in one linear pass, no allocation.
fn within_one<T: PartialEq>(a: &[T], b: &[T]) -> Option<usize> {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    if prefix == a.len() && prefix == b.len() {
        return Some(0);
    }
    let (ra, rb) = (&a[prefix..], &b[prefix..]);
    let one = match ra.len().cmp(&rb.len()) {
        std::cmp::Ordering::Equal => {
            // Substitution, or transposition of the two first differing elements.
            ra[1..] == rb[1..] || (ra.len() >= 2 && ra[0] == rb[1] && ra[1] == rb[0] && ra[2..] == rb[2..])
        }
        std::cmp::Ordering::Greater => ra[1..] == *rb,
        std::cmp::Ordering::Less => *ra == rb[1..],
    };
    one.then_some(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    fn jw(a: &str, b: &str) -> f64 {
        jaro_winkler(&c(a), &c(b))
    }

    #[test]
    fn jaro_winkler_reference_values() {
        // Values from Winkler's papers / the usual reference implementations.
        assert!((jw("martha", "marhta") - 0.9611).abs() < 1e-4);
        assert!((jw("dwayne", "duane") - 0.84).abs() < 1e-4);
        assert!((jw("dixon", "dicksonx") - 0.8133).abs() < 1e-4);
        assert!((jaro(&c("martha"), &c("marhta")) - 0.9444).abs() < 1e-4);
        assert_eq!(jw("", ""), 1.0);
        assert_eq!(jw("abc", ""), 0.0);
        assert_eq!(jw("abc", "xyz"), 0.0);
        assert_eq!(jw("same", "same"), 1.0);
    }

    #[test]
    fn histogram_bound_never_skips_a_reachable_band() {
        let words = [
            "martha",
            "marhta",
            "dwayne",
            "duane",
            "dixon",
            "dicksonx",
            "smith",
            "smyth",
            "jones",
            "nguyen",
            "nguyn",
            "tran",
            "le",
            "michael",
            "jessica",
            "abcdefghij",
            "jihgfedcba",
            "aaaa",
            "a",
            "王小明",
            "王小鸣",
            "x1",
            "7wallabyplace",
            "7wallabyplc",
            "17wallabyplace",
        ];
        for x in words {
            for y in words {
                let (cx, cy) = (c(x), c(y));
                let (hx, hy) = (CharHistogram::of(&cx), CharHistogram::of(&cy));
                let jw = jaro_winkler(&cx, &cy);
                for t in [0.5, 0.7, 0.8, 0.88, 0.94] {
                    if jw >= t {
                        assert!(hx.may_reach(&hy, t), "{x} {y} {t}");
                    }
                }
            }
        }
        let (a, b) = (c("smith"), c("jones"));
        assert!(!CharHistogram::of(&a).may_reach(&CharHistogram::of(&b), 0.8));
    }

    #[test]
    fn short_and_long_paths_agree() {
        let words = [
            "martha", "marhta", "dwayne", "duane", "dixon", "dicksonx", "abcdefgh", "hgfedcba", "a", "aaab",
        ];
        for x in words {
            for y in words {
                let (cx, cy) = (c(x), c(y));
                let short = jaro_short(&cx, &cy);
                let long = jaro_long(&cx, &cy, &mut vec![false; cx.len()], &mut vec![false; cy.len()]);
                assert!((short - long).abs() < 1e-12, "{x} {y}");
            }
        }
    }

    #[test]
    fn jaro_winkler_long_strings_use_heap_flags() {
        let a = "a".repeat(100);
        let mut b = a.clone();
        b.push('b');
        let v = jw(&a, &b);
        assert!(v > 0.99 && v < 1.0);
    }

    #[test]
    fn bounded_edit_distance() {
        let d = |a: &str, b: &str, k| osa_within(&c(a), &c(b), k);
        assert_eq!(d("19850307", "19850307", 1), Some(0));
        assert_eq!(d("19850307", "19850308", 1), Some(1));
        assert_eq!(d("19850307", "19580307", 1), Some(1)); // adjacent transposition
        assert_eq!(d("19850307", "1985037", 1), Some(1)); // deletion
        assert_eq!(d("1985037", "19850307", 1), Some(1)); // insertion
        assert_eq!(d("19850307", "19850370", 1), Some(1));
        assert_eq!(d("19850307", "19860308", 1), None);
        assert_eq!(d("", "", 1), Some(0));
        assert_eq!(d("", "a", 1), Some(1));
        assert_eq!(d("", "ab", 1), None);
        assert_eq!(d("kitten", "sitting", 3), Some(3));
        assert_eq!(d("kitten", "sitting", 2), None);
        assert_eq!(d("ca", "ac", 2), Some(1));
    }

    #[test]
    fn within_one_agrees_with_table() {
        let words = [
            "", "a", "ab", "ba", "abc", "acb", "abd", "abcd", "bacd", "xbcd", "abdc", "aabc",
        ];
        for x in words {
            for y in words {
                let fast = within_one(&c(x), &c(y));
                let slow = osa_within(&c(x), &c(y), 2).filter(|d| *d <= 1);
                assert_eq!(fast, slow, "{x} vs {y}");
            }
        }
    }
}
