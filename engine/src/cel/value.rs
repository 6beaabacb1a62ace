//! JSON to CEL values, done once per request and shared by every CEL policy.
//!
//! Integers stay `int` as in Kubernetes (the `cel` crate's serde conversion
//! would make non-negative ones `uint`); integers beyond `i64` become `uint`,
//! other numbers `double`. Map keys are used as they are (no escaping).
//! The conversion also records the longest list or map it saw, which bounds
//! how many times a comprehension over the input can iterate (see [`super::cost`]).
//!
//! Every list and map of the converted input is [`Shared`]: the interpreter
//! copies a value whenever it binds it to a comprehension variable, puts it
//! in a literal or keeps it as a policy variable, and a copy of a shared
//! value is a reference count, not the subtree.

use std::collections::HashMap;
use std::sync::Arc;

use cel::ExecutionError;
use cel::common::traits::{
    Adder, Comparer, Container, Divider, Indexer, Iterable, Modder, Multiplier, Negator, Sizer,
    Subtractor, Zeroer,
};
use cel::common::types::{
    CelBool, CelBytes, CelDouble, CelDuration, CelInt, CelList, CelMap, CelMapKey, CelNull,
    CelOptional, CelString, CelTimestamp, CelUInt,
};
use cel::common::value::{Builtin, BuiltinRef, CowVal, Val};
use serde_json::Value;

/// A converted value.
pub type CelVal = Box<dyn Val + 'static>;

/// Convert `value`, raising `longest` to the length of the longest list or map.
pub fn to_cel(value: &Value, longest: &mut u64) -> CelVal {
    let (converted, within) = convert(value);
    *longest = (*longest).max(within);
    converted
}

/// `value` converted, and the length of the longest list or map in it.
fn convert(value: &Value) -> (CelVal, u64) {
    let scalar: CelVal = match value {
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
            let mut longest = items.len() as u64;
            let list: Vec<CelVal> = items
                .iter()
                .map(|v| {
                    let (item, within) = convert(v);
                    longest = longest.max(within);
                    item
                })
                .collect();
            return (Box::new(Shared::new(CelList::from(list), longest)), longest);
        }
        Value::Object(map) => {
            let mut longest = map.len() as u64;
            let entries: HashMap<CelMapKey<'static>, CelVal> = map
                .iter()
                .map(|(k, v)| {
                    let (item, within) = convert(v);
                    longest = longest.max(within);
                    (CelMapKey::from(k.clone()), item)
                })
                .collect();
            return (
                Box::new(Shared::new(CelMap::from(entries), longest)),
                longest,
            );
        }
    };
    (scalar, 0)
}

/// A list or map that copies share: cloning it clones a reference count.
///
/// It is the list or map it holds to everything that looks: it forwards every
/// method of [`Val`] (its type, each operator, equality), and downcasts to [`CelList`] or
/// [`CelMap`] (the `cel` crate recognises its built-in containers through
/// [`Val::as_builtin`], which this forwards). Only [`Val::as_any`] answers
/// for the wrapper itself, so that [`to_static`] can copy the reference.
pub struct Shared<T: 'static> {
    value: Arc<T>,
    /// The length of the longest list or map in it, for the cost bound.
    longest: u64,
}

/// Printed as the value it holds, as errors show values.
impl<T: std::fmt::Debug + 'static> std::fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.value.fmt(f)
    }
}

impl<T: 'static> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared {
            value: Arc::clone(&self.value),
            longest: self.longest,
        }
    }
}

impl<T: Val + Clone + 'static> Shared<T> {
    /// Share `value`, whose longest list or map has `longest` elements.
    fn new(value: T, longest: u64) -> Self {
        Shared {
            value: Arc::new(value),
            longest,
        }
    }
}

