//! The Kubernetes CEL environment on top of the `cel` crate: which libraries
//! are registered, and the helpers they share.
//!
//! Kubernetes' own libraries (lists, regex, URLs, quantity, IP/CIDR, semver,
//! format) are written here for `cel` 0.15, after the Go originals in
//! kubernetes/apiserver `pkg/cel/library` (Apache-2.0) — read, not copied;
//! kube-cel could not be used because it is tied to `cel` 0.13. The cel-go
//! extensions Kubernetes enables come from the crate (strings, lists,
//! optional types) or from here (sets, two-variable comprehensions). See
//! docs/cel-policies.md, "The Kubernetes CEL environment", for the list and
//! for what is not covered.

mod comprehensions;
mod format;
mod lists;
mod literals;
mod net;
mod quantity;
mod regex;
mod semver;
mod sets;
mod url;

use cel::common::types::{CelBool, CelInt, CelList, CelString};
use cel::common::value::{CowVal, FromVal, Val};
use cel::{DeclarationError, Env, ExecutionError};

/// Register every library on `env` (an [`Env::stdlib`] built without the
/// crate's `regex` feature).
///
/// # Errors
/// A declaration conflict, which is a programming error.
pub fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_extension(regex::extension)?;
    env.add_extension(lists::extension)?;
    env.add_extension(sets::extension)?;
    env.add_extension(comprehensions::extension)?;
    env.add_extension(url::extension)?;
    env.add_extension(quantity::extension)?;
    env.add_extension(net::extension)?;
    env.add_extension(semver::extension)?;
    env.add_extension(format::extension)?;
    Ok(())
}

/// A function's result.
pub(crate) type Returned<'b, 'v> = Result<CowVal<'b, 'v>, ExecutionError>;

/// `args` as exactly `N` arguments.
pub(crate) fn take<'b, 'v, const N: usize>(
    args: Vec<CowVal<'b, 'v>>,
) -> Result<[CowVal<'b, 'v>; N], ExecutionError> {
    args.try_into()
        .map_err(|args: Vec<_>| ExecutionError::invalid_argument_count(N, args.len()))
}

/// `val` as a `T`, or an unexpected-type error.
pub(crate) fn arg<'b, 'v, T: FromVal<'b, 'v> + Val>(
    val: &'b (dyn Val + 'v),
) -> Result<&'b T, ExecutionError> {
    T::from_val(val).ok_or_else(|| ExecutionError::UnexpectedType {
        got: val.get_type().name().to_owned(),
        want: T::cel_type().name().to_owned(),
    })
}

/// The string argument's text.
pub(crate) fn text<'b>(val: &'b (dyn Val + '_)) -> Result<&'b str, ExecutionError> {
    Ok(arg::<CelString>(val)?.inner())
}

/// The elements of a list value.
pub(crate) fn elements<'b, 'v>(
    val: &'b (dyn Val + 'v),
) -> Result<Vec<&'b (dyn Val + 'v)>, ExecutionError> {
    let iterable = val
        .as_iterable()
        .ok_or_else(|| ExecutionError::UnexpectedType {
            got: val.get_type().name().to_owned(),
            want: "list".to_owned(),
        })?;
    let mut items = iterable.iter();
    let mut out = Vec::new();
    while let Some(item) = items.next() {
        out.push(item);
    }
    Ok(out)
}

/// A boolean result.
pub(crate) fn boolean<'b, 'v>(b: bool) -> Returned<'b, 'v> {
    Ok(CowVal::owned(CelBool::from(b)))
}

/// An int result.
pub(crate) fn int<'b, 'v>(i: i64) -> Returned<'b, 'v> {
    Ok(CowVal::owned(CelInt::from(i)))
}

/// A string result.
pub(crate) fn string<'b, 'v>(s: String) -> Returned<'b, 'v> {
    Ok(CowVal::owned(CelString::from(s)))
}

/// A list of strings result.
pub(crate) fn strings<'b, 'v>(items: impl IntoIterator<Item = String>) -> Returned<'b, 'v> {
    let list: Vec<Box<dyn Val + 'v>> = items
        .into_iter()
        .map(|s| Box::new(CelString::from(s)) as Box<dyn Val + 'v>)
        .collect();
    Ok(CowVal::owned(CelList::from(list)))
}

/// A function error.
pub(crate) fn fail(function: &str, message: impl ToString) -> ExecutionError {
    ExecutionError::function_error(function, message)
}

/// Declares a `'static` opaque value type: its CEL type, equality through
/// `PartialEq`, cloning, and downcasting.
macro_rules! opaque_type {
    ($rust:ty, $static:ident, $name:literal) => {
        pub(crate) static $static: std::sync::LazyLock<cel::common::types::Type> =
            std::sync::LazyLock::new(|| cel::common::types::Type::new_opaque_type($name));

        impl cel::common::value::Val for $rust {
            fn get_type(&self) -> &cel::common::types::Type {
                &$static
            }
            fn cel_type() -> &'static cel::common::types::Type {
                &$static
            }
            fn equals(&self, other: &dyn cel::common::value::Val) -> bool {
                other.downcast_ref::<$rust>().is_some_and(|o| o == self)
            }
            fn clone_as_boxed<'v>(&self) -> Box<dyn cel::common::value::Val + 'v> {
                Box::new(self.clone())
            }
            fn as_any(&self) -> Option<&dyn std::any::Any> {
                Some(self)
            }
        }
        impl cel::common::value::StaticVal for $rust {}
    };
}
pub(crate) use opaque_type;

/// The API server's compile-time checks that need no type checker: literal
/// regex patterns compile (they are put in the regex cache), and list and map
/// literals are homogeneous.
///
/// # Errors
/// The first problem found.
pub fn check(expr: &cel::IdedExpr) -> Result<(), String> {
    regex::check_literals(expr)?;
    literals::check(expr)
}

/// A `'static` copy of a Kubernetes library value, or `None` for any other
/// value.
pub fn clone_static(val: &dyn Val) -> Option<Box<dyn Val + 'static>> {
    fn copy<T: Val + Clone + 'static>(val: &dyn Val) -> Option<Box<dyn Val + 'static>> {
        val.as_any()?
            .downcast_ref::<T>()
            .map(|v| Box::new(v.clone()) as Box<dyn Val>)
    }
    copy::<net::Ip>(val)
        .or_else(|| copy::<net::Cidr>(val))
        .or_else(|| copy::<quantity::Quantity>(val))
        .or_else(|| copy::<semver::Semver>(val))
        .or_else(|| copy::<url::Url>(val))
        .or_else(|| copy::<format::Format>(val))
}

/// The text of a Kubernetes library value (IP, CIDR, quantity, semver, URL,
/// format), or `None` for any other value.
pub fn display(val: &dyn Val) -> Option<String> {
    fn text_of<T: std::fmt::Display + 'static>(val: &dyn Val) -> Option<String> {
        val.as_any()?.downcast_ref::<T>().map(T::to_string)
    }
    text_of::<net::Ip>(val)
        .or_else(|| text_of::<net::Cidr>(val))
        .or_else(|| text_of::<quantity::Quantity>(val))
        .or_else(|| text_of::<semver::Semver>(val))
        .or_else(|| text_of::<url::Url>(val))
        .or_else(|| text_of::<format::Format>(val))
}
