//! Kubernetes' format library (kubernetes/apiserver
//! `pkg/cel/library/format.go`, Kubernetes 1.31+): `format.named(name)`,
//! one constructor per format (`format.dns1123Label()`, …), and
//! `Format.validate(s)`, which returns `optional.none()` for a valid string
//! and otherwise the apimachinery validation messages.

use base64::Engine as _;
use cel::common::types::{CelList, CelOptional, CelString, STRING_TYPE, Type};
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, Env};

use super::{Returned, arg, opaque_type, take, text};

/// A `kubernetes.NamedFormat` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format(&'static str);
opaque_type!(Format, FORMAT_TYPE, "kubernetes.NamedFormat");

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// Declares the format names and one constructor per name, from one list.
macro_rules! formats {
    ($($name:literal),* $(,)?) => {
        const NAMES: &[&str] = &[$($name),*];

        /// The constructor of one format, as a plain function pointer.
        fn constructor(name: &str) -> Option<cel::common::functions::Function> {
            match name {
                $($name => Some(|_| Ok(CowVal::owned(Format($name)))),)*
                _ => None,
            }
        }
    };
}

formats!(
    "dns1123Label",
    "dns1123Subdomain",
    "dns1035Label",
    "qualifiedName",
    "dns1123LabelPrefix",
    "dns1123SubdomainPrefix",
    "dns1035LabelPrefix",
    "labelValue",
    "uri",
    "uuid",
    "byte",
    "date",
    "datetime",
);

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

fn full(pattern: &str, s: &str) -> bool {
    super::regex::compiled(&format!("^(?:{pattern})$")).is_ok_and(|re| re.is_match(s))
}

fn too_long(max: usize) -> String {
    format!("must be no more than {max} characters")
}

/// At most `max` bytes and the whole of `s` matching `pattern`.
fn sized_match(s: &str, max: usize, pattern: &str, message: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > max {
        errs.push(too_long(max));
    }
    if !full(pattern, s) {
        errs.push(message.to_owned());
    }
    errs
}

fn dns1123_label(s: &str) -> Vec<String> {
    sized_match(s, 63, "[a-z0-9]([-a-z0-9]*[a-z0-9])?", DNS1123_LABEL_MSG)
}

fn dns1123_subdomain(s: &str) -> Vec<String> {
    sized_match(
        s,
        253,
        r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*",
        DNS1123_SUBDOMAIN_MSG,
    )
}

fn dns1035_label(s: &str) -> Vec<String> {
    sized_match(s, 63, "[a-z]([-a-z0-9]*[a-z0-9])?", DNS1035_LABEL_MSG)
}

fn qualified_name(s: &str) -> Vec<String> {
    let (prefix, name) = match s.split('/').collect::<Vec<_>>().as_slice() {
        [name] => (None, *name),
        [prefix, name] => (Some(*prefix), *name),
        _ => {
            return vec![format!(
                "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            )];
        }
    };
    let mut errs = Vec::new();
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            errs.push("prefix part must be non-empty".to_owned());
        } else {
            errs.extend(
                dns1123_subdomain(prefix)
                    .into_iter()
                    .map(|e| format!("prefix part {e}")),
            );
        }
    }
    if name.is_empty() {
        errs.push("name part must be non-empty".to_owned());
    } else if name.len() > 63 {
        errs.push(format!("name part {}", too_long(63)));
    }
    if !full("([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]", name) {
        errs.push(QUALIFIED_NAME_MSG.to_owned());
    }
    errs
}

fn label_value(s: &str) -> Vec<String> {
    sized_match(
        s,
        63,
        "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?",
        LABEL_VALUE_MSG,
    )
}

/// apimachinery's `maskTrailingDash`: a prefix may end in `-`.
fn prefix(s: &str, check: fn(&str) -> Vec<String>) -> Vec<String> {
    match s.strip_suffix('-') {
        Some(head) if !head.is_empty() => check(&format!("{head}a")),
        _ => check(s),
    }
}

fn one(ok: bool, message: &str) -> Vec<String> {
    if ok {
        Vec::new()
    } else {
        vec![message.to_owned()]
    }
}

fn validate_as(format: &str, s: &str) -> Vec<String> {
    match format {
        "dns1123Label" => dns1123_label(s),
        "dns1123Subdomain" => dns1123_subdomain(s),
        "dns1035Label" => dns1035_label(s),
        "qualifiedName" => qualified_name(s),
        "dns1123LabelPrefix" => prefix(s, dns1123_label),
        "dns1123SubdomainPrefix" => prefix(s, dns1123_subdomain),
        "dns1035LabelPrefix" => prefix(s, dns1035_label),
        "labelValue" => label_value(s),
        "uri" => one(super::url::parse(s).is_ok(), "invalid URI"),
        "uuid" => one(
            full(
                "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
                s,
            ),
            "does not match the UUID format",
        ),
        "byte" => one(
            base64::engine::general_purpose::STANDARD.decode(s).is_ok(),
            "invalid base64",
        ),
        "date" => one(
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() && s.len() == 10,
            "invalid date",
        ),
        "datetime" => one(
            chrono::DateTime::parse_from_rfc3339(s).is_ok(),
            "invalid datetime",
        ),
        _ => Vec::new(),
    }
}

pub(super) fn extension(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_type(Type::to_owned(&FORMAT_TYPE))?;
    env.add_overload(
        "format.named",
        "format_named_string",
        vec![STRING_TYPE],
        named,
    )?;
    for name in NAMES {
        if let Some(f) = constructor(name) {
            env.add_overload(
                &format!("format.{name}"),
                &format!("format_{name}"),
                vec![],
                f,
            )?;
        }
    }
    env.add_member_overload(
        "validate",
        "format_validate_string",
        Type::to_owned(&FORMAT_TYPE),
        vec![STRING_TYPE],
        validate,
    )?;
    Ok(())
}

fn named<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [s] = take(args)?;
    let wanted = text(s.as_ref())?;
    let found = NAMES.iter().find(|n| **n == wanted);
    Ok(CowVal::owned(match found {
        Some(name) => CelOptional::of(Box::new(Format(name))),
        None => CelOptional::none(),
    }))
}

fn validate<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [f, s] = take(args)?;
    let format = arg::<Format>(f.as_ref())?.0;
    let errors = validate_as(format, text(s.as_ref())?);
    if errors.is_empty() {
        return Ok(CowVal::owned(CelOptional::none()));
    }
    let list: Vec<Box<dyn Val + 'v>> = errors
        .into_iter()
        .map(|e| Box::new(CelString::from(e)) as Box<dyn Val + 'v>)
        .collect();
    Ok(CowVal::owned(CelOptional::of(Box::new(CelList::from(
        list,
    )))))
}
