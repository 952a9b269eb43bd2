//! What messages a step expects from the userfaultfd: `none` (the default), a shorthand that means
//! one page fault per accessed page (`wp`, `missing`, `minor`), or an explicit list.

use std::borrow::Cow;
use std::fmt;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::kernel::uapi::*;

/// Expected messages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Faults {
    /// No message at all.
    #[default]
    None,
    /// One write-protect fault (WRITE|WP) per page written, at the page's address, in order.
    Wp,
    /// One missing fault per page accessed (WRITE on writes, no flag on reads).
    Missing,
    /// One minor fault per page accessed (MINOR, plus WRITE on writes).
    Minor,
    /// Exactly these messages, in this order.
    List(Vec<MsgExpect>),
}

/// One expected message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MsgExpect {
    /// The event; default `pagefault`.
    #[serde(default)]
    pub event: EventKind,
    /// For page faults: the page whose address the message must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<usize>,
    /// For page faults: the exact set of flags (`write`, `wp`, `minor`); an empty list means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<Vec<FaultFlag>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    #[default]
    Pagefault,
    Fork,
    Remap,
    Remove,
    Unmap,
}

impl EventKind {
    pub fn code(self) -> u8 {
        match self {
            EventKind::Pagefault => UFFD_EVENT_PAGEFAULT,
            EventKind::Fork => UFFD_EVENT_FORK,
            EventKind::Remap => UFFD_EVENT_REMAP,
            EventKind::Remove => UFFD_EVENT_REMOVE,
            EventKind::Unmap => UFFD_EVENT_UNMAP,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FaultFlag {
    Write,
    Wp,
    Minor,
}

impl FaultFlag {
    pub fn bit(self) -> u64 {
        match self {
            FaultFlag::Write => UFFD_PAGEFAULT_FLAG_WRITE,
            FaultFlag::Wp => UFFD_PAGEFAULT_FLAG_WP,
            FaultFlag::Minor => UFFD_PAGEFAULT_FLAG_MINOR,
        }
    }
}

pub fn flag_mask(flags: &[FaultFlag]) -> u64 {
    flags.iter().fold(0, |m, f| m | f.bit())
}

impl Faults {
    /// The expected messages for an access of `pages` (`write` tells a write from a read).
    pub fn expand(&self, pages: &[usize], write: bool) -> Vec<MsgExpect> {
        let per_page = |flags: Vec<FaultFlag>| -> Vec<MsgExpect> {
            pages
                .iter()
                .map(|&p| MsgExpect {
                    event: EventKind::Pagefault,
                    page: Some(p),
                    flags: Some(flags.clone()),
                })
                .collect()
        };
        let w = if write {
            vec![FaultFlag::Write]
        } else {
            vec![]
        };
        match self {
            Faults::None => vec![],
            Faults::Wp => per_page(vec![FaultFlag::Write, FaultFlag::Wp]),
            Faults::Missing => per_page(w),
            Faults::Minor => per_page([w, vec![FaultFlag::Minor]].concat()),
            Faults::List(l) => l.clone(),
        }
    }

    fn keyword(&self) -> Option<&'static str> {
        match self {
            Faults::None => Some("none"),
            Faults::Wp => Some("wp"),
            Faults::Missing => Some("missing"),
            Faults::Minor => Some("minor"),
            Faults::List(_) => None,
        }
    }
}

impl Serialize for Faults {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (self, self.keyword()) {
            (_, Some(k)) => s.serialize_str(k),
            (Faults::List(l), None) => l.serialize(s),
            _ => unreachable!("every non-list has a keyword"),
        }
    }
}

impl<'de> Deserialize<'de> for Faults {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FaultsVisitor;
        impl<'de> Visitor<'de> for FaultsVisitor {
            type Value = Faults;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`none`, `wp`, `missing`, `minor`, or a list of expected messages")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Faults, E> {
                match v {
                    "none" => Ok(Faults::None),
                    "wp" => Ok(Faults::Wp),
                    "missing" => Ok(Faults::Missing),
                    "minor" => Ok(Faults::Minor),
                    other => Err(E::unknown_variant(
                        other,
                        &["none", "wp", "missing", "minor"],
                    )),
                }
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Faults, A::Error> {
                let mut list = Vec::new();
                while let Some(m) = seq.next_element::<MsgExpect>()? {
                    list.push(m);
                }
                Ok(if list.is_empty() {
                    Faults::None
                } else {
                    Faults::List(list)
                })
            }
        }
        d.deserialize_any(FaultsVisitor)
    }
}

impl JsonSchema for Faults {
    fn schema_name() -> Cow<'static, str> {
        "Faults".into()
    }
    fn json_schema(gen: &mut SchemaGenerator) -> Schema {
        let item = gen.subschema_for::<MsgExpect>();
        json_schema!({
            "description": "Messages the step must raise, and no others: `none` (default), `wp` (one WRITE|WP fault per page, in order, at each page's address), `missing`, `minor`, or an explicit list.",
            "oneOf": [
                { "type": "string", "enum": ["none", "wp", "missing", "minor"] },
                { "type": "array", "items": item }
            ]
        })
    }
}
