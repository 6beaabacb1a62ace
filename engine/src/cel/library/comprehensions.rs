//! cel-go's two-variable comprehensions (`ext.TwoVarComprehensions`,
//! Kubernetes 1.32+): `all`, `exists`, `existsOne` with (index|key, value)
//! variables, `transformList`, `transformMap` and `transformMapEntry`, each
//! with an optional filter.
//!
//! The `cel` interpreter only runs one-variable comprehensions, so each call
//! is expanded at parse time: the target is bound once to a hidden variable
//! (a comprehension over an empty range, the crate's own `sortBy` trick), the
//! loop runs over its keys (`@keys`: the indices of a list, the keys of a
//! map), and the value variable is bound to `target[key]` inside the body.

use std::collections::HashMap;

use cel::common::ast::{
    CallExpr, ComprehensionExpr, Expr, IdedExpr, ListExpr, LiteralValue, operators,
};
use cel::common::types::{CelInt, CelList, CelMap, CelMapKey, DYN_TYPE, LIST_TYPE, MAP_TYPE};
use cel::common::value::{CowVal, Val};
use cel::parser::{Macro, MacroExprHelper, ParseError};
use cel::{DeclarationError, Env, ExecutionError};

use super::{Returned, fail, take};

/// The hidden variable the target is bound to.
const TARGET: &str = "@__target__";
/// The accumulator.
const RESULT: &str = "@__result__";
const KEYS: &str = "@keys";
const MAP_INSERT: &str = "@mapInsert";
const MAP_MERGE: &str = "@mapMerge";

#[derive(Clone, Copy)]
enum Kind {
    All,
    Exists,
    ExistsOne,
    TransformList,
    TransformMap,
    TransformMapEntry,
}

pub(super) fn extension(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_member_overload(KEYS, "list.@keys()", LIST_TYPE, vec![], keys)?;
    env.add_member_overload(KEYS, "map.@keys()", MAP_TYPE, vec![], keys)?;
    env.add_overload(
        MAP_INSERT,
        "@mapInsert(map,dyn,dyn)",
        vec![MAP_TYPE, DYN_TYPE, DYN_TYPE],
        map_insert,
    )?;
    env.add_overload(
        MAP_MERGE,
        "@mapMerge(map,map)",
        vec![MAP_TYPE, MAP_TYPE],
        map_merge,
    )?;
    for (name, kind, counts) in [
        ("all", Kind::All, &[3][..]),
        ("exists", Kind::Exists, &[3]),
        ("existsOne", Kind::ExistsOne, &[3]),
        ("exists_one", Kind::ExistsOne, &[3]),
        ("transformList", Kind::TransformList, &[3, 4]),
        ("transformMap", Kind::TransformMap, &[3, 4]),
        ("transformMapEntry", Kind::TransformMapEntry, &[3, 4]),
    ] {
        for &count in counts {
            env.add_macro(Macro::receiver(name, count, move |helper, target, args| {
                expand(kind, helper, target, args).map(Some)
            }))?;
        }
    }
    Ok(())
}

fn ident_name(helper: &MacroExprHelper<'_>, e: &IdedExpr) -> Result<String, ParseError> {
    match &e.expr {
        Expr::Ident(name) => Ok(name.clone()),
        _ => Err(helper.new_error(e.id, "argument must be a simple name")),
    }
}

fn call(
    helper: &mut MacroExprHelper<'_>,
    name: &str,
    target: Option<IdedExpr>,
    args: Vec<IdedExpr>,
) -> IdedExpr {
    helper.next_expr(Expr::Call(CallExpr {
        func_name: name.to_owned(),
        target: target.map(Box::new),
        args,
    }))
}

fn ident(helper: &mut MacroExprHelper<'_>, name: &str) -> IdedExpr {
    helper.next_expr(Expr::Ident(name.to_owned()))
}

fn literal(helper: &mut MacroExprHelper<'_>, value: LiteralValue) -> IdedExpr {
    helper.next_expr(Expr::Literal(value))
}

/// `body` with `name` bound to `value`.
fn bind(helper: &mut MacroExprHelper<'_>, name: &str, value: IdedExpr, body: IdedExpr) -> IdedExpr {
    let range = helper.next_expr(Expr::List(ListExpr::new(Vec::new())));
    let cond = literal(helper, LiteralValue::Boolean(false.into()));
    let step = ident(helper, name);
    helper.next_expr(Expr::Comprehension(Box::new(ComprehensionExpr {
        iter_range: range,
        iter_var: "#unused".to_owned(),
        iter_var2: None,
        accu_var: name.to_owned(),
        accu_init: value,
        loop_cond: cond,
        loop_step: step,
        result: body,
        shape: Default::default(),
    })))
}

