//! JSON to CEL values, done once per request and shared by every CEL policy.
//!
//! Integers stay `int` as in Kubernetes (the `cel` crate's serde conversion
//! would make non-negative ones `uint`); integers beyond `i64` become `uint`,
//! other numbers `double`. Map keys are used as they are (no escaping).
//! The conversion also records the longest list or map it saw, which bounds
//! how many times a comprehension over the input can iterate (see [`super::cost`]).

use std::collections::HashMap;

use cel::common::types::{
    CelBool, CelBytes, CelDouble, CelDuration, CelInt, CelList, CelMap, CelMapKey, CelNull,
    CelOptional, CelString, CelTimestamp, CelUInt,
};
use cel::common::value::Val;
use serde_json::Value;

/// A converted value.
pub type CelVal = Box<dyn Val + 'static>;

/// Convert `value`, raising `longest` to the length of the longest list or map.
pub fn to_cel(value: &Value, longest: &mut u64) -> CelVal {
    match value {
        Value::Null => Box::new(CelNull),
        Value::Bool(b) => Box::new(CelBool::from(*b)),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Box::new(CelInt::from(i))
            } else if let Some(u) = n.as_u64() {
                Box::new(CelUInt::from(u))
            } else {
                Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN)))
            }
        }
        Value::String(s) => Box::new(CelString::from(s.clone())),
        Value::Array(items) => {
            *longest = (*longest).max(items.len() as u64);
            let list: Vec<CelVal> = items.iter().map(|v| to_cel(v, longest)).collect();
            Box::new(CelList::from(list))
        }
        Value::Object(map) => {
            *longest = (*longest).max(map.len() as u64);
            let entries: HashMap<CelMapKey<'static>, CelVal> = map
                .iter()
                .map(|(k, v)| (CelMapKey::from(k.clone()), to_cel(v, longest)))
                .collect();
            Box::new(CelMap::from(entries))
        }
    }
}

/// An owned, `'static` copy of an evaluation's result, in one pass (going
/// through [`cel::Value`] would copy it twice). `None` for a value of a type
/// that cannot be copied this way (a type value, a struct).
pub fn to_static(value: &dyn Val) -> Option<CelVal> {
    macro_rules! copied {
        ($($t:ty),*) => {
            $(if let Some(v) = value.downcast_ref::<$t>() {
                return Some(Box::new(*v));
            })*
        };
    }
    copied!(CelBool, CelInt, CelUInt, CelDouble, CelNull, CelDuration);
    if let Some(s) = value.downcast_ref::<CelString>() {
        return Some(Box::new(CelString::from(s.inner().to_owned())));
    }
    if let Some(list) = value.downcast_ref::<CelList>() {
        let items: Option<Vec<CelVal>> =
            list.inner().iter().map(|v| to_static(v.as_ref())).collect();
        return Some(Box::new(CelList::from(items?)));
    }
    if let Some(map) = value.downcast_ref::<CelMap>() {
        let entries: Option<HashMap<CelMapKey<'static>, CelVal>> = map
            .inner()
            .iter()
            .map(|(k, v)| Some((k.clone().into_static(), to_static(v.as_ref())?)))
            .collect();
        return Some(Box::new(CelMap::from(entries?)));
    }
    if let Some(b) = value.downcast_ref::<CelBytes>() {
        return Some(Box::new(CelBytes::from(b.inner().to_vec())));
    }
    if let Some(t) = value.downcast_ref::<CelTimestamp>() {
        return Some(Box::new(t.clone()));
    }
    if let Some(o) = value.downcast_ref::<CelOptional>() {
        return Some(Box::new(match o.option() {
            Some(v) => CelOptional::of(to_static(v)?),
            None => CelOptional::none(),
        }));
    }
    super::library::clone_static(value)
}

/// The length of the longest list or map in `value`.
pub fn longest_in(value: &dyn Val) -> u64 {
    if let Some(list) = value.downcast_ref::<CelList>() {
        let items = list.inner();
        return items
            .iter()
            .map(|v| longest_in(v.as_ref()))
            .fold(items.len() as u64, u64::max);
    }
    if let Some(map) = value.downcast_ref::<CelMap>() {
        let entries = map.inner();
        return entries
            .values()
            .map(|v| longest_in(v.as_ref()))
            .fold(entries.len() as u64, u64::max);
    }
    0
}

/// A CEL map of named values.
pub fn map_of(entries: Vec<(String, CelVal)>) -> CelVal {
    let entries: HashMap<CelMapKey<'static>, CelVal> = entries
        .into_iter()
        .map(|(k, v)| (CelMapKey::from(k), v))
        .collect();
    Box::new(CelMap::from(entries))
}

/// Follow a JSON pointer's segments through converted maps.
pub fn descend<'a>(
    mut value: &'a (dyn Val + 'static),
    segments: &[&str],
) -> Option<&'a (dyn Val + 'static)> {
    for segment in segments {
        let map = value.downcast_ref::<CelMap>()?;
        value = map.get(&CelMapKey::from(segment.to_string()))?.as_ref();
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_stay_int_and_longest_list_is_recorded() {
        let mut longest = 0;
        let v = to_cel(
            &serde_json::json!({"a": [1, 2, 3], "b": {"c": -1, "d": 1.5}}),
            &mut longest,
        );
        assert_eq!(longest, 3);
        let a = descend(v.as_ref(), &["a"]).unwrap();
        assert_eq!(a.get_type().name(), "list");
        let c = descend(v.as_ref(), &["b", "c"]).unwrap();
        assert_eq!(c.get_type().name(), "int");
    }
}
