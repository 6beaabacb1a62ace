//! CEL conformance, measured: the cel-spec simple tests of tier B
//! (../shared/docs/external-suites.md §6) and the two Kubernetes CEL tables
//! under `$TOLLGATE_EXTERNAL_DIR/kubernetes-cel`, read in place and run
//! through [`Expression`], the environment every CEL policy uses: the
//! Kubernetes tables in the Kubernetes dialect (the API server's compile-time
//! checks), the cel-spec suite in the plain-CEL dialect ([`Dialect::Plain`]).
//!
//! Each suite prints pass, fail and skip counts, the reason for every skip,
//! and the failing cases; the test fails when a pass count drops below the
//! floor measured and recorded here (docs/conformance.md has the figures).
//! The cel-spec files are protobuf text; [`textproto`] is a small parser for
//! the subset they use.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use cel::common::types::{
    CelBool, CelBytes, CelDouble, CelDuration, CelInt, CelList, CelMap, CelMapKey, CelNull,
    CelString, CelTimestamp, CelType, CelUInt,
};
use cel::common::value::Val;
use serde_json::Value as Json;
use tollgate::cel::expression::{Bindings, Dialect, Expression, to_json};
use tollgate::cel::value::{CelVal, to_cel};

use crate::util::external_dir;

/// The outcome counts of one suite.
#[derive(Default)]
struct Tally {
    pass: usize,
    fail: Vec<String>,
    skip: BTreeMap<String, usize>,
    /// Cases outside the suite's definition (tier B of external-suites.md).
    excluded: BTreeMap<String, usize>,
}

impl Tally {
    fn record(&mut self, name: &str, outcome: Outcome) {
        match outcome {
            Outcome::Pass => self.pass += 1,
            Outcome::Fail(why) => self
                .fail
                .push(format!("{name}: {}", why.replace('\n', " "))),
            Outcome::Skip(why) => *self.skip.entry(why).or_default() += 1,
            Outcome::Excluded(why) => *self.excluded.entry(why).or_default() += 1,
        }
    }

    fn report(&self, suite: &str) {
        let skipped: usize = self.skip.values().sum();
        println!(
            "{suite}: pass {} fail {} skip {skipped}",
            self.pass,
            self.fail.len()
        );
        for (why, n) in &self.skip {
            println!("  skip {n}: {why}");
        }
        for (why, n) in &self.excluded {
            println!("  excluded {n}: {why}");
        }
        for f in &self.fail {
            println!("  FAIL {f}");
        }
    }
}

enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
    /// Not part of the suite as defined (counted in neither rate).
    Excluded(String),
}

fn fail(why: impl Into<String>) -> Outcome {
    Outcome::Fail(why.into())
}

fn skip(why: impl Into<String>) -> Outcome {
    Outcome::Skip(why.into())
}

// ---------------------------------------------------------------------------
// The Kubernetes CEL tables.

fn read_yaml(path: &Path) -> Json {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (is TOLLGATE_EXTERNAL_DIR set?)", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The constructor expression of a Kubernetes library value type.
fn constructor(type_name: &str) -> Option<&'static str> {
    Some(match type_name {
        "net.IP" => "ip",
        "net.CIDR" => "cidr",
        "kubernetes.Quantity" => "quantity",
        "kubernetes.Semver" => "semver",
        _ => return None,
    })
}

/// Whether `check` holds with `actual` bound to the value of `expr` (through
/// a one-element comprehension, so it is evaluated once) and `expected` to a
/// JSON value.
fn holds(expr: &str, check: &str, expected: &Json) -> Outcome {
    let combined = format!("[({expr})].all(actual, {check})");
    let mut bindings = Bindings::new();
    bindings.insert_json("expected", expected);
    match Expression::compile(&combined).and_then(|e| e.evaluate(&bindings)) {
        Ok(Json::Bool(true)) => Outcome::Pass,
        Ok(other) => fail(format!("`{check}` is {other}")),
        Err(e) => fail(e.to_string()),
    }
}

