//! cel-go's sets extension (`ext.Sets`, Kubernetes 1.29+):
//! `sets.contains`, `sets.equivalent` and `sets.intersects` on lists, with
//! CEL equality (so `[1]` is equivalent to `[1u, 1.0]`).

use cel::common::types::LIST_TYPE;
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, Env};

use super::{Returned, boolean, elements, take};

pub(super) fn extension(env: &mut Env) -> Result<(), DeclarationError> {
    let two_lists = || vec![LIST_TYPE, LIST_TYPE];
    env.add_overload(
        "sets.contains",
        "list_sets_contains_list",
        two_lists(),
        contains,
    )?;
    env.add_overload(
        "sets.equivalent",
        "list_sets_equivalent_list",
        two_lists(),
        equivalent,
    )?;
    env.add_overload(
        "sets.intersects",
        "list_sets_intersects_list",
        two_lists(),
        intersects,
    )?;
    Ok(())
}

/// Whether every element of `sub` is in `of`.
fn subset(sub: &[&dyn Val], of: &[&dyn Val]) -> bool {
    sub.iter().all(|x| of.iter().any(|y| y.equals(*x)))
}

fn contains<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [a, b] = take(args)?;
    boolean(subset(&elements(b.as_ref())?, &elements(a.as_ref())?))
}

fn equivalent<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [a, b] = take(args)?;
    let (a, b) = (elements(a.as_ref())?, elements(b.as_ref())?);
    boolean(subset(&a, &b) && subset(&b, &a))
}

fn intersects<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [a, b] = take(args)?;
    let (a, b) = (elements(a.as_ref())?, elements(b.as_ref())?);
    boolean(a.iter().any(|x| b.iter().any(|y| x.equals(*y))))
}
