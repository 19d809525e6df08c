//! Unsupervised estimation of the model: u from random pairs, m by expectation–maximisation
//! over blocked candidate pairs. No truth labels are used.
//!
//! * **u** — almost every random pair of stored records is two different people, so the
//!   level frequencies over a random sample of pairs estimate `P(level | different)`.
//! * **m** — over candidate pairs (records sharing a blocking key) matches are common enough
//!   for EM to separate the two populations: each iteration computes every pair's match
//!   probability from the current m (u held fixed) and re-estimates m and the match
//!   proportion λ from those probabilities.
//!
//! Blocking biases EM: among pairs that share a birth date, *non-matches* agree on the birth
//! date too, which EM would read as match evidence. As in Splink, training therefore runs
//! one EM session per blocking-key kind, and a session does not estimate (nor use) the
//! fields its keys are built from; each field's m is the mean over the sessions that
//! estimated it.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::blocking::blocking_keys;
use super::compare::{Comparison, Field, MISSING, N_FIELDS};
use super::model::{Model, ModelConfig};
use super::prepare::Prepared;

/// Estimation settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmOptions {
    /// Random pairs sampled to estimate u (all pairs when there are fewer).
    pub random_pairs: usize,
    /// Seed of the pair sampler, for reproducible estimates.
    pub seed: u64,
    /// EM iterations at most, per session.
    pub max_iterations: usize,
    /// Stop when no parameter moves more than this.
    pub tolerance: f64,
    /// Blocks larger than this are skipped when building a session's pairs (a key shared by
    /// thousands of records says little and costs quadratically).
    pub max_block: usize,
    /// Sessions with fewer pairs are skipped.
    pub min_pairs: usize,
    /// Sessions in which fewer fields (outside the skipped ones) are present in at least
    /// half of the pairs are skipped: EM cannot identify m from one or two fields.
    pub min_fields: usize,
    /// Pseudo-count added to every level (keeps every probability positive).
    pub pseudo_count: f64,
    /// Starting match proportion λ.
    pub initial_lambda: f64,
}

impl Default for EmOptions {
    fn default() -> Self {
        Self {
            random_pairs: 300_000,
            seed: 0x5eed_1d3e,
            max_iterations: 200,
            tolerance: 1e-6,
            max_block: 400,
            min_pairs: 50,
            min_fields: 3,
            pseudo_count: 0.5,
            initial_lambda: 0.3,
        }
    }
}

/// The outcome of one EM session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionReport {
    /// The blocking-key kind the pairs were drawn from (`dob`, `ph`, `nm`, `pc`…).
    pub rule: String,
    /// Fields not estimated in this session.
    pub skipped: Vec<Field>,
    pub pairs: usize,
    /// Estimated proportion of matches among the session's pairs.
    pub lambda: f64,
    pub iterations: usize,
    pub converged: bool,
}

/// A trained configuration and how it was obtained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Training {
    pub config: ModelConfig,
    /// Random pairs used for u.
    pub random_pairs: usize,
    pub sessions: Vec<SessionReport>,
}

/// A small deterministic generator (SplitMix64): reproducible samples without a dependency.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        // n is far below 2^32 in practice; the modulo bias is negligible.
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Level counts per field (index = level), and how many pairs had the field at all.
type Counts = [Vec<f64>; N_FIELDS];

fn empty_counts() -> Counts {
    std::array::from_fn(|i| vec![0.0; Field::ALL[i].levels().len()])
}

