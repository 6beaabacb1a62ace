//! Reading an AdmissionReview body in one pass without building the tree of
//! what no policy may need: the envelope's `apiVersion` and `kind`, and of
//! the request only the fields the placement records read, become
//! `serde_json::Value`s; the request's `object` and `oldObject` stay JSON
//! text for [`Review::from_request`], which parses only what the records
//! read and the rest on first use (the request's other fields from the body
//! again, when first asked for: [`request_in_body`]).
//!
//! Everything is still parsed, and so checked as parsing the body into a tree
//! would check it ([`Discarded`]), so the tree made later from any of the
//! texts cannot fail. This is the webhook's fast path. It gives up ([`read`]
//! returns `None`) on anything unusual (a body that is not an object, a
//! request that is not an object, an escaped envelope key) and on every
//! parse error, and the caller then parses the body as a whole tree, so the
//! answers to odd and bad bodies, and their messages, are those of the tree
//! path.
//!
//! [`Review::from_request`]: crate::review::Review::from_request

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
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
    /// The whole body, as text.
    pub body: &'a str,
    /// The request's fields the placement records read
    /// ([`crate::review::REQUEST_FIELDS_READ`]).
    pub head: Map<String, Value>,
    /// `request.object`, unless absent or null.
    pub object: Option<&'a str>,
    /// `request.oldObject`, unless absent or null.
    pub old_object: Option<&'a str>,
}

/// Read `body`, or `None` when it is not an object with a `request` object
/// or fails to parse.
pub(super) fn read(body: &[u8]) -> Option<Parts<'_>> {
    let body = std::str::from_utf8(body).ok()?;
    let mut deserializer = serde_json::Deserializer::from_str(body);
    let (api_version, kind, request) = deserializer.deserialize_map(EnvelopeVisitor).ok()?;
    deserializer.end().ok()?;
    let (head, object, old_object) = request?;
    Some(Parts {
        api_version,
        kind,
        body,
        head,
        object,
        old_object,
    })
}

struct EnvelopeVisitor;

impl<'de> Visitor<'de> for EnvelopeVisitor {
    /// `apiVersion`, `kind`, and the request's parts.
    type Value = (Value, Value, Option<RequestParts<'de>>);

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
                // Not an object: an error, and the caller parses a tree.
                "request" => request = Some(map.next_value_seed(RequestSeed)?),
                _ => {
                    map.next_value::<Discarded>()?;
                }
            }
        }
        Ok((api_version, kind, request))
    }
}

/// The request's fields the records read, and its objects as text; every
/// other field is checked and dropped.
struct RequestVisitor;

/// Reads a request object with [`RequestVisitor`].
struct RequestSeed;

impl<'de> DeserializeSeed<'de> for RequestSeed {
    type Value = RequestParts<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(RequestVisitor)
    }
}

type RequestParts<'a> = (Map<String, Value>, Option<&'a str>, Option<&'a str>);

impl<'de> Visitor<'de> for RequestVisitor {
    type Value = RequestParts<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an AdmissionReview request")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut head = Map::new();
        let mut object = None;
        let mut old_object = None;
        while let Some(key) = map.next_key::<&'de str>()? {
            let slot = match key {
                "object" => &mut object,
                "oldObject" => &mut old_object,
                key if crate::review::REQUEST_FIELDS_READ.contains(&key) => {
                    head.insert(key.to_owned(), map.next_value()?);
                    continue;
                }
                _ => {
                    map.next_value::<Discarded>()?;
                    continue;
                }
            };
            let text = map.next_value::<&'de RawValue>()?.get();
            *slot = (text != "null").then_some(text);
        }
        Ok((head, object, old_object))
    }
}

/// Parse an AdmissionReview's text into the tree of its `request` (the last
/// one, as when the body is parsed into a tree), with `object` and
/// `oldObject` (which [`read`] keeps apart as text) null: the request's tree
/// for [`crate::review::Request::Text`], made when a policy first asks.
pub(super) fn request_in_body(text: &str) -> serde_json::Result<Value> {
    struct Envelope;
    impl<'de> Visitor<'de> for Envelope {
        type Value = Value;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an AdmissionReview")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut request = Value::Null;
            while let Some(key) = map.next_key::<String>()? {
                if key == "request" {
                    request = map.next_value_seed(RequestWithoutObjects)?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(request)
        }
    }
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let tree = deserializer.deserialize_map(Envelope)?;
    deserializer.end()?;
    Ok(tree)
}

/// Reads a request into a tree with `object` and `oldObject` null.
struct RequestWithoutObjects;

impl<'de> DeserializeSeed<'de> for RequestWithoutObjects {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RequestWithoutObjects {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an AdmissionReview request")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = if key == "object" || key == "oldObject" {
                map.next_value::<IgnoredAny>()?;
                Value::Null
            } else {
                map.next_value()?
            };
            fields.insert(key, value);
        }
        Ok(Value::Object(fields))
    }
}
