//! A step: a map with exactly one operation key (e.g. `write:`) and, optionally, `only:` to limit
//! the step to some memory types where the kernel legitimately differs.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::faults::Faults;
use super::model::*;
use super::pages::Pages;
use crate::kernel::memory::MemoryType;

/// Declares the operations once: the enum, their YAML keys, (de)serialization and schema.
macro_rules! operations {
    ($( $(#[doc = $doc:literal])* $variant:ident($body:ty) = $key:literal, )+) => {
        /// One operation of a step.
        #[derive(Debug, Clone)]
        pub enum Op {
            $( $(#[doc = $doc])* $variant($body), )+
        }

        pub const OP_KEYS: &[&str] = &[$($key,)+];
        const STEP_KEYS: &[&str] = &[$($key,)+ "only"];

        impl Op {
            /// The operation's YAML key.
            pub fn key(&self) -> &'static str {
                match self { $( Op::$variant(_) => $key, )+ }
            }

            fn next_value<'de, A: MapAccess<'de>>(key: &str, map: &mut A) -> Result<Option<Op>, A::Error> {
                Ok(Some(match key {
                    $( $key => Op::$variant(map.next_value()?), )+
                    _ => return Ok(None),
                }))
            }

            fn serialize_entry<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
                match self { $( Op::$variant(body) => map.serialize_entry($key, body), )+ }
            }

            fn schemas(gen: &mut SchemaGenerator) -> Vec<serde_json::Value> {
                let only = gen.subschema_for::<Vec<MemoryType>>().to_value();
                vec![$({
                    let body = gen.subschema_for::<$body>().to_value();
                    let doc: &[&str] = &[$($doc),*];
                    serde_json::json!({
                        "type": "object",
                        "description": doc.join(" ").trim().to_string(),
                        "properties": { $key: body, "only": only.clone() },
                        "required": [$key],
                        "additionalProperties": false
                    })
                },)+]
            }
        }
    };
}

operations! {
    /// Write whole pages with a data pattern; checks the faults raised.
    Write(Access) = "write",
    /// Read whole pages; checks the faults raised and, with `data`, the contents.
    Read(Access) = "read",
    /// UFFDIO_WRITEPROTECT with MODE_WP over the pages.
    Protect(RangeOp) = "protect",
    /// UFFDIO_WRITEPROTECT without MODE_WP over the pages (resolves and wakes).
    Unprotect(RangeOp) = "unprotect",
    /// Check /proc/self/pagemap bits of the pages.
    Pagemap(PagemapExpect) = "pagemap",
    /// UFFDIO_REGISTER of the pages with the given modes.
    Register(RegisterOp) = "register",
    /// UFFDIO_UNREGISTER of the pages.
    Unregister(RangeOp) = "unregister",
    /// UFFDIO_WAKE of the pages.
    Wake(RangeOp) = "wake",
    /// A one-byte write at an offset into a page.
    Poke(Poke) = "poke",
    /// Write pages through a second, unregistered shared mapping of the same file.
    Fill(Fill) = "fill",
    /// UFFDIO_COPY into the pages.
    Copy(Install) = "copy",
    /// UFFDIO_ZEROPAGE into the pages.
    Zeropage(Install) = "zeropage",
    /// UFFDIO_CONTINUE on the pages.
    Continue(Install) = "continue",
    /// UFFDIO_POISON on the pages.
    Poison(Install) = "poison",
    /// UFFDIO_MOVE between pages of the area.
    Move(Move) = "move",
    /// madvise(2) over the pages.
    Madvise(Madvise) = "madvise",
    /// MADV_PAGEOUT, verified; skips the trial when nothing was swapped out.
    SwapOut(SwapOut) = "swap_out",
    /// mprotect(2) over the pages.
    Mprotect(Mprotect) = "mprotect",
    /// munmap(2) of the pages.
    Munmap(Munmap) = "munmap",
    /// mremap(2) of the whole area to a new address.
    Mremap(Mremap) = "mremap",
    /// fork(2) with steps run in the child.
    Fork(Fork) = "fork",
    /// Wait for the threads of `thread: true` accesses.
    Join(Join) = "join",
    /// PAGEMAP_SCAN over the pages.
    Scan(Scan) = "scan",
    /// UFFDIO_API again on the trial's uffd, or on a fresh one.
    Api(Api) = "api",
    /// Open (and close) a userfaultfd.
    Open(Open) = "open",
    /// A kernel-mode write into the pages: read(2) from /dev/zero.
    KernelWrite(KernelWrite) = "kernel_write",
    /// fallocate(PUNCH_HOLE) of the pages.
    PunchHole(PunchHole) = "punch_hole",
    /// Close the trial's uffd without unregistering.
    CloseUffd(CloseUffd) = "close_uffd",
    /// A one-byte write through /proc/self/mem.
    ProcMemWrite(ProcMemWrite) = "proc_mem_write",
    /// Merge the pages with KSM (verified by their PFN).
    KsmMerge(KsmMerge) = "ksm_merge",
    /// Collapse the pages into a transparent huge page (verified).
    Collapse(Collapse) = "collapse",
    /// Migrate the pages to other frames (verified by their PFNs).
    Migrate(Migrate) = "migrate",
    /// Swap the pages out, then swapoff(2) and swapon(2) the suite's swap.
    Swapoff(Swapoff) = "swapoff",
    /// Pin the pages read-only (O_DIRECT or process_vm_readv; unshares COW-shared pages).
    RoPin(RoPin) = "ro_pin",
    /// Pin the pages long-term.
    Pin(PinPages) = "pin",
    /// Drop the pins.
    Unpin(Unpin) = "unpin",
    /// Checks the VmFlags mnemonics of /proc/self/smaps for the vmas of the pages.
    VmFlags(VmFlagsExpect) = "vmflags",
    /// Marks or checks the growth of the process's page-table memory (VmPTE).
    PageTables(PageTables) = "page_tables",
    /// Threads racing operations over the area, with invariants checked during and after.
    Stress(crate::case::stress::Stress) = "stress",
}

impl Op {
    /// Every page selection the operation names.
    pub fn page_sets(&self) -> Vec<&Pages> {
        match self {
            Op::Write(a) | Op::Read(a) => vec![&a.pages],
            Op::Protect(r) | Op::Unprotect(r) | Op::Unregister(r) | Op::Wake(r) => vec![&r.pages],
            Op::Register(r) => vec![&r.pages],
            Op::Pagemap(p) => vec![&p.pages],
            Op::VmFlags(v) => vec![&v.pages],
            Op::PageTables(_) => vec![],
            Op::Poke(_)
            | Op::Mremap(_)
            | Op::Fork(_)
            | Op::Join(_)
            | Op::Api(_)
            | Op::Open(_)
            | Op::CloseUffd(_)
            | Op::ProcMemWrite(_) => vec![],
            Op::KernelWrite(k) => vec![&k.pages],
            Op::KsmMerge(k) => vec![&k.pages],
            Op::Collapse(c) => vec![&c.pages],
            Op::Migrate(m) => vec![&m.pages],
            Op::Swapoff(s) => vec![&s.pages],
            Op::RoPin(r) => vec![&r.pages],
            Op::Pin(p) => vec![&p.pages],
            Op::Unpin(_) | Op::Stress(_) => vec![],
            Op::PunchHole(p) => vec![&p.pages],
            Op::Fill(f) => vec![&f.pages],
            Op::Copy(i) | Op::Zeropage(i) | Op::Continue(i) | Op::Poison(i) => vec![&i.pages],
            Op::Move(m) => vec![&m.from, &m.to],
            Op::Madvise(m) => vec![&m.pages],
            Op::SwapOut(s) => vec![&s.pages],
            Op::Mprotect(m) => vec![&m.pages],
            Op::Munmap(m) => vec![&m.pages],
            Op::Scan(s) => vec![&s.pages],
        }
    }

    /// A one-line summary, e.g. `write pages 0..2 data 2`.
    pub fn summary(&self) -> String {
        let key = self.key();
        match self {
            Op::Write(a) | Op::Read(a) => {
                let data = a.data.map(|d| format!(" data {d}")).unwrap_or_default();
                let thread = if a.thread { " in a thread" } else { "" };
                let alias = if a.alias { " through the alias" } else { "" };
                format!("{key} pages {}{data}{thread}{alias}", a.pages)
            }
            Op::Register(r) => format!("register pages {} modes {:?}", r.pages, r.modes),
            Op::Poke(p) => format!("poke page {} offset {}", p.page, p.offset),
            Op::ProcMemWrite(p) => format!("proc_mem_write page {} offset {}", p.page, p.offset),
            Op::Open(o) => format!(
                "open via {:?}{}",
                o.via,
                if o.user_mode_only {
                    " user-mode-only"
                } else {
                    ""
                }
            ),
            Op::Madvise(m) => format!("madvise pages {} {:?}", m.pages, m.advice),
            Op::Mprotect(m) => format!("mprotect pages {} {:?}", m.pages, m.prot),
            Op::Move(m) => format!("move pages {} to {}", m.from, m.to),
            Op::Fork(f) => format!("fork ({} child steps)", f.steps.len()),
            Op::Mremap(_) | Op::Join(_) => key.to_string(),
            Op::Stress(s) => format!(
                "stress ({} threads, {} rounds of {} ms)",
                s.threads.iter().map(|w| w.count).sum::<u32>(),
                s.rounds,
                s.round_ms
            ),
            other => match other.page_sets().first() {
                Some(p) => format!("{key} pages {p}"),
                None => key.to_string(),
            },
        }
    }

    /// Operations a forked child may run: no uffd ioctls (the uffd is the monitor's).
    pub fn allowed_in_child(&self) -> bool {
        matches!(
            self,
            Op::Write(_)
                | Op::Read(_)
                | Op::Pagemap(_)
                | Op::VmFlags(_)
                | Op::Poke(_)
                | Op::Madvise(_)
                | Op::SwapOut(_)
                | Op::Mprotect(_)
                | Op::Munmap(_)
                | Op::Scan(_)
                | Op::KernelWrite(_)
                | Op::RoPin(_)
        )
    }
}

/// One step of a case: an operation, optionally limited to some memory types.
#[derive(Debug, Clone)]
pub struct Step {
    /// The operation the step performs.
    pub op: Op,
    /// Run the step only on these memory types (others skip the step, not the trial).
    pub only: Option<Vec<MemoryType>>,
}

impl Step {
    /// Whether the step runs on `memory` (always, without `only`).
    pub fn applies_to(&self, memory: MemoryType) -> bool {
        self.only.as_ref().is_none_or(|o| o.contains(&memory))
    }
}

impl Serialize for Step {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1 + usize::from(self.only.is_some())))?;
        self.op.serialize_entry(&mut map)?;
        if let Some(only) = &self.only {
            map.serialize_entry("only", only)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StepVisitor;
        impl<'de> Visitor<'de> for StepVisitor {
            type Value = Step;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(
                    f,
                    "a step: a map with one operation ({}) and optionally `only`",
                    OP_KEYS.join(", ")
                )
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Step, A::Error> {
                let mut op: Option<Op> = None;
                let mut only = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "only" {
                        only = Some(map.next_value()?);
                        continue;
                    }
                    match Op::next_value(&key, &mut map)? {
                        Some(new) => {
                            if let Some(old) = &op {
                                return Err(de::Error::custom(format!(
                                    "a step has exactly one operation, this one has `{}` and `{}`",
                                    old.key(),
                                    new.key()
                                )));
                            }
                            op = Some(new);
                        }
                        None => return Err(de::Error::unknown_field(&key, STEP_KEYS)),
                    }
                }
                let op = op.ok_or_else(|| {
                    de::Error::custom(format!(
                        "a step needs an operation: one of {}",
                        OP_KEYS.join(", ")
                    ))
                })?;
                Ok(Step { op, only })
            }
        }
        d.deserialize_map(StepVisitor)
    }
}

impl JsonSchema for Step {
    fn schema_name() -> Cow<'static, str> {
        "Step".into()
    }
    fn json_schema(gen: &mut SchemaGenerator) -> Schema {
        let schema = serde_json::json!({
            "description": "A step: exactly one operation key, and optionally `only` (memory types the step runs on).",
            "oneOf": Op::schemas(gen)
        });
        Schema::try_from(schema).expect("a schema object")
    }
}

/// fork(2); the child runs `steps` (accesses, pagemap, madvise and the like: not uffd
/// ioctls, its uffd is the monitor's) and reports its own checks back. Messages the child
/// causes are checked per child step; they must come from the uffd UFFD_EVENT_FORK handed over.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fork {
    pub steps: Vec<Step>,
    /// Messages of the fork itself, e.g. `[{event: fork}]` with UFFD_FEATURE_EVENT_FORK.
    #[serde(default)]
    pub events: Faults,
    /// The child must die of this signal (e.g. SIGBUS) at its last step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_signal: Option<SignalName>,
}