/// Estimates u per field from random pairs. Fields never observed (absent from the data)
/// are `None`: keep the prior for them.
pub fn estimate_u(
    model: &Model,
    records: &[Prepared],
    opts: &EmOptions,
) -> (usize, [Option<Vec<f64>>; N_FIELDS]) {
    let n = records.len();
    let mut counts = empty_counts();
    let mut used = 0usize;
    let all_pairs = n.saturating_mul(n.saturating_sub(1)) / 2;
    let mut tally = |c: &Comparison| {
        for f in Field::ALL {
            let l = c.levels[f.index()];
            if l != MISSING {
                counts[f.index()][usize::from(l)] += 1.0;
            }
        }
    };
    if all_pairs <= opts.random_pairs {
        for i in 0..n {
            for j in i + 1..n {
                tally(&model.compare(&records[i], &records[j]));
            }
        }
        used = all_pairs;
    } else {
        let mut rng = SplitMix(opts.seed);
        while used < opts.random_pairs {
            let (i, j) = (rng.below(n), rng.below(n));
            if i == j {
                continue;
            }
            tally(&model.compare(&records[i], &records[j]));
            used += 1;
        }
    }
    let u = std::array::from_fn(|i| normalise_counts(&counts[i], opts.pseudo_count, 1.0));
    (used, u)
}

/// Turns counts into probabilities with a pseudo-count; `None` when fewer than
/// `min_total` observations.
fn normalise_counts(counts: &[f64], pseudo: f64, min_total: f64) -> Option<Vec<f64>> {
    let total: f64 = counts.iter().sum();
    if total < min_total {
        return None;
    }
    let denom = total + pseudo * counts.len() as f64;
    Some(counts.iter().map(|c| (c + pseudo) / denom).collect())
}

/// Result of one EM run.
#[derive(Clone, Debug)]
pub struct EmResult {
    /// Estimated m per field; `None` for skipped or unobserved fields.
    pub m: [Option<Vec<f64>>; N_FIELDS],
    pub lambda: f64,
    pub iterations: usize,
    pub converged: bool,
}

/// Runs EM on comparison vectors, estimating m and λ with u fixed to the model's. Fields in
/// `skip` are ignored altogether.
pub fn em(model: &Model, comparisons: &[Comparison], skip: &[Field], opts: &EmOptions) -> EmResult {
    // Identical vectors are frequent: work on distinct patterns with their counts.
    let mut patterns: HashMap<[u8; N_FIELDS], f64> = HashMap::new();
    for c in comparisons {
        let mut key = c.levels;
        for f in skip {
            key[f.index()] = MISSING;
        }
        // A hand-made comparison may carry out-of-range levels: treat them as missing.
        for (i, l) in key.iter_mut().enumerate() {
            if usize::from(*l) >= Field::ALL[i].levels().len() {
                *l = MISSING;
            }
        }
        *patterns.entry(key).or_default() += 1.0;
    }
    let patterns: Vec<([u8; N_FIELDS], f64)> = patterns.into_iter().collect();
    let total: f64 = patterns.iter().map(|(_, c)| c).sum();
    let cfg = model.config();
    let ln_u: [Vec<f64>; N_FIELDS] =
        std::array::from_fn(|i| cfg.probs(Field::ALL[i]).u.iter().map(|v| v.ln()).collect());
    let mut m: [Vec<f64>; N_FIELDS] = std::array::from_fn(|i| cfg.probs(Field::ALL[i]).m.clone());
    let mut lambda = opts.initial_lambda.clamp(1e-6, 1.0 - 1e-6);
    let mut iterations = 0;
    let mut converged = false;
    let mut observed = [0.0f64; N_FIELDS];
    while iterations < opts.max_iterations && total > 0.0 {
        iterations += 1;
        let ln_m: [Vec<f64>; N_FIELDS] = std::array::from_fn(|i| m[i].iter().map(|v| v.ln()).collect());
        let mut acc = empty_counts();
        let mut sum_p = 0.0;
        observed = [0.0; N_FIELDS];
        for (levels, count) in &patterns {
            let mut lm = lambda.ln();
            let mut lu = (1.0 - lambda).ln();
            for (i, &l) in levels.iter().enumerate() {
                if l != MISSING {
                    lm += ln_m[i][usize::from(l)];
                    lu += ln_u[i][usize::from(l)];
                }
            }
            let p = 1.0 / (1.0 + (lu - lm).exp());
            sum_p += count * p;
            for (i, &l) in levels.iter().enumerate() {
                if l != MISSING {
                    acc[i][usize::from(l)] += count * p;
                    observed[i] += count;
                }
            }
        }
        let new_lambda = (sum_p / total).clamp(1e-6, 1.0 - 1e-6);
        let mut delta = (new_lambda - lambda).abs();
        lambda = new_lambda;
        for i in 0..N_FIELDS {
            if let Some(new_m) = normalise_counts(&acc[i], opts.pseudo_count, 1e-9) {
                for (old, new) in m[i].iter_mut().zip(new_m) {
                    delta = delta.max((*old - new).abs());
                    *old = new;
                }
            }
        }
        if delta < opts.tolerance {
            converged = true;
            break;
        }
    }
    let m = std::array::from_fn(|i| {
        let field = Field::ALL[i];
        (!skip.contains(&field) && observed[i] >= 1.0).then(|| m[i].clone())
    });
    EmResult {
        m,
        lambda,
        iterations,
        converged,
    }
}

