//! Kubernetes' URL library (kubernetes/apiserver `pkg/cel/library/urls.go`):
//! `url`, `isURL`, and the getters `getScheme`, `getHost`, `getHostname`,
//! `getPort`, `getEscapedPath` and `getQuery`.
//!
//! Accepted are absolute URIs and absolute paths, as Go's
//! `url.ParseRequestURI` accepts them; the parts are split the way Go's
//! `net/url` splits them (the port is kept in `getHost`, IPv6 brackets are
//! dropped by `getHostname`, the path is percent-encoded by
//! `getEscapedPath`, query values are unescaped).

use std::collections::HashMap;

use cel::common::types::{CelList, CelMap, CelMapKey, CelString, STRING_TYPE, Type};
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, Env, ExecutionError};

use super::{Returned, arg, boolean, fail, opaque_type, string, take, text};

/// A `kubernetes.URL` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    raw: String,
    scheme: String,
    host: String,
    path: String,
    query: Option<String>,
}
opaque_type!(Url, URL_TYPE, "kubernetes.URL");

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.raw)
    }
}

/// Parse like Go's `url.ParseRequestURI` (fragments are split off first, as
/// the Kubernetes library does with a lenient parse).
pub fn parse(s: &str) -> Result<Url, String> {
    let invalid =
        |why: &str| format!("URL parse error during conversion from string: parse {s:?}: {why}");
    let without_fragment = s.split_once('#').map_or(s, |(a, _)| a);
    let (rest, query) = match without_fragment.split_once('?') {
        Some((a, q)) => (a, Some(q.to_owned())),
        None => (without_fragment, None),
    };
    if rest.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(invalid("invalid control character in URL"));
    }
    let (scheme, after_scheme) = match scheme_of(rest) {
        Some((scheme, after)) => (scheme.to_ascii_lowercase(), after),
        None => {
            if !rest.starts_with('/') {
                return Err(invalid("invalid URI for request"));
            }
            (String::new(), rest)
        }
    };
    let (host, path) = if !scheme.is_empty() || after_scheme.starts_with("//") {
        match after_scheme.strip_prefix("//") {
            Some(authority_and_path) => {
                let split = authority_and_path
                    .find('/')
                    .unwrap_or(authority_and_path.len());
                let (authority, path) = authority_and_path.split_at(split);
                let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
                validate_host(host).map_err(|why| invalid(&why))?;
                (host.to_owned(), path.to_owned())
            }
            None => {
                if !after_scheme.starts_with('/') {
                    return Err(invalid("invalid URI for request"));
                }
                (String::new(), after_scheme.to_owned())
            }
        }
    } else {
        (String::new(), after_scheme.to_owned())
    };
    Ok(Url {
        raw: s.to_owned(),
        scheme,
        host,
        path: unescape(&path).ok_or_else(|| invalid("invalid URL escape"))?,
        query,
    })
}

fn scheme_of(s: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = s.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some((scheme, rest))
}

/// Go's host check: an optional `:port` of digits after the host or the
/// bracketed IPv6 literal.
fn validate_host(host: &str) -> Result<(), String> {
    let port = if host.starts_with('[') {
        let end = host.find(']').ok_or("missing ']' in host")?;
        &host[end + 1..]
    } else {
        host.rfind(':').map_or("", |i| &host[i..])
    };
    let digits_after_colon =
        |p: &str| p.starts_with(':') && p[1..].bytes().all(|b| b.is_ascii_digit());
    if !(port.is_empty() || digits_after_colon(port)) {
        return Err(format!("invalid port {port:?} after host"));
    }
    Ok(())
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Percent-decode (`+` stays `+` in paths; `plus_space` turns it into a space).
fn unescape_with(s: &str, plus_space: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let h = hex(*bytes.get(i + 1)?)?;
                let l = hex(*bytes.get(i + 2)?)?;
                out.push(h << 4 | l);
                i += 3;
            }
            b'+' if plus_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn unescape(s: &str) -> Option<String> {
    unescape_with(s, false)
}

/// Go's `EscapedPath` for a path without a raw form: percent-encode what a
/// path may not contain.
fn escape_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~$&+,/:;=@!'()*".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Url {
    fn hostname(&self) -> &str {
        if let Some(rest) = self.host.strip_prefix('[') {
            return rest.split(']').next().unwrap_or("");
        }
        self.host
            .rsplit_once(':')
            .map_or(self.host.as_str(), |(h, _)| h)
    }

    fn port(&self) -> &str {
        let after = if self.host.starts_with('[') {
            self.host.split_once(']').map_or("", |(_, p)| p)
        } else {
            self.host.rfind(':').map_or("", |i| &self.host[i..])
        };
        after.strip_prefix(':').unwrap_or("")
    }
}

pub(super) fn extension(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_type(Type::to_owned(&URL_TYPE))?;
    let u = || Type::to_owned(&URL_TYPE);
    env.add_overload("url", "string_to_url", vec![STRING_TYPE], url_of)?;
    env.add_overload("isURL", "is_url_string", vec![STRING_TYPE], is_url)?;
    env.add_member_overload("getScheme", "url_get_scheme", u(), vec![], get_scheme)?;
    env.add_member_overload("getHost", "url_get_host", u(), vec![], get_host)?;
    env.add_member_overload("getHostname", "url_get_hostname", u(), vec![], get_hostname)?;
    env.add_member_overload("getPort", "url_get_port", u(), vec![], get_port)?;
    env.add_member_overload(
        "getEscapedPath",
        "url_get_escaped_path",
        u(),
        vec![],
        get_escaped_path,
    )?;
    env.add_member_overload("getQuery", "url_get_query", u(), vec![], get_query)?;
    Ok(())
}

fn url_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [s] = take(args)?;
    Ok(CowVal::owned(
        parse(text(s.as_ref())?).map_err(|e| fail("url", e))?,
    ))
}

fn is_url<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [s] = take(args)?;
    boolean(parse(text(s.as_ref())?).is_ok())
}

fn the<'a>(val: &'a CowVal<'_, '_>) -> Result<&'a Url, ExecutionError> {
    arg::<Url>(val.as_ref())
}

fn get_scheme<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [u] = take(args)?;
    string(the(&u)?.scheme.clone())
}

fn get_host<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [u] = take(args)?;
    string(the(&u)?.host.clone())
}

fn get_hostname<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [u] = take(args)?;
    string(the(&u)?.hostname().to_owned())
}

fn get_port<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [u] = take(args)?;
    string(the(&u)?.port().to_owned())
}

fn get_escaped_path<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [u] = take(args)?;
    string(escape_path(&the(&u)?.path))
}

fn get_query<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [u] = take(args)?;
    let mut values: Vec<(String, Vec<String>)> = Vec::new();
    for pair in the(&u)?
        .query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (Some(k), Some(v)) = (unescape_with(k, true), unescape_with(v, true)) else {
            continue;
        };
        match values.iter_mut().find(|(key, _)| *key == k) {
            Some((_, list)) => list.push(v),
            None => values.push((k, vec![v])),
        }
    }
    let entries: HashMap<CelMapKey<'v>, Box<dyn Val + 'v>> = values
        .into_iter()
        .map(|(k, vs)| {
            let list: Vec<Box<dyn Val + 'v>> = vs
                .into_iter()
                .map(|v| Box::new(CelString::from(v)) as Box<dyn Val + 'v>)
                .collect();
            (
                CelMapKey::from(k),
                Box::new(CelList::from(list)) as Box<dyn Val + 'v>,
            )
        })
        .collect();
    Ok(CowVal::owned(CelMap::from(entries)))
}