fn run_library_case(case: &Json) -> Outcome {
    let expr_text = case["expr"].as_str().unwrap_or_default();
    let expect = &case["expect"];
    let compiled = Expression::compile(expr_text);
    let bindings = Bindings::new();
    if let Some(patterns) = expect.get("compile_error_patterns") {
        // Without a type checker an ill-typed call fails when it runs.
        return match compiled.map(|e| e.evaluate(&bindings)) {
            Err(_) | Ok(Err(_)) => Outcome::Pass,
            Ok(Ok(v)) => fail(format!("expected a type error ({patterns}), got {v}")),
        };
    }
    let expr = match compiled {
        Ok(e) => e,
        Err(e) => return fail(e.to_string()),
    };
    if expect.get("runtime_error_contains_or_matches").is_some() {
        return match expr.evaluate(&bindings) {
            Err(_) => Outcome::Pass,
            Ok(v) => fail(format!("expected an error, got {v}")),
        };
    }
    let value = &expect["value"];
    let type_name = expect.get("type").and_then(Json::as_str);
    match (type_name, value) {
        (Some(t), Json::String(text)) if constructor(t).is_some() => {
            let check = format!(
                "type(actual) == {t} && actual == {}(expected)",
                constructor(t).unwrap_or_default()
            );
            holds(expr_text, &check, &Json::String(text.clone()))
        }
        (Some(t), Json::String(none)) if t.starts_with("optional") && none == "optional.none()" => {
            holds(expr_text, "actual == optional.none()", &Json::Null)
        }
        (Some(t), expected) if t.starts_with("optional") => {
            holds(expr_text, "actual == optional.of(expected)", expected)
        }
        (t, expected) => {
            match expr.evaluate_with(&bindings, |v| (v.get_type().name().to_owned(), to_json(v))) {
                Ok((actual_type, Ok(actual))) => {
                    if t.is_some_and(|t| t != actual_type) {
                        fail(format!(
                            "type {actual_type}, expected {}",
                            t.unwrap_or_default()
                        ))
                    } else if json_equal(&actual, expected) {
                        Outcome::Pass
                    } else {
                        fail(format!("got {actual}, expected {expected}"))
                    }
                }
                Ok((_, Err(e))) => fail(e),
                Err(e) => fail(e.to_string()),
            }
        }
    }
}

/// JSON equality with numbers compared by value (`50703` == `50703.0`).
fn json_equal(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x.as_f64() == y.as_f64(),
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b))
        }
        _ => a == b,
    }
}

#[test]
fn kubernetes_cel_library_table() {
    let path = external_dir().join("kubernetes-cel/apiserver-cel-library-cases.yaml");
    let doc = read_yaml(&path);
    let mut tally = Tally::default();
    for case in doc["cases"].as_array().expect("cases") {
        let name = format!(
            "{} / {}",
            case["suite"].as_str().unwrap_or_default(),
            case["name"].as_str().unwrap_or_default()
        );
        tally.record(&name, run_library_case(case));
    }
    tally.report("kubernetes-cel/apiserver-cel-library-cases");
    assert!(
        tally.pass >= KUBERNETES_LIBRARY_FLOOR,
        "pass count {} dropped below {KUBERNETES_LIBRARY_FLOOR}",
        tally.pass
    );
}

/// Measured: all 168 cases of the table.
const KUBERNETES_LIBRARY_FLOOR: usize = 168;

/// A `self` field typed as the CRD schema of the section types it
/// (the file's `schema_notes`): numbers as doubles, strings as durations or
/// timestamps.
fn typed_field(section: &str, field: &str, value: &Json) -> CelVal {
    let mut longest = 0;
    let as_double =
        |v: &Json| -> CelVal { Box::new(CelDouble::from(v.as_f64().unwrap_or(f64::NAN))) };
    let list_of = |v: &Json, f: &dyn Fn(&Json) -> CelVal| -> CelVal {
        let items: Vec<CelVal> = v
            .as_array()
            .map(|a| a.iter().map(f).collect())
            .unwrap_or_default();
        Box::new(CelList::from(items))
    };
    match (section, field) {
        ("numeric comparisons", "val4" | "val5" | "val6" | "val7" | "val8" | "val9") => {
            as_double(value)
        }
        ("stdlib list functions", f) if f.to_lowercase().contains("doubles") => {
            list_of(value, &as_double)
        }
        ("stdlib list functions", f) if f.to_lowercase().contains("durations") => {
            list_of(value, &|v| {
                let text = v.as_str().unwrap_or_default();
                let (n, unit) = text.split_at(text.len() - 1);
                let n: i64 = n.parse().unwrap_or_default();
                let d = match unit {
                    "s" => chrono::Duration::seconds(n),
                    "m" => chrono::Duration::minutes(n),
                    _ => chrono::Duration::hours(n),
                };
                Box::new(CelDuration::from(d))
            })
        }
        ("stdlib list functions", f) if f.to_lowercase().contains("dates") => {
            list_of(value, &|v| {
                let text = format!("{}T00:00:00Z", v.as_str().unwrap_or_default());
                let t = chrono::DateTime::parse_from_rfc3339(&text).expect("a date");
                Box::new(CelTimestamp::from(t))
            })
        }
        _ => to_cel(value, &mut longest),
    }
}