/// Blocking-key kinds used as training sessions, with the fields each key is built from.
const SESSIONS: &[(&str, &[Field])] = &[
    ("dob", &[Field::BirthDate]),
    ("ph", &[Field::Given, Field::Family, Field::BirthDate]),
    ("nm", &[Field::Given, Field::Family]),
    ("pc", &[Field::Postcode, Field::Given, Field::Family]),
    ("tel", &[Field::Phone]),
    ("em", &[Field::Email]),
    ("id", &[Field::Identifier]),
];

/// Candidate pairs (i < j) of records sharing a key of the given kind.
pub fn pairs_for_rule(records: &[Prepared], rule: &str, max_block: usize) -> Vec<(usize, usize)> {
    let prefix = format!("{rule}:");
    let mut blocks: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, r) in records.iter().enumerate() {
        for k in blocking_keys(r) {
            if k.starts_with(&prefix) {
                blocks.entry(k).or_default().push(i);
            }
        }
    }
    let mut pairs = Vec::new();
    for members in blocks.values().filter(|m| m.len() <= max_block) {
        for (x, &i) in members.iter().enumerate() {
            for &j in &members[x + 1..] {
                pairs.push((i.min(j), i.max(j)));
            }
        }
    }
    pairs.sort_unstable();
    pairs.dedup();
    pairs
}

/// Trains a model on stored records without labels: u from random pairs, then one EM
/// session per blocking-key kind for m (see the module documentation). Fields that the
/// data never fills keep the starting model's probabilities; thresholds, swap penalty and TF
/// settings are kept too.
pub fn train(start: &Model, records: &[Prepared], opts: &EmOptions) -> Training {
    let mut config = start.config().clone();
    let (random_pairs, u) = estimate_u(start, records, opts);
    for (i, u) in u.into_iter().enumerate() {
        if let Some(u) = u {
            config.probs_mut(Field::ALL[i]).u = u;
        }
    }
    let Ok(with_u) = Model::new(config.clone()) else {
        // Estimated probabilities are always positive and finite; keep the start otherwise.
        return Training {
            config: start.config().clone(),
            random_pairs,
            sessions: Vec::new(),
        };
    };
    let mut sums: [Vec<f64>; N_FIELDS] = std::array::from_fn(|i| vec![0.0; Field::ALL[i].levels().len()]);
    let mut runs = [0usize; N_FIELDS];
    let mut sessions = Vec::new();
    for (rule, skip) in SESSIONS {
        let pairs = pairs_for_rule(records, rule, opts.max_block);
        if pairs.len() < opts.min_pairs {
            continue;
        }
        let comparisons: Vec<Comparison> = pairs
            .iter()
            .map(|&(i, j)| with_u.compare(&records[i], &records[j]))
            .collect();
        // EM separates two populations only with enough conditionally independent fields:
        // with one or two left after the skipped ones, any m fits and the result is noise.
        let informative = Field::ALL
            .iter()
            .filter(|f| !skip.contains(f))
            .filter(|f| {
                comparisons.iter().filter(|c| c.level(**f).is_some()).count() * 2 >= comparisons.len()
            })
            .count();
        if informative < opts.min_fields {
            continue;
        }
        let r = em(&with_u, &comparisons, skip, opts);
        for (i, m) in r.m.iter().enumerate() {
            if let Some(m) = m {
                for (s, v) in sums[i].iter_mut().zip(m) {
                    *s += v;
                }
                runs[i] += 1;
            }
        }
        sessions.push(SessionReport {
            rule: (*rule).to_string(),
            skipped: skip.to_vec(),
            pairs: pairs.len(),
            lambda: r.lambda,
            iterations: r.iterations,
            converged: r.converged,
        });
    }
    for (i, field) in Field::ALL.into_iter().enumerate() {
        if runs[i] > 0 {
            config.probs_mut(field).m = sums[i].iter().map(|s| s / runs[i] as f64).collect();
        }
    }
    Training {
        config,
        random_pairs,
        sessions,
    }
}

