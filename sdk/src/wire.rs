//! The review record as one byte buffer: the encoding behind the contract's
//! optional `evaluate-encoded` export (wit/policy.wit, world
//! `policy-encoded`; docs/policy-contract.md, "Encoded reviews").
//!
//! Lowering the `review` record field by field costs one host-to-guest
//! `realloc` call per string and list (about 60 for a typical Pod, in every
//! policy). The host instead encodes the record once per review with
//! [`encode_review`], copies the bytes into each policy with one allocation,
//! and the SDK decodes them in the guest with [`decode_review`]. Both sides
//! run this module, so they cannot disagree.
//!
//! The format is the WIT `review` record of `tollgate:policy@0.1.0`, its
//! fields in declaration order, after a version byte ([`VERSION`]):
//! - strings: a LEB128 byte length, then UTF-8;
//! - lists (and label maps, as lists of key-value pairs): a LEB128 count, then the items;
//! - `option<T>`: `0`, or `1` followed by `T`;
//! - `bool`: `0` or `1`; enums: the case's index as one byte;
//! - `u32`: LEB128; `s32`, `s64`: zigzag LEB128.
//!
//! As in the WIT record, a Pod's own labels and annotations travel once, in
//! the review; the pod placement's lists are sent empty for a Pod
//! (`template-path` is `""`) and filled back in by the decoder.
//!
//! Decoding never panics and never allocates more than the input can hold:
//! malformed input is a [`WireError`].

use crate::model::{
    HostPort, Labels, NodeInfo, NodeSelectorTerm, Operation, Owner, PodPlacement, PreferredTerm,
    RequestInfo, Review, SelectorOperator, SelectorRequirement, Taint, TaintEffect, Toleration,
    TolerationOperator, Volume, VolumeSource,
};

/// The format version, the first byte of every encoded review.
pub const VERSION: u8 = 1;

/// Why bytes are not an encoded review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The first byte is not [`VERSION`].
    Version(u8),
    /// The input ends inside a value.
    Truncated,
    /// A string is not UTF-8.
    Utf8,
    /// An option, bool or enum tag out of range (what was being read, the tag).
    Tag(&'static str, u8),
    /// A LEB128 number longer than its type allows.
    Overlong,
    /// Bytes left after the review.
    Trailing(usize),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Version(v) => write!(
                f,
                "encoded review has format version {v}; this SDK reads version {VERSION}"
            ),
            WireError::Truncated => write!(f, "encoded review ends inside a value"),
            WireError::Utf8 => write!(f, "encoded review has a string that is not UTF-8"),
            WireError::Tag(what, tag) => write!(f, "encoded review has {what} tag {tag}"),
            WireError::Overlong => write!(f, "encoded review has an overlong number"),
            WireError::Trailing(n) => write!(f, "encoded review is followed by {n} more bytes"),
        }
    }
}

impl std::error::Error for WireError {}

// The enums' cases in WIT declaration order: a case's index is its encoding.
const EFFECTS: [TaintEffect; 3] = [
    TaintEffect::NoSchedule,
    TaintEffect::PreferNoSchedule,
    TaintEffect::NoExecute,
];
const TOLERATION_OPERATORS: [TolerationOperator; 2] =
    [TolerationOperator::Equal, TolerationOperator::Exists];
const SELECTOR_OPERATORS: [SelectorOperator; 6] = [
    SelectorOperator::In,
    SelectorOperator::NotIn,
    SelectorOperator::Exists,
    SelectorOperator::DoesNotExist,
    SelectorOperator::Gt,
    SelectorOperator::Lt,
];
const VOLUME_SOURCES: [VolumeSource; 10] = [
    VolumeSource::EmptyDir,
    VolumeSource::EmptyDirMemory,
    VolumeSource::HostPath,
    VolumeSource::PersistentVolumeClaim,
    VolumeSource::ConfigMap,
    VolumeSource::Secret,
    VolumeSource::Projected,
    VolumeSource::DownwardApi,
    VolumeSource::Ephemeral,
    VolumeSource::Other,
];
const OPERATIONS: [Operation; 5] = [
    Operation::Create,
    Operation::Update,
    Operation::Delete,
    Operation::Connect,
    Operation::None,
];

