//! Reading an AdmissionReview body in one pass without building the tree of
//! the objects it carries: the envelope's `apiVersion` and `kind` and the
//! request's own fields become `serde_json::Value`s, `request.object` and
//! `request.oldObject` stay JSON text for [`Review::from_request`], which
//! parses only what the placement records read.
//!
//! This is the webhook's fast path. It gives up ([`read`] returns `None`) on
//! anything unusual, a body that is not an object or has no request object,
//! and on every parse error, and the caller then parses the body as a whole
//! tree, so the answers to odd and bad bodies, and their messages, are those
//! of the tree path.
//!
//! [`Review::from_request`]: crate::review::Review::from_request

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tollgate_sdk::placement::Discarded;

/// The parts of an AdmissionReview body.
#[derive(Debug)]
pub(super) struct Parts<'a> {
    /// The envelope's `apiVersion` (null when absent).
    pub api_version: Value,
    /// The envelope's `kind` (null when absent).
    pub kind: Value,
    /// The request's fields other than the objects, which are null (or
    /// absent, when the request has none).
    pub request: Map<String, Value>,
    /// `request.object`, unless absent or null.
    pub object: Option<&'a str>,
    /// `request.oldObject`, unless absent or null.
    pub old_object: Option<&'a str>,
}

/// Read `body`, or `None` when it is not an object with a `request` object
/// or fails to parse.
pub(super) fn read(body: &[u8]) -> Option<Parts<'_>> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let parts = deserializer.deserialize_map(EnvelopeVisitor).ok()??;
    deserializer.end().ok()?;
    Some(parts)
}

struct EnvelopeVisitor;

impl<'de> Visitor<'de> for EnvelopeVisitor {
    /// `None` when the request is absent or not an object.
    type Value = Option<Parts<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an AdmissionReview object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut api_version = Value::Null;
        let mut kind = Value::Null;
        let mut request = None;
        // Repeated keys: the last wins, as when parsing into a tree.
        while let Some(key) = map.next_key::<&'de str>()? {
            match key {
                "apiVersion" => api_version = map.next_value()?,
                "kind" => kind = map.next_value()?,
                "request" => request = map.next_value_seed(RequestSeed)?,
                _ => {
                    map.next_value::<Discarded>()?;
                }
            }
        }
        Ok(request.map(|(request, object, old_object)| Parts {
            api_version,
            kind,
            request,
            object,
            old_object,
        }))
    }
}

type RequestParts<'a> = (Map<String, Value>, Option<&'a str>, Option<&'a str>);

/// The request: its fields, and its objects as text; `None` when it is not
/// an object.
struct RequestSeed;

impl<'de> DeserializeSeed<'de> for RequestSeed {
    type Value = Option<RequestParts<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(RequestVisitor)
    }
}

struct RequestVisitor;

impl<'de> Visitor<'de> for RequestVisitor {
    type Value = Option<RequestParts<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an AdmissionReview request")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Map::new();
        let mut object = None;
        let mut old_object = None;
        while let Some(key) = map.next_key::<String>()? {
            let slot = match key.as_str() {
                "object" => &mut object,
                "oldObject" => &mut old_object,
                _ => {
                    let value = map.next_value()?;
                    fields.insert(key, value);
                    continue;
                }
            };
            let text = map.next_value::<&'de RawValue>()?.get();
            *slot = (text != "null").then_some(text);
            fields.insert(key, Value::Null);
        }
        Ok(Some((fields, object, old_object)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<Discarded>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}
