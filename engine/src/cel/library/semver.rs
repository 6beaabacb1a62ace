//! Kubernetes' semver library, version 1 (kubernetes/apiserver
//! `pkg/cel/library/semverlib.go`, Kubernetes 1.33+): `semver(s)`,
//! `semver(s, normalize)`, `isSemver(s)`, `isSemver(s, normalize)`, and the
//! members `major`, `minor`, `patch`, `isGreaterThan`, `isLessThan` and
//! `compareTo`. Versions compare by semver precedence (build metadata is
//! ignored), `==` included.

use std::cmp::Ordering;

use cel::common::types::{BOOL_TYPE, CelBool, STRING_TYPE, Type};
use cel::common::value::CowVal;
use cel::{DeclarationError, Env, ExecutionError};

use super::{Returned, arg, boolean, fail, int, opaque_type, take, text};

/// A `kubernetes.Semver` value.
#[derive(Debug, Clone)]
pub struct Semver(semver::Version);
opaque_type!(Semver, SEMVER_TYPE, "kubernetes.Semver");

impl PartialEq for Semver {
    fn eq(&self, other: &Self) -> bool {
        self.0.cmp_precedence(&other.0) == Ordering::Equal
    }
}

impl std::fmt::Display for Semver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Parse strictly (`MAJOR.MINOR.PATCH[-pre][+build]`), or after normalising:
/// a leading `v` removed, missing minor and patch filled with 0, leading
/// zeros dropped.
fn parse(s: &str, normalize: bool) -> Result<Semver, String> {
    let text = if normalize {
        normalized(s)
    } else {
        s.to_owned()
    };
    let core = text.split(['-', '+']).next().unwrap_or("");
    if core.split('.').count() != 3 {
        return Err(format!("No Major.Minor.Patch elements found in {s:?}"));
    }
    semver::Version::parse(&text)
        .map(Semver)
        .map_err(|e| format!("invalid semver {s:?}: {e}"))
}

fn normalized(s: &str) -> String {
    let s = s.strip_prefix('v').unwrap_or(s);
    let split = s.find(['-', '+']).unwrap_or(s.len());
    let (core, rest) = s.split_at(split);
    let mut parts: Vec<String> = core
        .split('.')
        .map(|p| {
            let trimmed = p.trim_start_matches('0');
            if trimmed.is_empty() && !p.is_empty() {
                "0".to_owned()
            } else {
                trimmed.to_owned()
            }
        })
        .collect();
    while parts.len() < 3 {
        parts.push("0".to_owned());
    }
    format!("{}{rest}", parts.join("."))
}

pub(super) fn extension(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_type(Type::to_owned(&SEMVER_TYPE))?;
    let v = || Type::to_owned(&SEMVER_TYPE);
    env.add_overload("semver", "string_to_semver", vec![STRING_TYPE], semver_of)?;
    env.add_overload(
        "semver",
        "string_bool_to_semver",
        vec![STRING_TYPE, BOOL_TYPE],
        semver_of,
    )?;
    env.add_overload("isSemver", "is_semver_string", vec![STRING_TYPE], is_semver)?;
    env.add_overload(
        "isSemver",
        "is_semver_string_bool",
        vec![STRING_TYPE, BOOL_TYPE],
        is_semver,
    )?;
    env.add_member_overload("major", "semver_major", v(), vec![], major)?;
    env.add_member_overload("minor", "semver_minor", v(), vec![], minor)?;
    env.add_member_overload("patch", "semver_patch", v(), vec![], patch)?;
    env.add_member_overload(
        "isGreaterThan",
        "semver_is_greater_than",
        v(),
        vec![v()],
        is_greater,
    )?;
    env.add_member_overload("isLessThan", "semver_is_less_than", v(), vec![v()], is_less)?;
    env.add_member_overload("compareTo", "semver_compare_to", v(), vec![v()], compare_to)?;
    Ok(())
}

fn parsed(args: Vec<CowVal<'_, '_>>) -> Result<Result<Semver, String>, ExecutionError> {
    let mut args = args.into_iter();
    let s = args
        .next()
        .ok_or_else(|| ExecutionError::invalid_argument_count(1, 0))?;
    let normalize = match args.next() {
        Some(b) => *arg::<CelBool>(b.as_ref())?.inner(),
        None => false,
    };
    Ok(parse(text(s.as_ref())?, normalize))
}

fn semver_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let v = parsed(args)?.map_err(|e| fail("semver", e))?;
    Ok(CowVal::owned(v))
}

fn is_semver<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    boolean(parsed(args)?.is_ok())
}

fn the(val: &CowVal<'_, '_>) -> Result<semver::Version, ExecutionError> {
    Ok(arg::<Semver>(val.as_ref())?.0.clone())
}

fn part<'b, 'v>(args: Vec<CowVal<'b, 'v>>, f: fn(&semver::Version) -> u64) -> Returned<'b, 'v> {
    let [v] = take(args)?;
    int(i64::try_from(f(&the(&v)?)).map_err(|_| fail("semver", "version part out of range"))?)
}

fn major<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    part(args, |v| v.major)
}

fn minor<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    part(args, |v| v.minor)
}

fn patch<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    part(args, |v| v.patch)
}

fn order(args: Vec<CowVal<'_, '_>>) -> Result<Ordering, ExecutionError> {
    let [a, b] = take(args)?;
    Ok(the(&a)?.cmp_precedence(&the(&b)?))
}

fn is_greater<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    boolean(order(args)? == Ordering::Greater)
}

fn is_less<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    boolean(order(args)? == Ordering::Less)
}

fn compare_to<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    int(order(args)? as i64)
}
