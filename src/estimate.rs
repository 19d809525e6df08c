//! `carehub estimate-model`: the matching model's m/u probabilities estimated from the store's
//! own records (expectation–maximisation, without labels), printed as the YAML to put under
//! `identity.model`.
//!
//! Nothing changes by itself: weights that drifted with every restart would move links and
//! reviews without anyone deciding it. An IT person runs this on a store with real volume,
//! reads the result (the comment lines say how it was obtained), and puts it in
//! `carehub.yaml`; `carehub linkage-eval --config` can check it on a labelled set first.

use std::fmt::Write as _;

use crate::identity::{EmOptions, Field, IdentityConfig, Model, Prepared, em, link::match_record, prepare};
use crate::store::Store;

/// Estimates from the newest `records` stored records; returns the YAML text.
pub async fn estimate(store: &Store, identity: &IdentityConfig, records: i64) -> anyhow::Result<String> {
    let patches = store.sample_patches(records).await?;
    let prepared: Vec<Prepared> = patches.iter().map(|p| prepare(&match_record(p))).collect();
    let start = Model::new(identity.model.clone()).map_err(|e| anyhow::anyhow!("identity.model: {e}"))?;
    if prepared.len() < 2 {
        anyhow::bail!(
            "the store holds {} person records: nothing to estimate from",
            prepared.len()
        );
    }
    let training = em::train(&start, &prepared, &EmOptions::default());
    Ok(yaml(&training, prepared.len()))
}

/// The trained probabilities as `identity.model` YAML, with how they were obtained.
fn yaml(training: &em::Training, records: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Estimated by `carehub estimate-model` from {records} stored person records\n\
         # (u from {} random pairs; m by EM within blocks):",
        training.random_pairs
    );
    for s in &training.sessions {
        let skipped: Vec<&str> = s.skipped.iter().map(|f| f.name()).collect();
        let _ = writeln!(
            out,
            "#   {}: {} pairs, match share {:.4}, {} iterations{}{}",
            s.rule,
            s.pairs,
            s.lambda,
            s.iterations,
            if s.converged { "" } else { " (not converged)" },
            if skipped.is_empty() {
                String::new()
            } else {
                format!(", not estimated here: {}", skipped.join(", "))
            }
        );
    }
    if training.sessions.is_empty() {
        let _ = writeln!(
            out,
            "#   no block had enough pairs for EM: m stays as configured, only u was estimated"
        );
    }
    let _ = writeln!(
        out,
        "# Review, then put under `identity.model` in carehub.yaml (thresholds and veto stay yours).\n\
         identity:\n  model:"
    );
    for field in Field::ALL {
        let p = training.config.probs(field);
        // Six significant digits, never rounded to zero (a probability must stay positive).
        let digits = |x: f64| format!("{x:.5e}").parse::<f64>().unwrap_or(x);
        let list = |v: &[f64]| {
            v.iter()
                .map(|&x| digits(x).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            out,
            "    {}: {{m: [{}], u: [{}]}}",
            field.name(),
            list(&p.m),
            list(&p.u)
        );
    }
    out
}