#[cfg(test)]
mod tests {
    use super::super::prepare::{MatchRecord, prepare};
    use super::*;

    /// A synthetic population: 300 people, a third of them entered twice with a typo.
    fn population() -> Vec<Prepared> {
        let given = [
            "anna", "boris", "chen", "dmitri", "elena", "fatima", "giang", "hoa", "ivan", "jun",
        ];
        let family = [
            "nguyen", "tran", "ivanov", "smith", "wang", "le", "petrov", "garcia", "pham", "kim",
        ];
        let mut rng = SplitMix(7);
        let mut out = Vec::new();
        for p in 0..300usize {
            let g = given[rng.below(given.len())];
            let f = family[rng.below(family.len())];
            let dob = format!(
                "19{:02}-{:02}-{:02}",
                30 + rng.below(70),
                1 + rng.below(12),
                1 + rng.below(28)
            );
            let pc = format!("{}", 2000 + rng.below(50));
            let street = format!(
                "{} {} street",
                1 + rng.below(200),
                family[rng.below(family.len())]
            );
            let city = ["hanoi", "saigon", "hue", "danang", "moscow", "sydney"][rng.below(6)];
            let sex = ["m", "f"][rng.below(2)];
            let rec = |g: &str, dob: &str| {
                prepare(&MatchRecord {
                    given: vec![g.into()],
                    family: Some(f.into()),
                    birth_date: Some(dob.into()),
                    postcode: Some(pc.clone()),
                    street: Some(street.clone()),
                    city: Some(city.into()),
                    sex: Some(sex.into()),
                    ..Default::default()
                })
            };
            out.push(rec(g, &dob));
            if p % 3 == 0 {
                let typo = format!("{g}h");
                out.push(rec(&typo, &dob));
            }
        }
        out
    }

    #[test]
    fn u_from_random_pairs_and_m_from_em() {
        let recs = population();
        let start = Model::new(ModelConfig::default()).expect("valid");
        let opts = EmOptions {
            random_pairs: 20_000,
            ..Default::default()
        };
        let t = train(&start, &recs, &opts);
        assert!(!t.sessions.is_empty());
        // Ten family names: random pairs agree on about a tenth of them.
        let u_family = t.config.family.u[0];
        assert!((0.06..0.16).contains(&u_family), "{u_family}");
        // The duplicates always agree on the birth date: m(exact) must come out high.
        let m_dob = t.config.birth_date.m[0];
        assert!(m_dob > 0.9, "{m_dob}");
        // Phone is absent from the data: the prior stays.
        assert_eq!(t.config.phone, ModelConfig::default().phone);
        assert!(Model::new(t.config).is_ok());
    }

    #[test]
    fn em_on_nothing_is_harmless() {
        let start = Model::new(ModelConfig::default()).expect("valid");
        let r = em(&start, &[], &[], &EmOptions::default());
        assert!(r.m.iter().all(Option::is_none));
        let bogus = Comparison {
            levels: [200; N_FIELDS],
            names_swapped: false,
        };
        let r = em(&start, &[bogus], &[], &EmOptions::default());
        assert!(r.m.iter().all(Option::is_none));
        let t = train(&start, &[], &EmOptions::default());
        assert_eq!(t.random_pairs, 0);
    }
}