fn expand(
    kind: Kind,
    helper: &mut MacroExprHelper<'_>,
    target: &mut Option<IdedExpr>,
    args: &mut Vec<IdedExpr>,
) -> Result<IdedExpr, ParseError> {
    let Some(target) = target.take() else {
        return Err(helper.new_error(0, "a two-variable comprehension needs a target"));
    };
    let key = ident_name(helper, &args[0])?;
    let value = ident_name(helper, &args[1])?;
    if key == value {
        return Err(helper.new_error(args[1].id, "the two variables must have different names"));
    }
    let mut rest: Vec<IdedExpr> = args.drain(2..).collect();
    let body = rest.pop().expect("the macro has three or four arguments");
    let filter = rest.pop();
    // `value` bound to `@__target__[key]` around `inner`.
    let with_value = |helper: &mut MacroExprHelper<'_>, inner: IdedExpr| {
        let t = ident(helper, TARGET);
        let k = ident(helper, &key);
        let element = call(helper, operators::INDEX, None, vec![t, k]);
        bind(helper, &value, element, inner)
    };
    let result = |helper: &mut MacroExprHelper<'_>| ident(helper, RESULT);
    let (init, cond, step, finish) = match kind {
        Kind::All | Kind::Exists => {
            let all = matches!(kind, Kind::All);
            let init = literal(helper, LiteralValue::Boolean(all.into()));
            let mut acc = result(helper);
            if !all {
                acc = call(helper, operators::LOGICAL_NOT, None, vec![acc]);
            }
            let cond = call(helper, operators::NOT_STRICTLY_FALSE, None, vec![acc]);
            let predicate = with_value(helper, body);
            let r = result(helper);
            let op = if all {
                operators::LOGICAL_AND
            } else {
                operators::LOGICAL_OR
            };
            let step = call(helper, op, None, vec![r, predicate]);
            (init, cond, step, result(helper))
        }
        Kind::ExistsOne => {
            let init = literal(helper, LiteralValue::Int(CelInt::from(0)));
            let cond = literal(helper, LiteralValue::Boolean(true.into()));
            let predicate = with_value(helper, body);
            let r = result(helper);
            let one = literal(helper, LiteralValue::Int(CelInt::from(1)));
            let plus = call(helper, operators::ADD, None, vec![r, one]);
            let r = result(helper);
            let step = call(
                helper,
                operators::CONDITIONAL,
                None,
                vec![predicate, plus, r],
            );
            let r = result(helper);
            let one = literal(helper, LiteralValue::Int(CelInt::from(1)));
            let finish = call(helper, operators::EQUALS, None, vec![r, one]);
            (init, cond, step, finish)
        }
        Kind::TransformList | Kind::TransformMap | Kind::TransformMapEntry => {
            let init = match kind {
                Kind::TransformList => helper.next_expr(Expr::List(ListExpr::new(Vec::new()))),
                _ => helper.next_expr(Expr::Map(cel::common::ast::MapExpr {
                    entries: Vec::new(),
                })),
            };
            let cond = literal(helper, LiteralValue::Boolean(true.into()));
            let r = result(helper);
            let added = match kind {
                Kind::TransformList => {
                    let item = helper.next_expr(Expr::List(ListExpr::new(vec![body])));
                    call(helper, operators::ADD, None, vec![r, item])
                }
                Kind::TransformMap => {
                    let k = ident(helper, &key);
                    call(helper, MAP_INSERT, None, vec![r, k, body])
                }
                _ => call(helper, MAP_MERGE, None, vec![r, body]),
            };
            let inner = match filter {
                Some(filter) => {
                    let r = result(helper);
                    call(helper, operators::CONDITIONAL, None, vec![filter, added, r])
                }
                None => added,
            };
            let step = with_value(helper, inner);
            (init, cond, step, result(helper))
        }
    };
    let target_ident = ident(helper, TARGET);
    let range = call(helper, KEYS, Some(target_ident), vec![]);
    let loop_ = helper.next_expr(Expr::Comprehension(Box::new(ComprehensionExpr {
        iter_range: range,
        iter_var: key.clone(),
        iter_var2: None,
        accu_var: RESULT.to_owned(),
        accu_init: init,
        loop_cond: cond,
        loop_step: step,
        result: finish,
        shape: Default::default(),
    })));
    Ok(bind(helper, TARGET, target, loop_))
}

/// The indices of a list or the keys of a map, as a list.
fn keys<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [target] = take(args)?;
    if let Some(list) = target.downcast_ref::<CelList>() {
        let indices: Vec<Box<dyn Val + 'v>> = (0..list.inner().len())
            .map(|i| Box::new(CelInt::from(i as i64)) as Box<dyn Val + 'v>)
            .collect();
        return Ok(CowVal::owned(CelList::from(indices)));
    }
    let items = super::elements(target.as_ref())?;
    let keys: Vec<Box<dyn Val + 'v>> = items.into_iter().map(|k| k.clone_as_boxed()).collect();
    Ok(CowVal::owned(CelList::from(keys)))
}

fn owned_map<'v>(
    map: CowVal<'_, 'v>,
) -> Result<HashMap<CelMapKey<'v>, Box<dyn Val + 'v>>, ExecutionError> {
    let map = map.into_owned();
    let map = map
        .downcast_ref::<CelMap>()
        .ok_or_else(|| fail("transformMap", "the accumulator is not a map"))?;
    Ok(map
        .inner()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone_as_boxed()))
        .collect())
}

fn map_insert<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [map, key, value] = take(args)?;
    let mut entries = owned_map(map)?;
    let key = CelMapKey::try_from(key)?;
    entries.insert(key, value.into_owned());
    Ok(CowVal::owned(CelMap::from(entries)))
}

fn map_merge<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [map, entry] = take(args)?;
    let mut entries = owned_map(map)?;
    for (k, v) in owned_map(entry)? {
        if entries.contains_key(&k) {
            return Err(fail(
                "transformMapEntry",
                "insert failed: key already exists in the result map",
            ));
        }
        entries.insert(k, v);
    }
    Ok(CowVal::owned(CelMap::from(entries)))
}