impl<T: Val + Clone + 'static> Val for Shared<T> {
    fn get_type(&self) -> &cel::common::types::Type {
        self.value.get_type()
    }

    fn cel_type() -> &'static cel::common::types::Type {
        T::cel_type()
    }

    fn as_adder<'b, 'v>(&'b self) -> Option<&'b (dyn Adder + 'v)>
    where
        Self: 'v,
    {
        self.value.as_adder()
    }

    fn as_comparer(&self) -> Option<&dyn Comparer> {
        self.value.as_comparer()
    }

    fn as_container(&self) -> Option<&dyn Container> {
        self.value.as_container().map(|_| self as &dyn Container)
    }

    fn as_divider<'b, 'v>(&'b self) -> Option<&'b (dyn Divider + 'v)>
    where
        Self: 'v,
    {
        self.value.as_divider()
    }

    fn as_indexer<'b, 'v>(&'b self) -> Option<&'b (dyn Indexer + 'v)>
    where
        Self: 'v,
    {
        self.value.as_indexer().map(|_| self as &dyn Indexer)
    }

    fn into_indexer<'v>(self: Box<Self>) -> Option<Box<dyn Indexer + 'v>>
    where
        Self: 'v,
    {
        Some(self)
    }

    fn as_iterable<'b, 'v>(&'b self) -> Option<&'b (dyn Iterable + 'v)>
    where
        Self: 'v,
    {
        self.value.as_iterable()
    }

    fn as_modder<'b, 'v>(&'b self) -> Option<&'b (dyn Modder + 'v)>
    where
        Self: 'v,
    {
        self.value.as_modder()
    }

    fn as_multiplier<'b, 'v>(&'b self) -> Option<&'b (dyn Multiplier + 'v)>
    where
        Self: 'v,
    {
        self.value.as_multiplier()
    }

    fn as_negator<'b, 'v>(&'b self) -> Option<&'b (dyn Negator + 'v)>
    where
        Self: 'v,
    {
        self.value.as_negator()
    }

    fn as_sizer(&self) -> Option<&dyn Sizer> {
        self.value.as_sizer()
    }

    fn as_subtractor<'b, 'v>(&'b self) -> Option<&'b (dyn Subtractor + 'v)>
    where
        Self: 'v,
    {
        self.value.as_subtractor()
    }

    fn as_zeroer(&self) -> Option<&dyn Zeroer> {
        self.value.as_zeroer()
    }

    fn equals(&self, other: &dyn Val) -> bool {
        self.value.equals(other)
    }

    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(self.clone())
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn as_builtin<'b, 'v>(&'b self) -> BuiltinRef<'b, 'v>
    where
        Self: 'v,
    {
        self.value.as_builtin()
    }

    fn into_builtin<'v>(self: Box<Self>) -> Option<Builtin<'v>>
    where
        Self: 'v,
    {
        // The value itself when nothing else shares it, else a copy of its
        // top level (its elements are shared in turn).
        let value = Arc::try_unwrap(self.value).unwrap_or_else(|shared| (*shared).clone());
        Box::new(value).into_builtin()
    }
}

impl<T: Val + Clone + 'static> cel::common::value::StaticVal for Shared<T> {}

/// Maps with at most this many entries are searched by comparing string
/// keys, rather than hashed: the `cel` crate's maps hash with SipHash, which
/// costs more than a few comparisons. Most maps of Kubernetes objects are
/// this small.
const SCANNED: usize = 16;

/// The value of the string key `idx` in a small map, found by comparing keys:
/// `Some(None)` when the map has no such key (a string is only ever equal
/// to a string key, and every key was compared); `None` when `value` is not
/// a small map or `idx` not a string (the map's own lookup then answers).
fn scan<'b>(
    value: &'b (dyn Val + 'static),
    idx: &dyn Val,
) -> Option<Option<&'b (dyn Val + 'static)>> {
    let BuiltinRef::Map(map) = value.as_builtin() else {
        return None;
    };
    let key = idx.downcast_ref::<CelString>()?.inner();
    if map.inner().len() > SCANNED {
        return None;
    }
    Some(map.inner().iter().find_map(|(k, v)| match k {
        CelMapKey::String(s) if s.inner() == key => Some(v.as_ref()),
        _ => None,
    }))
}

/// `idx in self`: a small map's string keys are compared, as for indexing,
/// and a key none of them is is absent without hashing it.
impl<T: Val + Clone + 'static> Container for Shared<T> {
    fn contains(&self, idx: &dyn Val) -> Result<bool, ExecutionError> {
        if let Some(found) = scan(self.value.as_ref(), idx) {
            return Ok(found.is_some());
        }
        match self.value.as_container() {
            Some(container) => container.contains(idx),
            None => Ok(false),
        }
    }
}

/// Indexing and field selection, with a small map's string keys compared
/// ([`scan`]); indexing a shared value that is about to be dropped copies the
/// element out (it is shared or small) rather than moving it.
impl<T: Val + Clone + 'static> Indexer for Shared<T> {
    fn get<'b, 'v>(&'b self, idx: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        // a missing key is left to the map, whose error it reports
        if let Some(Some(found)) = scan(self.value.as_ref(), idx) {
            return Ok(CowVal::Borrowed(found));
        }
        match self.value.as_indexer() {
            Some(indexer) => indexer.get(idx),
            None => Err(ExecutionError::UnexpectedType {
                got: self.value.get_type().name().to_owned(),
                want: "map or list".to_owned(),
            }),
        }
    }

    fn steal<'v>(self: Box<Self>, idx: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        self.get(idx).map(CowVal::into_owned)
    }
}

/// An owned, `'static` copy of an evaluation's result, in one pass (going
/// through [`cel::Value`] would copy it twice). `None` for a value of a type
/// that cannot be copied this way (a type value, a struct).
pub fn to_static(value: &dyn Val) -> Option<CelVal> {
    if let Some(shared) = value.downcast_ref::<Shared<CelMap<'static>>>() {
        return Some(Box::new(shared.clone()));
    }
    if let Some(shared) = value.downcast_ref::<Shared<CelList<'static>>>() {
        return Some(Box::new(shared.clone()));
    }
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
        return Some(Box::new(static_list(list)?));
    }
    if let Some(map) = value.downcast_ref::<CelMap>() {
        return Some(Box::new(static_map(map)?));
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

/// A `'static` copy of `list` ([`to_static`]).
fn static_list(list: &CelList) -> Option<CelList<'static>> {
    let items: Option<Vec<CelVal>> = list.inner().iter().map(|v| to_static(v.as_ref())).collect();
    Some(CelList::from(items?))
}

/// A `'static` copy of `map` ([`to_static`]).
fn static_map(map: &CelMap) -> Option<CelMap<'static>> {
    let entries: Option<HashMap<CelMapKey<'static>, CelVal>> = map
        .inner()
        .iter()
        .map(|(k, v)| Some((k.clone().into_static(), to_static(v.as_ref())?)))
        .collect();
    Some(CelMap::from(entries?))
}

/// [`to_static`], with a list or map put behind a [`Shared`] reference, its
/// longest list or map measured once: a policy variable's value, which the
/// policy's later expressions and the other policies of the request
/// ([`super::shared`]) then copy by reference.
pub fn to_shared(value: &dyn Val) -> Option<CelVal> {
    let is_shared = value.downcast_ref::<Shared<CelMap<'static>>>().is_some()
        || value.downcast_ref::<Shared<CelList<'static>>>().is_some();
    if !is_shared {
        if let Some(list) = value.downcast_ref::<CelList>() {
            let list = static_list(list)?;
            let longest = longest_in(&list);
            return Some(Box::new(Shared::new(list, longest)));
        }
        if let Some(map) = value.downcast_ref::<CelMap>() {
            let map = static_map(map)?;
            let longest = longest_in(&map);
            return Some(Box::new(Shared::new(map, longest)));
        }
    }
    to_static(value)
}

/// The length of the longest list or map in `value`.
pub fn longest_in(value: &dyn Val) -> u64 {
    if let Some(shared) = value.downcast_ref::<Shared<CelMap<'static>>>() {
        return shared.longest;
    }
    if let Some(shared) = value.downcast_ref::<Shared<CelList<'static>>>() {
        return shared.longest;
    }
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

/// Follow field names through maps (a JSON pointer's segments, or the
/// fields of a selection `a.b.c`), without copying anything; `None` when a
/// value on the way is not a map or lacks the field.
pub fn descend<'a, 's>(
    mut value: &'a (dyn Val + 'static),
    segments: impl IntoIterator<Item = &'s str>,
) -> Option<&'a (dyn Val + 'static)> {
    for segment in segments {
        value = field(value, segment)?;
    }
    Some(value)
}

/// [`descend`] through the fields of a dotted name (`spec.affinity`).
pub fn descend_dotted<'a>(
    mut value: &'a (dyn Val + 'static),
    fields: &str,
) -> Option<&'a (dyn Val + 'static)> {
    let mut rest = Some(fields);
    while let Some(fields) = rest {
        let (segment, after) = split_dot(fields);
        value = field(value, segment)?;
        rest = after;
    }
    Some(value)
}

/// `name` up to its first dot, and what follows the dot, if there is one.
/// (A byte loop: names are short, and `str::split_once` costs more to set
/// up than it saves on them.)
pub fn split_dot(name: &str) -> (&str, Option<&str>) {
    match name.bytes().position(|b| b == b'.') {
        Some(dot) => (&name[..dot], Some(&name[dot + 1..])),
        None => (name, None),
    }
}

/// The value of the field `name` of the map `value`: a small map's string
/// keys are compared, without building a key ([`scan`]).
fn field<'a>(value: &'a (dyn Val + 'static), name: &str) -> Option<&'a (dyn Val + 'static)> {
    let BuiltinRef::Map(map) = value.as_builtin() else {
        return None;
    };
    if map.inner().len() <= SCANNED {
        return map.inner().iter().find_map(|(k, v)| match k {
            CelMapKey::String(s) if s.inner() == name => Some(v.as_ref()),
            _ => None,
        });
    }
    match value.as_indexer()?.get(&CelString::from(name)).ok()? {
        CowVal::Borrowed(v) => Some(v),
        CowVal::Owned(_) => None,
    }
}

/// What a variable resolver answers for `name`: the variable `root` finds
/// by that name, else, for a qualified name (`variables.spec.affinity`), the
/// value it selects through maps from the variable its first segment names. The
/// interpreter asks for the whole name first, then for shorter prefixes,
/// selecting the rest itself; answering the whole name spares those steps.
/// When a field on the way is missing or not in a map the answer is `None`,
/// and the interpreter's own selection reports the error as it would.
pub fn resolve_qualified<'a>(
    name: &str,
    root: impl Fn(&str) -> Option<&'a (dyn Val + 'static)>,
) -> Option<&'a (dyn Val + 'static)> {
    root(name).or_else(|| {
        let (variable, fields) = split_dot(name);
        let fields = fields?;
        descend_dotted(root(variable)?, fields)
    })
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
        let a = descend(v.as_ref(), ["a"]).unwrap();
        assert_eq!(a.get_type().name(), "list");
        let c = descend(v.as_ref(), ["b", "c"]).unwrap();
        assert_eq!(c.get_type().name(), "int");
    }

    #[test]
    fn shared_lists_and_maps_behave_as_the_values_they_hold() {
        use crate::cel::expression::{Bindings, Expression};
        let mut bindings = Bindings::new();
        bindings.insert_json(
            "o",
            &serde_json::json!({"l": [1, 2, 3], "m": {"a": "x", "b": "y"}, "n": [[1], [2]]}),
        );
        // a map too large to be scanned: its own lookup answers
        let big: serde_json::Map<String, serde_json::Value> = (0..2 * SCANNED)
            .map(|i| (format!("k{i}"), i.into()))
            .collect();
        bindings.insert_json("big", &serde_json::Value::Object(big));
        for source in [
            // a key the scan does not find is absent, as the map says
            "!('c' in o.m) && !has(o.m.c) && !(1 in o.m) && !('' in o.m) && 'b' in o.m",
            "'k3' in big && has(big.k30) && !('k99' in big) && !has(big.k99) && !(1 in big)",
            "o.l + o.l == [1, 2, 3, 1, 2, 3]",
            "o.l + [4] == [1, 2, 3, 4] && [0] + o.l == [0, 1, 2, 3]",
            "o.m == {'a': 'x', 'b': 'y'} && {'a': 'x', 'b': 'y'} == o.m",
            "o.l == [1, 2, 3] && [1, 2, 3] == o.l && o.l != [1]",
            "2 in o.l && 'a' in o.m && !('c' in o.m)",
            "size(o.l) == 3 && o.m.size() == 2 && o.l[1] == 2 && o.m['b'] == 'y'",
            "has(o.m.a) && !has(o.m.c) && o.?m.?c == optional.none()",
            "o.n.map(x, x[0]) == [1, 2] && o.n.filter(x, x[0] > 1) == [[2]]",
            "o.n.exists(x, x == [2]) && [o.n[0]][0] == [1] && type(o.l) == list",
            "o.l.sort() == o.l && o.l.slice(1, 2) == [2] && o.n[1][0] == 2",
            "[o.m][0].a == 'x' && {'k': o.l}.k[2] == 3 && optional.of(o.l).value()[0] == 1",
            "optional.ofNonZeroValue(o.l).hasValue() && string(o.m.a) == 'x'",
        ] {
            let expr = Expression::compile(source).unwrap();
            assert_eq!(
                expr.evaluate(&bindings).unwrap(),
                serde_json::json!(true),
                "{source}"
            );
        }
    }

    #[test]
    fn a_computed_list_or_map_is_shared_with_its_longest_measured() {
        use crate::cel::expression::{Bindings, Expression};
        let mut bindings = Bindings::new();
        bindings.insert_json("o", &serde_json::json!({"l": [1, 2, 3]}));
        let expr = Expression::compile("o.l.map(x, {'v': [x, x]})").unwrap();
        let shared = expr
            .evaluate_with(&bindings, |v| to_shared(v).unwrap())
            .unwrap();
        assert!(shared.downcast_ref::<Shared<CelList<'static>>>().is_some());
        // the list of three maps; the pairs inside are shorter
        assert_eq!(longest_in(shared.as_ref()), 3);
        let copy = to_static(shared.as_ref()).unwrap();
        assert!(copy.downcast_ref::<Shared<CelList<'static>>>().is_some());
        assert_eq!(
            crate::cel::expression::to_json(copy.as_ref()).unwrap(),
            serde_json::json!([{"v": [1, 1]}, {"v": [2, 2]}, {"v": [3, 3]}])
        );
        // a scalar is copied as it is, a shared input by reference
        let n = to_shared(&CelInt::from(7)).unwrap();
        assert_eq!(n.downcast_ref::<CelInt>().map(|i| *i.inner()), Some(7));
        let input = to_cel(&serde_json::json!({"a": [1]}), &mut 0);
        let again = to_shared(input.as_ref()).unwrap();
        assert!(again.downcast_ref::<Shared<CelMap<'static>>>().is_some());
    }

    #[test]
    fn dotted_names_are_split_at_each_dot() {
        assert_eq!(split_dot("a.b.c"), ("a", Some("b.c")));
        assert_eq!(split_dot("a"), ("a", None));
        assert_eq!(split_dot("a."), ("a", Some("")));
        let mut longest = 0;
        let v = to_cel(&serde_json::json!({"a": {"b": {"c": 1}}}), &mut longest);
        let c = descend_dotted(v.as_ref(), "a.b.c").unwrap();
        assert_eq!(c.get_type().name(), "int");
        assert!(descend_dotted(v.as_ref(), "a.x").is_none());
        assert!(descend_dotted(v.as_ref(), "a.b.c.d").is_none());
    }

    #[test]
    fn shared_values_copy_by_reference_and_keep_their_size() {
        let mut longest = 0;
        let v = to_cel(&serde_json::json!({"a": {"b": [1, 2, 3, 4]}}), &mut longest);
        let a = descend(v.as_ref(), ["a"]).unwrap();
        assert_eq!(longest_in(a), 4);
        let copy = to_static(a).unwrap();
        let (Some(x), Some(y)) = (
            a.downcast_ref::<Shared<CelMap<'static>>>(),
            copy.downcast_ref::<Shared<CelMap<'static>>>(),
        ) else {
            panic!("not shared");
        };
        assert!(Arc::ptr_eq(&x.value, &y.value));
    }
}
