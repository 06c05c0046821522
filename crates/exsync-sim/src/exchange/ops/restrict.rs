//! Evaluation of EWS `Restriction` search expressions.

use std::cmp::Ordering;

use crate::exchange::soap::EwsError;
use crate::exchange::store::parse_time;
use crate::exchange::xml::Element;

/// `get` returns the values of the property a path element (FieldURI, ExtendedFieldURI,
/// IndexedFieldURI) names: one for a single-valued property, each member for a multi-valued
/// one (Categories, an extended array), none when the item does not have it. A comparison on
/// a multi-valued property holds when it holds for any member, as Exchange evaluates them
/// (a Categories IsEqualTo finds every item that carries that category).
pub(crate) fn eval(
    expr: &Element,
    get: &dyn Fn(&Element) -> Vec<String>,
) -> Result<bool, EwsError> {
    let path = || {
        expr.children
            .iter()
            .find(|c| c.name.ends_with("FieldURI"))
            .ok_or_else(|| {
                EwsError::new(
                    "ErrorInvalidRestriction",
                    "The restriction has no property path.",
                )
            })
    };
    let constant = || -> Result<Option<String>, EwsError> {
        let c = expr.child("FieldURIOrConstant").ok_or_else(|| {
            EwsError::new(
                "ErrorInvalidRestriction",
                "The restriction has no FieldURIOrConstant.",
            )
        })?;
        if let Some(k) = c.child("Constant") {
            return Ok(Some(k.attr("Value").unwrap_or("").to_string()));
        }
        Ok(c.children.first().and_then(|p| get(p).into_iter().next()))
    };
    let compare = |want: &[Ordering]| -> Result<bool, EwsError> {
        let left = get(path()?);
        let Some(right) = constant()? else {
            return Ok(false);
        };
        Ok(left.iter().any(|l| want.contains(&cmp_values(l, &right))))
    };
    match expr.name.as_str() {
        "And" => {
            for c in &expr.children {
                if !eval(c, get)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        "Or" => {
            for c in &expr.children {
                if eval(c, get)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        "Not" => match expr.children.first() {
            Some(c) => Ok(!eval(c, get)?),
            None => Err(EwsError::new(
                "ErrorInvalidRestriction",
                "Not needs an operand.",
            )),
        },
        "Exists" => Ok(!get(path()?).is_empty()),
        "IsEqualTo" => compare(&[Ordering::Equal]),
        "IsNotEqualTo" => compare(&[Ordering::Less, Ordering::Greater]),
        "IsGreaterThan" => compare(&[Ordering::Greater]),
        "IsGreaterThanOrEqualTo" => compare(&[Ordering::Greater, Ordering::Equal]),
        "IsLessThan" => compare(&[Ordering::Less]),
        "IsLessThanOrEqualTo" => compare(&[Ordering::Less, Ordering::Equal]),
        "Contains" => {
            let values = get(path()?);
            let want = expr
                .child("Constant")
                .and_then(|c| c.attr("Value"))
                .unwrap_or("");
            let ignore_case = expr
                .attr("ContainmentComparison")
                .is_some_and(|c| c.contains("IgnoreCase"));
            let mode = expr.attr("ContainmentMode").unwrap_or("Substring");
            Ok(values.into_iter().any(|value| {
                let (v, w) = if ignore_case {
                    (value.to_lowercase(), want.to_lowercase())
                } else {
                    (value, want.to_string())
                };
                match mode {
                    "FullString" => v == w,
                    "Prefixed" => v.starts_with(&w),
                    _ => v.contains(&w),
                }
            }))
        }
        other => Err(EwsError::new(
            "ErrorUnsupportedQueryFilter",
            format!("The restriction {other} is not supported."),
        )),
    }
}

/// Dates compare as instants, numbers as numbers, strings case-insensitively as Exchange does.
fn cmp_values(l: &str, r: &str) -> Ordering {
    if let (Some(a), Some(b)) = (parse_time(l), parse_time(r)) {
        return a.cmp(&b);
    }
    if let (Ok(a), Ok(b)) = (l.trim().parse::<f64>(), r.trim().parse::<f64>()) {
        return a.partial_cmp(&b).unwrap_or(Ordering::Equal);
    }
    l.to_lowercase().cmp(&r.to_lowercase())
}