/// Encode a review (see the module documentation for the format).
pub fn encode_review(review: &Review) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(1024));
    w.0.push(VERSION);
    w.str(&review.api_version);
    w.str(&review.kind);
    w.str(&review.namespace);
    w.str(&review.name);
    w.case(&OPERATIONS, review.operation);
    w.labels(&review.labels);
    w.labels(&review.annotations);
    w.option(review.pod.as_ref(), Writer::pod);
    w.option(review.node.as_ref(), |w, n| {
        w.labels(&n.labels);
        w.labels(&n.annotations);
        w.list(&n.taints, Writer::taint);
        w.bool(n.unschedulable);
    });
    w.option(review.request.as_ref(), |w, r| {
        w.str(&r.uid);
        w.option(r.sub_resource.as_deref(), Writer::str);
        w.str(&r.user);
        w.list(&r.groups, |w, g| w.str(g));
        w.bool(r.dry_run);
    });
    w.0
}

/// Decode a review encoded by [`encode_review`].
///
/// # Errors
/// A [`WireError`] when the bytes are not one whole encoded review of this version.
pub fn decode_review(bytes: &[u8]) -> Result<Review, WireError> {
    decode(Reader {
        bytes,
        at: 0,
        utf8_checked: true,
    })
}

/// [`decode_review`] for bytes that [`encode_review`] wrote, whose strings
/// therefore are UTF-8 and are not checked again. Lengths, tags and the end
/// are checked as in [`decode_review`].
///
/// The guest glue decodes the host's buffer with this, as wit-bindgen's own
/// bindings lift the host's strings without checking them in release builds
/// (`string_lift`: the host guarantees UTF-8). Checking was about 1.5% of the
/// webhook's CPU at 5,000 reviews/s (docs/benchmarks.md, session 10). Debug
/// builds check anyway.
///
/// # Safety
/// Every string in `bytes` must be UTF-8, as in every buffer [`encode_review`]
/// returns; a string that is not would make a `String` that is not UTF-8.
#[cfg_attr(not(feature = "guest"), allow(dead_code))]
#[allow(unsafe_code)]
pub(crate) unsafe fn decode_encoded_review(bytes: &[u8]) -> Result<Review, WireError> {
    decode(Reader {
        bytes,
        at: 0,
        utf8_checked: cfg!(debug_assertions),
    })
}

fn decode(mut r: Reader<'_>) -> Result<Review, WireError> {
    let bytes = r.bytes;
    match r.byte()? {
        VERSION => {}
        other => return Err(WireError::Version(other)),
    }
    let api_version = r.string()?;
    let kind = r.string()?;
    let namespace = r.string()?;
    let name = r.string()?;
    let operation = r.case("operation", &OPERATIONS)?;
    let labels = r.labels()?;
    let annotations = r.labels()?;
    let pod = r.option(|r| {
        let mut pod = r.pod()?;
        if pod.template_path.is_empty() {
            pod.labels = labels.clone();
            pod.annotations = annotations.clone();
        }
        Ok(pod)
    })?;
    let node = r.option(|r| {
        Ok(NodeInfo {
            labels: r.labels()?,
            annotations: r.labels()?,
            taints: r.list(Reader::taint)?,
            unschedulable: r.bool("unschedulable")?,
        })
    })?;
    let request = r.option(|r| {
        Ok(RequestInfo {
            uid: r.string()?,
            sub_resource: r.option(Reader::string)?,
            user: r.string()?,
            groups: r.list(Reader::string)?,
            dry_run: r.bool("dry-run")?,
        })
    })?;
    if r.at != bytes.len() {
        return Err(WireError::Trailing(bytes.len() - r.at));
    }
    Ok(Review {
        api_version,
        kind,
        namespace,
        name,
        operation,
        labels,
        annotations,
        pod,
        node,
        request,
    })
}

struct Writer(Vec<u8>);

impl Writer {
    fn unsigned(&mut self, mut n: u64) {
        while n >= 0x80 {
            self.0.push((n as u8) | 0x80);
            n >>= 7;
        }
        self.0.push(n as u8);
    }

