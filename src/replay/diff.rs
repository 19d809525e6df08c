//! Field-by-field comparison of two mapping outputs, as `MappingOutput::to_json()` trees.
//!
//! Pure: it knows no output by name, so it compares whatever a mapping makes (`person`,
//! `encounters`, `results`, …). Paths name fields the way a mapping file does, with `[]` for
//! "an item of this list": `person.names[].family`, `results[].unit`. List items are compared
//! by position; an item only one side has counts as added or removed, whole. A `null` is the
//! same as an absent field.

use std::collections::BTreeSet;

use serde_json::Value;

/// What became of one field between the two trees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Change {
    Unchanged,
    Changed,
    /// Only the new tree has it (a field, an object, or a list item).
    Added,
    /// Only the old tree has it.
    Removed,
}

/// One field of the comparison, with both values (patient data: shown only on request).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldDiff<'a> {
    /// `person.names[].family`.
    pub path: String,
    pub change: Change,
    pub before: Option<&'a Value>,
    pub after: Option<&'a Value>,
}

/// Compares `before` with `after`: one entry per leaf field either side has (unchanged ones
/// included), and one per object or list item only one side has.
pub fn compare<'a>(before: &'a Value, after: &'a Value) -> Vec<FieldDiff<'a>> {
    let mut out = Vec::new();
    walk(&mut String::new(), Some(before), Some(after), &mut out);
    out
}

fn walk<'a>(
    path: &mut String,
    before: Option<&'a Value>,
    after: Option<&'a Value>,
    out: &mut Vec<FieldDiff<'a>>,
) {
    let before = before.filter(|v| !v.is_null());
    let after = after.filter(|v| !v.is_null());
    let mut emit = |change| {
        out.push(FieldDiff {
            path: path.clone(),
            change,
            before,
            after,
        })
    };
    match (before, after) {
        (None, None) => {}
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                walk(path, a.get(key), b.get(key), out);
                path.truncate(len);
            }
        }
        // A list on one side only is a list of added (or removed) items.
        (Some(Value::Array(a)), Some(Value::Array(b))) => items(path, a, b, out),
        (Some(Value::Array(a)), None) => items(path, a, &[], out),
        (None, Some(Value::Array(b))) => items(path, &[], b, out),
        (Some(_), None) => emit(Change::Removed),
        (None, Some(_)) => emit(Change::Added),
        (Some(a), Some(b)) if a == b => emit(Change::Unchanged),
        (Some(_), Some(_)) => emit(Change::Changed),
    }
}

fn items<'a>(path: &mut String, a: &'a [Value], b: &'a [Value], out: &mut Vec<FieldDiff<'a>>) {
    let len = path.len();
    path.push_str("[]");
    for i in 0..a.len().max(b.len()) {
        match (a.get(i), b.get(i)) {
            (Some(x), Some(y)) => walk(path, Some(x), Some(y), out),
            // An item only one side has counts once, whatever it holds.
            (before, after) => out.push(FieldDiff {
                path: path.clone(),
                change: if after.is_some() {
                    Change::Added
                } else {
                    Change::Removed
                },
                before,
                after,
            }),
        }
    }
    path.truncate(len);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// (path, change) pairs, in the order `compare` gives them.
    fn changes(before: Value, after: Value) -> Vec<(String, Change)> {
        compare(&before, &after)
            .into_iter()
            .map(|d| (d.path, d.change))
            .collect()
    }

    fn pair(path: &str, change: Change) -> (String, Change) {
        (path.to_string(), change)
    }

    #[test]
    fn equal_trees_are_unchanged_leaf_by_leaf() {
        let tree = json!({"person": {"sex": "female", "names": [{"family": "Le", "given": ["An", "Thi"]}]}});
        assert_eq!(
            changes(tree.clone(), tree),
            [
                pair("person.names[].family", Change::Unchanged),
                pair("person.names[].given[]", Change::Unchanged),
                pair("person.names[].given[]", Change::Unchanged),
                pair("person.sex", Change::Unchanged),
            ]
        );
    }

    #[test]
    fn a_changed_value_names_its_path_and_keeps_both_values() {
        let before = json!({"person": {"names": [{"family": "Le"}]}});
        let after = json!({"person": {"names": [{"family": "LE"}]}});
        let diffs = compare(&before, &after);
        assert_eq!(diffs.len(), 1);
        assert_eq!(diffs[0].path, "person.names[].family");
        assert_eq!(diffs[0].change, Change::Changed);
        assert_eq!(diffs[0].before, Some(&json!("Le")));
        assert_eq!(diffs[0].after, Some(&json!("LE")));
    }

    #[test]
    fn list_items_are_compared_by_position_and_extra_items_count_whole() {
        let before = json!({"results": [{"unit": "mg"}, {"unit": "g"}]});
        let after = json!({"results": [{"unit": "mg"}, {"unit": "kg"}, {"unit": "l", "value": 1}]});
        assert_eq!(
            changes(before.clone(), after.clone()),
            [
                pair("results[].unit", Change::Unchanged),
                pair("results[].unit", Change::Changed),
                pair("results[]", Change::Added),
            ]
        );
        assert_eq!(
            changes(after, before),
            [
                pair("results[].unit", Change::Unchanged),
                pair("results[].unit", Change::Changed),
                pair("results[]", Change::Removed),
            ]
        );
    }

    #[test]
    fn a_list_or_object_only_one_side_has_is_added_or_removed() {
        let before = json!({"person": {"sex": "male"}});
        let after = json!({"person": {"sex": "male", "death": {"deceased": true}}, "encounters": [{"class": "inpatient"}]});
        assert_eq!(
            changes(before.clone(), after.clone()),
            [
                pair("encounters[]", Change::Added),
                pair("person.death", Change::Added),
                pair("person.sex", Change::Unchanged),
            ]
        );
        assert_eq!(
            changes(after, before),
            [
                pair("encounters[]", Change::Removed),
                pair("person.death", Change::Removed),
                pair("person.sex", Change::Unchanged),
            ]
        );
    }

    #[test]
    fn null_is_absent_and_a_change_of_kind_is_a_change() {
        assert_eq!(
            changes(json!({"a": null, "b": "x"}), json!({"b": {"c": 1}})),
            [pair("b", Change::Changed)]
        );
        assert_eq!(
            changes(json!({"a": 1}), json!({"a": "1"})),
            [pair("a", Change::Changed)]
        );
        assert!(changes(json!({}), json!({"a": null, "b": []})).is_empty());
    }
}
