//! Kubernetes' lists library, version 0 (kubernetes/apiserver
//! `pkg/cel/library/lists.go`): `isSorted`, `sum`, `min`, `max`, `indexOf`
//! and `lastIndexOf` on lists. Version 1's `includes` (Kubernetes 1.37) is
//! not registered.

use std::cmp::Ordering;

use cel::common::types::{CelInt, DYN_TYPE, LIST_TYPE};
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, Env, ExecutionError};

use super::{Returned, boolean, elements, fail, int, take};

pub(super) fn extension(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_member_overload("isSorted", "list.isSorted()", LIST_TYPE, vec![], is_sorted)?;
    env.add_member_overload("sum", "list.sum()", LIST_TYPE, vec![], sum)?;
    env.add_member_overload("min", "list.min()", LIST_TYPE, vec![], min)?;
    env.add_member_overload("max", "list.max()", LIST_TYPE, vec![], max)?;
    env.add_member_overload(
        "indexOf",
        "list.indexOf(dyn)",
        LIST_TYPE,
        vec![DYN_TYPE],
        index_of,
    )?;
    env.add_member_overload(
        "lastIndexOf",
        "list.lastIndexOf(dyn)",
        LIST_TYPE,
        vec![DYN_TYPE],
        last_index_of,
    )?;
    Ok(())
}

/// How `a` orders against `b`, or an error when they do not compare.
fn compare(function: &str, a: &dyn Val, b: &dyn Val) -> Result<Ordering, ExecutionError> {
    let comparer = a.as_comparer().ok_or_else(|| {
        fail(
            function,
            format!("{} values cannot be ordered", a.get_type().name()),
        )
    })?;
    comparer.compare(b)
}

fn is_sorted<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [list] = take(args)?;
    let items = elements(list.as_ref())?;
    for pair in items.windows(2) {
        if compare("isSorted", pair[0], pair[1])? == Ordering::Greater {
            return boolean(false);
        }
    }
    boolean(true)
}

fn sum<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [list] = take(args)?;
    let items = elements(list.as_ref())?;
    let Some((first, rest)) = items.split_first() else {
        return int(0);
    };
    // As in Kubernetes, only numbers and durations sum.
    if let Some(other) = items
        .iter()
        .map(|i| i.get_type().name())
        .find(|t| !matches!(*t, "int" | "uint" | "double" | "google.protobuf.Duration"))
    {
        return Err(fail(
            "sum",
            format!("no matching overload for sum on list({other})"),
        ));
    }
    let mut total: Box<dyn Val + 'v> = first.clone_as_boxed();
    for item in rest {
        let adder = total.as_adder().ok_or_else(|| {
            fail(
                "sum",
                format!("{} values cannot be summed", total.get_type().name()),
            )
        })?;
        let next = adder.add(*item)?.into_owned();
        total = next;
    }
    Ok(CowVal::Owned(total))
}

fn extreme<'b, 'v>(function: &str, args: Vec<CowVal<'b, 'v>>, keep: Ordering) -> Returned<'b, 'v> {
    let [list] = take(args)?;
    let items = elements(list.as_ref())?;
    let Some((first, rest)) = items.split_first() else {
        return Err(fail(function, format!("{function} called on empty list")));
    };
    let mut best = *first;
    for item in rest {
        if compare(function, *item, best)? == keep {
            best = *item;
        }
    }
    Ok(CowVal::Owned(best.clone_as_boxed()))
}

fn min<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    extreme("min", args, Ordering::Less)
}

fn max<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    extreme("max", args, Ordering::Greater)
}

fn index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [list, value] = take(args)?;
    let items = elements(list.as_ref())?;
    let found = items.iter().position(|item| item.equals(value.as_ref()));
    Ok(CowVal::owned(CelInt::from(found.map_or(-1, |i| i as i64))))
}

fn last_index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [list, value] = take(args)?;
    let items = elements(list.as_ref())?;
    let found = items.iter().rposition(|item| item.equals(value.as_ref()));
    Ok(CowVal::owned(CelInt::from(found.map_or(-1, |i| i as i64))))
}