    fn signed(&mut self, n: i64) {
        self.unsigned(((n << 1) ^ (n >> 63)) as u64);
    }

    fn str(&mut self, s: &str) {
        self.unsigned(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }

    fn bool(&mut self, b: bool) {
        self.0.push(u8::from(b));
    }

    fn case<T: PartialEq + Copy>(&mut self, cases: &[T], value: T) {
        let index = cases.iter().position(|c| *c == value).unwrap_or(0);
        self.0.push(index as u8);
    }

    fn option<T: ?Sized>(&mut self, value: Option<&T>, f: impl FnOnce(&mut Self, &T)) {
        match value {
            None => self.0.push(0),
            Some(v) => {
                self.0.push(1);
                f(self, v);
            }
        }
    }

    fn list<T>(&mut self, items: &[T], mut f: impl FnMut(&mut Self, &T)) {
        self.unsigned(items.len() as u64);
        for item in items {
            f(self, item);
        }
    }

    fn labels(&mut self, labels: &Labels) {
        self.unsigned(labels.len() as u64);
        for (k, v) in labels {
            self.str(k);
            self.str(v);
        }
    }

    fn taint(&mut self, t: &Taint) {
        self.str(&t.key);
        self.option(t.value.as_deref(), Writer::str);
        self.case(&EFFECTS, t.effect);
    }

    fn requirement(&mut self, r: &SelectorRequirement) {
        self.str(&r.key);
        self.case(&SELECTOR_OPERATORS, r.operator);
        self.list(&r.values, |w, v| w.str(v));
    }

    fn term(&mut self, t: &NodeSelectorTerm) {
        self.list(&t.match_expressions, Writer::requirement);
        self.list(&t.match_fields, Writer::requirement);
    }

    fn pod(&mut self, p: &PodPlacement) {
        let own_metadata = !p.template_path.is_empty();
        let empty = Labels::new();
        self.str(&p.template_path);
        self.option(p.controller.as_ref(), |w, o| {
            w.str(&o.api_version);
            w.str(&o.kind);
            w.str(&o.name);
        });
        self.labels(if own_metadata { &p.labels } else { &empty });
        self.labels(if own_metadata { &p.annotations } else { &empty });
        self.list(&p.tolerations, |w, t| {
            w.option(t.key.as_deref(), Writer::str);
            w.case(&TOLERATION_OPERATORS, t.operator);
            w.option(t.value.as_deref(), Writer::str);
            w.option(t.effect.as_ref(), |w, e| w.case(&EFFECTS, *e));
            w.option(t.toleration_seconds.as_ref(), |w, s| w.signed(*s));
        });
        self.labels(&p.node_selector);
        self.list(&p.required_node_affinity, Writer::term);
        self.list(&p.preferred_node_affinity, |w, t| {
            w.signed(i64::from(t.weight));
            w.term(&t.preference);
        });
        self.option(p.priority_class_name.as_deref(), Writer::str);
        self.option(p.priority.as_ref(), |w, n| w.signed(i64::from(*n)));
        self.list(&p.volumes, |w, v| {
            w.str(&v.name);
            w.case(&VOLUME_SOURCES, v.source);
        });
        self.list(&p.host_ports, |w, h| {
            w.signed(i64::from(h.port));
            w.str(&h.protocol);
        });
        self.signed(p.cpu_request_millis);
        self.signed(p.memory_request_bytes);
        self.option(p.replicas.as_ref(), |w, n| w.signed(i64::from(*n)));
        self.option(p.node_name.as_deref(), Writer::str);
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    /// Whether strings are checked for UTF-8 ([`decode_encoded_review`]
    /// documents when they need not be).
    utf8_checked: bool,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, WireError> {
        let b = *self.bytes.get(self.at).ok_or(WireError::Truncated)?;
        self.at += 1;
        Ok(b)
    }

    fn unsigned(&mut self) -> Result<u64, WireError> {
        // Most numbers (string lengths, counts) fit in one byte.
        let first = self.byte()?;
        if first & 0x80 == 0 {
            return Ok(u64::from(first));
        }
        let mut n = u64::from(first & 0x7f);
        for shift in (7..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(WireError::Overlong)
    }

    fn signed(&mut self) -> Result<i64, WireError> {
        let n = self.unsigned()?;
        Ok(((n >> 1) as i64) ^ -((n & 1) as i64))
    }

    fn s32(&mut self) -> Result<i32, WireError> {
        i32::try_from(self.signed()?).map_err(|_| WireError::Overlong)
    }

    /// A length or count, which cannot exceed the bytes left (every item
    /// takes at least one), so no allocation is larger than the input.
    fn count(&mut self) -> Result<usize, WireError> {
        let n = self.unsigned()?;
        let left = self.bytes.len() - self.at;
        usize::try_from(n)
            .ok()
            .filter(|n| *n <= left)
            .ok_or(WireError::Truncated)
    }

    fn string(&mut self) -> Result<String, WireError> {
        let len = self.count()?;
        let raw = &self.bytes[self.at..self.at + len];
        self.at += len;
        if self.utf8_checked {
            return std::str::from_utf8(raw)
                .map(str::to_owned)
                .map_err(|_| WireError::Utf8);
        }
        #[allow(unsafe_code)]
        // SAFETY: a reader skips the check only for `decode_encoded_review`,
        // whose caller promises that every string is UTF-8.
        Ok(unsafe { std::str::from_utf8_unchecked(raw) }.to_owned())
    }

    fn bool(&mut self, what: &'static str) -> Result<bool, WireError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(WireError::Tag(what, tag)),
        }
    }

    fn case<T: Copy>(&mut self, what: &'static str, cases: &[T]) -> Result<T, WireError> {
        let tag = self.byte()?;
        cases
            .get(usize::from(tag))
            .copied()
            .ok_or(WireError::Tag(what, tag))
    }

    fn option<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, WireError>,
    ) -> Result<Option<T>, WireError> {
        match self.byte()? {
            0 => Ok(None),
            1 => f(self).map(Some),
            tag => Err(WireError::Tag("option", tag)),
        }
    }

    fn list<T>(
        &mut self,
        mut f: impl FnMut(&mut Self) -> Result<T, WireError>,
    ) -> Result<Vec<T>, WireError> {
        let n = self.count()?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(f(self)?);
        }
        Ok(items)
    }

