//! Term-frequency tables for names.
//!
//! Agreement on `Smith` is weaker evidence than agreement on `Szczepański`: two different
//! people share a common name far more often. Fellegi–Sunter's u probability for "exact" is
//! an average over all values; the term-frequency adjustment replaces it, for the value at
//! hand, by that value's own relative frequency in the store (see
//! [`super::model::Model::score`]). The table is built from the stored records — counts of
//! normalised given and family names, the same keys the comparators use — and can be kept up
//! to date incrementally ([`TermFrequencies::add`]) or loaded from a `GROUP BY` over the store
//! ([`TermFrequencies::set_count`]).

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::compare::Field;
use super::prepare::Prepared;

/// Counts of normalised given and family names.
///
/// Its `Debug` output gives the table sizes only, never the names.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TermFrequencies {
    given: HashMap<Box<str>, u64>,
    family: HashMap<Box<str>, u64>,
    given_total: u64,
    family_total: u64,
}

impl TermFrequencies {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts the names of the given records.
    pub fn from_prepared<'a>(records: impl IntoIterator<Item = &'a Prepared>) -> Self {
        let mut t = Self::new();
        for r in records {
            t.add(r);
        }
        t
    }

    /// Counts one more stored record.
    pub fn add(&mut self, r: &Prepared) {
        if let Some(k) = r.given_key() {
            *self.given.entry(k.into()).or_default() += 1;
            self.given_total += 1;
        }
        if let Some(k) = r.family_key() {
            *self.family.entry(k.into()).or_default() += 1;
            self.family_total += 1;
        }
    }

    /// Forgets one stored record (after a delete or an edit).
    pub fn remove(&mut self, r: &Prepared) {
        fn dec(map: &mut HashMap<Box<str>, u64>, total: &mut u64, k: &str) {
            if let Some(c) = map.get_mut(k) {
                *c -= 1;
                *total = total.saturating_sub(1);
                if *c == 0 {
                    map.remove(k);
                }
            }
        }
        if let Some(k) = r.given_key() {
            dec(&mut self.given, &mut self.given_total, k);
        }
        if let Some(k) = r.family_key() {
            dec(&mut self.family, &mut self.family_total, k);
        }
    }

    /// Sets the count of one normalised value ([`Prepared::given_key`] or
    /// [`Prepared::family_key`]), e.g. when loading counts from the store. Other fields are
    /// ignored.
    pub fn set_count(&mut self, field: Field, value: &str, count: u64) {
        let (map, total) = match field {
            Field::Given => (&mut self.given, &mut self.given_total),
            Field::Family => (&mut self.family, &mut self.family_total),
            _ => return,
        };
        let old = if count == 0 {
            map.remove(value)
        } else {
            map.insert(value.into(), count)
        };
        *total = total.saturating_sub(old.unwrap_or(0)) + count;
    }

    /// Number of names counted for a field.
    pub fn total(&self, field: Field) -> u64 {
        match field {
            Field::Given => self.given_total,
            Field::Family => self.family_total,
            _ => 0,
        }
    }

    /// Relative frequency of a normalised value, `None` when the value is not counted.
    pub fn frequency(&self, field: Field, value: &str) -> Option<f64> {
        let (map, total) = match field {
            Field::Given => (&self.given, self.given_total),
            Field::Family => (&self.family, self.family_total),
            _ => return None,
        };
        let count = *map.get(value)?;
        (total > 0).then(|| count as f64 / total as f64)
    }
}

impl fmt::Debug for TermFrequencies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TermFrequencies")
            .field("given_values", &self.given.len())
            .field("given_total", &self.given_total)
            .field("family_values", &self.family.len())
            .field("family_total", &self.family_total)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::super::prepare::{MatchRecord, prepare};
    use super::*;

    fn rec(family: &str) -> Prepared {
        prepare(&MatchRecord {
            family: Some(family.into()),
            ..Default::default()
        })
    }

    #[test]
    fn counts_add_remove_set() {
        let recs = [rec("Smith"), rec("SMITH"), rec("Szczepański")];
        let mut t = TermFrequencies::from_prepared(&recs);
        assert_eq!(t.frequency(Field::Family, "smith"), Some(2.0 / 3.0));
        assert_eq!(t.frequency(Field::Family, "szczepanski"), Some(1.0 / 3.0));
        assert_eq!(t.frequency(Field::Given, "smith"), None);
        t.remove(&recs[0]);
        assert_eq!(t.frequency(Field::Family, "smith"), Some(0.5));
        t.set_count(Field::Family, "smith", 9);
        assert_eq!(t.total(Field::Family), 10);
        t.set_count(Field::Family, "smith", 0);
        assert_eq!(t.frequency(Field::Family, "smith"), None);
        assert_eq!(t.total(Field::Family), 1);
        assert!(!format!("{t:?}").contains("smith"));
    }
}