#[test]
fn kubernetes_crd_validation_rules() {
    let path = external_dir().join("kubernetes-cel/apiextensions-validation-expression-cases.yaml");
    let doc = read_yaml(&path);
    let mut selves: HashMap<String, Json> = HashMap::new();
    if let Some(map) = doc["self_by_section"].as_object() {
        selves.extend(map.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    let mut tally = Tally::default();
    for case in doc["cases"].as_array().expect("cases") {
        let section = case["section"].as_str().unwrap_or_default();
        let expr_text = case["expr"].as_str().unwrap_or_default();
        let mut bindings = Bindings::new();
        if let Some(Json::Object(fields)) = selves.get(section) {
            let entries: HashMap<CelMapKey<'static>, CelVal> = fields
                .iter()
                .map(|(k, v)| (CelMapKey::from(k.clone()), typed_field(section, k, v)))
                .collect();
            bindings.insert("self", Box::new(CelMap::from(entries)));
        }
        let result = Expression::compile(expr_text).and_then(|e| e.evaluate(&bindings));
        let outcome = match (&case["expect"]["error_contains"], result) {
            (Json::String(_), Err(_)) => Outcome::Pass,
            (Json::String(want), Ok(v)) => fail(format!("expected an error ({want}), got {v}")),
            (_, Ok(Json::Bool(true))) => Outcome::Pass,
            (_, Ok(v)) => fail(format!("got {v}")),
            (_, Err(e)) => fail(e.to_string()),
        };
        tally.record(&format!("{section}: {expr_text}"), outcome);
    }
    tally.report("kubernetes-cel/apiextensions-validation-expression-cases");
    assert!(
        tally.pass >= KUBERNETES_CRD_FLOOR,
        "pass count {} dropped below {KUBERNETES_CRD_FLOOR}",
        tally.pass
    );
}

/// Measured: 350 of 352 rules (docs/conformance.md lists the two gaps).
const KUBERNETES_CRD_FLOOR: usize = 350;

// ---------------------------------------------------------------------------
// cel-spec.

/// Tier B files and the pass count measured for each (docs/conformance.md).
const CEL_SPEC_FLOORS: &[(&str, usize)] = &[
    ("basic", 43),
    ("comparisons", 334),
    ("conversions", 109),
    ("fields", 60),
    ("fp_math", 30),
    ("integer_math", 64),
    ("lists", 39),
    ("logic", 30),
    ("macros", 44),
    ("macros2", 46),
    ("optionals", 59),
    ("parse", 193),
    ("plumbing", 5),
    ("string", 51),
    ("string_ext", 210),
    ("timestamps", 75),
    ("network_ext", 67),
];

/// The tier B pass count measured over all 17 files.
const CEL_SPEC_TIER_B_FLOOR: usize = 1459;

#[test]
fn cel_spec_tier_b() {
    let mut total = Tally::default();
    let mut drops = Vec::new();
    for (file, floor) in CEL_SPEC_FLOORS {
        let path = external_dir().join(format!("cel-spec/{file}.textproto"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (is TOLLGATE_EXTERNAL_DIR set?)", path.display()));
        let root = textproto::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut tally = Tally::default();
        for section in root.all("section") {
            let section_name = section.str("name").unwrap_or_default();
            for test in section.all("test") {
                let test_name = test.str("name").unwrap_or_default();
                let name = format!("{file}/{section_name}/{test_name}");
                let outcome = match tier_b_exclusion(file, &section_name, &test_name) {
                    Some(why) => Outcome::Excluded(why.to_owned()),
                    None => run_spec_test(test),
                };
                tally.record(&name, outcome);
            }
        }
        tally.report(&format!("cel-spec/{file}"));
        if tally.pass < *floor {
            drops.push(format!("{file}: {} < {floor}", tally.pass));
        }
        total.pass += tally.pass;
        total.fail.extend(tally.fail);
        for (k, v) in tally.skip {
            *total.skip.entry(k).or_default() += v;
        }
        for (k, v) in tally.excluded {
            *total.excluded.entry(k).or_default() += v;
        }
    }
    let skipped: usize = total.skip.values().sum();
    let excluded: usize = total.excluded.values().sum();
    let run = total.pass + total.fail.len();
    let all = run + skipped + excluded;
    let percent = |n: usize, of: usize| 100.0 * n as f64 / of.max(1) as f64;
    println!(
        "cel-spec tier B: pass {} fail {} skip {skipped} excluded {excluded}",
        total.pass,
        total.fail.len()
    );
    println!(
        "  of all {all} tests of the 17 files: {:.1}%; of the {} in tier B: {:.1}%; of the {run} run: {:.1}%",
        percent(total.pass, all),
        all - excluded,
        percent(total.pass, all - excluded),
        percent(total.pass, run),
    );
    assert!(drops.is_empty(), "pass counts dropped: {drops:?}");
    assert!(
        total.pass >= CEL_SPEC_TIER_B_FLOOR,
        "tier B pass count {} dropped below {CEL_SPEC_TIER_B_FLOOR}",
        total.pass
    );
}

/// The cases tier B leaves out (../shared/docs/external-suites.md §2 and
/// §6): the strings extension's `reverse` (version 3; Kubernetes enables
/// version 2) and network_ext's `ipv4_equals_ipv6`, which expects an
/// IPv4-mapped IPv6 address that Kubernetes' `ip()` rejects to equal its
/// IPv4 address.
fn tier_b_exclusion(file: &str, section: &str, test: &str) -> Option<&'static str> {
    match (file, section, test) {
        ("string_ext", "reverse", _) => {
            Some("`reverse` is strings version 3, not in Kubernetes (version 2)")
        }
        ("network_ext", _, "ipv4_equals_ipv6") => Some(
            "IPv4-mapped IPv6 address equal to its IPv4 address; Kubernetes rejects the address",
        ),
        _ => None,
    }
}

/// Run one cel-spec test in the plain-CEL dialect: the specification's own
/// rules, without the API server's literal checks (the Kubernetes tables
/// above keep them).
fn run_spec_test(test: &textproto::Message) -> Outcome {
    let expr_text = test.str("expr").unwrap_or_default();
    if let Some(why) = spec_skip(&expr_text, test) {
        return skip(why);
    }
    let mut bindings = Bindings::new();
    for binding in test.all("bindings") {
        let key = binding.str("key").unwrap_or_default();
        let Some(value) = binding.msg("value").and_then(|v| v.msg("value")) else {
            return skip("a binding that is not a plain value");
        };
        match to_val(value) {
            Ok(v) => bindings.insert(&key, v),
            Err(why) => return skip(why),
        }
    }
    // Without a type checker, `disable_check` changes nothing here.
    let expr = Expression::compile_in(Dialect::Plain, &expr_text);
    let expects_error = test.msg("eval_error").is_some() || test.msg("any_eval_errors").is_some();
    let expected = test
        .msg("value")
        .or_else(|| test.msg("typed_result").and_then(|t| t.msg("result")));
    let expr = match expr {
        Ok(e) => e,
        Err(_) if expects_error => return Outcome::Pass,
        Err(e) => return fail(e.to_string()),
    };
    // simple.proto: a test with no expectation expects `true`.
    let default_true = textproto::parse("bool_value: true").expect("a literal");
    let expected = expected.unwrap_or(&default_true);
    let result = expr.evaluate_with(&bindings, |actual| matches_value(actual, expected));
    match (result, expects_error) {
        (Err(_), true) => Outcome::Pass,
        (Ok(_), true) => fail("expected an error"),
        (Err(e), false) => fail(e.to_string()),
        (Ok(Ok(())), false) => Outcome::Pass,
        (Ok(Err(why)), false) => fail(why),
    }
}

/// Why a cel-spec test is out of scope, if it is.
fn spec_skip(expr: &str, test: &textproto::Message) -> Option<&'static str> {
    if test.str("container").is_some()
        || expr.contains("TestAllTypes")
        || expr.contains("google.protobuf")
        || expr.contains("cel.expr.conformance")
        || test.contains_field("object_value")
    {
        return Some("needs protobuf message types");
    }
    if test.msg("unknown").is_some() || test.msg("any_unknowns").is_some() {
        return Some("unknown values (partial evaluation) are not supported");
    }
    None
}

/// A `cel.expr.Value` as a CEL value.
fn to_val(v: &textproto::Message) -> Result<CelVal, String> {
    let (field, node) = v.fields.first().ok_or("an empty value")?;
    let scalar = || node.scalar().ok_or(format!("{field} is not a scalar"));
    Ok(match field.as_str() {
        "null_value" => Box::new(CelNull),
        "bool_value" => Box::new(CelBool::from(scalar()? == "true")),
        "int64_value" => Box::new(CelInt::from(
            scalar()?.parse::<i64>().map_err(|e| e.to_string())?,
        )),
        "uint64_value" => Box::new(CelUInt::from(
            scalar()?.parse::<u64>().map_err(|e| e.to_string())?,
        )),
        "double_value" => Box::new(CelDouble::from(textproto::number(&scalar()?)?)),
        "string_value" => Box::new(CelString::from(node.text().ok_or("not a string")?)),
        "bytes_value" => Box::new(CelBytes::from(node.bytes().ok_or("not bytes")?)),
        "list_value" => {
            let list = node.message().ok_or("not a list")?;
            let items = list
                .all("values")
                .map(to_val)
                .collect::<Result<Vec<_>, _>>()?;
            Box::new(CelList::from(items))
        }
        "map_value" => {
            let map = node.message().ok_or("not a map")?;
            let mut entries = HashMap::new();
            for entry in map.all("entries") {
                let key = to_val(entry.msg("key").ok_or("no key")?)?;
                let key = CelMapKey::try_from(key).map_err(|e| e.to_string())?;
                entries.insert(key, to_val(entry.msg("value").ok_or("no value")?)?);
            }
            Box::new(CelMap::from(entries))
        }
        other => return Err(format!("a {other} binding")),
    })
}

/// Whether `actual` is exactly the expected `cel.expr.Value` (same type,
/// same value; NaN matches NaN).
fn matches_value(actual: &dyn Val, expected: &textproto::Message) -> Result<(), String> {
    let (field, node) = expected.fields.first().ok_or("an empty expected value")?;
    let type_name = actual.get_type().name();
    let mismatch = || {
        Err(format!(
            "got {} {}, expected {field} {node:?}",
            type_name,
            to_json(actual).map(|j| j.to_string()).unwrap_or_else(|e| e)
        ))
    };
    let ok = match field.as_str() {
        "null_value" => actual.downcast_ref::<CelNull>().is_some(),
        "bool_value" => actual
            .downcast_ref::<CelBool>()
            .is_some_and(|b| *b.inner() == (node.scalar().as_deref() == Some("true"))),
        "int64_value" => actual
            .downcast_ref::<CelInt>()
            .is_some_and(|i| Some(*i.inner()) == node.scalar().and_then(|s| s.parse().ok())),
        "uint64_value" => actual
            .downcast_ref::<CelUInt>()
            .is_some_and(|i| Some(*i.inner()) == node.scalar().and_then(|s| s.parse().ok())),
        "double_value" => actual.downcast_ref::<CelDouble>().is_some_and(|d| {
            let want = node
                .scalar()
                .map(|s| textproto::number(&s))
                .and_then(Result::ok);
            want.is_some_and(|w| (w.is_nan() && d.inner().is_nan()) || w == *d.inner())
        }),
        "string_value" => actual
            .downcast_ref::<CelString>()
            .is_some_and(|s| Some(s.inner().to_owned()) == node.text()),
        "bytes_value" => actual
            .downcast_ref::<CelBytes>()
            .is_some_and(|b| Some(b.inner().to_vec()) == node.bytes()),
        "type_value" => actual
            .downcast_ref::<CelType>()
            .is_some_and(|t| Some(t.name().to_owned()) == node.text()),
        "list_value" => {
            let want: Vec<&textproto::Message> = node
                .message()
                .map(|m| m.all("values").collect())
                .unwrap_or_default();
            match actual.downcast_ref::<CelList>() {
                Some(list) if list.inner().len() == want.len() => {
                    for (a, w) in list.inner().iter().zip(want) {
                        matches_value(a.as_ref(), w)?;
                    }
                    true
                }
                _ => false,
            }
        }
        "map_value" => {
            let want: Vec<&textproto::Message> = node
                .message()
                .map(|m| m.all("entries").collect())
                .unwrap_or_default();
            match actual.downcast_ref::<CelMap>() {
                Some(map) if map.inner().len() == want.len() => {
                    for entry in want {
                        let key = to_val(entry.msg("key").ok_or("no key")?)?;
                        let key = CelMapKey::try_from(key).map_err(|e| e.to_string())?;
                        let value = map.inner().get(&key).ok_or(format!("no key {key:?}"))?;
                        matches_value(value.as_ref(), entry.msg("value").ok_or("no value")?)?;
                    }
                    true
                }
                _ => false,
            }
        }
        _ => return Err(format!("unsupported expectation {field}")),
    };
    if ok { Ok(()) } else { mismatch() }
}

/// A parser for the protobuf text format subset of the cel-spec files:
/// fields with scalar or message values (`name: value`, `name { ... }`,
/// `name: < ... >`, `name: [a, b]`), quoted strings with C escapes (adjacent
/// strings concatenate), numbers, identifiers and `#` comments.
mod textproto {
    /// A message: its fields in order (repeated fields repeat).
    #[derive(Debug, Default)]
    pub struct Message {
        pub fields: Vec<(String, Node)>,
    }

    /// A field's value.
    #[derive(Debug)]
    pub enum Node {
        /// A number or identifier, as written.
        Scalar(String),
        /// A quoted string's bytes.
        Bytes(Vec<u8>),
        /// A nested message.
        Message(Message),
    }

    impl Node {
        pub fn scalar(&self) -> Option<String> {
            match self {
                Node::Scalar(s) => Some(s.clone()),
                Node::Bytes(b) => String::from_utf8(b.clone()).ok(),
                Node::Message(_) => None,
            }
        }
        pub fn text(&self) -> Option<String> {
            match self {
                Node::Bytes(b) => String::from_utf8(b.clone()).ok(),
                _ => None,
            }
        }
        pub fn bytes(&self) -> Option<Vec<u8>> {
            match self {
                Node::Bytes(b) => Some(b.clone()),
                _ => None,
            }
        }
        pub fn message(&self) -> Option<&Message> {
            match self {
                Node::Message(m) => Some(m),
                _ => None,
            }
        }
    }

    impl Message {
        pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Message> + 'a {
            self.fields
                .iter()
                .filter(move |(n, _)| n == name)
                .filter_map(|(_, v)| v.message())
        }
        pub fn msg(&self, name: &str) -> Option<&Message> {
            self.fields
                .iter()
                .find(|(n, v)| n == name && v.message().is_some())
                .and_then(|(_, v)| v.message())
        }
        pub fn str(&self, name: &str) -> Option<String> {
            self.fields
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, v)| v.scalar())
        }
        /// Whether a field of that name appears anywhere inside.
        pub fn contains_field(&self, name: &str) -> bool {
            self.fields
                .iter()
                .any(|(n, v)| n == name || v.message().is_some_and(|m| m.contains_field(name)))
        }
    }

    /// A textproto number (`1e3`, `-inf`, `nan`, `0x10`).
    pub fn number(s: &str) -> Result<f64, String> {
        let lower = s.to_ascii_lowercase();
        let (neg, body) = lower
            .strip_prefix('-')
            .map_or((false, lower.as_str()), |b| (true, b));
        let v = match body {
            "inf" | "infinity" => f64::INFINITY,
            "nan" => f64::NAN,
            b => b
                .trim_end_matches('f')
                .parse::<f64>()
                .map_err(|e| format!("{s}: {e}"))?,
        };
        Ok(if neg { -v } else { v })
    }

    struct Lexer<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl Lexer<'_> {
        fn skip_space(&mut self) {
            while self.i < self.s.len() {
                match self.s[self.i] {
                    b' ' | b'\t' | b'\n' | b'\r' => self.i += 1,
                    b'#' => {
                        while self.i < self.s.len() && self.s[self.i] != b'\n' {
                            self.i += 1;
                        }
                    }
                    _ => break,
                }
            }
        }

        fn peek(&mut self) -> Option<u8> {
            self.skip_space();
            self.s.get(self.i).copied()
        }

        fn eat(&mut self, c: u8) -> bool {
            if self.peek() == Some(c) {
                self.i += 1;
                true
            } else {
                false
            }
        }

        fn word(&mut self) -> Result<String, String> {
            self.skip_space();
            let start = self.i;
            while self.i < self.s.len()
                && (self.s[self.i].is_ascii_alphanumeric() || b"_.-+".contains(&self.s[self.i]))
            {
                self.i += 1;
            }
            if start == self.i {
                return Err(format!("expected a name or number at byte {}", self.i));
            }
            Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
        }

        fn string(&mut self) -> Result<Vec<u8>, String> {
            let mut out = Vec::new();
            while let Some(q @ (b'"' | b'\'')) = self.peek() {
                self.i += 1;
                loop {
                    let c = *self.s.get(self.i).ok_or("unterminated string")?;
                    self.i += 1;
                    if c == q {
                        break;
                    }
                    if c != b'\\' {
                        out.push(c);
                        continue;
                    }
                    let e = *self.s.get(self.i).ok_or("unterminated escape")?;
                    self.i += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'a' => out.push(7),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'v' => out.push(11),
                        b'0'..=b'7' => {
                            let mut v = u32::from(e - b'0');
                            for _ in 0..2 {
                                match self.s.get(self.i) {
                                    Some(d @ b'0'..=b'7') => {
                                        v = v * 8 + u32::from(d - b'0');
                                        self.i += 1;
                                    }
                                    _ => break,
                                }
                            }
                            out.push(v as u8);
                        }
                        b'x' | b'X' => {
                            let mut v = 0u32;
                            for _ in 0..2 {
                                match self.s.get(self.i).and_then(|d| (*d as char).to_digit(16)) {
                                    Some(d) => {
                                        v = v * 16 + d;
                                        self.i += 1;
                                    }
                                    None => break,
                                }
                            }
                            out.push(v as u8);
                        }
                        b'u' | b'U' => {
                            let n = if e == b'u' { 4 } else { 8 };
                            let hex = std::str::from_utf8(&self.s[self.i..self.i + n])
                                .map_err(|e| e.to_string())?;
                            self.i += n;
                            let c = u32::from_str_radix(hex, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .ok_or("bad unicode escape")?;
                            out.extend_from_slice(c.to_string().as_bytes());
                        }
                        other => out.push(other),
                    }
                }
            }
            Ok(out)
        }

        fn value(&mut self) -> Result<Node, String> {
            match self.peek() {
                Some(b'{') | Some(b'<') => Ok(Node::Message(self.message_body()?)),
                Some(b'"') | Some(b'\'') => Ok(Node::Bytes(self.string()?)),
                _ => Ok(Node::Scalar(self.word()?)),
            }
        }

        fn message_body(&mut self) -> Result<Message, String> {
            let close = if self.eat(b'{') {
                b'}'
            } else if self.eat(b'<') {
                b'>'
            } else {
                return Err(format!("expected '{{' at byte {}", self.i));
            };
            let m = self.fields(Some(close))?;
            Ok(m)
        }

        fn fields(&mut self, close: Option<u8>) -> Result<Message, String> {
            let mut m = Message::default();
            loop {
                match (self.peek(), close) {
                    (None, None) => return Ok(m),
                    (None, Some(_)) => return Err("unexpected end of input".into()),
                    (Some(c), Some(want)) if c == want => {
                        self.i += 1;
                        return Ok(m);
                    }
                    _ => {}
                }
                // `[type.googleapis.com/...]`: an Any's type URL as a field name.
                let name = if self.eat(b'[') {
                    let start = self.i;
                    while self.i < self.s.len() && self.s[self.i] != b']' {
                        self.i += 1;
                    }
                    let url = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                    self.i += 1;
                    url
                } else {
                    self.word()?
                };
                let colon = self.eat(b':');
                if colon && self.eat(b'[') {
                    while !self.eat(b']') {
                        m.fields.push((name.clone(), self.value()?));
                        self.eat(b',');
                    }
                } else {
                    m.fields.push((name, self.value()?));
                }
                if !self.eat(b',') {
                    self.eat(b';');
                }
            }
        }
    }

    /// Parse a whole file.
    pub fn parse(text: &str) -> Result<Message, String> {
        Lexer {
            s: text.as_bytes(),
            i: 0,
        }
        .fields(None)
    }
}