    fn labels(&mut self) -> Result<Labels, WireError> {
        let n = self.count()?;
        let mut labels = Labels::new();
        for _ in 0..n {
            let key = self.string()?;
            labels.insert(key, self.string()?);
        }
        Ok(labels)
    }

    fn taint(&mut self) -> Result<Taint, WireError> {
        Ok(Taint {
            key: self.string()?,
            value: self.option(Reader::string)?,
            effect: self.case("taint effect", &EFFECTS)?,
        })
    }

    fn requirement(&mut self) -> Result<SelectorRequirement, WireError> {
        Ok(SelectorRequirement {
            key: self.string()?,
            operator: self.case("selector operator", &SELECTOR_OPERATORS)?,
            values: self.list(Reader::string)?,
        })
    }

    fn term(&mut self) -> Result<NodeSelectorTerm, WireError> {
        Ok(NodeSelectorTerm {
            match_expressions: self.list(Reader::requirement)?,
            match_fields: self.list(Reader::requirement)?,
        })
    }

    fn pod(&mut self) -> Result<PodPlacement, WireError> {
        Ok(PodPlacement {
            template_path: self.string()?,
            controller: self.option(|r| {
                Ok(Owner {
                    api_version: r.string()?,
                    kind: r.string()?,
                    name: r.string()?,
                })
            })?,
            labels: self.labels()?,
            annotations: self.labels()?,
            tolerations: self.list(|r| {
                Ok(Toleration {
                    key: r.option(Reader::string)?,
                    operator: r.case("toleration operator", &TOLERATION_OPERATORS)?,
                    value: r.option(Reader::string)?,
                    effect: r.option(|r| r.case("taint effect", &EFFECTS))?,
                    toleration_seconds: r.option(Reader::signed)?,
                })
            })?,
            node_selector: self.labels()?,
            required_node_affinity: self.list(Reader::term)?,
            preferred_node_affinity: self.list(|r| {
                Ok(PreferredTerm {
                    weight: r.s32()?,
                    preference: r.term()?,
                })
            })?,
            priority_class_name: self.option(Reader::string)?,
            priority: self.option(Reader::s32)?,
            volumes: self.list(|r| {
                Ok(Volume {
                    name: r.string()?,
                    source: r.case("volume source", &VOLUME_SOURCES)?,
                })
            })?,
            host_ports: self.list(|r| {
                Ok(HostPort {
                    port: r.s32()?,
                    protocol: r.string()?,
                })
            })?,
            cpu_request_millis: self.signed()?,
            memory_request_bytes: self.signed()?,
            replicas: self.option(Reader::s32)?,
            node_name: self.option(Reader::string)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::labels;

    fn requirement(key: &str, operator: SelectorOperator, values: &[&str]) -> SelectorRequirement {
        SelectorRequirement {
            key: key.into(),
            operator,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    /// A Deployment's review with every field set, every enum case used
    /// somewhere, and numbers at the edges of their types.
    fn full_review() -> Review {
        let pod = PodPlacement {
            template_path: "/spec/template".into(),
            controller: Some(Owner {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: "web-5d9".into(),
            }),
            labels: labels(&[("app.kubernetes.io/name", "web"), ("tier", "ünïcode")]),
            annotations: labels(&[("cluster-autoscaler.kubernetes.io/safe-to-evict", "true")]),
            tolerations: vec![
                Toleration {
                    key: None,
                    operator: TolerationOperator::Exists,
                    value: None,
                    effect: None,
                    toleration_seconds: None,
                },
                Toleration {
                    key: Some("node.kubernetes.io/not-ready".into()),
                    operator: TolerationOperator::Equal,
                    value: Some(String::new()),
                    effect: Some(TaintEffect::NoExecute),
                    toleration_seconds: Some(i64::MIN),
                },
                Toleration {
                    key: Some("pool".into()),
                    operator: TolerationOperator::Equal,
                    value: Some("batch".into()),
                    effect: Some(TaintEffect::PreferNoSchedule),
                    toleration_seconds: Some(i64::MAX),
                },
            ],
            node_selector: labels(&[("kubernetes.io/os", "linux")]),
            required_node_affinity: vec![NodeSelectorTerm {
                match_expressions: vec![
                    requirement("a", SelectorOperator::In, &["x", "y"]),
                    requirement("b", SelectorOperator::NotIn, &[]),
                    requirement("c", SelectorOperator::Exists, &[]),
                    requirement("d", SelectorOperator::DoesNotExist, &[]),
                ],
                match_fields: vec![requirement("metadata.name", SelectorOperator::In, &["n1"])],
            }],
            preferred_node_affinity: vec![PreferredTerm {
                weight: i32::MIN,
                preference: NodeSelectorTerm {
                    match_expressions: vec![
                        requirement("e", SelectorOperator::Gt, &["3"]),
                        requirement("f", SelectorOperator::Lt, &["-1"]),
                    ],
                    match_fields: vec![],
                },
            }],
            priority_class_name: Some("system-cluster-critical".into()),
            priority: Some(i32::MAX),
            volumes: VOLUME_SOURCES
                .iter()
                .enumerate()
                .map(|(i, source)| Volume {
                    name: format!("v{i}"),
                    source: *source,
                })
                .collect(),
            host_ports: vec![HostPort {
                port: 10250,
                protocol: "TCP".into(),
            }],
            cpu_request_millis: -1,
            memory_request_bytes: 1 << 40,
            replicas: Some(0),
            node_name: Some("pool-a-1".into()),
        };
        Review {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: "kube-system".into(),
            name: "web".into(),
            operation: Operation::Update,
            labels: labels(&[("team", "platform")]),
            annotations: labels(&[("note", "a \"quoted\"\nline")]),
            pod: Some(pod),
            node: Some(NodeInfo {
                labels: labels(&[("node-role.kubernetes.io/control-plane", "")]),
                annotations: Labels::new(),
                taints: vec![
                    Taint {
                        key: "k".into(),
                        value: None,
                        effect: TaintEffect::NoSchedule,
                    },
                    Taint {
                        key: "pool".into(),
                        value: Some("batch".into()),
                        effect: TaintEffect::NoExecute,
                    },
                ],
                unschedulable: true,
            }),
            request: Some(RequestInfo {
                uid: "705ab4f5-6393-11e8-b7cc-42010a800002".into(),
                sub_resource: Some("status".into()),
                user: "system:serviceaccount:kube-system:replicaset-controller".into(),
                groups: vec![
                    "system:serviceaccounts".into(),
                    "system:authenticated".into(),
                ],
                dry_run: true,
            }),
        }
    }

    #[test]
    fn a_review_with_every_field_set_comes_back_unchanged() {
        let review = full_review();
        assert_eq!(decode_review(&encode_review(&review)), Ok(review));
    }

    #[test]
    fn every_operation_comes_back_unchanged() {
        for operation in OPERATIONS {
            let review = Review {
                operation,
                ..Review::default()
            };
            assert_eq!(decode_review(&encode_review(&review)), Ok(review));
        }
    }

    #[test]
    fn a_pods_labels_travel_once_and_come_back_in_its_placement() {
        let mut review = full_review();
        let pod = review.pod.as_mut().unwrap();
        pod.template_path = String::new();
        pod.labels = review.labels.clone();
        pod.annotations = review.annotations.clone();
        let bytes = encode_review(&review);
        let once = bytes
            .windows(b"platform".len())
            .filter(|w| *w == b"platform")
            .count();
        assert_eq!(once, 1, "the Pod's label value is sent once");
        assert_eq!(decode_review(&bytes), Ok(review));
    }

    #[test]
    fn an_empty_review_is_a_few_bytes() {
        let bytes = encode_review(&Review::default());
        // version, four empty strings, the operation, two empty maps, three `none`s.
        assert_eq!(bytes.len(), 11);
        assert_eq!(decode_review(&bytes), Ok(Review::default()));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = encode_review(&full_review());
        for end in 0..bytes.len() {
            assert!(
                decode_review(&bytes[..end]).is_err(),
                "a review cut at byte {end} of {} decoded",
                bytes.len()
            );
        }
    }

    #[test]
    fn trailing_bytes_and_another_version_are_errors() {
        let mut bytes = encode_review(&full_review());
        bytes.push(0);
        assert_eq!(decode_review(&bytes), Err(WireError::Trailing(1)));
        let mut bytes = encode_review(&full_review());
        bytes[0] = VERSION + 1;
        assert_eq!(decode_review(&bytes), Err(WireError::Version(VERSION + 1)));
    }

    #[test]
    fn bad_tags_strings_and_lengths_are_errors() {
        let empty = encode_review(&Review::default());
        // The operation is the byte after the version and four empty strings.
        let mut bad_operation = empty.clone();
        bad_operation[5] = 5;
        assert_eq!(
            decode_review(&bad_operation),
            Err(WireError::Tag("operation", 5))
        );
        let mut bad_option = empty.clone();
        bad_option[8] = 2;
        assert_eq!(decode_review(&bad_option), Err(WireError::Tag("option", 2)));
        // apiVersion of length 2 holding an invalid UTF-8 sequence.
        let mut bad_utf8 = vec![VERSION, 2, 0xc3, 0x28];
        bad_utf8.extend_from_slice(&empty[2..]);
        assert_eq!(decode_review(&bad_utf8), Err(WireError::Utf8));
        // A length larger than the input: an error, not a huge allocation.
        let huge = [VERSION, 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert_eq!(decode_review(&huge), Err(WireError::Truncated));
        let overlong = [
            VERSION, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ];
        assert_eq!(decode_review(&overlong), Err(WireError::Overlong));
    }

    #[test]
    fn altered_bytes_decode_or_fail_without_panicking() {
        let bytes = encode_review(&full_review());
        for i in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut altered = bytes.clone();
                altered[i] ^= flip;
                let _ = decode_review(&altered);
            }
        }
    }
}
